"""Audio-LLM family: every connector x classification mode x encoder x LLM on tiny random parts."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from serhub.modeling import (
    AudioLLMForAudioClassification,
    AudioLLMForConditionalGeneration,
    AudioLLMProcessor,
)
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402

CONNECTORS = {
    "query_pooling": dict(num_queries=4, mapper_heads=2),
    "linear": dict(stack_factor=2),
    "vae_ib": dict(stack_factor=4, vib_latent_size=8),  # two token groups: fewer tokens each
}
MODES = ["label_logits", "transcript_conditioned", "pooling_head"]
CASES = [
    (connector, mode, encoder, llm)
    for connector in CONNECTORS
    for mode in MODES
    for encoder, llm in (("whisper", "llama"), ("wavlm", "qwen2"))
]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    tokenizer = make_tokenizer(root / "llm-llama")
    make_tokenizer(root / "llm-qwen2")
    for kind in ("llama", "qwen2"):
        make_llm(root / f"llm-{kind}", kind, len(tokenizer) + 1)
    for kind in ("whisper", "wavlm"):
        make_encoder(root / f"enc-{kind}", kind)
    return root


_built = {}


def build(parts, connector, encoder, llm):
    key = (connector, encoder, llm)
    if key not in _built:
        torch.manual_seed(0)
        _built[key] = AudioLLMForConditionalGeneration.from_pretrained_components(
            parts / f"enc-{encoder}",
            parts / f"llm-{llm}",
            LABELS,
            connector=connector,
            **CONNECTORS[connector],
        )
    model, processor = _built[key]
    return model.eval(), processor


def clips(lengths=(8000, 12000, 5000), seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def classifier_from(model, mode, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    return AudioLLMForAudioClassification.from_pretrained(tmp_path / "ckpt", classification_mode=mode).eval()


@pytest.mark.parametrize("connector,mode,encoder,llm", CASES)
def test_batched_equals_unbatched(parts, tmp_path, connector, mode, encoder, llm):
    model, processor = build(parts, connector, encoder, llm)
    clf = classifier_from(model, mode, tmp_path)
    audio = clips()
    task, prefix = ("asr+ser", "| ASR:") if mode == "transcript_conditioned" else ("ser", None)
    with torch.no_grad():
        batched = clf(
            **processor(
                audio=audio,
                task=task,
                prompt_index=0,
                shuffle_labels=False,
                answer_prefix=prefix,
                sampling_rate=16000,
            )
        ).logits
        single = torch.cat(
            [
                clf(
                    **processor(
                        audio=[a],
                        task=task,
                        prompt_index=0,
                        shuffle_labels=False,
                        answer_prefix=prefix,
                        sampling_rate=16000,
                    )
                ).logits
                for a in audio
            ]
        )
        # the pipeline path (feature extractor only, prompt from the config) agrees too
        from_config = clf(
            **processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        ).logits
    assert batched.shape == (3, len(LABELS))
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    torch.testing.assert_close(from_config, batched, atol=1e-4, rtol=0)


@pytest.mark.parametrize("connector", list(CONNECTORS))
@pytest.mark.parametrize("encoder,llm", [("whisper", "llama"), ("wavlm", "qwen2")])
def test_cached_generation_equals_uncached(parts, connector, encoder, llm):
    model, processor = build(parts, connector, encoder, llm)
    inputs = processor(audio=clips(), task="asr", prompt_index=0, sampling_rate=16000)
    with torch.no_grad():
        cached = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        uncached = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape == (3, inputs["input_ids"].shape[1] + 6)


@pytest.mark.parametrize("connector", list(CONNECTORS))
def test_generative_checkpoint_ranks_labels_like_the_lm(parts, tmp_path, connector):
    model, processor = build(parts, connector, "whisper", "llama")
    inputs = processor(audio=clips(), task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    clf = classifier_from(model, "label_logits", tmp_path)
    with torch.no_grad():
        next_token = model(**inputs).logits[:, -1].log_softmax(-1)
        scores = clf(**inputs).logits
    first_tokens = [ids[0] for ids in clf.config.prompt["label_token_ids"]]
    single = [len(ids) == 1 for ids in clf.config.prompt["label_token_ids"]]
    if all(single):
        torch.testing.assert_close(scores, next_token[:, first_tokens], atol=1e-5, rtol=0)
    assert torch.equal(scores.argsort(-1)[:, -1:], scores.argsort(-1)[:, -1:])  # ranking available
    with torch.no_grad():  # a multi-token label is scored by its full log-likelihood
        for j, ids in enumerate(clf.config.prompt["label_token_ids"]):
            full = torch.tensor([ids])
            seq = torch.cat([inputs["input_ids"], full.expand(3, -1)], 1)
            mask = torch.cat([inputs["attention_mask"], torch.ones(3, len(ids), dtype=torch.long)], 1)
            logp = model(**{**inputs, "input_ids": seq, "attention_mask": mask}).logits.log_softmax(-1)
            expected = sum(logp[:, inputs["input_ids"].shape[1] - 1 + k, t] for k, t in enumerate(ids))
            torch.testing.assert_close(scores[:, j], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("connector", list(CONNECTORS))
def test_training_steps_lower_the_loss_with_lora(parts, connector):
    model, processor = build(parts, connector, "whisper", "llama")
    import copy

    model = copy.deepcopy(model).train()
    model.config.lora_r, model.config.lora_alpha = 16, 64  # a strong adapter for a 12-step test
    torch.manual_seed(0)  # the adapters' initialisation (and dropout)
    peft_model = model.enable_lora()
    assert peft_model is model  # adapters in the language model, in place
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("connector" in n for n in trainable)
    assert not any("audio_encoder" in n for n in trainable)  # the regex spares the encoder's q/v projections
    assert all("lora_" in n for n in trainable if "language_model" in n)
    batch = processor(
        audio=clips(),
        task="asr+ser",
        labels=["happy", "sad", "angry"],
        transcripts=["hello there", "i love this place", "please call me back"],
        sampling_rate=16000,
        seed=0,  # the prompts drawn (unseeded, each run would train on other prompts)
    )
    opt = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(25):
        loss = peft_model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # only attention adapters and the connector move, on a random tiny LM: a clear but small drop
    assert losses[-1] < losses[0] - 0.1 and min(losses[-5:]) < min(losses[:5])
    assert (batch["labels"] != -100).sum() < batch["attention_mask"].sum()  # only the answers are scored


def test_classification_loss_trains_pooling_head(parts, tmp_path):
    model, processor = build(parts, "query_pooling", "whisper", "llama")
    torch.manual_seed(0)  # the new head's initialisation
    clf = classifier_from(model, "pooling_head", tmp_path).train()
    clf.freeze_language_model()
    assert not any(p.requires_grad for p in clf.audio_encoder.parameters())  # frozen after loading too
    # cached encoder outputs with a class signal (the recipes train on such caches)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    states = torch.randn(6, 10, 32)
    states[torch.arange(6), :, targets * 4] += 3.0
    ids = processor(audio=clips((8000,) * 6), task="ser", prompt_index=0, sampling_rate=16000)
    batch = {
        "input_ids": ids["input_ids"],
        "attention_mask": ids["attention_mask"],
        "encoder_hidden_states": states,
    }
    opt = torch.optim.Adam([p for p in clf.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(30):
        loss = clf(**batch, labels=targets).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_text_only_classification(parts, tmp_path):
    model, processor = build(parts, "query_pooling", "whisper", "llama")
    clf = classifier_from(model, "label_logits", tmp_path)
    inputs = processor(
        text=["i love this place", "please call me back"], task="ser", prompt_index=0, shuffle_labels=False
    )
    assert "input_features" not in inputs and (inputs["input_ids"] == processor.audio_token_id).sum() == 0
    with torch.no_grad():
        logits = clf(**inputs).logits
    assert logits.shape == (2, len(LABELS)) and torch.isfinite(logits).all()


def test_processor_prompts_and_masks(parts):
    _, processor = build(parts, "query_pooling", "whisper", "llama")
    a = processor(audio=clips()[:1], task="ser", seed=1, sampling_rate=16000)
    b = processor(audio=clips()[:1], task="ser", seed=2, sampling_rate=16000)
    assert (a["input_ids"] == processor.audio_token_id).sum() == 4  # one placeholder -> num_queries tokens
    texts = {processor.decode(x["input_ids"][0]) for x in (a, b)}
    assert len(texts) == 2  # a different prompt and label order per seed
    train = processor(
        audio=clips()[:1], task="asr+ser", labels=["sad"], transcripts=["hello there"], sampling_rate=16000
    )
    answer = processor.decode(train["input_ids"][0][train["labels"][0] != -100])
    assert answer.strip().startswith("| ASR: hello there | Emotion: sad")
    with pytest.raises(ValueError, match="not in the processor's label set"):
        processor(audio=clips()[:1], task="ser", labels=["bored"], sampling_rate=16000)
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        processor(audio=clips()[:1], sampling_rate=8000)


DEFAULT_SYSTEM_TEMPLATE = (  # a chat template with a default system turn of its own, as SmolLM2's
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_system_prompt_replaces_the_chat_templates_own_and_is_saved(parts, tmp_path):
    llm = tmp_path / "llm"
    tokenizer = make_tokenizer(llm)
    tokenizer.chat_template = DEFAULT_SYSTEM_TEMPLATE
    tokenizer.save_pretrained(llm)
    from audio_llm_fixtures import make_llm

    make_llm(llm, "llama", len(tokenizer) + 1)
    built = {}
    for system_prompt in (None, ""):
        torch.manual_seed(0)
        built[system_prompt] = AudioLLMForConditionalGeneration.from_pretrained_components(
            parts / "enc-whisper",
            llm,
            LABELS,
            connector="linear",
            stack_factor=2,
            system_prompt=system_prompt,
        )
    inputs = {
        k: processor(audio=clips()[:1], task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
        for k, (_, processor) in built.items()
    }
    as_is, empty = (built[k][1].decode(inputs[k]["input_ids"][0]) for k in (None, ""))
    assert "You are a helpful assistant" in as_is  # None: the template's own system turn
    assert "You are a helpful assistant" not in empty and "<|im_start|>system\n<|im_end|>" in empty
    assert inputs[""]["input_ids"].shape[1] < inputs[None]["input_ids"].shape[1]
    # the model's own prompt (what the classifier and the pipeline score) follows the processor's
    model, processor = built[""]
    assert model.config.prompt["input_ids"] == processor.tokenizer(processor.render(
        processor.instruction("ser", None, prompt_index=0, shuffle_labels=False), has_audio=True
    ), add_special_tokens=False)["input_ids"]  # fmt: skip
    assert model.config.prompt["input_ids"] != built[None][0].config.prompt["input_ids"]
    # saved and reloaded with the processor; a processor saved without it keeps the template's own
    processor.save_pretrained(tmp_path / "saved")
    reloaded = AudioLLMProcessor.from_pretrained(tmp_path / "saved")
    assert reloaded.system_prompt == ""
    again = reloaded(audio=clips()[:1], task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    assert torch.equal(again["input_ids"], inputs[""]["input_ids"])
    config = json.loads((tmp_path / "saved" / "processor_config.json").read_text())
    config.pop("system_prompt")
    (tmp_path / "saved" / "processor_config.json").write_text(json.dumps(config))
    assert AudioLLMProcessor.from_pretrained(tmp_path / "saved").system_prompt is None
    with pytest.raises(ValueError, match="system_prompt is the text of the system turn"):
        AudioLLMProcessor(
            processor.feature_extractor, processor.tokenizer, labels=LABELS, system_prompt=["be brief"]
        )


def test_bad_inputs_are_explained(parts):
    model, processor = build(parts, "linear", "whisper", "llama")
    inputs = processor(audio=clips()[:1], task="ser", sampling_rate=16000)
    ids = inputs["input_ids"].clone()
    ids[ids == processor.audio_token_id] = (
        processor.tokenizer.pad_token_id
    )  # a prompt without the placeholder
    with pytest.raises(ValueError, match="0 audio placeholder tokens but the audio gives"):
        model(**{**inputs, "input_ids": ids})
    long_clip = (0.1 * np.random.default_rng(0).standard_normal(16000 * 20)).astype(
        np.float32
    )  # 20 s -> 250 tokens
    too_long = processor(audio=[long_clip], task="ser", sampling_rate=16000)
    model.config.text_config.max_position_embeddings = 128
    try:
        with pytest.raises(ValueError, match="more than the LLM's context of 128"):
            model(**too_long)
    finally:
        model.config.text_config.max_position_embeddings = 512
    tokenizer = make_tokenizer(
        Path(processor.tokenizer.name_or_path).parent / "no-template", with_chat_template=False
    )
    with pytest.raises(ValueError, match="has no chat template"):
        AudioLLMProcessor(processor.feature_extractor, tokenizer, labels=LABELS)


def test_colliding_labels_are_refused(parts):
    _, processor = build(parts, "query_pooling", "whisper", "llama")
    clash = AudioLLMProcessor(processor.feature_extractor, processor.tokenizer, labels=["sad", "sad"])
    with pytest.raises(ValueError, match="tokenise identically"):
        clash.label_token_ids()


def test_reload_in_fresh_process_and_pipeline(parts, tmp_path):
    model, processor = build(parts, "query_pooling", "whisper", "llama")
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    audio = clips()
    np.save(tmp_path / "clips.npy", np.array(audio, dtype=object), allow_pickle=True)
    with torch.no_grad():
        expected_lm = model(
            **processor(audio=audio, task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
        ).logits[:, -1]
        clf = AudioLLMForAudioClassification.from_pretrained(tmp_path / "m").eval()
        expected_clf = clf(
            **processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        ).logits
    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np, torch
        from transformers import AutoModel, AutoModelForAudioClassification, AutoProcessor
        path = {str(tmp_path / "m")!r}
        audio = list(np.load({str(tmp_path / "clips.npy")!r}, allow_pickle=True))
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        lm = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        clf = AutoModelForAudioClassification.from_pretrained(path, trust_remote_code=True).eval()
        with torch.no_grad():
            a = lm(**processor(audio=audio, task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)).logits[:, -1]
            b = clf(**processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")).logits
        assert not any(m.split(".")[0] in ("modeling", "serhub") for m in sys.modules)
        print(json.dumps({{"lm": a.tolist(), "clf": b.tolist()}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(out["lm"]), expected_lm, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.tensor(out["clf"]), expected_clf, atol=1e-4, rtol=0)

    clf_pipe = pipeline("audio-classification", model=str(tmp_path / "m"), trust_remote_code=True)
    result = clf_pipe(audio[0], top_k=len(LABELS))
    assert {r["label"] for r in result} == set(LABELS)
    assert abs(sum(r["score"] for r in result) - 1.0) < 1e-4


@pytest.mark.parametrize("fmt", ["trainable_only", "merged", "trainable_only_then_merged"])
def test_lora_checkpoints_reload_with_equal_outputs(parts, tmp_path, fmt):
    import copy

    model, processor = build(parts, "query_pooling", "whisper", "llama")
    model = copy.deepcopy(model).train()
    peft_model = model.enable_lora()
    assert peft_model is model  # adapters in the language model, in place
    batch = processor(
        audio=clips(),
        task="asr+ser",
        labels=["happy", "sad", "angry"],
        transcripts=["hello there"] * 3,
        sampling_rate=16000,
    )
    opt = torch.optim.Adam([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):  # move the adapters away from their zero initialisation
        loss = peft_model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    inputs = processor(audio=clips(), task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    if fmt == "trainable_only":
        model.config.backbone_weights = "referenced"
        model.save_pretrained(tmp_path / "light")
        saved = load_file(str(tmp_path / "light" / "model.safetensors"))
        trained = {k for k in model.state_dict() if k.startswith("connector.") or ".lora_" in k}
        assert saved.keys() == trained  # no backbone weights
        reloaded = AudioLLMForConditionalGeneration.from_pretrained(tmp_path / "light")
        assert reloaded.config.has_lora and any(".lora_" in k for k in reloaded.state_dict())
        # reloaded to train on: the same parameters train (the adapters and the connector, not the LLM)
        trains = {n for n, p in reloaded.named_parameters() if p.requires_grad}
        assert trains == {n for n, p in model.named_parameters() if p.requires_grad}
    else:
        if (
            fmt == "trainable_only_then_merged"
        ):  # the recipes' path: a phase's light output, merged at the end
            model.config.backbone_weights = "referenced"
            model.save_pretrained(tmp_path / "light")
            model = AudioLLMForConditionalGeneration.from_pretrained(tmp_path / "light").eval()
        merged = model.merge_and_unload_lora()
        merged.save_pretrained(tmp_path / "merged")
        # every weight is in the file: the encoder too (no backbone left to be found elsewhere)
        assert set(load_file(str(tmp_path / "merged" / "model.safetensors"))) == set(merged.state_dict())
        assert not any("lora_" in k for k in merged.state_dict())
        assert merged.config.backbone_weights == "included"  # the merged LLM is not its reference any more
        full = load_file(str(tmp_path / "merged" / "model.safetensors"))
        assert "language_model.model.embed_tokens.weight" in full
        reloaded = AudioLLMForConditionalGeneration.from_pretrained(tmp_path / "merged").eval()
    # the frame statistics gathered in training travel with both kinds of checkpoint
    assert int(model.connector.in_norm.num_frames) > 0
    torch.testing.assert_close(reloaded.connector.in_norm.running_mean, model.connector.in_norm.running_mean)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, expected, atol=1e-4, rtol=0)


def test_running_frame_norm_uses_only_valid_frames():
    from serhub.modeling.layers import RunningFrameNorm

    norm = RunningFrameNorm(3).eval()
    frames = torch.randn(2, 5, 3)
    # before any training frame it is the identity
    torch.testing.assert_close(norm(frames, torch.ones(2, 5, dtype=torch.bool)), frames, atol=1e-4, rtol=0)
    norm.train()
    chunks = [torch.randn(2, 6, 3) * 3 + 1 for _ in range(3)]
    masks = [torch.arange(6)[None] < torch.tensor([[6], [2]]) for _ in range(3)]
    for x, m in zip(chunks, masks):
        x[~m] = 1e6  # padding must never reach the statistics
        norm(x, m)
    valid = torch.cat([x[m] for x, m in zip(chunks, masks)])
    torch.testing.assert_close(norm.running_mean, valid.mean(0))
    torch.testing.assert_close(norm.running_var, valid.var(0, unbiased=False))
    assert int(norm.num_frames) == valid.shape[0]
    norm.eval()
    out = norm(chunks[0], masks[0])
    torch.testing.assert_close(
        out[0], (chunks[0][0] - valid.mean(0)) / valid.var(0, unbiased=False).add(1e-5).sqrt()
    )


def test_audio_token_statistics_flag_identical_clips(parts):
    model, _ = build(parts, "query_pooling", "whisper", "llama")
    states = torch.randn(1, 20, model.config.audio_hidden_size)
    same = model.audio_token_statistics(encoder_hidden_states=states.repeat(4, 1, 1))
    assert same["token_diversity"] < 1e-4 and same["token_norm_ratio"] > 0
    varied = model.audio_token_statistics(
        encoder_hidden_states=torch.randn(4, 20, model.config.audio_hidden_size)
    )
    assert varied["token_diversity"] > same["token_diversity"]
    with pytest.raises(ValueError, match="at least 2 clips"):
        model.audio_token_statistics(encoder_hidden_states=states)


@pytest.mark.slow
def test_real_whisper_and_smollm2_forward_backward(whisper_tiny_dir, smollm2_dir):
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        whisper_tiny_dir, smollm2_dir, LABELS, connector="query_pooling"
    )
    peft_model = model.train().enable_lora()
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "connector" in n for n in trainable)
    batch = processor(
        audio=clips((16000, 24000)),
        task="asr+ser",
        labels=["happy", "sad"],
        transcripts=["hello there", "please call me back"],
        sampling_rate=16000,
    )
    loss = peft_model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and 0.5 < loss.item() < 20
    grads = [p.grad for n, p in peft_model.named_parameters() if "connector" in n]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(
        g.abs().sum() > 0 for g in grads
    )
    # the real chat template renders the prompt; the answer is the only scored part
    text = processor.decode(batch["input_ids"][0], skip_special_tokens=False)
    assert "<|im_start|>assistant" in text and processor.cue in text


def test_light_checkpoint_loads_as_classifier_and_in_pipeline(parts, tmp_path):
    import shutil

    shutil.copytree(parts / "enc-whisper", tmp_path / "enc")  # a backbone that will move away
    torch.manual_seed(0)
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tmp_path / "enc", parts / "llm-llama", LABELS, **CONNECTORS["query_pooling"]
    )
    model.enable_lora()
    model.save_trainable(tmp_path / "light")  # = save_pretrained with backbone_weights="referenced"
    processor.save_pretrained(tmp_path / "light")
    assert model.config.backbone_weights == "included"  # save_trainable changed the saved config only
    inputs = processor(audio=clips(), task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    with torch.no_grad():
        expected = model.eval().as_classifier("label_logits")(**inputs).logits
        clf = AudioLLMForAudioClassification.from_pretrained(tmp_path / "light")
        torch.testing.assert_close(clf(**inputs).logits, expected, atol=1e-4, rtol=0)
    result = pipeline("audio-classification", model=str(tmp_path / "light"), trust_remote_code=True)(
        clips()[0], top_k=len(LABELS)
    )
    assert {r["label"] for r in result} == set(LABELS)
    shutil.move(tmp_path / "enc", tmp_path / "enc-moved")
    with pytest.raises(FileNotFoundError, match=r"audio_model_name_or_path=.*enc.*not there"):
        AudioLLMForAudioClassification.from_pretrained(tmp_path / "light")
    moved = AudioLLMForAudioClassification.from_pretrained(
        tmp_path / "light", audio_model_name_or_path=str(tmp_path / "enc-moved")
    )
    with torch.no_grad():
        torch.testing.assert_close(moved(**inputs).logits, expected, atol=1e-4, rtol=0)


def test_query_pooling_windows_long_audio():
    import resource

    from serhub.modeling.connectors import QueryPoolingMapper

    torch.manual_seed(0)
    mapper = QueryPoolingMapper(
        384, 576, num_queries=32, num_heads=8, output_scale=0.1, max_frames=1500
    ).eval()
    short = torch.randn(2, 300, 384)
    mask = torch.arange(300)[None] < torch.tensor([[300], [120]])
    with torch.no_grad():
        one_window = mapper(short, mask)[0]
        mapper.max_frames = 100  # the same clips cut into windows: a different (averaged) result
        windowed = mapper(short, mask)[0]
        # batched == one clip at a time, also across windows
        torch.testing.assert_close(
            windowed[1:], mapper(short[1:, :120], mask[1:, :120])[0], atol=1e-5, rtol=0
        )
        mapper.max_frames = 1500
        torch.testing.assert_close(
            one_window[1:], mapper(short[1:, :120], mask[1:, :120])[0], atol=1e-5, rtol=0
        )
    assert not torch.allclose(one_window, windowed)
    # 10 minutes of Whisper frames (50 Hz): unwindowed attention would need ~30 GB; windows need < 2 GB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        tokens, _ = mapper(torch.randn(1, 30000, 384), torch.ones(1, 30000, dtype=torch.bool))
    grown_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20
    assert tokens.shape == (1, 32, 576) and torch.isfinite(tokens).all()
    assert grown_gb < 2.0, f"peak memory grew by {grown_gb:.1f} GB"


def test_a_light_checkpoint_of_the_old_format_is_refused(parts, tmp_path):
    """A folder with only trainable.safetensors (the light format before backbone_weights) is refused
    with what to do, instead of loading an untrained connector."""
    from safetensors.torch import save_file

    model, _ = build(parts, "linear", "whisper", "llama")
    model.save_trainable(tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text((tmp_path / "new" / "config.json").read_text())
    save_file(load_file(str(tmp_path / "new" / "model.safetensors")), str(old / "trainable.safetensors"))
    for cls in (AudioLLMForAudioClassification, AudioLLMForConditionalGeneration):
        with pytest.raises(ValueError, match=r"trainable.safetensors.*Train it again"):
            cls.from_pretrained(old)


def test_light_checkpoint_of_a_tied_llm_loads_without_a_corruption_warning(tmp_path, caplog):
    """A light checkpoint leaves out the frozen LLM, tied embeddings included: loading it fills them
    from the LLM's own folder, keeps the tie, and does not call the checkpoint corrupted."""
    import logging

    tokenizer = make_tokenizer(tmp_path / "llm")
    make_llm(tmp_path / "llm", "llama", len(tokenizer) + 1, tie_word_embeddings=True)
    make_encoder(tmp_path / "enc", "whisper")
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        tmp_path / "enc", tmp_path / "llm", LABELS, connector="linear"
    )
    model.enable_lora()
    model.save_trainable(tmp_path / "light")
    with caplog.at_level(logging.WARNING):
        reloaded, info = AudioLLMForConditionalGeneration.from_pretrained(
            tmp_path / "light", output_loading_info=True
        )
    assert "corrupted" not in caplog.text
    assert isinstance(info, dict) and "missing_keys" in info
    llm = reloaded.language_model
    assert llm.get_output_embeddings().weight.data_ptr() == llm.get_input_embeddings().weight.data_ptr()
    inputs = processor(audio=clips(), task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, model.eval()(**inputs).logits)


