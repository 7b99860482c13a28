"""recipes/descriptors.py end to end on tiny random parts and the synthetic corpus's descriptors."""

import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from safetensors import safe_open
from serhub.recipes import descriptors
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_encoder, make_llm, make_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synthetic_small):
    root = tmp_path_factory.mktemp("tiny-descriptors")
    tokenizer = make_tokenizer(root / "llm")
    make_llm(root / "llm", "llama", len(tokenizer) + 1)
    make_encoder(root / "enc", "whisper")
    synthetic_small.save_to_disk(str(root / "ser"))
    return root


def args(tiny, out, stages=("1", "2"), steps=("2", "2"), data="ser"):
    return [
        "--audio_model_name_or_path", str(tiny / "enc"),
        "--text_model_name_or_path", str(tiny / "llm"),
        "--dataset_name_or_path", str(tiny / data),
        "--stack_factor", "2", "--vib_latent_size", "8",
        "--output_dir", str(out),
        "--stages", *stages, "--stage_max_steps", *steps,
        "--save_steps", "2", "--logging_steps", "1",
        "--max_transcript_tokens", "6", "--max_descriptor_tokens", "6",
        "--max_ser_eval_samples", "12", "--max_generation_eval_samples", "8",
        "--per_device_train_batch_size", "8", "--bootstrap", "20", "--heldout_eval", "false",
    ]  # fmt: skip


def weights(folder, prefix):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}


def test_alternating_stages_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "desc"
    descriptors.main(args(tiny, out, stages=("1", "2", "1"), steps=("2", "2", "2")))
    first, second, third = out / "stage1_1", out / "stage2_2", out / "stage3_1"
    for folder in (first, second, third):
        assert (folder / "stage_done.json").is_file()
    # stage 2 froze the content branch, stage 3 (stage 1 again) the descriptor branch
    for key, value in weights(first, "connector.content.").items():
        assert (weights(second, key)[key] == value).all(), key
    for key, value in weights(second, "connector.descriptor.").items():
        assert (weights(third, key)[key] == value).all(), key
    assert any(
        not (v == weights(second, k)[k]).all() for k, v in weights(first, "connector.descriptor.").items()
    )
    # beta is annealed over all stages and logged; the ASR weight only in stage 2
    history = [
        h
        for f in (first, second, third)
        for h in json.loads((f / "stage_done.json").read_text())["log_history"]
    ]
    betas = [h["kl_weight"] for h in history if "kl_weight" in h]
    assert betas == sorted(betas, reverse=True) and betas[0] <= 1.0 and betas[-1] >= 1e-4
    results = json.loads((out / "eval_results.json").read_text())
    for mode in ("label_logits", "descriptor_conditioned", "ground_truth_descriptors"):
        assert {"macro_f1", "macro_f1_ci_low", "unweighted_accuracy"} <= set(results[mode]), mode
    assert {"bleu", "meteor", "rouge_l"} <= set(results["descriptor_quality"])
    assert results["descriptor_quality"]["num_samples"] == 8 and results["wer"] >= 0
    assert len(results["example_answers"]) == 5
    card = (out / "README.md").read_text()
    assert "ground_truth_descriptors" in card and "rouge_l" in card and "model-index" in card
    labels = {"neutral", "happy", "sad", "angry", "fear", "surprise"}
    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:  # self-contained: the encoder too
        assert set(f.keys()) == set(clf.model.state_dict())
    assert {r["label"] for r in clf(np.zeros(16000, dtype=np.float32) + 0.01, top_k=6)} == labels
    # a finished run re-run: every stage is skipped
    capsys.readouterr()
    descriptors.main(args(tiny, out, stages=("1", "2", "1"), steps=("2", "2", "2")))
    assert capsys.readouterr().out.count("already done") == 3


def test_interrupted_stage_resumes(tiny, tmp_path, capsys):
    out = tmp_path / "desc"
    descriptors.main(args(tiny, out, stages=("1",), steps=("2",)))
    (out / "stage1_1" / "stage_done.json").unlink()  # killed after its checkpoint at step 2
    capsys.readouterr()
    descriptors.main(args(tiny, out, stages=("1",), steps=("4",)))
    log = capsys.readouterr().out
    assert "resuming stage1_1 from" in log and "checkpoint-2" in log
    history = json.loads((out / "stage1_1" / "stage_done.json").read_text())["log_history"]
    assert max(h.get("step", 0) for h in history) == 4


def test_a_dataset_without_descriptors_is_refused(tiny, tmp_path):
    data = datasets.load_from_disk(str(tiny / "ser"))
    data.remove_columns("descriptors").save_to_disk(str(tiny / "plain"))
    with pytest.raises(ValueError, match="no 'descriptors' column.*datasets_scripts.descriptors"):
        descriptors.main(args(tiny, tmp_path / "x", data="plain"))
    assert not (tmp_path / "x" / "stage1_1").exists()
