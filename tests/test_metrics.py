"""The ser_metrics evaluate module agrees with scikit-learn and refuses bad input."""

import numpy as np
import pytest
from serhub.metrics import load_ser_metrics
from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics, concordance_correlation_coefficient
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

LABELS = ["neutral", "happy", "sad", "angry", "fear", "surprise"]


@pytest.fixture(scope="module")
def ser():
    return load_ser_metrics()


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_on_random_inputs(ser, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    refs = rng.choice(LABELS, n, p=[0.4, 0.2, 0.15, 0.1, 0.05, 0.1]).tolist()
    # predictions never use the last two classes: absent-from-predictions must be handled as sklearn does
    preds = rng.choice(LABELS[:4], n).tolist()
    out = ser.compute(predictions=preds, references=refs, labels=LABELS)
    assert out["accuracy"] == pytest.approx(np.mean(np.array(preds) == np.array(refs)))
    assert out["unweighted_accuracy"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(
        f1_score(refs, preds, labels=LABELS, average="macro", zero_division=0)
    )
    assert out["weighted_f1"] == pytest.approx(
        f1_score(refs, preds, labels=LABELS, average="weighted", zero_division=0)
    )
    per_class = f1_score(refs, preds, labels=LABELS, average=None, zero_division=0)
    assert out["per_class_f1"] == pytest.approx(dict(zip(LABELS, per_class)))
    assert out["confusion_matrix"] == confusion_matrix(refs, preds, labels=LABELS).tolist()


def test_default_label_set_is_union_and_int_labels_work(ser):
    refs, preds = [0, 1, 2, 2, 1], [0, 2, 2, 2, 0]
    out = ser.compute(predictions=preds, references=refs)
    assert out["labels"] == ["0", "1", "2"]
    assert out["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro"))


def test_perfect_and_bootstrap_interval(ser):
    rng = np.random.default_rng(0)
    refs = rng.choice(LABELS, 300).tolist()
    preds = [r if rng.random() < 0.7 else LABELS[0] for r in refs]
    out = ser.compute(predictions=preds, references=refs, labels=LABELS, bootstrap=200, seed=1)
    assert out["macro_f1_ci_low"] < out["macro_f1"] < out["macro_f1_ci_high"]
    assert out["macro_f1_ci_high"] - out["macro_f1_ci_low"] < 0.2
    again = classification_metrics(preds, refs, labels=LABELS, bootstrap=200, seed=1)
    assert again["macro_f1_ci_low"] == out["macro_f1_ci_low"]  # seeded: reproducible
    perfect = ser.compute(predictions=refs, references=refs, labels=LABELS)
    assert perfect["macro_f1"] == perfect["accuracy"] == perfect["unweighted_accuracy"] == 1.0


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="same length"):
        classification_metrics(["sad", "happy"], ["sad"])


def test_unknown_label_is_refused():
    with pytest.raises(ValueError, match=r"not in the label set.*'bored'"):
        classification_metrics(["sad", "bored"], ["sad", "happy"], labels=["sad", "happy"])


def test_ccc_matches_formula_and_dimensional_config():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(100, 3))
    x = 0.8 * y + rng.normal(scale=0.5, size=(100, 3)) + 0.3
    for d in range(3):
        a, b = x[:, d], y[:, d]
        expected = 2 * np.cov(a, b, bias=True)[0, 1] / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
        assert concordance_correlation_coefficient(a, b) == pytest.approx(expected)
    assert concordance_correlation_coefficient(y[:, 0], y[:, 0]) == pytest.approx(1.0)
    dim = load_ser_metrics("dimensional")
    out = dim.compute(predictions=x.tolist(), references=y.tolist())
    assert {k for k in out if k.startswith("ccc_")} == {
        "ccc_arousal",
        "ccc_valence",
        "ccc_dominance",
        "ccc_mean",
    }
    assert [out[f"nonfinite_pairs_{d}"] for d in ("arousal", "valence", "dominance")] == [0, 0, 0]
    assert out["ccc_mean"] == pytest.approx(
        np.mean([out["ccc_arousal"], out["ccc_valence"], out["ccc_dominance"]])
    )
    with pytest.raises(ValueError, match="shape"):
        dim.compute(predictions=x[:, :2].tolist(), references=y[:, :2].tolist())


def test_missing_dimensional_values_are_left_out_and_counted():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 3))
    x = y + rng.normal(scale=0.3, size=(50, 3))
    clean = load_ser_metrics("dimensional").compute(predictions=x[5:].tolist(), references=y[5:].tolist())
    y[:5, 1] = np.nan  # MSP-Podcast marks missing annotations with NaN
    x[:5, 0] = np.inf
    out = load_ser_metrics("dimensional").compute(predictions=x.tolist(), references=y.tolist())
    assert out["nonfinite_pairs_valence"] == 5 and out["nonfinite_pairs_arousal"] == 5
    assert out["nonfinite_pairs_dominance"] == 0
    assert out["ccc_valence"] == pytest.approx(clean["ccc_valence"])
    assert out["ccc_arousal"] == pytest.approx(clean["ccc_arousal"])
    y[:, 2] = np.nan
    with pytest.raises(ValueError, match="every dominance"):
        load_ser_metrics("dimensional").compute(predictions=x.tolist(), references=y.tolist())


