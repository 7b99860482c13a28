"""The figures of ``serhub evaluate``'s report (:mod:`serhub.evaluate`): the metric module's scores,
bootstrap 95 % intervals of the headline figures, precision / recall per class, calibration, and the
scores of each group (speaker, gender)."""

from __future__ import annotations

import warnings

import numpy as np

from serhub.calibration import reliability
from serhub.evaluate_report import HEADLINE
from serhub.metrics.ser_metrics.ser_metrics import (
    _scores_from_confusion,
    classification_metrics,
    confusion_matrix,
    per_speaker_chance_lowest,
)


def bootstrap_intervals(ref: np.ndarray, pred: np.ndarray, n_labels: int, resamples: int, seed: int = 0):
    """95 % percentile intervals of macro-F1, UA and WA over the same resamples of the clips, drawn
    as ser_metrics draws its macro-F1 interval (so that one matches the metric's for a seed)."""
    if not resamples:
        return {}
    rng = np.random.default_rng(seed)
    stats = {key: np.empty(resamples) for key in HEADLINE}
    for b in range(resamples):
        idx = rng.integers(0, len(ref), len(ref))
        scores = _scores_from_confusion(confusion_matrix(ref[idx], pred[idx], n_labels))
        for key in HEADLINE:
            stats[key][b] = scores[key]
    out = {}
    for key, values in stats.items():
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = (float(v) for v in np.percentile(values, [2.5, 97.5]))
    return out


def group_scores(predictions, references, groups, labels) -> dict[str, dict]:
    """Macro-F1, UA, WA and the clip count of each group (speaker, gender). A group's macro-F1 is over
    the classes present in its references (``per_speaker_macro_f1``'s rule: a speaker with 3 of the
    6 emotions, each clip right, scores 1.0); ``macro_f1_all_labels`` averages over the label set."""
    rows: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault("unknown" if g in (None, "") else str(g), []).append(i)
    out = {}
    with warnings.catch_warnings():  # a group rarely has every class; the note is in the report
        warnings.simplefilter("ignore", UserWarning)
        for group, idx in sorted(rows.items()):
            m = classification_metrics([predictions[i] for i in idx], [references[i] for i in idx], labels)
            out[group] = {key: m[key] for key in HEADLINE} | {
                "macro_f1": m["macro_f1_present"],
                "macro_f1_all_labels": m["macro_f1"],
                "count": len(idx),
            }
    return out


def score(
    predictions: list[str], references: list[str], probs, labels, extra: dict, bootstrap: int, seed: int
):
    """Every figure of the report from the predictions (``extra``: group columns, e.g. speaker_id)."""
    metrics = classification_metrics(predictions, references, labels=labels)
    index = {label: i for i, label in enumerate(labels)}
    ref = np.array([index[r] for r in references])
    pred = np.array([index[p] for p in predictions])
    metrics |= bootstrap_intervals(ref, pred, len(labels), bootstrap, seed)
    cm = np.asarray(metrics["confusion_matrix"])
    support, predicted = cm.sum(1), cm.sum(0)
    metrics["per_class"] = {
        label: {
            "precision": float(cm[i, i] / predicted[i]) if predicted[i] else 0.0,
            "recall": float(cm[i, i] / support[i]) if support[i] else 0.0,
            "f1": metrics["per_class_f1"][label],
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    metrics["calibration"] = reliability(probs, ref == pred)
    for column, values in extra.items():
        metrics[f"per_{column.removesuffix('_id')}"] = group_scores(predictions, references, values, labels)
    if "speaker_id" in extra and bootstrap and len(set(extra["speaker_id"])) > 1:
        metrics["per_speaker_chance"] = per_speaker_chance_lowest(
            predictions, references, extra["speaker_id"], labels, resamples=bootstrap, seed=seed
        )
    return metrics


__all__ = ["bootstrap_intervals", "group_scores", "score"]
