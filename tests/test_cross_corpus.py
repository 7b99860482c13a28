"""recipes/cross_corpus.py: a tiny random speech classifier "trained on" corpus A, evaluated on A and on
corpora B and C built by the folder builder in temporary folders, over the labels they share."""

import csv
import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
from serhub.datasets_scripts import folder
from serhub.recipes import cross_corpus

from serhub.evaluate import evaluate_model

sys.path.insert(0, str(Path(__file__).parent))
from test_evaluate_predict import clip  # noqa: E402
from test_speech_emotion import make  # noqa: E402  (the model's labels: neutral, happy, sad)


def build_corpus(root: Path, labels: list[str], seed: int) -> str:
    """6 speakers x len(labels) labels x 2 clips, through the folder builder; 2 speakers in test."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    rows = []
    for s in range(6):
        for e, label in enumerate(labels):
            for k in range(2):
                name = f"s{s}_{label}_{k}.wav"
                sf.write(audio / name, clip(seed + 100 * s + 10 * e + k), 16000)
                rows.append({"file": name, "emotion": label, "speaker": f"{root.name}{s}"})
    with (audio / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    folder.main(
        ["--audio_dir", str(audio), "--output_dir", str(root / "data"), "--test_fraction", "0.34",
         "--num_workers", "1"]
    )  # fmt: skip
    return str(root / "data")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    corpora = {
        "A": build_corpus(root / "A", ["neutral", "happy", "sad"], 0),
        "B": build_corpus(root / "B", ["neu", "hap", "ang"], 5000),  # native labels, "ang" unshared
        "C": build_corpus(root / "C", ["neutral", "happy", "sad"], 9000),
    }
    model, fe = make("whisper")
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    fe.save_pretrained(model_dir)
    # what a recipe records beside its model: the corpus it trained on
    run = {"recipe": "ssl_classifier", "settings": {"DataArguments.dataset_name_or_path": corpora["A"]}}
    (model_dir / "serhub_run.json").write_text(json.dumps(run))
    return model_dir, corpora


def test_one_table_in_corpus_against_cross_corpus(setup, tmp_path, capsys):
    model_dir, corpora = setup
    out = tmp_path / "xc"
    summary = cross_corpus.main(
        ["--model", str(model_dir), "--eval_corpora", corpora["B"], corpora["C"],
         "--label_maps", "neu=neutral,hap=happy", "none", "--output_dir", str(out), "--bootstrap", "100"]
    )  # fmt: skip
    assert summary["labels"] == ["neutral", "happy"]  # the model's labels every corpus has
    assert summary["train_corpus"] == corpora["A"]  # read from the model folder's run record
    rows = summary["rows"]
    assert [(r["dataset"], r["role"]) for r in rows] == [
        (corpora["A"], "in-corpus"), (corpora["B"], "cross-corpus"), (corpora["C"], "cross-corpus")
    ]  # fmt: skip
    assert [(r["clips"], r["left_out"]) for r in rows] == [(8, 4)] * 3  # sad / ang left out of 12
    # each row is serhub evaluate's figures on that corpus over the shared set
    results, _ = evaluate_model(
        str(model_dir), corpora["B"], label_map={"neu": "neutral", "hap": "happy"}, bootstrap=100,
        label_set=["neutral", "happy"], progress=False,
    )  # fmt: skip
    assert results["labels"] == ["neutral", "happy"]
    for key in ("macro_f1", "unweighted_accuracy", "accuracy"):
        assert rows[1][key] == pytest.approx(results[key])
        assert rows[1][f"{key}_ci"] == pytest.approx([results[f"{key}_ci_low"], results[f"{key}_ci_high"]])
        mean = (rows[1][key] + rows[2][key]) / 2
        assert summary["cross_corpus_mean"][key] == pytest.approx(mean)
        assert summary["cross_corpus_drop"][key] == pytest.approx(mean - rows[0][key])
    assert json.loads((out / "cross_corpus.json").read_text()) == json.loads(json.dumps(summary))
    table = (out / "cross_corpus.md").read_text()
    names = [r["corpus"] for r in rows]
    assert names == [
        "A-data",
        "B-data",
        "C-data",
    ]  # three folders named "data": their parents tell them apart
    for row in rows:
        assert f"| {row['corpus']} | {row['role']} | 8 | {row['macro_f1']:.3f} (" in table
        assert (out / row["corpus"] / "report.md").is_file()
    assert "| mean cross-corpus |" in table and table in capsys.readouterr().out
    assert "4 clips with a label outside the shared label set" in (out / names[1] / "report.md").read_text()


def test_explicit_labels_and_train_corpus(setup, tmp_path):
    model_dir, corpora = setup
    summary = cross_corpus.main(
        ["--model", str(model_dir), "--train_corpus", corpora["C"], "--eval_corpora", corpora["A"],
         "--labels", "happy,sad,neutral", "--output_dir", str(tmp_path / "xc"), "--bootstrap", "0"]
    )  # fmt: skip
    assert summary["labels"] == ["happy", "sad", "neutral"] and summary["train_corpus"] == corpora["C"]
    assert [r["clips"] for r in summary["rows"]] == [12, 12] and "macro_f1_ci" not in summary["rows"][0]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--label_maps", "none", "none"], "one entry per --eval_corpora entry"),
        ([], r"share 0 of the model's labels"),  # B's native labels, unmapped
        (["--label_maps", "neu=neutral", "--labels", "happy,calm"], r"--labels \['calm'\] are not labels"),
    ],
)
def test_bad_label_settings_are_refused(setup, tmp_path, extra, match):
    model_dir, corpora = setup
    with pytest.raises(ValueError, match=match):
        cross_corpus.main(
            [
                "--model",
                str(model_dir),
                "--eval_corpora",
                corpora["B"],
                "--output_dir",
                str(tmp_path / "x"),
                *extra,
            ]
        )
    assert not (tmp_path / "x").exists()


def test_a_model_without_a_run_record_needs_the_train_corpus(setup, tmp_path):
    _, corpora = setup
    model, fe = make("whisper")
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="name the corpus it was trained on with --train_corpus"):
        cross_corpus.main(
            [
                "--model",
                str(tmp_path / "m"),
                "--eval_corpora",
                corpora["C"],
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )


def test_corpus_names_are_short_and_unique():
    names = cross_corpus.corpus_names(["/tmp/a/data", "/tmp/b/data", "synthetic_emotions", "org/ds"])
    assert names == ["a-data", "b-data", "synthetic_emotions", "org-ds"]
    assert cross_corpus.corpus_names(["x/d", "x/d"]) == ["0-d", "1-d"]


def test_the_real_corpus_builders_with_a_shared_label_set(tmp_path):
    """The protocol on two real builders' fixtures (RAVDESS in-corpus, CREMA-D cross-corpus), both built
    with --label_set 4: they then speak the model's label set and need no label maps."""
    import corpus_fixtures as cf
    from serhub.datasets_scripts import crema_d, ravdess
    from serhub.modeling import (
        SpeechEmotionConfig,
        SpeechEmotionFeatureExtractor,
        SpeechEmotionForAudioClassification,
    )
    from test_speech_emotion import ENCODERS

    rav, cre = tmp_path / "ravdess", tmp_path / "crema_d"
    ravdess.main(["--raw_dir", str(cf.make_ravdess(tmp_path / "raw")), "--output_dir", str(rav),
                  "--label_set", "4", "--validation_fraction", "0.2"])  # fmt: skip
    crema_d.main(["--raw_dir", str(cf.make_crema_d(tmp_path / "raw")), "--output_dir", str(cre),
                  "--label_set", "4", "--validation_fraction", "0.25"])  # fmt: skip
    four = ["neutral", "happy", "sad", "angry"]
    config = SpeechEmotionConfig(
        audio_config=ENCODERS["whisper"](), id2label=dict(enumerate(four)), head_hidden_size=16,
        pooling_attention_size=8,
    )  # fmt: skip
    model_dir = tmp_path / "model"
    SpeechEmotionForAudioClassification(config).save_pretrained(model_dir)
    SpeechEmotionFeatureExtractor("log_mel", 16).save_pretrained(model_dir)
    out = tmp_path / "xc"
    summary = cross_corpus.main(
        ["--model", str(model_dir), "--train_corpus", str(rav), "--eval_corpora", str(cre),
         "--output_dir", str(out), "--bootstrap", "50"]
    )  # fmt: skip
    assert set(summary["labels"]) <= set(four) and len(summary["labels"]) >= 2
    rows = summary["rows"]
    assert [r["role"] for r in rows] == ["in-corpus", "cross-corpus"]
    assert all(r["clips"] > 0 and 0.0 <= r["macro_f1"] <= 1.0 for r in rows)
    for row in rows:
        assert (out / row["corpus"] / "report.md").is_file()
    assert "| mean cross-corpus |" in (out / "cross_corpus.md").read_text()
