"""Speech-emotion-recognition metrics as an `evaluate` module.

    import evaluate
    ser = evaluate.load("metrics/ser_metrics")               # a local folder: works offline
    ser.compute(predictions=["sad", "happy"], references=["sad", "sad"], labels=["happy", "sad"])

    ccc = evaluate.load("metrics/ser_metrics", "dimensional")
    ccc.compute(predictions=[[0.1, 0.3, 0.2], ...], references=[[...], ...])

This file is self-contained (numpy only) so that ``evaluate.load`` can copy it; the functions are
also importable directly (``from serhub.metrics.ser_metrics.ser_metrics import classification_metrics``).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{busso2025odyssey,
  title={The Odyssey 2024 / Interspeech 2025 Speech Emotion Recognition Challenges},
  note={macro-F1 is the challenge's main figure; UA and WA are the customary companions in SER}
}
"""

_DESCRIPTION = """\
Categorical SER metrics: weighted accuracy (WA, plain accuracy), unweighted accuracy (UA, the mean
recall over the classes present in the references, i.e. scikit-learn's balanced_accuracy_score),
macro-F1 (the MSP-Podcast challenge figure), weighted F1, per-class F1 and the confusion matrix,
with an optional bootstrap 95 % confidence interval of macro-F1.
macro_f1 follows scikit-learn (f1_score(labels=..., zero_division=0)): a class of the label set that
has no reference in the split counts as F1 0, so a perfect model on a split missing one of three
classes scores 0.67. Such classes are listed in classes_without_references (with a warning) and
macro_f1_present averages over the classes that do have references.
The "dimensional" configuration computes Lin's concordance correlation coefficient (CCC) per
dimension (arousal, valence, dominance by default) and its mean.
"""

_KWARGS_DESCRIPTION = """\
Args (categorical):
    predictions: predicted labels, names (str) or class indices (int).
    references: gold labels, same kind as predictions.
    labels: the label set, in the order used for the confusion matrix and per-class F1. Default:
        the sorted union of predictions and references. Labels outside this set raise ValueError.
    bootstrap: number of bootstrap resamples for a 95 % confidence interval of macro-F1 (0: none).
    seed: random seed of the bootstrap.
Returns:
    accuracy, unweighted_accuracy, macro_f1 (over the whole label set, scikit-learn's convention),
    macro_f1_present (over the classes that have references), classes_without_references (labels of
    the set absent from the references), weighted_f1, per_class_f1 (dict label -> F1),
    confusion_matrix (list of rows: reference, columns: prediction), labels, num_samples and, with
    bootstrap > 0, macro_f1_ci_low / macro_f1_ci_high.
Args (dimensional):
    predictions, references: lists of equal-length float vectors (one value per dimension).
    dimensions: names of the dimensions, default ("arousal", "valence", "dominance").
Returns:
    ccc_<dimension> for each dimension and ccc_mean; nonfinite_pairs_<dimension>: pairs left out of
    that dimension because the prediction or the reference is NaN/infinite (MSP-Podcast marks missing
    annotations with NaN). A dimension with no finite pair raises ValueError.
"""


def _check_same_length(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length, got {len(predictions)} predictions "
            f"and {len(references)} references; pass one prediction per reference."
        )
    if len(references) == 0:
        raise ValueError("no predictions/references were given; pass at least one example.")


def check_unique(values: Sequence, name: str = "labels", item: str = "label") -> None:
    """Refuse repeated entries, naming each one and where it is (1-based): "labels: 'happy' appears
    twice (positions 2 and 5)". Entries must be hashable (a label is a name or a class index)."""
    positions: dict = {}
    for i, value in enumerate(values, 1):
        try:
            positions.setdefault(value, []).append(i)
        except TypeError:
            raise ValueError(
                f"{name}: entry {i} is a {type(value).__name__} ({value!r:.60}); each {item} must be a name "
                f"(or a class index). Write them as a flat list."
            ) from None
    repeated = [(value, where) for value, where in positions.items() if len(where) > 1]
    if repeated:
        times = {2: "twice", 3: "three times"}
        described = "; ".join(
            f"{value!r} appears {times.get(len(where), f'{len(where)} times')} "
            f"(positions {', '.join(map(str, where[:-1]))} and {where[-1]})"
            for value, where in repeated
        )
        raise ValueError(f"{name}: {described}; list each {item} once.")


