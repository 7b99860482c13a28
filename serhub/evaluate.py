"""Any serhub model (or stock transformers audio classifier) on any dataset: one report card.

    serhub evaluate --model M --dataset D [--split test] [--output_dir OUT]
                    [--label_map exc=happy,frustrated=angry] [--candidate_labels a,b,c]

D is a DatasetDict folder (``save_to_disk``, as every serhub builder writes, e.g.
``python -m serhub.datasets_scripts.folder``), ``synthetic_emotions`` (the embedded corpus the recipes
train on by default) or a Hub dataset id. OUT receives ``report.md``
(macro-F1 / UA / WA with bootstrap 95 % intervals, per class, per speaker and per gender where the
columns exist, calibration; with ``--abstain_below P``, coverage and accuracy when clips under
confidence P are answered "uncertain", and ``coverage_accuracy.png``), ``eval_results.json``, ``predictions.csv`` (one row per clip with every
probability), ``confusion_matrix.png``, ``reliability_diagram.png`` and ``model_index.yaml`` (the
``model-index`` results for a model card), swapped in as a whole when complete. The results carry
the evaluated split's sha256 hashes (the ones the dataset's ``manifest.json`` holds, and whether they
match it) and the model's ``config.json`` hash, so that two reports can be compared.

Labels: ``--label_map`` renames the dataset's labels (``a=b`` pairs, or a file of them / a JSON
object); ``--candidate_labels`` restricts the model to some of its labels (probabilities
renormalised over them). A dataset label the model cannot produce is refused, with the list it can.
The model loads through :func:`serhub.loading.load_classifier`: serhub's and transformers' code
only, never code shipped with the model.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from serhub.calibration import abstention, check_threshold, reliability
from serhub.datasets_scripts.common import read_manifest, split_hashes
from serhub.evaluate_report import HEADLINE
from serhub.loading import load_classifier
from serhub.metrics.ser_metrics.ser_metrics import (
    _scores_from_confusion,
    classification_metrics,
    confusion_matrix,
)
from serhub.modeling.file_utils import atomic_output_dir, check_output_dir

UNCERTAIN = "uncertain"  # the answer below --abstain_below
EMBEDDED = ("synthetic_emotions",)  # the labelled corpus serhub builds offline (recipes train on it)


# ----------------------------------------------------------------------------- labels


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"exc=happy,frustrated=angry"``, or a file: a JSON object, or one ``a=b`` per line (# comments)."""
    if not text:
        return {}
    path = Path(text).expanduser()
    if path.is_file():
        content = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            mapping = json.loads(content)
            if not isinstance(mapping, dict):
                raise ValueError(f"--label_map {path}: expected a JSON object {{dataset label: model label}}")
            return {str(k).strip(): str(v).strip() for k, v in mapping.items()}
        pairs = [line.split("#", 1)[0].strip() for line in content.splitlines()]
    else:
        pairs = [p.strip() for p in text.split(",")]
    mapping = {}
    for pair in filter(None, pairs):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(
                f"--label_map: {pair!r} is not 'dataset_label=model_label'; write e.g. "
                "--label_map exc=happy,frustrated=angry (or a file with one pair per line)"
            )
        mapping[source.strip()] = target.strip()
    return mapping


def split_list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def model_labels(classifier) -> list[str]:
    config = classifier.model.config
    return [config.id2label[i] for i in range(len(config.id2label))]


def scored_labels(model: list[str], candidates: list[str] | None, references: set[str]) -> list[str]:
    """The labels scored: ``candidates`` (checked against the model's) or all the model's; every
    reference must be one of them. ``ValueError`` listing what the model can produce."""
    if candidates:
        unknown = [c for c in candidates if c not in model]
        if unknown:
            raise ValueError(
                f"--candidate_labels {unknown} are not labels of the model; it can produce {model}. "
                "Choose candidates among those."
            )
    labels = list(dict.fromkeys(candidates)) if candidates else list(model)
    missing = sorted(references - set(labels))
    if missing:
        what = "the candidate labels" if candidates else "the model"
        raise ValueError(
            f"the dataset has labels that {what} cannot produce: {missing}; it can produce {labels}. "
            f"Map them with --label_map (e.g. --label_map {missing[0]}={labels[0]}), "
            + ("add them to --candidate_labels, " if candidates else "")
            + "or evaluate on a dataset without them."
        )
    return labels


