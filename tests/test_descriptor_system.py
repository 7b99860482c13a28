"""The descriptor system (arXiv:2505.23236) on tiny random parts: the two-branch variational connector,
its KL term and beta schedule, branch freezing per stage, the two audio-token groups in the prompt,
the "| Descriptors:" answers and the descriptor_conditioned mode, reload in a fresh process."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import AudioLLMForAudioClassification, AudioLLMForConditionalGeneration
from serhub.modeling.connectors import VariationalBottleneckConnector
from serhub.modeling.prompting_audio_llm import described_answer, parse_answer
from serhub.recipes.descriptors import DescriptorArguments, kl_weight, set_trainable_branch
from serhub.recipes.objectives import AudioLLMObjective

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import LABELS, make_encoder, make_llm, make_tokenizer  # noqa: E402

DESCRIPTORS = ["high pitch, fast, loud", "low pitch, monotone, slow", "moderate pitch, soft"]


@pytest.fixture(scope="module")
def model_and_processor(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    torch.manual_seed(0)
    return AudioLLMForConditionalGeneration.from_pretrained_components(
        root / "enc", root / "llm", LABELS, connector="vae_ib", stack_factor=2, vib_latent_size=8
    )


def clips(lengths=(8000, 12000, 5000), seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def training_batch(processor, task="asr+des+ser"):
    return processor(
        audio=clips(),
        task=task,
        labels=["happy", "sad", "neutral"],
        transcripts=["please call me back", "hello there", "i love this place"],
        descriptors=DESCRIPTORS,
        sampling_rate=16000,
        seed=0,
    )


def test_beta_schedule():
    assert kl_weight(0.0) == pytest.approx(1.0)
    assert kl_weight(0.5) == pytest.approx(1e-2)  # even in log space
    assert kl_weight(1.0) == pytest.approx(1e-4)
    assert kl_weight(2.0) == pytest.approx(1e-4)  # clamped
    assert kl_weight(0.5, schedule="linear") == pytest.approx(0.50005)
    assert kl_weight(0.3, start=0.2, schedule="constant") == 0.2
    with pytest.raises(ValueError, match="one step count"):
        DescriptorArguments(stages=[1, 2, 1], stage_max_steps=[10, 10])
    with pytest.raises(ValueError, match="stages 1 and 2"):
        DescriptorArguments(stages=[3], stage_max_steps=[10])


def test_kl_term_is_the_closed_form_and_joins_the_loss(model_and_processor):
    connector = VariationalBottleneckConnector(3, 6, 4, 5, stack_factor=2)
    for branch in (connector.content, connector.descriptor):
        torch.nn.init.zeros_(branch.posterior.weight)
        branch.posterior.bias.data = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.3, -0.2, 0.0, 0.1])  # mu | log var
    mu, log_var = torch.tensor([0.5, -1.0, 0.0, 2.0]), torch.tensor([0.3, -0.2, 0.0, 0.1])
    expected = 0.5 * float((mu**2 + log_var.exp() - log_var - 1).sum())
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    connector(torch.randn(2, 3, 7, 6), mask)
    assert float(connector.pop_kl().detach()) == pytest.approx(2 * expected, rel=1e-5)  # both branches
    assert connector.pop_kl() is None  # read once: a later forward without audio adds nothing stale

    model, processor = model_and_processor
    batch = training_batch(processor)
    model.train()
    losses = {}
    for beta in (0.0, 0.5):
        torch.manual_seed(0)  # the same z samples
        losses[beta] = AudioLLMObjective(kl_weight=beta)(model, batch).item()
    torch.manual_seed(0)  # the forward's first random draw: the same z samples again
    model.audio_tokens(batch["input_features"], batch["audio_attention_mask"])
    kl = model.connector.pop_kl().item()
    assert kl > 0
    assert losses[0.5] - losses[0.0] == pytest.approx(0.5 * kl, rel=1e-4)
    model.eval()
    with torch.no_grad():  # inference: z = mu, no noise, and the loss is the LM loss alone
        a, b = model(**batch), model(**batch)
        c = AudioLLMObjective(kl_weight=0.5)(model, batch)
    torch.testing.assert_close(a.logits, b.logits)
    assert float(a.loss) == pytest.approx(float(c), rel=1e-6)


@pytest.mark.parametrize("stage", [1, 2])
def test_gradients_stop_at_the_frozen_branch(model_and_processor, stage):
    model, processor = model_and_processor
    set_trainable_branch(model, stage)
    model.train()
    model.zero_grad(set_to_none=True)
    objective = AudioLLMObjective(kl_weight=1e-2)
    objective(model, training_batch(processor, "asr" if stage == 1 else "asr+des+ser")).backward()
    trained, frozen = ("content", "descriptor") if stage == 1 else ("descriptor", "content")
    for name, p in getattr(model.connector, frozen).named_parameters():
        assert not p.requires_grad and p.grad is None, name
    grads = [p.grad for p in getattr(model.connector, trained).parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    lora = [p for n, p in model.language_model.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad and p.grad is not None for p in lora)  # LoRA trains in both stages
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    model.zero_grad(set_to_none=True)
    model.eval()


def test_two_audio_groups_and_the_described_answer(model_and_processor):
    model, processor = model_and_processor
    batch = training_batch(processor)
    audio_id, sizes = processor.audio_token_id, []
    for row, mask, answer in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        ids = row[mask.bool()].tolist()
        text = processor.decode(ids)
        assert text.count("content:") == 1 and text.count("speaking style:") == 1
        runs = [len(r) for r in "".join("a" if t == audio_id else " " for t in ids).split()]
        assert len(runs) == 2 and runs[0] == runs[1] > 0  # one group per branch, in its own place
        sizes.append(runs[0])
        target = processor.decode([t for t in answer.tolist() if t != -100])
        assert "| Descriptors:" in target and "| Emotion:" in target
    assert sizes[1] > sizes[0] > sizes[2]  # 12000, 8000, 5000 samples
    assert processor.decode([t for t in batch["labels"][1].tolist() if t != -100]).startswith(
        "| ASR: hello there | Descriptors: low pitch, monotone, slow | Emotion: sad"
    )
    written = described_answer("press one", "high pitch, fast", "happy")
    assert parse_answer(written) == {
        "transcript": "press one",
        "descriptors": "high pitch, fast",
        "label": "happy",
    }
    assert parse_answer("| ASR: hi | Emotion: sad")["descriptors"] is None


@pytest.mark.parametrize("mode", ["label_logits", "descriptor_conditioned"])
def test_batched_equals_one_by_one(model_and_processor, tmp_path, mode):
    model, processor = model_and_processor
    model.save_pretrained(tmp_path / "m")
    clf = AudioLLMForAudioClassification.from_pretrained(tmp_path / "m", classification_mode=mode).eval()
    audio = clips()
    kwargs = dict(task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    if mode == "descriptor_conditioned":
        kwargs.update(task="asr+des+ser", answer_prefix="| ASR:")
    with torch.no_grad():
        batched = clf(**processor(audio=audio, **kwargs)).logits
        single = torch.cat([clf(**processor(audio=[a], **kwargs)).logits for a in audio])
        from_config = clf(
            **processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        ).logits
    assert batched.shape == (3, len(LABELS)) and torch.isfinite(batched).all()
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    torch.testing.assert_close(from_config, batched, atol=1e-4, rtol=0)


def test_explain_returns_the_parsed_answers(model_and_processor):
    model, processor = model_and_processor
    model.eval()
    answers = model.explain(processor, clips(), max_new_tokens=6)
    assert len(answers) == 3 and all(set(a) == {"transcript", "descriptors", "label"} for a in answers)
    assert all(isinstance(a["transcript"], str) for a in answers)  # an untrained model writes something


def test_descriptor_conditioned_needs_a_descriptor_model(tmp_path):
    root = tmp_path
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    model, processor = AudioLLMForConditionalGeneration.from_pretrained_components(
        root / "enc", root / "llm", LABELS, connector="linear", stack_factor=2
    )
    model.config.prompt.pop("descriptors_prefix_ids")
    clf = model.as_classifier("descriptor_conditioned")
    with pytest.raises(ValueError, match="needs a model trained to write descriptors"):
        clf(**processor(audio=clips(), task="asr+des+ser", answer_prefix="| ASR:", sampling_rate=16000))


def test_reload_in_a_fresh_process(model_and_processor, tmp_path):
    model, processor = model_and_processor
    model.eval()
    model.save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    audio = clips()
    np.save(tmp_path / "clips.npy", np.array(audio, dtype=object), allow_pickle=True)
    with torch.no_grad():
        expected = model(
            **processor(audio=audio, task="asr+des+ser", prompt_index=0, sampling_rate=16000)
        ).logits[:, -1]
    script = textwrap.dedent(
        f"""
        import json, numpy as np, torch
        from transformers import AutoModel, AutoProcessor, pipeline
        path = {str(tmp_path / "m")!r}
        audio = list(np.load({str(tmp_path / "clips.npy")!r}, allow_pickle=True))
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
        with torch.no_grad():
            out = model(**processor(audio=audio, task="asr+des+ser", prompt_index=0, sampling_rate=16000)).logits[:, -1]
        top = pipeline("audio-classification", model=path, trust_remote_code=True)(audio[0], top_k=10)
        print(json.dumps({{"logits": out.tolist(), "labels": [r["label"] for r in top], "total": sum(r["score"] for r in top)}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(out["logits"]), expected, atol=1e-4, rtol=0)
    assert set(out["labels"]) == set(LABELS) and math.isclose(out["total"], 1.0, abs_tol=1e-4)
