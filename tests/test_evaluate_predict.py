"""serhub evaluate and serhub predict on a tiny random speech classifier and a dataset built from a folder."""

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from serhub.datasets_scripts import folder
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from serhub.cli import main as serhub
from serhub.evaluate import evaluate_model

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_emotion import LABELS, make, save_speaker_prosody_model  # noqa: E402  (the model's labels: neutral, happy, sad)

DATA_LABELS = ["excited", "neutral", "sad"]  # "excited" is not one of the model's


def clip(seed: int, seconds=0.4, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, fe = make("whisper")
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    fe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """6 speakers x 3 labels x 2 clips, built by the folder builder; 2 speakers (12 clips) in test."""
    root = tmp_path_factory.mktemp("own") / "audio"
    root.mkdir()
    rows = []
    for s in range(6):
        for e, label in enumerate(DATA_LABELS):
            for k in range(2):
                name = f"s{s}_{label}_{k}.wav"
                sf.write(root / name, clip(100 * s + 10 * e + k), 16000)
                rows.append({"file": name, "emotion": label, "speaker": f"s{s}", "gender": "fm"[s % 2]})
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = root.parent / "data"
    folder.main(
        ["--audio_dir", str(root), "--output_dir", str(out), "--test_fraction", "0.34", "--num_workers", "1"]
    )
    return out


def test_report_files_and_figures_match_the_predictions(model_dir, dataset_dir, tmp_path, capsys):
    out = tmp_path / "report"
    serhub(["evaluate", "--model", str(model_dir), "--dataset", str(dataset_dir), "--output_dir", str(out),
            "--label_map", "excited=happy", "--bootstrap", "200", "--batch_size", "5"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "12 clips of test: Macro-F1" in printed and f"report: {out / 'report.md'}" in printed
    names = {"report.md", "eval_results.json", "predictions.csv", "model_index.yaml"}
    assert names | {"confusion_matrix.png", "reliability_diagram.png"} == {p.name for p in out.iterdir()}
    for png in ("confusion_matrix.png", "reliability_diagram.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "eval_results.json").read_text())
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 and {r["reference"] for r in rows} == {"happy", "neutral", "sad"}
    refs, preds = [r["reference"] for r in rows], [r["prediction"] for r in rows]
    assert results["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert results["unweighted_accuracy"] == pytest.approx(balanced_accuracy_score(refs, preds))
    macro = f1_score(refs, preds, labels=LABELS, average="macro", zero_division=0)
    assert results["macro_f1"] == pytest.approx(macro)
    for key in ("macro_f1", "unweighted_accuracy", "accuracy"):
        assert results[f"{key}_ci_low"] <= results[key] <= results[f"{key}_ci_high"]
    for r in rows:  # the probabilities: a distribution whose top is the prediction
        probs = {label: float(r[f"p_{label}"]) for label in LABELS}
        assert sum(probs.values()) == pytest.approx(1.0) and max(probs, key=probs.get) == r["prediction"]
    # ECE computed directly from the CSV's confidences: 15 equal-width bins
    conf, correct = (
        np.array([float(r["confidence"]) for r in rows]),
        np.array([int(r["correct"]) for r in rows]),
    )
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum((bins == b).mean() * abs(correct[bins == b].mean() - conf[bins == b].mean()) for b in set(bins))
    assert results["calibration"]["ece"] == pytest.approx(ece)
    speakers = {r["speaker_id"] for r in rows}
    assert set(results["per_speaker"]) == speakers and len(speakers) == 2
    for speaker, m in results["per_speaker"].items():  # over the classes the speaker has
        own = [(r["reference"], r["prediction"]) for r in rows if r["speaker_id"] == speaker]
        present = sorted({ref for ref, _ in own})
        assert m["macro_f1"] == pytest.approx(
            f1_score(*zip(*own), labels=present, average="macro", zero_division=0)
        )
    chance = results["per_speaker_chance"]
    assert chance["observed_lowest"] == min(m["macro_f1"] for m in results["per_speaker"].values())
    assert sum(v["count"] for v in results["per_gender"].values()) == 12
    index = yaml.safe_load((out / "model_index.yaml").read_text())["model-index"][0]
    values = {m["type"]: m["value"] for m in index["results"][0]["metrics"]}
    assert (
        values["macro_f1"] == round(results["macro_f1"], 4)
        and index["results"][0]["dataset"]["split"] == "test"
    )
    report = (out / "report.md").read_text()
    assert f"The lowest speaker scores {chance['observed_lowest']:.3f}" in report
    assert f"| Macro-F1 | {results['macro_f1']:.3f} | {results['macro_f1_ci_low']:.3f}–" in report
    assert (
        "label map: excited → happy" in report and "![reliability diagram](reliability_diagram.png)" in report
    )


def test_the_serhub_command_ends_a_user_error_with_one_line(model_dir, dataset_dir, capsys, monkeypatch):
    """The console script (``serhub.cli:command``): what went wrong in one last line, exit status 2, no
    traceback; here a label map without a model label."""
    from serhub.cli import command

    monkeypatch.delenv("SERHUB_DEBUG", raising=False)
    argv = ["evaluate", "--model", str(model_dir), "--dataset", str(dataset_dir), "--max_samples", "2"]
    with pytest.raises(SystemExit) as stop:
        command([*argv, "--label_map", "excited="])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("serhub evaluate: error: --label_map: 'excited=' is not")

    missing = dataset_dir.parent / "no_such_dataset"
    with pytest.raises(SystemExit) as stop:
        command(["evaluate", "--model", str(model_dir), "--dataset", str(missing)])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and last.startswith(
        f"serhub evaluate: error: --dataset {missing}: no such folder"
    )


def test_candidate_labels_renormalise_the_model(model_dir, dataset_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, full = evaluate_model(
            str(model_dir), str(dataset_dir), label_map={"excited": "happy"}, bootstrap=0, progress=False
        )
        results, restricted = evaluate_model(
            str(model_dir), str(dataset_dir), label_map={"excited": "sad"}, candidate_labels=["neutral", "sad"],
            bootstrap=0, progress=False,
        )  # fmt: skip
    assert results["labels"] == ["neutral", "sad"] and set(r["prediction"] for r in restricted) <= {
        "neutral",
        "sad",
    }
    for a, b in zip(full, restricted):
        assert "p_happy" not in b and b["p_neutral"] + b["p_sad"] == pytest.approx(1.0)
        assert b["p_neutral"] == pytest.approx(a["p_neutral"] / (a["p_neutral"] + a["p_sad"]))


def test_labels_the_model_cannot_produce_are_refused_with_the_list(model_dir, dataset_dir, tmp_path, capsys):
    with pytest.raises(
        ValueError, match=r"cannot produce: \['excited'\]; it can produce \['neutral', 'happy', 'sad'\]"
    ):
        evaluate_model(str(model_dir), str(dataset_dir), progress=False)
    with pytest.raises(
        ValueError, match=r"--candidate_labels \['angry'\] are not labels of the model; it can produce"
    ):
        evaluate_model(str(model_dir), str(dataset_dir), candidate_labels=["angry", "sad"], progress=False)
    with pytest.raises(ValueError, match=r"'excited=' is not 'dataset_label=model_label'"):
        serhub(
            ["evaluate", "--model", str(model_dir), "--dataset", str(dataset_dir), "--label_map", "excited="]
        )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty; choose another output folder or pass --overwrite"):
        serhub(
            [
                "evaluate",
                "--model",
                str(model_dir),
                "--dataset",
                str(dataset_dir),
                "--output_dir",
                str(tmp_path / "taken"),
            ]
        )
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep"


@pytest.fixture()
def media(tmp_path):
    """5 wav clips, a flac, an mp3 (through ffmpeg) and a broken file, in a folder with a sub-folder."""
    root = tmp_path / "media"
    (root / "more").mkdir(parents=True)
    for i in range(5):
        sf.write(root / f"clip{i}.wav", clip(i), 16000)
    sf.write(root / "more" / "other.flac", clip(7, rate=22050), 22050)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(root / "clip0.wav"), str(root / "more" / "c.mp3")],
        check=True,
    )
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    return root


def read_rows(path):
    return list(csv.DictReader(path.open()))


def test_predict_writes_a_row_per_file_and_reports_the_broken_one(model_dir, media, tmp_path, capsys):
    output = tmp_path / "preds.csv"
    serhub(
        [
            "predict",
            str(media),
            "--model",
            str(model_dir),
            "--output",
            str(output),
            "--batch_size",
            "3",
            "--top_k",
            "2",
        ]
    )
    captured = capsys.readouterr()
    assert "7 files classified, 1 could not be read, 0 were already in the CSV" in captured.out
    assert f"cannot classify {media / 'broken.wav'}" in captured.err
    rows = read_rows(output)
    assert list(rows[0]) == ["file", "label", "score", "label_2", "score_2", "error"]
    by_file = {Path(r["file"]).name: r for r in rows}
    assert set(by_file) == {f"clip{i}.wav" for i in range(5)} | {"other.flac", "c.mp3", "broken.wav"}
    assert by_file["broken.wav"]["label"] == "" and "ffmpeg cannot decode" in by_file["broken.wav"]["error"]
    for name, r in by_file.items():
        if name != "broken.wav":
            assert r["error"] == "" and {r["label"], r["label_2"]} <= set(LABELS)
            assert float(r["score"]) >= float(r["score_2"]) and r["label"] != r["label_2"]


def test_predict_resumes_after_a_kill(model_dir, media, tmp_path, capsys):
    output = tmp_path / "preds.csv"
    args = ["predict", str(media), "--model", str(model_dir), "--output", str(output), "--batch_size", "2"]
    serhub(args)
    lines = output.read_text().splitlines(keepends=True)
    # as if killed while writing the last row: half of it is on disk, without its line end
    output.write_text("".join(lines[:-1]) + lines[-1][:7])
    sf.write(media / "new.wav", clip(99), 16000)
    capsys.readouterr()
    serhub(args)
    assert "2 files classified, 0 could not be read, 7 were already in the CSV" in capsys.readouterr().out
    rows = read_rows(output)
    assert len(rows) == 9 and len({r["file"] for r in rows}) == 9  # each file once, no broken row
    assert output.read_text().startswith("".join(lines[:-1]))  # the earlier rows are untouched
    serhub(args)
    assert "0 files classified" in capsys.readouterr().out and len(read_rows(output)) == 9
    with pytest.raises(ValueError, match=r"has the columns .* but this run writes .*Pass the same --top_k"):
        serhub([*args, "--top_k", "3"])


def test_a_stock_transformers_classifier_with_more_labels(dataset_dir, tmp_path):
    """A plain Wav2Vec2ForSequenceClassification (no serhub code): its extra label scores 0 without
    references, and --candidate_labels restricts it to the dataset's classes."""
    import torch
    from test_speech_emotion import _SSL
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
    labels = ["happy", "neutral", "sad", "angry"]
    config = Wav2Vec2Config(
        **_SSL, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path / "stock")
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp_path / "stock")
    with pytest.warns(UserWarning, match=r"classes \['angry'\] of the label set have no references"):
        results, _ = evaluate_model(
            str(tmp_path / "stock"), str(dataset_dir), label_map={"excited": "happy"}, progress=False
        )
    assert (
        results["classes_without_references"] == ["angry"] and results["per_class"]["angry"]["support"] == 0
    )
    results, rows = evaluate_model(
        str(tmp_path / "stock"), str(dataset_dir), label_map={"excited": "happy"},
        candidate_labels=["happy", "neutral", "sad"], bootstrap=0, progress=False,
    )  # fmt: skip
    assert results["classes_without_references"] == [] and "p_angry" not in rows[0]


def test_label_map_from_a_flag_or_a_file(tmp_path):
    from serhub.evaluate import parse_label_map

    assert parse_label_map("exc=happy, frustrated = angry") == {"exc": "happy", "frustrated": "angry"}
    (tmp_path / "map.txt").write_text("# IEMOCAP -> 4 classes\nexc=happy\nfru=angry  # close enough\n\n")
    assert parse_label_map(str(tmp_path / "map.txt")) == {"exc": "happy", "fru": "angry"}
    (tmp_path / "map.json").write_text(json.dumps({"exc": "happy"}))
    assert parse_label_map(str(tmp_path / "map.json")) == {"exc": "happy"}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_label_map(str(tmp_path / "bad.json"))


def test_predict_reads_every_file_relative_to_the_enrolled_speaker(model_dir, media, tmp_path, capsys):
    """--enroll: a speaker-relative model scores the files relative to the reference; a model trained
    without one, and a reference that cannot be read, are refused before the CSV is written."""
    folder = save_speaker_prosody_model(tmp_path / "prosody-model")
    files = [str(media / f"clip{i}.wav") for i in range(4)]
    plain, enrolled = tmp_path / "plain.csv", tmp_path / "enrolled.csv"
    serhub(["predict", *files, "--model", str(folder), "--output", str(plain), "--top_k", "3"])
    serhub(["predict", *files, "--model", str(folder), "--output", str(enrolled), "--top_k", "3",
            "--enroll", str(media / "clip4.wav"), str(media / "more" / "other.flac")])  # fmt: skip
    assert "4 files classified" in capsys.readouterr().out
    scores = [[float(r[f"score{k}"]) for k in ("", "_2", "_3")] for r in read_rows(plain)]
    enrolled_scores = [[float(r[f"score{k}"]) for k in ("", "_2", "_3")] for r in read_rows(enrolled)]
    assert not np.allclose(scores, enrolled_scores)
    for bad, message in (
        (
            ["--model", str(model_dir), "--enroll", str(media / "clip4.wav")],
            "trained without a speaker reference",
        ),
        (["--model", str(folder), "--enroll", str(media / "broken.wav")], "--enroll .*broken.wav"),
    ):
        out = tmp_path / "refused.csv"
        with pytest.raises(ValueError, match=message):
            serhub(["predict", *files, "--output", str(out), *bad])
        assert not out.exists()


def test_predict_reads_the_files_relative_to_themselves(model_dir, media, tmp_path, capsys):
    """--enroll_self: the files are the speaker's reference (as if enrolled on them by hand); a resumed run
    uses the same reference; both references at once, a model without one and too few files are refused."""
    from serhub.loading import load_classifier
    from serhub.predict import decode

    folder = save_speaker_prosody_model(tmp_path / "prosody-model")
    files = [str(media / f"clip{i}.wav") for i in range(4)]
    own = tmp_path / "own.csv"
    serhub(["predict", *files, "--model", str(folder), "--output", str(own), "--top_k", "3", "--enroll_self"])
    classifier = load_classifier(str(folder))
    clips = [decode(Path(f))[0] for f in files]
    inputs = classifier.feature_extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True)
    classifier.model.enroll_speaker(**inputs)
    expected = classifier(clips, top_k=3)
    rows = read_rows(own)
    assert [r["label"] for r in rows] == [e[0]["label"] for e in expected]
    for row, scores in zip(rows, expected):
        assert float(row["score"]) == pytest.approx(scores[0]["score"], abs=1e-5)
    lines = own.read_text().splitlines()  # stopped after two files, then resumed
    own.write_text("\n".join(lines[:3]) + "\n")
    serhub(["predict", *files, "--model", str(folder), "--output", str(own), "--top_k", "3", "--enroll_self"])
    assert [r["label"] for r in read_rows(own)] == [r["label"] for r in rows]
    for bad, message in (
        (["--model", str(folder), "--enroll_self", "--enroll", files[0]], "give one of them"),
        (["--model", str(model_dir), "--enroll_self"], "trained without a speaker reference"),
    ):
        out = tmp_path / "refused.csv"
        with pytest.raises(ValueError, match=message):
            serhub(["predict", *files, "--output", str(out), *bad])
        assert not out.exists()
    out = tmp_path / "one.csv"
    with pytest.raises(ValueError, match="needs at least 2"):
        serhub(["predict", files[0], "--output", str(out), "--model", str(folder), "--enroll_self"])
    assert not out.exists()