# ----------------------------------------------------------------------------- data and inference


def dataset_location(dataset: str) -> str:
    """``dataset`` as loaded: serhub's embedded corpora (built once offline) by their folder."""
    from serhub.recipes.data import embedded_dataset_path

    if dataset in EMBEDDED and not Path(dataset).is_dir():
        return str(embedded_dataset_path(dataset))
    return dataset


def open_split(dataset: str, split: str):
    """Every row of ``split`` of ``dataset`` (a folder, an embedded corpus' name or a Hub id)."""
    from serhub.recipes.data import load_dataset_dict, require_splits

    dataset_dict = load_dataset_dict(dataset_location(dataset))
    require_splits(dataset_dict, [split])
    return dataset_dict[split]


def load_split(dataset: str, split: str, label_column: str, max_samples: int | None):
    """The split and its reference label names (rows without a label left out)."""
    return labelled_rows(open_split(dataset, split), dataset, split, label_column, max_samples)


def labelled_rows(ds, dataset: str, split: str, label_column: str, max_samples: int | None):
    """``(rows, reference label names, unlabelled count)``: the first ``max_samples`` labelled rows."""
    if label_column not in ds.column_names:
        raise ValueError(
            f"split {split!r} has no {label_column!r} column; its columns are {ds.column_names}. "
            "Name the label column with --label_column."
        )
    names = getattr(ds.features[label_column], "names", None)
    values = ds[label_column]
    keep = [i for i, v in enumerate(values) if v is not None and v != -1 and v != ""]
    unlabelled = len(values) - len(keep)
    if max_samples is not None:
        keep = keep[:max_samples]
    if not keep:
        raise ValueError(f"split {split!r} of {dataset} has no labelled row to evaluate")
    references = [names[values[i]] if names else str(values[i]) for i in keep]
    return ds.select(keep), references, unlabelled


def predict_probabilities(classifier, ds, labels: list[str], batch_size: int, progress: bool = True):
    """(N, len(labels)) probabilities, renormalised over ``labels`` (the model's softmax restricted
    to them, which is the softmax of their logits alone)."""
    import datasets
    from tqdm.auto import tqdm

    rate = getattr(classifier.feature_extractor, "sampling_rate", 16000)
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=rate))
    rows = []
    for start in tqdm(range(0, len(ds), batch_size), desc="evaluating", unit="batch", disable=not progress):
        clips = [a["array"] for a in ds[start : start + batch_size]["audio"]]
        for scores in classifier(clips, top_k=None, batch_size=batch_size):
            by_label = {s["label"]: float(s["score"]) for s in scores}
            rows.append([by_label[label] for label in labels])
    probs = np.asarray(rows, dtype=np.float64)
    return probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)


# ----------------------------------------------------------------------------- scores


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
    """Macro-F1, UA, WA and the clip count of each group (speaker, gender)."""
    rows: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault("unknown" if g in (None, "") else str(g), []).append(i)
    out = {}
    with warnings.catch_warnings():  # a group rarely has every class; the note is in the report
        warnings.simplefilter("ignore", UserWarning)
        for group, idx in sorted(rows.items()):
            m = classification_metrics([predictions[i] for i in idx], [references[i] for i in idx], labels)
            out[group] = {key: m[key] for key in (*HEADLINE, "macro_f1_present")} | {"count": len(idx)}
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
    return metrics


# ----------------------------------------------------------------------------- the run


