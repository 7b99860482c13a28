"""The reproducibility manifest: every saved dataset's manifest.json (split hashes, label counts,
speaker and transcript leaks), and the same split hash in serhub evaluate's results and report."""

import csv
import json
import logging
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import folder
from serhub.datasets_scripts.common import (
    MANIFEST,
    normalise_transcript,
    read_manifest,
    save_dataset_dict,
    sorted_sha256,
)

from serhub.cli import main as serhub

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import LABELS, make  # noqa: E402  (the model's labels: neutral, happy, sad)

FEATURES = datasets.Features(
    {
        "utterance_id": datasets.Value("string"),
        "speaker_id": datasets.Value("string"),
        "transcript": datasets.Value("string"),
        "emotion": datasets.ClassLabel(names=LABELS),
    }
)


def rows(n, split, speakers=2):
    return [
        {"utterance_id": f"{split}{i}", "speaker_id": f"{split}-s{i % speakers}", "transcript": f"{split} {i}",
         "emotion": i % 3}
        for i in range(n)
    ]  # fmt: skip


def dataset_dict(splits: dict[str, list[dict]]):
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(r, features=FEATURES) for name, r in splits.items()}
    )


def manifest_of(splits, tmp_path, name):
    return read_manifest(save_dataset_dict(dataset_dict(splits), tmp_path / name))


@pytest.fixture
def splits():
    return {"train": rows(8, "train"), "validation": rows(3, "validation"), "test": rows(4, "test")}


def test_hashes_follow_the_clips_not_the_row_order(splits, tmp_path):
    base = manifest_of(splits, tmp_path, "base")
    assert base["splits"]["test"]["num_clips"] == 4
    assert base["splits"]["train"]["label_counts"] == {"neutral": 3, "happy": 3, "sad": 2}
    assert base["splits"]["test"]["clip_ids_sha256"] == sorted_sha256(f"test{i}" for i in range(4))

    shuffled = {name: list(reversed(r)) for name, r in splits.items()}
    assert manifest_of(shuffled, tmp_path, "shuffled")["splits"] == base["splits"]

    moved = {**splits, "train": splits["train"][1:], "test": [*splits["test"], splits["train"][0]]}
    changed = manifest_of(moved, tmp_path, "moved")["splits"]
    for split in ("train", "test"):
        assert changed[split]["clip_ids_sha256"] != base["splits"][split]["clip_ids_sha256"]
    assert changed["validation"] == base["splits"]["validation"]
    # the moved clip's speaker is now in train and test: recorded, not refused (the builders decide)
    assert changed["test"]["speakers_sha256"] != base["splits"]["test"]["speakers_sha256"]
    shared = manifest_of(moved, tmp_path, "moved-again")["leakage"]["shared_speakers"]
    assert shared == {"count": 1, "examples": [{"speaker": "train-s0", "splits": ["test", "train"]}]}
    assert base["leakage"]["shared_speakers"]["count"] == 0


def test_a_transcript_in_train_and_test_is_reported_and_logged(splits, tmp_path, caplog):
    splits["train"][2]["transcript"] = "Kids are talking by the door."
    splits["test"][1]["transcript"] = "kids are  talking by the door!"
    splits["validation"][0]["transcript"] = ""  # empty transcripts never count as a leak
    splits["train"][3]["transcript"] = ""
    with caplog.at_level(logging.WARNING):
        manifest = manifest_of(splits, tmp_path, "leak")
    leaks = manifest["leakage"]["shared_transcripts"]
    assert leaks["validation"] == {"count": 0, "examples": []}
    assert leaks["test"] == {
        "count": 1,
        "examples": [{"transcript": "kids are talking by the door", "splits": ["test", "train"]}],
    }
    assert "1 transcripts of train are also in test" in caplog.text
    assert normalise_transcript("  It's  OK, Sam. ") == "it s ok sam"


def test_every_builder_writes_it_beside_the_card(splits, tmp_path):
    path = save_dataset_dict(dataset_dict(splits), tmp_path / "data", card="# card\n")
    assert {MANIFEST, "README.md", "dataset_dict.json"} <= {p.name for p in path.iterdir()}
    assert json.loads((path / MANIFEST).read_text())["splits"].keys() == {"train", "validation", "test"}


def test_evaluate_reports_the_split_hash_of_the_manifest(tmp_path, capsys):
    root = tmp_path / "audio"
    root.mkdir()
    table = []
    rng = np.random.default_rng(0)
    for s in range(6):
        for e, label in enumerate(LABELS):
            name = f"s{s}_{label}.wav"
            sf.write(root / name, (0.1 * rng.standard_normal(4000)).astype(np.float32), 16000)
            table.append({"file": name, "emotion": label, "speaker": f"s{s}", "text": f"sentence {e}"})
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    data = tmp_path / "data"
    folder.main(["--audio_dir", str(root), "--output_dir", str(data), "--test_fraction", "0.34",
                 "--num_workers", "1"])  # fmt: skip
    manifest = read_manifest(data)
    # every speaker says the same three sentences: the builder's manifest reports it
    assert manifest["leakage"]["shared_transcripts"]["test"]["count"] == 3
    model, fe = make("whisper")
    model.save_pretrained(tmp_path / "model")
    fe.save_pretrained(tmp_path / "model")

    out = tmp_path / "report"
    serhub(["evaluate", "--model", str(tmp_path / "model"), "--dataset", str(data), "--output_dir", str(out),
            "--bootstrap", "0", "--max_samples", "3"])  # fmt: skip
    capsys.readouterr()
    results = json.loads((out / "eval_results.json").read_text())["reproducibility"]
    test = manifest["splits"]["test"]
    assert results["split"] == {k: test[k] for k in ("clip_ids_sha256", "speakers_sha256")}
    assert results["dataset_manifest"] == "matches" and results["evaluated_clips"] == 3
    assert results["evaluated_clip_ids_sha256"] != test["clip_ids_sha256"]  # --max_samples: a subset
    config_hash = results["model_config_sha256"]
    assert len(config_hash) == 64
    report = (out / "report.md").read_text()
    assert f"clip ids `{test['clip_ids_sha256']}`" in report and f"`{config_hash}`" in report
    assert "against the dataset's `manifest.json`: matches" in report


def test_evaluate_says_when_the_recipe_scored_speaker_normalised_frames(tmp_path):
    from serhub.evaluate import evaluate_model

    splits = {"train": rows(3, "train"), "test": rows(3, "test")}
    audio = [{"array": np.zeros(4000, np.float32), "sampling_rate": 16000}] * 3
    dd = dataset_dict(splits)
    dd = datasets.DatasetDict({k: ds.add_column("audio", audio) for k, ds in dd.items()})
    save_dataset_dict(dd.cast_column("audio", datasets.Audio(sampling_rate=16000)), tmp_path / "data")
    model, fe = make("whisper")
    model.config.speaker_normalization = "encoder frames standardised per speaker (ssl_classifier)"
    model.save_pretrained(tmp_path / "model")
    fe.save_pretrained(tmp_path / "model")
    with pytest.warns(UserWarning, match="trained relative to each speaker .encoder frames standardised"):
        results, _ = evaluate_model(
            str(tmp_path / "model"), str(tmp_path / "data"), bootstrap=0, progress=False
        )
    assert results["speaker_normalization"].startswith("encoder frames standardised")
    assert results["reproducibility"]["dataset_manifest"] == "matches"