def test_empty_inputs_are_explained(ser):
    with pytest.raises(ValueError, match="no predictions"):
        ser.compute(predictions=[], references=[])


def test_plots_are_written(tmp_path):
    out = classification_metrics(["a", "b", "b"], ["a", "b", "a"])
    png = plot_confusion_matrix(out["confusion_matrix"], out["labels"], tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = [
        {"step": 1, "loss": 2.0},
        {"step": 2, "loss": 1.5},
        {"step": 2, "eval_loss": 1.6, "eval_macro_f1": 0.3},
    ]
    curves = plot_training_curves(history, tmp_path / "curves.png")
    assert curves.stat().st_size > 1000
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix([[1, 2]], ["a"], tmp_path / "bad.png")


def test_per_speaker_macro_f1_scores_each_speakers_clips():
    from serhub.metrics.ser_metrics.ser_metrics import per_speaker_macro_f1

    labels = ["neutral", "happy"]
    predictions = ["neutral", "happy", "happy", "happy"]
    references = ["neutral", "happy", "neutral", "happy"]
    speakers = ["b", "b", "a", "a"]
    scores = per_speaker_macro_f1(predictions, references, speakers, labels)
    assert list(scores) == ["a", "b"] and scores["b"] == 1.0
    assert scores["a"] == pytest.approx(
        f1_score(["neutral", "happy"], ["happy", "happy"], average="macro", labels=labels)
    )
    with pytest.raises(ValueError, match="one speaker per clip expected: 3 speakers for 4 clips"):
        per_speaker_macro_f1(predictions, references, speakers[:3], labels)


def test_a_speaker_is_scored_over_the_emotions_they_express():
    from serhub.metrics.ser_metrics.ser_metrics import per_speaker_macro_f1

    # 3 of the 4 labels; every clip right: 1.0, not 3/4
    labels = ["neutral", "happy", "sad", "angry"]
    references = ["neutral", "happy", "sad", "neutral"]
    assert per_speaker_macro_f1(references, references, ["a"] * 4, labels) == {"a": 1.0}
    # naming an emotion the speaker never expresses costs the recall of the one they did
    scored = per_speaker_macro_f1(["angry", "happy", "sad", "neutral"], references, ["a"] * 4, labels)
    assert scored["a"] == pytest.approx(
        f1_score(references, ["angry", "happy", "sad", "neutral"], average="macro", labels=labels[:3])
    )


def test_the_lowest_speaker_is_compared_with_what_clip_counts_alone_give():
    from serhub.metrics.ser_metrics.ser_metrics import per_speaker_chance_lowest, per_speaker_macro_f1

    rng = np.random.default_rng(0)
    labels = ["neutral", "happy", "sad"]
    speakers = [f"s{i}" for i in range(10) for _ in range(12)]
    references = [labels[i] for i in rng.integers(0, 3, len(speakers))]
    # every voice recognised alike (70 % right, at random): the lowest is what chance gives
    alike = [r if rng.random() < 0.7 else labels[(labels.index(r) + 1) % 3] for r in references]
    same = per_speaker_chance_lowest(alike, references, speakers, labels, resamples=300, seed=1)
    assert same["observed_lowest"] == min(per_speaker_macro_f1(alike, references, speakers, labels).values())
    assert same["chance_lowest_low"] <= same["chance_lowest"] <= same["chance_lowest_high"] < 1.0
    assert same["p_value"] > 0.05
    # one voice always wrong: far below every deal
    worse = [
        p if s != "s3" else labels[(labels.index(r) + 1) % 3] for p, r, s in zip(alike, references, speakers)
    ]
    bad = per_speaker_chance_lowest(worse, references, speakers, labels, resamples=300, seed=1)
    assert bad["observed_lowest"] == 0.0 < bad["chance_lowest_low"] and bad["p_value"] < 0.01
    # every clip right: every deal is too, each voice at 1.0 over the emotions it has
    perfect = per_speaker_chance_lowest(references, references, speakers, labels, resamples=20)
    assert perfect["observed_lowest"] == perfect["chance_lowest_low"] == perfect["chance_lowest_high"] == 1.0
    # deterministic under the seed, and each deal keeps every speaker's clips per class
    assert per_speaker_chance_lowest(worse, references, speakers, labels, resamples=300, seed=1) == bad


def test_speaker_scores_give_each_speaker_and_with_resamples_the_chance_lowest():
    from serhub.metrics.ser_metrics.ser_metrics import speaker_scores

    predictions = ["a", "b", "a", "a", "b", "b"]
    references = ["a", "b", "b", "a", "b", "a"]
    speakers = ["s1", "s1", "s1", "s2", "s2", "s2"]
    plain = speaker_scores(predictions, references, speakers, ["a", "b"])
    assert set(plain) == {"per_speaker_macro_f1"} and set(plain["per_speaker_macro_f1"]) == {"s1", "s2"}
    assert plain["per_speaker_macro_f1"]["s1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    drawn = speaker_scores(predictions, references, speakers, ["a", "b"], bootstrap=50, seed=1)
    assert drawn["per_speaker_chance"]["resamples"] == 50
    assert drawn["per_speaker_macro_f1"] == plain["per_speaker_macro_f1"]
