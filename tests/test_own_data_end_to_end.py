"""Issue 26's done-when fixture: a new user's folder of ~200 clips (several speakers, wav / flac / mp3,
a few broken files) and a CSV, through the README's three commands: the folder builder
(--skip_bad), the ssl_classifier recipe and ``serhub evaluate`` on the test split. A tiny random
Whisper encoder stands in for the converted weights, so that it runs on a CPU in CI."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from serhub.datasets_scripts import folder
from serhub.datasets_scripts.common import read_manifest
from serhub.recipes import ssl_classifier

from serhub.cli import main as serhub

sys.path.insert(0, str(Path(__file__).parent))
from audio_llm_fixtures import make_encoder  # noqa: E402

LABELS = ("angry", "happy", "neutral", "sad")
PITCH = {
    "angry": 2400.0,
    "happy": 1200.0,
    "neutral": 600.0,
    "sad": 300.0,
}  # Hz, octaves apart: 16 mel bins tell them apart
SPEAKERS = [f"spk{i:02d}" for i in range(10)]
FORMATS = ("wav", "flac", "mp3")
BROKEN = {"spk00/truncated.wav": b"RIFF\x24\x08\x00\x00WAVEfmt ", "spk01/empty.flac": b""}
MISSING = "spk02/never_recorded.wav"


def clip(label: str, speaker: int, take: int, rate: int) -> np.ndarray:
    """A tone at the label's pitch (shifted per speaker) with a noise burst: 0.4 s."""
    rng = np.random.default_rng(1000 * speaker + 10 * take + LABELS.index(label))
    t = np.arange(int(0.4 * rate)) / rate
    pitch = PITCH[label] * (1.0 + 0.04 * (speaker - 5)) * rng.uniform(0.97, 1.03)
    tone = 0.3 * np.sin(2 * np.pi * pitch * t) * np.hanning(t.size)
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """10 speakers x 4 labels x 5 takes in rotating formats and rates, two broken files, one missing."""
    root = tmp_path_factory.mktemp("user") / "my_audio"
    table = []
    for s, speaker in enumerate(SPEAKERS):
        (root / speaker).mkdir(parents=True)
        for label in LABELS:
            for take in range(5):
                suffix = FORMATS[(s + take) % len(FORMATS)]
                rate = {"wav": 16000, "flac": 22050, "mp3": 44100}[suffix]
                name = f"{speaker}/{label}_{take}.{suffix}"
                sf.write(root / name, clip(label, s, take, rate), rate)
                table.append({"file": name, "emotion": label, "speaker": speaker})
    for name, content in BROKEN.items():
        (root / name).write_bytes(content)
        table.append({"file": name, "emotion": "sad", "speaker": name.split("/")[0]})
    table.append({"file": MISSING, "emotion": "happy", "speaker": "spk02"})
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "emotion", "speaker"])
        writer.writeheader()
        writer.writerows(table)
    return root


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-whisper")
    make_encoder(path, "whisper", init_std=0.2)  # at 0.02 every clip's frames are ~ the positions
    return str(path)


def test_a_folder_and_a_csv_to_a_model_and_its_report(user_folder, tiny_encoder, tmp_path, capsys):
    # 1. python -m serhub.datasets_scripts.folder --audio_dir my_audio --metadata my_audio/labels.csv ...
    data = tmp_path / "data" / "mine"
    folder.main(["--audio_dir", str(user_folder), "--metadata", str(user_folder / "labels.csv"),
                 "--output_dir", str(data), "--skip_bad", "--num_workers", "1"])  # fmt: skip
    printed = capsys.readouterr().out
    card = (data / "README.md").read_text()
    for name in [*BROKEN, MISSING]:  # every bad file named, in the summary and the card
        assert name in printed and name in card
    manifest = read_manifest(data)
    assert sum(s["num_clips"] for s in manifest["splits"].values()) == 200
    assert manifest["leakage"]["shared_speakers"]["count"] == 0
    test_clips = manifest["splits"]["test"]["num_clips"]
    assert test_clips == 20  # one speaker of ten

    # 2. accelerate launch recipes/ssl_classifier.py --dataset_name_or_path data/mine --output_dir ...
    model = tmp_path / "outputs" / "mine"
    ssl_classifier.main(["--encoder_name_or_path", tiny_encoder, "--dataset_name_or_path", str(data),
                         "--output_dir", str(model), "--num_train_epochs", "6", "--per_device_train_batch_size", "16",
                         "--learning_rate", "5e-3", "--head_hidden_size", "32", "--bootstrap", "50", "--seed", "0"])  # fmt: skip
    recipe = json.loads((model / "eval_results.json").read_text())["test"]
    # it learned the pitches (chance: 0.25), so the comparison below is not of two constant models
    assert recipe["macro_f1"] > 0.5

    # 3. serhub evaluate --model outputs/mine --dataset data/mine --split test --output_dir ...
    report = tmp_path / "outputs" / "mine-eval"
    serhub(["evaluate", "--model", str(model), "--dataset", str(data), "--split", "test",
            "--output_dir", str(report), "--bootstrap", "50"])  # fmt: skip
    capsys.readouterr()
    assert (report / "report.md").is_file()
    evaluated = json.loads((report / "eval_results.json").read_text())
    assert evaluated["num_samples"] == test_clips
    assert evaluated["reproducibility"]["dataset_manifest"] == "matches"
    # the same model on the same clips: serhub evaluate gives the recipe's own figures
    for key in ("macro_f1", "unweighted_accuracy", "accuracy"):
        assert evaluated[key] == pytest.approx(recipe[key], abs=1e-9), key
    assert evaluated["confusion_matrix"] == recipe["confusion_matrix"]
    # the recipe fitted a temperature on validation; the evaluated (calibrated) scores are the ones it checked
    calibration = json.loads((model / "eval_results.json").read_text())["calibration"]
    stored = json.loads((model / "config.json").read_text())["calibration_temperature"]
    assert stored == calibration["temperature"] != 1.0
    assert calibration["test"]["ece_after"] < calibration["test"]["ece_before"]  # lower on the held-out split
    assert evaluated["calibration"]["ece"] == pytest.approx(calibration["test"]["ece_after"], abs=1e-3)
