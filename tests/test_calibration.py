"""serhub/calibration.py: temperature scaling recovers a known temperature and lowers ECE without
moving the argmax; the classifiers keep T in their config (refused when not > 0) and their pipelines
return softmax(logits / T); the text-LLM and Whisper-LLM recipes fit T on validation and report ECE
before/after."""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from serhub.modeling import SpeechEmotionConfig, TextLLMConfig, TextLLMForSequenceClassification
from serhub.recipes import text_llm, whisper_llm
from transformers import pipeline

from serhub.calibration import (
    TEMPERATURE_BOUNDS,
    calibrate,
    coverage_curve,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    softmax,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_evaluate_predict import dataset_dir, model_dir  # noqa: E402, F401  (the fixtures)
from test_recipe_audio_llm import model_args as audio_llm_args  # noqa: E402
from test_recipe_audio_llm import tiny  # noqa: E402, F401  (the fixture)
from test_speech_emotion import LABELS as SPEECH_LABELS  # noqa: E402
from test_speech_emotion import clips, make  # noqa: E402
from test_text_llm import text_dataset, tiny_llm  # noqa: E402, F401  (the fixtures)


def synthetic_logits(temperature: float, n: int = 20000, classes: int = 4, seed: int = 0):
    """Logits whose labels are drawn from softmax(true logits); the model's logits are the true
    ones times ``temperature``, so dividing by ``temperature`` calibrates them exactly."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 1.5, (n, classes))
    probs = softmax(true)
    labels = (rng.random((n, 1)) > probs.cumsum(1)).sum(1)
    return true * temperature, labels


@pytest.mark.parametrize("temperature", [3.0, 1.7, 0.5])
def test_fit_recovers_a_known_temperature_lowers_ece_and_keeps_the_argmax(temperature):
    logits, labels = synthetic_logits(temperature)
    fit = fit_temperature(logits, labels)
    assert fit.temperature == pytest.approx(temperature, rel=0.05) and not fit.at_bound
    assert fit.ece_after < fit.ece_before and fit.nll_after < fit.nll_before
    assert fit.ece_after < 0.02  # the recovered T calibrates them
    assert (softmax(logits, fit.temperature).argmax(1) == logits.argmax(1)).all()
    # the minimum: a nudge either way raises the NLL
    for factor in (0.97, 1.03):
        assert negative_log_likelihood(logits, labels, fit.temperature * factor) > fit.nll_after
    assert fit_temperature(logits, labels) == fit  # deterministic


def test_a_temperature_fitted_on_validation_lowers_ece_on_held_out_clips():
    logits, labels = synthetic_logits(2.5, n=4000, seed=1)
    validation, test = slice(0, 1000), slice(1000, None)
    # a stand-in with what calibrate touches: a config, and a forward that takes calibrated=
    model = SimpleNamespace(config=SimpleNamespace(), forward=lambda calibrated=True: None)
    record = calibrate(model, logits[validation], labels[validation], {"test": (logits[test], labels[test])})
    assert model.config.calibration_temperature == pytest.approx(2.5, rel=0.1) and record["applied_by_model"]
    assert record["test"]["ece_after"] < record["test"]["ece_before"] / 2
    assert record["test"]["nll_after"] < record["test"]["nll_before"]


def test_fit_stops_at_a_bound_when_the_validation_set_says_nothing():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    fit = fit_temperature(logits, [0, 1])  # every clip right: sharper is always better
    assert fit.at_bound and fit.temperature == pytest.approx(TEMPERATURE_BOUNDS[0])
    fit = fit_temperature(logits, [1, 0])  # every clip wrong: flatter is always better
    assert fit.at_bound and fit.temperature == pytest.approx(TEMPERATURE_BOUNDS[1])


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros(3), [0, 1, 2], "logits must be"),
        (np.zeros((3, 2)), [0, 1], "one class id per clip"),
        (np.zeros((2, 2)), [0, 2], r"class ids in 0\.\.1"),
    ],
)
def test_bad_inputs_are_refused(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)


def test_reliability_and_coverage_curve():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    correct = np.array([1, 0, 1, 1])
    table = reliability(probs, correct, bins=10)
    expected = (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.8) + abs(1 - 0.55)) / 4  # one clip per bin
    assert table["ece"] == pytest.approx(expected) and len(table["bins"]) == 4
    curve = coverage_curve(probs, correct, thresholds=[0.0, 0.7, 0.95])
    assert [p["coverage"] for p in curve] == [1.0, 0.5, 0.0]
    assert [p["accuracy"] for p in curve] == [0.75, 1.0, None]
    assert expected_calibration_error(np.log(probs), [0, 1, 1, 1], bins=10) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_a_temperature_that_is_not_positive_is_refused(bad):
    with pytest.raises(ValueError, match="calibration_temperature must be a finite number > 0"):
        SpeechEmotionConfig(calibration_temperature=bad)
    with pytest.raises(ValueError, match="calibration_temperature must be a finite number > 0"):
        TextLLMConfig(labels=["a", "b"], calibration_temperature=bad)


def test_saved_speech_classifier_applies_its_temperature_in_the_pipeline(tmp_path):
    model, fe = make("wavlm")
    with torch.no_grad():  # a head confident enough for T to matter
        model.classifier.apply(lambda m: m.weight.mul_(30.0) if isinstance(m, torch.nn.Linear) else None)
    audio = clips()
    inputs = fe(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        raw = model(**inputs).logits.numpy()
    labels = np.array([1, 0, 2])
    record = calibrate(model, raw, labels, held_out={"test": (raw, labels)})
    temperature = model.config.calibration_temperature
    assert temperature == record["temperature"] and temperature != 1.0
    assert set(record["validation"]) >= {"ece_before", "ece_after", "nll_before", "nll_after"}
    assert record["test"]["nll_after"] == pytest.approx(record["validation"]["nll_after"])
    model.save_pretrained(tmp_path)
    fe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["calibration_temperature"] == temperature
    reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        calibrated = reloaded(**inputs).logits.numpy()
        uncalibrated = reloaded(**inputs, calibrated=False).logits.numpy()
    np.testing.assert_allclose(uncalibrated, raw, atol=1e-5)
    np.testing.assert_allclose(calibrated, raw / temperature, atol=1e-5)
    clf = pipeline("audio-classification", model=str(tmp_path), trust_remote_code=True)
    expected = softmax(raw, temperature)
    for clip, row in zip(audio, expected):
        scores = {s["label"]: s["score"] for s in clf(clip, top_k=None)}
        assert [scores[label] for label in SPEECH_LABELS] == pytest.approx(row.tolist(), abs=1e-5)
        assert max(scores, key=scores.get) == SPEECH_LABELS[int(row.argmax())]


def test_text_classifier_divides_by_its_temperature(tiny_llm):  # noqa: F811
    model, tokenizer = TextLLMForSequenceClassification.from_llm(tiny_llm, ["neutral", "happy"])
    enc = tokenizer(["hello there", "i love this place"], return_tensors="pt", padding=True)
    model.config.calibration_temperature = 2.5
    with torch.no_grad():
        raw = model(**enc, calibrated=False).logits
        torch.testing.assert_close(model(**enc).logits, raw / 2.5)


def test_text_llm_recipe_stores_the_temperature_and_reports_ece(tiny_llm, text_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "calibrated"
    text_llm.main(
        [
            "--text_model_name_or_path", str(tiny_llm), "--dataset_name_or_path", text_dataset,
            "--method", "pooling_head", "--output_dir", str(out), "--num_train_epochs", "2",
            "--learning_rate", "1e-2", "--gradient_checkpointing", "false",
            "--per_device_train_batch_size", "8", "--bootstrap", "20",
        ]
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    calibration = results["calibration"]
    temperature = json.loads((out / "config.json").read_text())["calibration_temperature"]
    assert temperature == calibration["temperature"] > 0 and calibration["fitted_on"] == "validation"
    for split in ("validation", "test"):
        figures = calibration[split]
        assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(figures)
        assert all(math.isfinite(v) for v in figures.values())
    # the fit cannot raise the NLL of the split it was fitted on (T = 1 was a candidate)
    assert calibration["validation"]["nll_after"] <= calibration["validation"]["nll_before"] + 1e-9
    card = (out / "README.md").read_text()
    assert "Calibration" in card and f"{temperature:.3f}" in card
    # the pipeline's scores are the calibrated ones, the prediction is the evaluation's
    classifier = pipeline("text-classification", model=str(out), trust_remote_code=True)
    model = TextLLMForSequenceClassification.from_pretrained(out).eval()
    data = datasets.load_from_disk(text_dataset)["test"]
    text = data["transcript"][0]
    enc = classifier.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        raw = model(**enc, calibrated=False).logits.numpy()
    scores = {s["label"]: s["score"] for s in classifier(text, top_k=None)}
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert [scores[label] for label in labels] == pytest.approx(
        softmax(raw, temperature)[0].tolist(), abs=1e-5
    )


def test_whisper_llm_recipe_stores_the_temperature_and_reports_ece(tiny, tmp_path):  # noqa: F811
    out = tmp_path / "wl"
    whisper_llm.main(
        audio_llm_args(tiny)
        + [
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "1",
            "--connector",
            "linear",
            "--learning_rate",
            "1e-2",
        ]
    )
    calibration = json.loads((out / "eval_results.json").read_text())["calibration"]
    temperature = json.loads((out / "config.json").read_text())["calibration_temperature"]
    assert temperature == calibration["temperature"] > 0 and calibration["fitted_on"] == "validation"
    for split in ("validation", "test"):
        assert {"ece_before", "ece_after", "nll_before", "nll_after"} <= set(calibration[split])
    assert calibration["validation"]["nll_after"] <= calibration["validation"]["nll_before"] + 1e-9
    assert f"{temperature:.3f}" in (out / "README.md").read_text()
    assert calibration["applied_by_model"]
    # the saved classifier divides its label scores by T; calibrated=False gives them as trained
    from serhub.modeling import AudioLLMForAudioClassification, AudioLLMProcessor

    model = AudioLLMForAudioClassification.from_pretrained(out).eval()
    processor = AudioLLMProcessor.from_pretrained(out)
    audio = [np.sin(np.arange(8000) * f / 16000).astype(np.float32) for f in (900.0, 2500.0)]
    inputs = processor(audio=audio, task="ser", prompt_index=0, shuffle_labels=False, sampling_rate=16000)
    with torch.no_grad():
        raw = model(**inputs, calibrated=False).logits
        torch.testing.assert_close(model(**inputs).logits, raw / temperature)


def test_evaluate_abstains_below_a_confidence(model_dir, dataset_dir, tmp_path):  # noqa: F811
    import csv

    from serhub.cli import main as serhub
    from serhub.evaluate import evaluate_model

    # a threshold between the clips' confidences (a random model's are close together), so some abstain
    _, records = evaluate_model(
        str(model_dir), str(dataset_dir), label_map={"excited": "happy"}, bootstrap=0, progress=False
    )
    confidences = sorted(r["confidence"] for r in records)
    threshold = round((confidences[3] + confidences[4]) / 2, 12)
    out = tmp_path / "report"
    serhub(["evaluate", "--model", str(model_dir), "--dataset", str(dataset_dir), "--output_dir", str(out),
            "--label_map", "excited=happy", "--bootstrap", "0", "--abstain_below", str(threshold)])  # fmt: skip
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    results = json.loads((out / "eval_results.json").read_text())
    a = results["abstention"]
    low = [r for r in rows if float(r["confidence"]) < threshold]
    assert a["abstained"] == len(low) == 4 and a["coverage"] == pytest.approx(1 - len(low) / len(rows))
    assert all(r["answer"] == ("uncertain" if r in low else r["prediction"]) for r in rows)
    answered = [int(r["correct"]) for r in rows if r not in low]
    assert a["accuracy_answered"] == (pytest.approx(np.mean(answered)) if answered else None)
    assert {"threshold": threshold, "coverage": a["coverage"], "accuracy": a["accuracy_answered"]} in a[
        "curve"
    ]
    assert (out / "coverage_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Abstention" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match=r"confidence in \(0, 1\), found 1.5"):
        serhub(
            ["evaluate", "--model", str(model_dir), "--dataset", str(dataset_dir), "--abstain_below", "1.5"]
        )


def test_calibrate_with_trainer_is_one_call_for_a_trainer_recipe(tmp_path):
    """What recipes/ssl_classifier.py calls: predictions at T = 1, T fitted and stored, the Trainer's
    later predictions divided by it (dimensional outputs and labels come as tuples there)."""
    from transformers import Trainer, TrainingArguments

    from serhub.calibration import calibrate_with_trainer

    model, _ = make("wavlm", dimensions=["arousal"])
    with torch.no_grad():
        model.classifier.apply(lambda m: m.weight.mul_(30.0) if isinstance(m, torch.nn.Linear) else None)
    rng = np.random.default_rng(0)
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    data = datasets.Dataset.from_dict(
        {
            "input_values": [(0.1 * rng.standard_normal(4000)).astype(np.float32) for _ in range(8)],
            "labels": labels,
            "dimensional_labels": rng.random((8, 1)).astype(np.float32).tolist(),
        }
    ).with_format("torch")
    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True, per_device_eval_batch_size=4)
    trainer = Trainer(model=model, args=args)
    model.config.calibration_temperature = 3.0  # a stale value is reset before the logits are taken
    raw = trainer.predict(data).predictions
    record = calibrate_with_trainer(trainer, data, {"test": data.select(range(4))})
    temperature = model.config.calibration_temperature
    assert temperature == record["temperature"] and record["applied_by_model"]
    assert record["test"]["num_samples"] == 4 and record["validation"]["num_samples"] == 8
    raw_logits = raw[0] * 3.0
    fit = fit_temperature(raw_logits, labels)
    assert temperature == pytest.approx(fit.temperature, rel=1e-5)
    np.testing.assert_allclose(trainer.predict(data).predictions[0], raw_logits / temperature, atol=1e-4)