def evaluate_model(
    model: str,
    dataset: str,
    split: str = "test",
    *,
    label_map: dict[str, str] | None = None,
    candidate_labels: list[str] | None = None,
    label_column: str = "emotion",
    batch_size: int = 8,
    max_samples: int | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
    abstain_below: float | None = None,
    label_set: list[str] | None = None,
    classifier=None,
) -> tuple[dict, list[dict]]:
    """``(results, predictions)``: the report's figures and one record per clip. ``abstain_below``: a
    confidence under which the answer is "uncertain" (the figures above stay forced-choice; the
    ``abstention`` entry gives coverage and accuracy at it, and the coverage/accuracy curve).
    ``label_set``: a label set shared across corpora (``recipes/cross_corpus.py``): the clips whose
    (mapped) label is outside it are left out and counted, and the model is restricted to it.
    ``classifier``: the model's pipeline when already loaded (``load_classifier(model)``)."""
    label_map = label_map or {}
    full_split = open_split(dataset, split)
    ds, raw_references, unlabelled = labelled_rows(full_split, dataset, split, label_column, max_samples)
    references = [label_map.get(r, r) for r in raw_references]
    outside = 0
    if label_set is not None:
        keep = [i for i, r in enumerate(references) if r in label_set]
        if not keep:
            raise ValueError(
                f"no clip of split {split!r} of {dataset} has a label in the shared label set {label_set}; "
                f"its labels are {sorted(set(references))}. Map them with a label map (e.g. "
                f"{sorted(set(references))[0]}={label_set[0]}) or leave this corpus out."
            )
        outside = len(references) - len(keep)
        ds, references = ds.select(keep), [references[i] for i in keep]
        raw_references = [raw_references[i] for i in keep]
        candidate_labels = candidate_labels or list(label_set)
    classifier = classifier if classifier is not None else load_classifier(model)
    labels = scored_labels(model_labels(classifier), candidate_labels, set(references))
    probs = predict_probabilities(classifier, ds, labels, batch_size, progress)
    predictions = [labels[i] for i in probs.argmax(1)]
    groups = {c: ds[c] for c in ("speaker_id", "gender") if c in ds.column_names}
    results = score(predictions, references, probs, labels, groups, bootstrap, seed)
    unused = sorted(set(label_map) - set(raw_references))
    speaker_norm = getattr(classifier.model.config, "speaker_normalization", None)
    if speaker_norm:  # the recipe standardised the test speakers' frames; the model alone does not
        warnings.warn(
            f"{model} was trained on speaker-normalised encoder frames ({speaker_norm}); the model does not "
            "normalise by itself, so these figures are of raw frames and differ from the recipe's test figures",
            UserWarning,
            stacklevel=2,
        )
    results |= {
        "model": str(model),
        "speaker_normalization": speaker_norm,
        "dataset": str(dataset),
        "split": split,
        "label_map": label_map,
        "label_map_unused": unused,
        "candidate_labels": candidate_labels,
        "unlabelled_rows_left_out": unlabelled,
        "outside_label_set_left_out": outside,
        "bootstrap": bootstrap,
        "seed": seed,
        "reproducibility": reproducibility(model, classifier, dataset, split, full_split, ds),
    }
    records = _records(ds, groups, references, predictions, probs, labels)
    if abstain_below is not None:
        results["abstention"] = abstention(probs, [r["correct"] for r in records], abstain_below)
        for record in records:
            record["answer"] = record["prediction"] if record["confidence"] >= abstain_below else UNCERTAIN
    return results, records


