"""The ctc_path connector: the LLM reads the CTC head's best path exactly as if the words were typed
in the prompt (unused slots masked from attention, in scoring and in generation), batched equals one
clip at a time, the head trains with CTC and decodes what it learnt, and save/reload keeps it."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_parts  # noqa: E402

TEXTS = ["hello there", "please call me back", "i love this place", "the meeting is on thursday"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model, processor = _build(make_parts(tmp_path_factory.mktemp("parts")))
    return model.eval(), processor


def _build(root):
    from serhub.modeling import AudioLLMForConditionalGeneration

    torch.manual_seed(0)
    return AudioLLMForConditionalGeneration.from_pretrained_components(
        root / "enc",
        root / "llm",
        LABELS,
        connector="ctc_path",
        stack_factor=2,
        num_queries=3,
        mapper_heads=2,
    )


def _states(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, frames, 32)).astype(np.float32))


def _force_path(model, monkeypatch, paths: list[list[int]]):
    """Make the CTC head's best path of clip i spell ``paths[i]`` (each id, then a blank)."""

    def ctc_logits(frames, mask, embeddings, blocked_ids=()):
        from serhub.modeling.layers import stack_frames

        _, steps = stack_frames(frames, mask, model.connector.stack_factor)
        logits = torch.zeros(*steps.shape, embeddings.shape[0] + 1)
        logits[..., 0] = 1.0  # blank everywhere else
        for b, path in enumerate(paths):
            assert 2 * len(path) <= int(steps[b].sum()), "the test's path must fit the clip's slots"
            for i, token in enumerate(path):
                logits[b, 2 * i, token + 1] = 5.0
        return logits, steps

    monkeypatch.setattr(model.connector, "ctc_logits", ctc_logits)


def _typed(model, processor, words: list[int], states):
    """The same ASR prompt with ``words`` typed where the words slots are, the voice tokens in theirs:
    (embeddings, ids) as the LLM would see them with no masked slot."""
    frames = states.shape[1]
    n_words, n_voice = processor.audio_token_counts(frames)
    ids = processor(audio_token_counts=[(n_words, n_voice)], task="asr", prompt_index=0)["input_ids"][
        0
    ].tolist()
    audio = processor.audio_token_id
    first = ids.index(audio)
    typed = ids[:first] + words + ids[first + n_words :]
    mask = torch.ones(states.shape[:2], dtype=torch.bool)
    voice, _ = model.connector.voice(states, mask)
    embeds = model.get_input_embeddings()(
        torch.tensor([typed]).masked_fill(torch.tensor([typed]) == audio, 0)
    )
    slots = torch.tensor([typed]) == audio
    return embeds.masked_scatter(slots[..., None], voice.reshape(-1, voice.shape[-1])), ids


def test_the_llm_reads_the_path_as_typed_words(tiny, monkeypatch):
    model, processor = tiny
    words = processor.tokenizer("hello there", add_special_tokens=False)["input_ids"]
    _force_path(model, monkeypatch, [words])
    states = _states(40)
    embeds, ids = _typed(model, processor, words, states)
    with torch.no_grad():
        typed = model.language_model(inputs_embeds=embeds).logits[0, -1]
        heard = model(input_ids=torch.tensor([ids]), encoder_hidden_states=states).logits[0, -1]
    torch.testing.assert_close(heard, typed, atol=1e-4, rtol=1e-4)


def test_generation_masks_the_unused_slots_at_every_step(tiny, monkeypatch):
    model, processor = tiny
    words = processor.tokenizer("please call me back", add_special_tokens=False)["input_ids"]
    _force_path(model, monkeypatch, [words])
    states = _states(80, seed=1)
    embeds, ids = _typed(model, processor, words, states)
    typed = []
    with torch.no_grad():
        for _ in range(6):  # greedy decoding without a cache, on the typed prompt
            token = model.language_model(inputs_embeds=embeds).logits[0, -1].argmax()
            typed.append(int(token))
            embeds = torch.cat([embeds, model.get_input_embeddings()(token)[None, None]], 1)
        heard = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            encoder_hidden_states=states,
            max_new_tokens=6,
            min_new_tokens=6,
            do_sample=False,
        )
    assert heard[0, len(ids) :].tolist() == typed


