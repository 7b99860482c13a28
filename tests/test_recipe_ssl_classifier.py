"""recipes/ssl_classifier.py end to end on a tiny random Whisper encoder and a small synthetic set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from serhub.recipes import ssl_classifier
from serhub.recipes.arguments import parse_arguments
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel, pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=3,
    )
    WhisperModel(config).save_pretrained(path)
    WhisperFeatureExtractor(feature_size=16).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_dataset(synthetic_small, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic"
    synthetic_small.save_to_disk(str(path))
    return str(path)


def last_state(output_dir):
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text())


def recipe_args(encoder, dataset, output_dir, epochs=2):
    return [
        "--encoder_name_or_path", encoder,
        "--dataset_name_or_path", dataset,
        "--output_dir", str(output_dir),
        "--num_train_epochs", str(epochs),
        "--per_device_train_batch_size", "16",
        "--learning_rate", "5e-3",
        "--logging_steps", "1",
        "--bootstrap", "50",
        "--head_hidden_size", "32",
    ]  # fmt: skip


def test_default_config_is_the_embedded_offline_run():
    model_args, data_args, training_args = parse_arguments(
        (ssl_classifier.ModelArguments, ssl_classifier.DataArguments, ssl_classifier.TrainingArguments),
        ssl_classifier.DEFAULT_CONFIG,
        [],
    )
    assert model_args.encoder_name_or_path == "offline:whisper-tiny.en" and model_args.freeze_encoder
    assert (
        data_args.dataset_name_or_path is None and data_args.cache_encoder_outputs
    )  # synthetic_emotions, cached
    assert training_args.metric_for_best_model == "macro_f1" and training_args.load_best_model_at_end


def test_recipe_trains_evaluates_writes_card_and_resumes(tiny_encoder, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out))
    results = json.loads((out / "eval_results.json").read_text())
    assert results["world_size"] == 1 and len(results["epoch_seconds"]) == 2
    assert {"macro_f1", "unweighted_accuracy", "accuracy", "macro_f1_ci_low", "confusion_matrix"} <= set(
        results["test"]
    )
    assert "eval_macro_f1" in results["validation"]
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    card = (out / "README.md").read_text()
    assert "model-index" in card and f"value: {round(results['test']['macro_f1'], 4)}" in card
    # the folder is a self-contained checkpoint: the pipeline loads it with its remote code
    clf = pipeline("audio-classification", model=str(out), trust_remote_code=True)
    labels = {p["label"] for p in clf(torch.randn(16000).numpy() * 0.1, top_k=6)}
    assert labels == {"neutral", "happy", "sad", "angry", "fear", "surprise"}
    # the frozen encoder ran once, before training: its cache is on disk
    assert len(list((out / "encoder_cache").glob("*.arrow"))) == 3

    first_steps = last_state(out)["global_step"]
    capsys.readouterr()
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out, epochs=3))
    assert "resuming from" in capsys.readouterr().out
    assert last_state(out)["global_step"] == first_steps * 3 // 2  # continued from epoch 2, did not restart


@pytest.mark.parametrize("extra", [["--cache_encoder_outputs", "false"], ["--freeze_encoder", "false"]])
def test_recipe_without_the_encoder_cache(tiny_encoder, tiny_dataset, tmp_path, extra):
    """Fine-tuning the encoder (ABHINAYA S1) or a frozen one without the cache: raw audio each step."""
    out = tmp_path / "run"
    ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, out, epochs=1) + extra)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["encoder_cache_s"] == 0.0 and not (out / "encoder_cache").exists()
    assert 0.0 <= results["test"]["macro_f1"] <= 1.0 and len(results["epoch_seconds"]) == 1


def test_unknown_labels_in_the_data_are_refused(tiny_encoder, tiny_dataset, tmp_path):
    args = recipe_args(tiny_encoder, tiny_dataset, tmp_path / "x") + ["--labels", "neutral", "happy", "sad"]
    with pytest.raises(ValueError, match=r"labels the model does not know: \['angry', 'fear', 'surprise'\]"):
        ssl_classifier.main(args)


def test_missing_split_is_explained(tiny_encoder, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"splits \['dev'\] not in the dataset"):
        ssl_classifier.main(recipe_args(tiny_encoder, tiny_dataset, tmp_path / "x") + ["--eval_split", "dev"])


def test_two_process_ddp_on_cpu(tiny_encoder, tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "recipes/accelerate_configs/cpu_ddp.yaml"),
        str(REPO / "recipes/ssl_classifier.py"),
        *recipe_args(tiny_encoder, tiny_dataset, out, epochs=1),
        "--use_cpu", "true",  # TrainingArguments must know, or it treats the two ranks as two runs
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["world_size"] == 2
    # 72 training clips, 16 per process and step: 3 steps with two processes (5 with one)
    assert last_state(out)["global_step"] == 3


@pytest.mark.parametrize("name", ["default", "abhinaya_s1_wavlm_large", "msp_podcast_baseline"])
def test_paper_configs_parse(name):
    path = REPO / "recipes/configs/ssl_classifier" / f"{name}.yaml"
    model_args, data_args, training_args = parse_arguments(
        (ssl_classifier.ModelArguments, ssl_classifier.DataArguments, ssl_classifier.TrainingArguments),
        path,
        ["--config", str(path), "--use_cpu", "true", "--bf16", "false"],
    )
    assert model_args.loss_type in ("weighted_ce", "focal")
    if name != "default":
        assert (
            not model_args.freeze_encoder
            and model_args.freeze_feature_encoder
            and not data_args.cache_encoder_outputs
        )
