"""Calibrated probabilities: expected calibration error, temperature scaling, abstention.

Temperature scaling (Guo et al. 2017, https://arxiv.org/abs/1706.04599, section 4.2): every logit is
divided by one scalar T > 0, fitted on validation logits by minimising the negative log-likelihood.
The argmax, so every accuracy figure, is unchanged; the confidences come to match the accuracy.

A serhub classifier keeps T in its config (``calibration_temperature``, 1.0 = as trained) and its
forward returns ``logits / T``, so ``pipeline("audio-classification")`` and
``pipeline("text-classification")`` give calibrated scores; ``model(**inputs, calibrated=False)``
gives the logits as trained. Recipes call :func:`calibrate` (or :func:`calibrate_with_trainer`)
after training; ``serhub evaluate`` reports :func:`reliability` and :func:`coverage_curve`.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import numpy as np

CALIBRATION_BINS = 15
# T outside these bounds means the validation set says little (a few clips all right: T -> 0; a
# model that guesses: T -> infinity); the fit stops at the bound and says so.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def _arrays(logits, labels=None):
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(
            f"logits must be (clips, classes) with at least one clip, found shape {logits.shape}"
        )
    if labels is None:
        return logits, None
    labels = np.asarray(labels).astype(int)
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"labels must be one class id per clip ({logits.shape[0]}), found shape {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must be class ids in 0..{logits.shape[1] - 1}, found {labels.min()}..{labels.max()}"
        )
    return logits, labels


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``softmax(logits / temperature)`` against the class ids ``labels``."""
    logits, labels = _arrays(logits, labels)
    z = logits / temperature
    top = z.max(-1)
    log_norm = top + np.log(np.exp(z - top[:, None]).sum(-1))
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def reliability(probs, correct, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top label (``bins`` equal-width confidence bins, Guo et al.
    2017) and each bin's count, confidence and accuracy (what the reliability diagram draws)."""
    probs, correct = np.asarray(probs, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    confidence = probs.max(1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += inside.mean() * abs(acc - conf)
            table.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "count": int(inside.sum()),
                    "confidence": conf,
                    "accuracy": acc,
                }
            )
    return {"ece": float(ece), "mean_confidence": float(confidence.mean()), "num_bins": bins, "bins": table}


def expected_calibration_error(
    logits, labels, temperature: float = 1.0, bins: int = CALIBRATION_BINS
) -> float:
    """ECE of ``softmax(logits / temperature)`` against the class ids ``labels``."""
    logits, labels = _arrays(logits, labels)
    probs = softmax(logits, temperature)
    return reliability(probs, probs.argmax(1) == labels, bins)["ece"]


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and the split's figures at T = 1 (``_before``) and at T (``_after``)."""

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    num_samples: int
    at_bound: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _log_beta_slope(logits, labels, log_beta: float) -> float:
    """d NLL / d beta at beta = 1/T: E_softmax(beta z)[z] - z_label, averaged over clips."""
    probs = softmax(logits * np.exp(log_beta))
    return float(np.mean((probs * logits).sum(-1) - logits[np.arange(len(labels)), labels]))


def fit_temperature(logits, labels, bins: int = CALIBRATION_BINS, iterations: int = 100) -> TemperatureFit:
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` on (validation) ``logits`` and class
    ids ``labels``. Deterministic: the NLL is convex in beta = 1/T with a non-decreasing slope
    (``E_p[z] - z_label``), so bisection of log beta on the slope's sign finds its minimum inside
    ``TEMPERATURE_BOUNDS`` (100 halvings: to machine precision)."""
    logits, labels = _arrays(logits, labels)
    low, high = -np.log(TEMPERATURE_BOUNDS[1]), -np.log(TEMPERATURE_BOUNDS[0])  # log beta
    if _log_beta_slope(logits, labels, low) >= 0:
        log_beta, at_bound = low, True  # the NLL grows with any sharpening: T at its upper bound
    elif _log_beta_slope(logits, labels, high) <= 0:
        log_beta, at_bound = high, True  # still falling at T's lower bound (e.g. every clip right)
    else:
        for _ in range(iterations):
            mid = (low + high) / 2
            low, high = (mid, high) if _log_beta_slope(logits, labels, mid) < 0 else (low, mid)
        log_beta, at_bound = (low + high) / 2, False
    temperature = float(np.exp(-log_beta))
    return TemperatureFit(temperature, **scores_at(logits, labels, temperature, bins), at_bound=at_bound)


def scores_at(logits, labels, temperature: float, bins: int = CALIBRATION_BINS) -> dict:
    """ECE and NLL of a split at T = 1 and at ``temperature`` (a held-out split's check of a fit)."""
    logits, labels = _arrays(logits, labels)
    return {
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
        "ece_before": expected_calibration_error(logits, labels, bins=bins),
        "ece_after": expected_calibration_error(logits, labels, temperature, bins),
        "num_samples": len(labels),
    }


def applies_temperature(model) -> bool:
    """Whether ``model``'s forward divides by ``config.calibration_temperature`` (serhub's classifiers
    that do take ``calibrated=``); for another model T is only recorded in its config."""
    return "calibrated" in inspect.signature(model.forward).parameters


def calibrate(model, logits, labels, held_out: dict | None = None, fitted_on: str = "validation") -> dict:
    """Fit T on ``logits`` (the model's logits as trained, e.g. validation) and class ids ``labels``,
    store it in ``model.config.calibration_temperature`` and return the record for eval_results.json
    and the model card: ``{"temperature", "fitted_on", "at_bound", "applied_by_model", <split>:
    {ece/nll before/after}}``, the fitted split first, then each ``held_out`` split (name -> (logits,
    labels)) scored at T."""
    fit = fit_temperature(logits, labels)
    model.config.calibration_temperature = fit.temperature
    record = {
        "temperature": fit.temperature,
        "fitted_on": fitted_on,
        "at_bound": fit.at_bound,
        "applied_by_model": applies_temperature(model),
    }
    record[fitted_on] = {k: v for k, v in fit.as_dict().items() if k not in ("temperature", "at_bound")}
    for split, (split_logits, split_labels) in (held_out or {}).items():
        record[split] = scores_at(split_logits, split_labels, fit.temperature)
    return record


def trainer_logits(trainer, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(logits, label ids) of ``dataset`` from ``trainer.predict`` (the first output when it is a tuple)."""
    prediction = trainer.predict(dataset)
    logits = prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    label_ids = prediction.label_ids
    label_ids = label_ids[0] if isinstance(label_ids, tuple) else label_ids
    return np.asarray(logits), np.asarray(label_ids)


def calibrate_with_trainer(
    trainer, eval_dataset, held_out: dict | None = None, fitted_on="validation"
) -> dict:
    """:func:`calibrate` for a ``transformers.Trainer`` recipe in one call: the logits of
    ``eval_dataset`` and of each ``held_out`` split (name -> dataset) are predicted with the
    temperature at 1 (the logits as trained), then T is fitted and stored in the model's config."""
    config = trainer.model.config
    config.calibration_temperature = 1.0
    logits, labels = trainer_logits(trainer, eval_dataset)
    others = {name: trainer_logits(trainer, ds) for name, ds in (held_out or {}).items()}
    return calibrate(trainer.model, logits, labels, others, fitted_on)


def coverage_curve(probs, correct, thresholds=None) -> list[dict]:
    """Abstention: for each confidence threshold, the share of clips answered (top-label confidence
    >= threshold; the others are "uncertain") and the accuracy on them. ``thresholds``: by default
    0, 0.05, ..., 0.95."""
    confidence = np.asarray(probs, dtype=np.float64).max(1)
    correct = np.asarray(correct, dtype=np.float64)
    if thresholds is None:
        thresholds = np.round(np.arange(0.0, 1.0, 0.05), 2)
    curve = []
    for t in thresholds:
        kept = confidence >= t
        curve.append(
            {
                "threshold": float(t),
                "coverage": float(kept.mean()),
                "accuracy": float(correct[kept].mean()) if kept.any() else None,
            }
        )
    return curve


def check_threshold(threshold: float) -> None:
    """An abstention threshold is a confidence strictly between 0 and 1."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(
            f"the abstention threshold (--abstain_below) is a confidence in (0, 1), found {threshold!r}; "
            'e.g. 0.5 answers "uncertain" when no label reaches 50 %'
        )


def abstention(probs, correct, threshold: float) -> dict:
    """Answer "uncertain" below ``threshold`` (top-label confidence): the share answered, the accuracy
    on those and on all clips, and the :func:`coverage_curve` (with ``threshold`` among its points)."""
    check_threshold(threshold)
    confidence = np.asarray(probs, dtype=np.float64).max(1)
    correct = np.asarray(correct, dtype=np.float64)
    answered = confidence >= threshold
    points = sorted({*np.round(np.arange(0.0, 1.0, 0.05), 2).tolist(), float(threshold)})
    return {
        "threshold": float(threshold),
        "coverage": float(answered.mean()),
        "abstained": int((~answered).sum()),
        "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
        "accuracy_all": float(correct.mean()),
        "curve": coverage_curve(probs, correct, points),
    }


__all__ = [
    "CALIBRATION_BINS",
    "TemperatureFit",
    "abstention",
    "applies_temperature",
    "calibrate",
    "calibrate_with_trainer",
    "check_threshold",
    "coverage_curve",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability",
    "scores_at",
    "softmax",
    "trainer_logits",
]