def config_sha256(model: str, classifier) -> str:
    """sha256 of the model folder's ``config.json`` as stored (of the loaded config when there is no
    local file): the figures of two reports come from the same model only if this matches."""
    path = Path(str(model)) / "config.json"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    text = classifier.model.config.to_json_string(use_diff=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reproducibility(model: str, classifier, dataset: str, split: str, full_split, evaluated) -> dict:
    """What the figures were computed on: the split's hashes as the dataset's ``manifest.json`` writes
    them (:func:`split_hashes`, one function for both), the hash of the clips actually scored (fewer
    with ``--max_samples``, unlabelled rows or a shared label set) and of the model's config."""
    out = {
        "split": split_hashes(full_split),
        "evaluated_clips": len(evaluated),
        "evaluated_clip_ids_sha256": split_hashes(evaluated)["clip_ids_sha256"],
        "model_config_sha256": config_sha256(model, classifier),
        "dataset_manifest": None,
    }
    folder = Path(dataset_location(dataset))
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None and split in manifest.get("splits", {}):
        built = manifest["splits"][split]
        same = all(built.get(k) == v for k, v in out["split"].items())
        out["dataset_manifest"] = "matches" if same else "differs (the dataset changed since it was built)"
    return out


def _records(ds, groups: dict, references, predictions, probs, labels) -> list[dict]:
    """predictions.csv's rows: the clip, its groups, reference, prediction, confidence and probabilities."""
    ids = ds["utterance_id"] if "utterance_id" in ds.column_names else [str(i) for i in range(len(ds))]
    records = []
    for i, (uid, ref, pred) in enumerate(zip(ids, references, predictions)):
        record = {"utterance_id": uid, **{c: v[i] for c, v in groups.items()}, "reference": ref}
        record |= {"prediction": pred, "confidence": float(probs[i].max()), "correct": int(ref == pred)}
        records.append(record | {f"p_{label}": float(p) for label, p in zip(labels, probs[i])})
    return records


def main_figures(results: dict) -> str:
    """Macro-F1 0.512 (0.410–0.580), UA ..., WA ...: the 95 % intervals where bootstrapped."""
    parts = []
    for key, name in HEADLINE.items():
        text = f"{name} {results[key]:.3f}"
        if f"{key}_ci_low" in results:
            text += f" ({results[f'{key}_ci_low']:.3f}–{results[f'{key}_ci_high']:.3f})"
        parts.append(text)
    return ", ".join(parts)


def write_outputs(folder: Path, results: dict, records: list[dict]) -> None:
    """Every file of the report into ``folder``."""
    from serhub.evaluate_report import model_index_yaml, plot_coverage, plot_reliability, report_markdown
    from serhub.metrics.plotting import plot_confusion_matrix
    from serhub.recipes.reporting import write_json

    with (folder / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    write_json(folder / "eval_results.json", results)
    title = f"{Path(results['model']).name} on {Path(results['dataset']).name} ({results['split']})"
    plot_confusion_matrix(
        results["confusion_matrix"], results["labels"], folder / "confusion_matrix.png", title
    )
    plot_reliability(results["calibration"], folder / "reliability_diagram.png", title)
    if "abstention" in results:
        plot_coverage(results["abstention"], folder / "coverage_accuracy.png", title)
    (folder / "model_index.yaml").write_text(model_index_yaml(results), encoding="utf-8")
    (folder / "report.md").write_text(report_markdown(results), encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="a serhub model or transformers audio classifier (folder or Hub id)"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="a DatasetDict folder (save_to_disk), synthetic_emotions (serhub's embedded corpus) or a Hub id",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--output_dir", help="where the report goes (default: print the figures only)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument(
        "--label_map", help="dataset label -> model label: exc=happy,frustrated=angry, or a file"
    )
    parser.add_argument("--candidate_labels", help="restrict the model to these labels: a,b,c")
    parser.add_argument("--label_column", default="emotion")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_samples", type=int, help="evaluate the first N labelled clips only")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="resamples for the 95 %% intervals (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument(
        "--abstain_below",
        type=float,
        help='answer "uncertain" below this top-label confidence (0-1): coverage and accuracy at it, '
        "and the coverage/accuracy curve, in the report",
    )


def run(args: argparse.Namespace) -> dict:
    for name in ("batch_size", "max_samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number, got {value}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap is a number of resamples (0 for none), got {args.bootstrap}")
    if args.abstain_below is not None:
        check_threshold(args.abstain_below)
    if args.output_dir:
        check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    results, records = evaluate_model(
        args.model, args.dataset, args.split, label_map=parse_label_map(args.label_map),
        candidate_labels=split_list(args.candidate_labels), label_column=args.label_column,
        batch_size=args.batch_size, max_samples=args.max_samples, bootstrap=args.bootstrap, seed=args.seed,
        abstain_below=args.abstain_below,
    )  # fmt: skip
    print(f"{results['num_samples']} clips of {args.split}: {main_figures(results)}")
    print(f"ECE {results['calibration']['ece']:.3f}")
    if "abstention" in results:
        a = results["abstention"]
        answered = "-" if a["accuracy_answered"] is None else f"{a['accuracy_answered']:.3f}"
        print(
            f"below confidence {a['threshold']}: {a['abstained']} uncertain; accuracy on the rest {answered}"
        )
    if args.output_dir:
        with atomic_output_dir(args.output_dir, overwrite=args.overwrite) as tmp:
            write_outputs(tmp, results, records)
        print(f"report: {Path(args.output_dir) / 'report.md'}")
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = ["evaluate_model", "parse_label_map", "scored_labels"]