def test_trunk_loads_any_checkpoint_and_a_light_save_leaves_backbones_out(parts, tmp_path):
    """The heads subclass AudioLLMModel, so one checkpoint loads in the trunk and in both heads with the
    same keys; a light save drops the backbones also from a full state_dict passed in (as the Trainer
    passes one)."""
    from serhub.modeling import AudioLLMModel

    model, processor = build(parts, "query_pooling", "whisper", "llama")
    model.enable_lora()
    model.config.backbone_weights = "referenced"
    model.save_pretrained(tmp_path / "light", state_dict=model.state_dict())
    saved = load_file(str(tmp_path / "light" / "model.safetensors"))
    assert saved and all(k.startswith("connector.") or ".lora_" in k for k in saved)
    model.config.backbone_weights = "included"
    model.save_pretrained(tmp_path / "full")
    trunk = AudioLLMModel.from_pretrained(tmp_path / "full").eval()
    assert set(trunk.state_dict()) == set(model.state_dict())
    assert trunk.base_model is trunk
    inputs = processor(audio=clips(), task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    with torch.no_grad():
        hidden = trunk(**inputs).last_hidden_state
        embeds, mask, positions = model.eval().build_inputs(
            inputs["input_ids"], inputs["attention_mask"], inputs["input_features"],
            inputs["audio_attention_mask"], None, None,
        )  # fmt: skip
        expected = model.language_model.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions
        ).last_hidden_state
    torch.testing.assert_close(hidden, expected)
    assert hidden.shape[:2] == inputs["input_ids"].shape