def _kind(value) -> str:
    """What a label value is: "strings" (names), "integers" or "floats" (class ids), or its type."""
    if isinstance(value, str):  # np.str_ too
        return "strings"
    if isinstance(value, (bool, int, np.bool_, np.integer)):
        return "integers"
    if isinstance(value, (float, np.floating)):
        return "floats"
    return f"{type(value).__name__} values"


def _group(kind: str) -> str:
    # 1 and 1.0 are the same class id (they compare and hash equal); a name never equals an id
    return "numbers" if kind in ("integers", "floats") else kind


def check_label_kinds(predictions: Sequence, references: Sequence, labels: Sequence | None = None) -> None:
    """Refuse NaN entries, and predictions, references and labels of different kinds (class ids against
    label names never match, and would be scored as wrong, or as classes of their own)."""
    kinds = {}
    for name, values in (("predictions", predictions), ("references", references), ("labels", labels)):
        if values is None or isinstance(values, (str, bytes)):
            continue
        nan = [i for i, v in enumerate(values, 1) if isinstance(v, (float, np.floating)) and v != v]
        if nan:
            raise ValueError(
                f"{name} has NaN at position(s) {nan[:10]}{' ...' if len(nan) > 10 else ''}; each entry must be a "
                "label name or a class id. Drop the examples without a label, or map NaN to a label, before scoring."
            )
        found = sorted({_kind(v) for v in values})
        examples = ", ".join(f"{v!r:.40}" for v in itertools.islice(values, 3)) + (
            ", ..." if len(values) > 3 else ""
        )
        if len({_group(k) for k in found}) > 1:
            raise ValueError(
                f"{name} mix {' and '.join(found)} ({examples}); every entry must be a label name (str), or every "
                "entry a class id (int)."
            )
        if found:
            kinds[name] = (_group(found[0]), " and ".join(found), examples)
    for name in ("references", "labels"):
        if name in kinds and "predictions" in kinds and kinds[name][0] != kinds["predictions"][0]:
            (_, theirs, their_examples), (_, ours, examples) = kinds[name], kinds["predictions"]
            raise ValueError(
                f"the {name} are {theirs} ({their_examples}) but the predictions are {ours} ({examples}): "
                "class ids never match label names. Map the ids to names (labels[id]) or the names to ids so that "
                "predictions, references and labels are of one kind."
            )


