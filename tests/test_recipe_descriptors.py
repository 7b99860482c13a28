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


def test_descriptor_agreement_per_attribute_against_the_commonest_word():
    from serhub.recipes.descriptors_evaluation import descriptor_agreement

    references = ["high pitch, fast", "low pitch, slow", "moderate pitch, moderate speed", "high pitch, slow"]
    written = ["high pitch, fast", "low pitch, fast", "moderate pitch", None]  # no word: it disagrees
    training = ["moderate pitch, slow", "moderate pitch, slow", "high pitch, fast"]
    result = descriptor_agreement(written, references, training)
    assert set(result) == {"pitch_semitones", "speaking_rate_ratio"}  # only the attributes named
    pitch, rate = result["pitch_semitones"], result["speaking_rate_ratio"]
    assert pitch["agreement"] == 0.75 and pitch["commonest_word"] == "moderate pitch"
    assert pitch["commonest_agreement"] == 0.25 and pitch["above_commonest"] == 0.5
    assert rate["agreement"] == 0.25 and rate["commonest_word"] == "slow"
    assert rate["commonest_agreement"] == 0.5 and rate["above_commonest"] == -0.25
    assert pitch["num_samples"] == rate["num_samples"] == 4


def test_attribute_targets_and_bad_alignment_settings(tiny, tmp_path):
    from serhub.recipes.descriptor_alignment import ATTRIBUTES, IGNORE, attribute_targets

    targets = attribute_targets(["low pitch, expressive intonation", "fast, loud"])
    pitch, intonation = ATTRIBUTES.index("pitch_semitones"), ATTRIBUTES.index("pitch_range_ratio")
    rate, loudness = ATTRIBUTES.index("speaking_rate_ratio"), ATTRIBUTES.index("loudness_db")
    assert targets[0, pitch] == 0 and targets[0, intonation] == 2 and targets[0, rate] == IGNORE
    assert targets[1, rate] == 2 and targets[1, loudness] == 2 and targets[1, pitch] == IGNORE
    for option, value, match in (
        ("--descriptor_alignment_steps", "-1", "expected >= 0"),
        ("--descriptor_alignment_kl_weight", "-0.5", "expected >= 0"),
        ("--lora_learning_rate", "0", "learning rate > 0"),
    ):
        with pytest.raises(ValueError, match=match):
            descriptors.main([*args(tiny, tmp_path / "bad"), option, value])
    assert not (tmp_path / "bad").exists()


def test_descriptor_alignment_learns_then_starts_the_stages(tiny, tmp_path, capsys):
    """The phase 0 trains the descriptor branch alone (heads over its pooled tokens): its loss falls,
    it is saved once and reused, stage 1 keeps it frozen, and the card names it."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "desc"
    run_args = [*args(tiny, out, stages=("1",), steps=("2",)), "--descriptor_alignment_steps", "40"]
    descriptors.main(run_args)
    record = json.loads((out / "stage0_descriptors" / "descriptors_done.json").read_text())
    history = record["log_history"]
    assert history[-1]["step"] == 40 and history[-1]["loss"] < history[0]["loss"]
    assert {"eval_emotion_macro_f1", "eval_pitch_semitones_accuracy"} <= set(history[-1])
    aligned = load_file(out / "stage0_descriptors" / "connector.safetensors")
    final = weights(out, "connector.descriptor.")
    assert final and len(final) == sum(k.startswith("descriptor.") for k in aligned)
    for key, value in final.items():  # stage 1 kept it frozen
        assert torch.equal(aligned[key.removeprefix("connector.")], value), key
    card = (out / "README.md").read_text()
    assert "descriptor alignment | 40 steps" in card and "commonest word" in card
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["descriptor_agreement"]) >= {
        "pitch_semitones",
        "pitch_range_ratio",
        "speaking_rate_ratio",
    }
    # stage 1 killed before it finished: the re-run reuses the aligned branch instead of aligning again
    (out / "stage1_1" / "stage_done.json").unlink()
    capsys.readouterr()
    descriptors.main(run_args)
    assert "descriptor alignment: the connector from" in capsys.readouterr().out
    assert load_file(out / "stage0_descriptors" / "connector.safetensors").keys() == aligned.keys()


def test_descriptor_alignment_heads_learn_the_training_clips(tiny, tmp_path):
    """On the tiny random encoder's cached outputs, the heads over the descriptor branch's pooled tokens
    fit the training clips' emotions and descriptors (all a random encoder can show)."""
    import glob

    import datasets as hf_datasets
    import torch
    from serhub.recipes.audio_llm_common import AudioLLMArguments, build_model
    from serhub.recipes.ctc_alignment import pad_rows
    from serhub.recipes.descriptor_alignment import head_scores, train_descriptor_alignment

    out = tmp_path / "desc"
    descriptors.main(args(tiny, out, stages=("1",), steps=("1",)))
    train = hf_datasets.Dataset.from_file(glob.glob(str(out / "encoder_cache" / "train-*.arrow"))[0])
    train = train.select_columns(["encoder_hidden_states", "labels", "descriptors"]).select(range(48))
    labels = ["neutral", "happy", "sad", "angry", "fear", "surprise"]
    model, _ = build_model(
        AudioLLMArguments(
            audio_model_name_or_path=str(tiny / "enc"), text_model_name_or_path=str(tiny / "llm"),
            connector="vae_ib", vib_latent_size=8, stack_factor=2,
        ),
        labels,
    )  # fmt: skip
    torch.manual_seed(0)
    before = train_descriptor_alignment(model, train, pad_rows, len(labels), 1, learning_rate=1e-9)[0]
    start = head_scores(model, before, train, pad_rows, len(labels))
    heads, history = train_descriptor_alignment(model, train, pad_rows, len(labels), 150, learning_rate=3e-3)
    end = head_scores(model, heads, train, pad_rows, len(labels))
    assert history[-1]["loss"] < history[0]["loss"]
    assert end["emotion_macro_f1"] > max(0.45, start["emotion_macro_f1"] + 0.3), (start, end)  # chance: 0.17
    assert end["pitch_semitones_accuracy"] > start["pitch_semitones_accuracy"], (start, end)
