"""Qwen2-Audio LoRA (THAU task 2) on a tiny random Qwen2-Audio: answer parsing with its fallback, the
loss on the answer only, LoRA training end to end, label scoring, the pipeline, fresh-process reload."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from serhub.modeling import Qwen2AudioForAudioClassification
from serhub.modeling.modeling_qwen2_audio_ser import chat_text, parse_label
from serhub.recipes import qwen2_audio_lora

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_qwen2_audio  # noqa: E402

EMOTIONS = ["neutral", "happy", "sad", "angry", "fear", "surprise"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_small):
    root = tmp_path_factory.mktemp("qwen2-audio")
    make_qwen2_audio(root / "base", EMOTIONS)
    synthetic_small.save_to_disk(str(root / "ser"))
    out = root / "out"
    qwen2_audio_lora.main(
        [
            "--model_name_or_path", str(root / "base"),
            "--dataset_name_or_path", str(root / "ser"),
            "--output_dir", str(out),
            "--max_steps", "6", "--learning_rate", "5e-3", "--warmup_steps", "0",
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
            "--lora_r", "4", "--lora_alpha", "8", "--max_new_tokens", "3",
            "--logging_steps", "1", "--save_steps", "3", "--bootstrap", "20",
        ]
    )  # fmt: skip
    return root, out


def test_answer_parsing_and_its_fallback():
    assert parse_label("The emotion is Happy.", EMOTIONS, "neutral") == ("happy", False)
    assert parse_label("sad, or maybe angry", EMOTIONS, "neutral") == ("sad", False)  # the first named
    assert parse_label("angry... no, sad", EMOTIONS, "neutral") == ("angry", False)
    assert parse_label("unhappy", EMOTIONS, "neutral") == ("neutral", True)  # whole words only
    assert parse_label("", EMOTIONS, "neutral") == ("neutral", True)


def test_the_loss_is_on_the_answer_only(tmp_path):
    from transformers import AutoProcessor

    make_qwen2_audio(tmp_path / "m", EMOTIONS)
    processor = AutoProcessor.from_pretrained(tmp_path / "m")
    processor.tokenizer.padding_side = "left"
    text = chat_text(processor, EMOTIONS)
    collate = qwen2_audio_lora.ChatCollator(processor, EMOTIONS, text)
    rows = [
        {"audio": {"array": np.zeros(n, dtype=np.float32)}, "labels": c} for n, c in ((8000, 1), (16000, 5))
    ]
    batch = collate(rows)
    for row, label in zip(batch["labels"], ("happy", "surprise")):
        answer = [t for t in row.tolist() if t != -100]
        assert processor.tokenizer.decode(answer) == f"{label}<|im_end|>"
    # the prompt (and its audio tokens) carries no labels
    assert (
        batch["labels"][batch["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")] == -100
    ).all()


def test_lora_trains_and_the_model_classifies(trained):
    root, out = trained
    results = json.loads((out / "eval_results.json").read_text())
    assert {"generation", "label_scoring"} <= set(results)
    assert 0.0 <= results["generation"]["fallback_rate"] <= 1.0
    for name in ("generation", "label_scoring"):
        assert {"macro_f1", "macro_f1_ci_low", "confusion_matrix"} <= set(results[name])
    assert "fallback" in (out / "README.md").read_text()
    # LoRA (merged) changed the LLM's attention projections and nothing else
    from transformers import Qwen2AudioForConditionalGeneration

    base = Qwen2AudioForConditionalGeneration.from_pretrained(root / "base").state_dict()
    tuned = Qwen2AudioForAudioClassification.from_pretrained(out).state_dict()
    assert set(base) == set(tuned)
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all(
        k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")) for k in changed
    )
    assert not any("audio_tower" in k for k in changed)


def test_pipeline_batched_and_fresh_process(trained, tmp_path):
    _, out = trained
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 20000, 12000)]
    clf = Qwen2AudioForAudioClassification.from_pretrained(out).eval()
    from transformers import AutoFeatureExtractor

    fe = AutoFeatureExtractor.from_pretrained(out)
    with torch.no_grad():
        batched = clf(**fe(clips, sampling_rate=16000, return_tensors="pt")).logits
        single = torch.cat([clf(**fe([c], sampling_rate=16000, return_tensors="pt")).logits for c in clips])
    assert batched.shape == (3, len(EMOTIONS)) and torch.isfinite(batched).all()
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    np.save(tmp_path / "clips.npy", np.array(clips, dtype=object), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline
        path = {str(out)!r}
        clips = list(np.load({str(tmp_path / "clips.npy")!r}, allow_pickle=True))
        model = AutoModelForAudioClassification.from_pretrained(path, trust_remote_code=True).eval()
        fe = AutoFeatureExtractor.from_pretrained(path)
        with torch.no_grad():
            logits = model(**fe(clips, sampling_rate=16000, return_tensors="pt")).logits
        top = pipeline("audio-classification", model=path, trust_remote_code=True)(clips[0], top_k=10)
        assert not any(m.split(".")[0] in ("modeling", "serhub") for m in sys.modules)
        print(json.dumps({{"logits": logits.tolist(), "labels": [r["label"] for r in top], "total": sum(r["score"] for r in top)}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(got["logits"]), batched, atol=1e-4, rtol=0)
    assert set(got["labels"]) == set(EMOTIONS) and abs(got["total"] - 1.0) < 1e-4


def test_the_stock_checkpoint_loads_whole(tmp_path):
    """Every weight of a Qwen2-Audio checkpoint (its LM head included) reaches the SER model."""
    from transformers import Qwen2AudioForConditionalGeneration

    make_qwen2_audio(tmp_path / "m", EMOTIONS)
    args = qwen2_audio_lora.Qwen2AudioArguments(model_name_or_path=str(tmp_path / "m"))
    _, model = qwen2_audio_lora.load_model(args, EMOTIONS)
    stock = Qwen2AudioForConditionalGeneration.from_pretrained(tmp_path / "m").state_dict()
    ours = model.state_dict()
    assert set(stock) == set(ours)
    for key, value in stock.items():
        assert torch.equal(value, ours[key]), key


def test_no_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="pass --model_name_or_path"):
        qwen2_audio_lora.main(["--output_dir", str(tmp_path / "x")])