def test_batched_equals_one_clip_at_a_time(tiny, monkeypatch):
    model, processor = tiny
    tok = processor.tokenizer
    paths = [tok(t, add_special_tokens=False)["input_ids"] for t in ("hello there", "i love this place")]
    lengths = (40, 60)
    singles = []
    for i, n in enumerate(lengths):
        _force_path(model, monkeypatch, [paths[i]])
        batch = processor(audio_token_counts=[processor.audio_token_counts(n)], task="ser", prompt_index=0)
        with torch.no_grad():
            out = model.as_classifier()(
                input_ids=torch.as_tensor(batch["input_ids"]), encoder_hidden_states=_states(n, seed=i)
            )
        singles.append(out.logits[0])
    _force_path(model, monkeypatch, paths)
    states = torch.zeros(2, max(lengths), 32)
    mask = torch.zeros(2, max(lengths), dtype=torch.bool)
    for i, n in enumerate(lengths):
        states[i, :n], mask[i, :n] = _states(n, seed=i)[0], True
    batch = processor(
        audio_token_counts=[processor.audio_token_counts(n) for n in lengths], task="ser", prompt_index=0
    )
    with torch.no_grad():
        out = model.as_classifier()(
            input_ids=torch.as_tensor(batch["input_ids"]),
            attention_mask=torch.as_tensor(batch["attention_mask"]),
            encoder_hidden_states=states,
            encoder_attention_mask=mask,
        )
    torch.testing.assert_close(out.logits, torch.stack(singles), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampled_tokens", [None, 16], ids=["whole_vocabulary", "sampled_softmax"])
def test_ctc_trains_the_connectors_own_head_and_it_decodes(tmp_path, sampled_tokens):
    from serhub.modeling import AudioLLMForConditionalGeneration
    from serhub.recipes.ctc_alignment import ctc_greedy_transcripts, pad_rows, train_ctc_alignment

    model, processor = _build(make_parts(tmp_path / "parts"))
    rng = np.random.default_rng(0)
    rows = [
        {"encoder_hidden_states": rng.standard_normal((30 + 6 * i, 32)).astype(np.float16), "transcript": t}
        for i, t in enumerate(TEXTS)
    ]
    voice = model.connector.voice.out_proj.weight.detach().clone()
    head, history = train_ctc_alignment(
        model, processor.tokenizer, rows, pad_rows, steps=120, batch_size=4, learning_rate=1e-2, log_every=20,
        sampled_tokens=sampled_tokens,
    )  # fmt: skip
    assert head is None  # the connector's own head trained (it is saved with the model)
    assert history[-1]["ctc_loss"] < 0.5 * history[0]["ctc_loss"]
    assert torch.equal(voice, model.connector.voice.out_proj.weight)  # CTC leaves the voice tokens alone
    decoded = ctc_greedy_transcripts(model, None, pad_rows(rows), processor.tokenizer)
    assert sum(d == r["transcript"] for d, r in zip(decoded, rows)) >= 3
    # what the words slots hold is that decoding, and it survives save / reload
    batch = pad_rows(rows)
    embeddings = model.get_input_embeddings().weight
    paths = model.connector.best_path_ids(
        batch["encoder_hidden_states"],
        batch["encoder_attention_mask"],
        embeddings,
        [processor.audio_token_id],
    )
    assert [processor.tokenizer.decode(p).strip() for p in paths] == decoded
    model.save_pretrained(tmp_path / "saved")
    again = AudioLLMForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        before, _ = model.eval().audio_tokens(**batch)
        after, _ = again.audio_tokens(**batch)
    torch.testing.assert_close(after, before)


def test_the_audio_placeholder_is_never_written(tiny):
    model, processor = tiny
    states = _states(40)
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():  # a head whose every step points at the placeholder's own embedding
        model.connector.proj.weight.zero_()
        model.connector.proj.bias.copy_(embeddings[processor.audio_token_id])
        paths = model.connector.best_path_ids(
            states, torch.ones(1, 40, dtype=torch.bool), embeddings, [processor.audio_token_id]
        )
    assert processor.audio_token_id not in paths[0]


def test_copy_rows_put_the_reference_words_in_the_slots(tiny, monkeypatch):
    """Copy training: a row given ``ctc_words`` reads those tokens in its words slots, exactly as if
    its CTC head had written them; a row of -1 keeps the head's own words."""
    from serhub.recipes.audio_llm_common import CachedAudioLLMCollator

    model, processor = tiny
    tok = processor.tokenizer
    own = tok("hello there", add_special_tokens=False)["input_ids"]
    reference = tok("i love this place", add_special_tokens=False)["input_ids"]
    rows = [
        {"encoder_hidden_states": _states(60, seed=i)[0].numpy(), "transcript": "i love this place"}
        for i in range(2)
    ]
    collate = CachedAudioLLMCollator(processor, "asr", seed=0, fixed_prompt=True, copy_fraction=1.0)
    batch = collate(rows)
    assert batch["ctc_words"].tolist() == [reference, reference]
    batch["ctc_words"][1] = -1  # the second row keeps its own words
    _force_path(model, monkeypatch, [own, own])
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "asr_token_mask")}
    with torch.no_grad():
        copied = model(**inputs).logits[:, -1]
    _force_path(model, monkeypatch, [reference, own])
    inputs.pop("ctc_words")
    with torch.no_grad():
        heard = model(**inputs).logits[:, -1]
    torch.testing.assert_close(copied, heard, atol=1e-5, rtol=1e-5)
    # without the share, or for another connector, no copy rows
    assert "ctc_words" not in CachedAudioLLMCollator(processor, "asr", seed=0)(rows)
    config = type(model.config).from_dict({**model.config.to_dict(), "connector": "linear"})
    linear = type(model)(config)
    with pytest.raises(ValueError, match="the linear connector has no words slots"):
        linear.connect(encoder_hidden_states=_states(8), ctc_words=torch.tensor([[1]]))