def confusion_matrix(ref_idx: np.ndarray, pred_idx: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of references of class ``i`` predicted as class ``j``."""
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (ref_idx, pred_idx), 1)
    return cm


def _scores_from_confusion(cm: np.ndarray) -> dict:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)  # references per class
    predicted = cm.sum(0).astype(np.float64)
    denom = support + predicted
    # F1 = 2TP / (2TP + FP + FN); 0 for a label that is neither predicted nor present, and macro-F1
    # averages over the whole label set (scikit-learn's f1_score(labels=..., zero_division=0)).
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall_classes = support > 0  # UA: mean recall over the classes present in the references
    n = cm.sum()
    return {
        "accuracy": float(tp.sum() / n),
        "unweighted_accuracy": float((tp[recall_classes] / support[recall_classes]).mean()),
        "macro_f1": float(f1.mean()),
        "macro_f1_present": float(f1[recall_classes].mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "f1": f1,
    }


def encode_labels(
    predictions: Sequence, references: Sequence, labels: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Map predictions/references to indices into ``labels`` (checked); returns (pred, ref, labels)."""
    _check_same_length(predictions, references)
    check_label_kinds(predictions, references, labels)
    if labels is None:
        labels = sorted(set(predictions) | set(references), key=lambda x: (str(type(x)), x))
    labels = list(labels)
    check_unique(labels, "labels")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({repr(x) for x in (*predictions, *references) if x not in index})
    if unknown:
        raise ValueError(
            f"found labels that are not in the label set {labels!r}: {', '.join(unknown)}; pass `labels=` with every "
            "class, or map the outputs to the label set before scoring."
        )
    pred = np.fromiter((index[x] for x in predictions), dtype=np.int64, count=len(predictions))
    ref = np.fromiter((index[x] for x in references), dtype=np.int64, count=len(references))
    return pred, ref, labels


def classification_metrics(
    predictions: Sequence,
    references: Sequence,
    labels: Sequence | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """WA, UA, macro/weighted/per-class F1, confusion matrix and an optional bootstrap CI of macro-F1."""
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(
            f"bootstrap is a number of resamples (0 for none), found {bootstrap!r}; pass e.g. bootstrap=1000."
        )
    pred, ref, labels = encode_labels(predictions, references, labels)
    cm = confusion_matrix(ref, pred, len(labels))
    scores = _scores_from_confusion(cm)
    f1 = scores.pop("f1")
    absent = [str(label) for i, label in enumerate(labels) if not (ref == i).any()]
    if absent:
        warnings.warn(
            f"classes {absent} of the label set have no references in this split: macro_f1 counts their F1 "
            f"as 0 ({scores['macro_f1']:.4f}); over the {len(labels) - len(absent)} classes present it is "
            f"{scores['macro_f1_present']:.4f} (macro_f1_present). Score on a split with every class, or "
            "report macro_f1_present beside macro_f1.",
            UserWarning,
            stacklevel=2,
        )
    out = {
        **scores,
        "classes_without_references": absent,
        "per_class_f1": {str(label): float(f1[i]) for i, label in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "labels": [str(label) for label in labels],
        "num_samples": int(len(ref)),
    }
    if bootstrap:
        rng = np.random.default_rng(seed)
        n = len(ref)
        stats = np.empty(bootstrap)
        for b in range(bootstrap):
            idx = rng.integers(0, n, n)
            stats[b] = _scores_from_confusion(confusion_matrix(ref[idx], pred[idx], len(labels)))["macro_f1"]
        out["macro_f1_ci_low"], out["macro_f1_ci_high"] = (
            float(v) for v in np.percentile(stats, [2.5, 97.5])
        )
    return out


def per_speaker_macro_f1(
    predictions: Sequence, references: Sequence, speakers: Sequence, labels: Sequence | None = None
) -> dict[str, float]:
    """Macro-F1 of each speaker's clips (held-out voices: how evenly a model generalises), by speaker,
    over the classes present in that speaker's references (``macro_f1_present``): a speaker recorded in
    3 of 6 emotions and classified perfectly scores 1.0, not 0.5. A wrong answer naming a class the
    speaker never expresses still costs the recall of the class they did."""
    _check_same_length(predictions, references)
    if len(speakers) != len(references):
        raise ValueError(
            f"one speaker per clip expected: {len(speakers)} speakers for {len(references)} clips"
        )
    pred, ref, labels = encode_labels(predictions, references, labels)
    names, owner, present = _group_index(speakers, ref, len(labels))
    return dict(zip(names, _group_macro_f1_present(owner, ref, pred, present).tolist()))


def _group_index(groups: Sequence, ref: np.ndarray, num_labels: int):
    """``(names, owner, present)``: the groups in sorted order, each clip's group index, and which
    classes each group's references hold (groups x classes)."""
    names = sorted({str(g) for g in groups})
    index = {g: i for i, g in enumerate(names)}
    owner = np.fromiter((index[str(g)] for g in groups), dtype=np.int64, count=len(ref))
    present = np.zeros((len(names), num_labels), dtype=bool)
    present[owner, ref] = True
    return names, owner, present


def _group_macro_f1_present(owner: np.ndarray, ref: np.ndarray, pred: np.ndarray, present: np.ndarray):
    """Every group's macro-F1 over its present classes at once (``present``: groups x classes), from
    one scatter of (group, reference, prediction) counts: O(clips + groups x classes)."""
    g, c = present.shape
    tp = np.bincount(owner[ref == pred] * c + ref[ref == pred], minlength=g * c).reshape(g, c)
    support = np.bincount(owner * c + ref, minlength=g * c).reshape(g, c)
    predicted = np.bincount(owner * c + pred, minlength=g * c).reshape(g, c)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros((g, c)), where=denom > 0)
    return (f1 * present).sum(1) / present.sum(1)


def per_speaker_chance_lowest(
    predictions: Sequence,
    references: Sequence,
    speakers: Sequence,
    labels: Sequence | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """How low the lowest speaker's macro-F1 (``per_speaker_macro_f1``) falls from the clip counts
    alone. The same predictions are dealt to the speakers at random, within each reference class (so
    every speaker keeps its clips per class), ``resamples`` times: as if every voice were recognised
    equally well. With a dozen clips per speaker the lowest of twenty is far below the median by
    chance; a speaker below the deals' range is recognised worse than the others.

    Returns ``observed_lowest``, ``chance_lowest`` (the deals' median lowest) with its 95 % range
    (``chance_lowest_low`` / ``chance_lowest_high``) and ``p_value``, the share of deals whose lowest is
    at or below the observed one."""
    observed = per_speaker_macro_f1(predictions, references, speakers, labels)
    pred, ref, labels = encode_labels(predictions, references, labels)
    _, owner, present = _group_index(speakers, ref, len(labels))  # the same in every deal
    by_class = [np.flatnonzero(ref == c) for c in range(len(labels))]
    rng = np.random.default_rng(seed)
    lowest = np.empty(resamples)
    for b in range(resamples):
        dealt = pred.copy()
        for idx in by_class:  # the predictions of a class's clips, shuffled among that class's clips
            dealt[idx] = pred[rng.permutation(idx)]
        lowest[b] = _group_macro_f1_present(owner, ref, dealt, present).min()
    low = min(observed.values())
    return {
        "observed_lowest": float(low),
        "chance_lowest": float(np.median(lowest)),
        "chance_lowest_low": float(np.percentile(lowest, 2.5)),
        "chance_lowest_high": float(np.percentile(lowest, 97.5)),
        "p_value": float((lowest <= low + 1e-12).mean()),
        "resamples": resamples,
    }


def speaker_scores(
    predictions: Sequence,
    references: Sequence,
    speakers: Sequence,
    labels: Sequence | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """What a recipe reports per speaker: ``per_speaker_macro_f1`` and, with ``bootstrap`` resamples,
    ``per_speaker_chance`` (``per_speaker_chance_lowest``)."""
    out = {"per_speaker_macro_f1": per_speaker_macro_f1(predictions, references, speakers, labels)}
    if bootstrap:
        out["per_speaker_chance"] = per_speaker_chance_lowest(
            predictions, references, speakers, labels, resamples=bootstrap, seed=seed
        )
    return out


def concordance_correlation_coefficient(predictions: Sequence[float], references: Sequence[float]) -> float:
    """Lin's CCC with population moments (as the MSP-Podcast challenge scorer)."""
    x = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(references, dtype=np.float64)
    _check_same_length(x, y)
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    denom = x.var() + y.var() + (mx - my) ** 2
    return float(2 * cov / denom) if denom > 0 else 0.0


def dimensional_metrics(
    predictions: Sequence[Sequence[float]],
    references: Sequence[Sequence[float]],
    dimensions: Sequence[str] = ("arousal", "valence", "dominance"),
) -> dict:
    _check_same_length(predictions, references)
    x = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    y = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    if x.shape != y.shape or x.shape[1] != len(dimensions):
        raise ValueError(
            f"expected predictions and references of shape (N, {len(dimensions)}) for dimensions "
            f"{list(dimensions)}, found {x.shape} and {y.shape}; pass `dimensions=` to match."
        )
    out, dropped = {}, {}
    for i, d in enumerate(dimensions):
        # missing annotations (MSP-Podcast writes NaN) and non-finite predictions are left out of
        # that dimension's CCC and counted, never scored as numbers
        finite = np.isfinite(x[:, i]) & np.isfinite(y[:, i])
        if not finite.any():
            raise ValueError(
                f"every {d} prediction/reference pair has a NaN or infinite value; nothing to score. "
                "Check the predictions and the dataset's annotations."
            )
        out[f"ccc_{d}"] = concordance_correlation_coefficient(x[finite, i], y[finite, i])
        dropped[f"nonfinite_pairs_{d}"] = int((~finite).sum())
    out["ccc_mean"] = float(np.mean(list(out.values())))
    return {**out, **dropped}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SerMetrics(evaluate.Metric):
    def _info(self):
        if self.config_name == "dimensional":
            features = datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            )
        else:
            features = [
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
                datasets.Features(
                    {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
                ),
            ]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score ``predictions`` against ``references`` (empty or unequal inputs raise ValueError)."""
        # evaluate itself fails on empty inputs with a bare IndexError: say what is wrong first
        if predictions is not None and references is not None:
            _check_same_length(predictions, references)
            if self.config_name != "dimensional":  # before evaluate's "don't match the expected format"
                check_label_kinds(predictions, references, kwargs.get("labels"))
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, labels=None, bootstrap=0, seed=0, dimensions=None):
        if self.config_name == "dimensional":
            return dimensional_metrics(
                predictions, references, dimensions or ("arousal", "valence", "dominance")
            )
        return classification_metrics(predictions, references, labels=labels, bootstrap=bootstrap, seed=seed)
