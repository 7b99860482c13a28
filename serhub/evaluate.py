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
only, never code shipped with the model. The labels, the split and the probabilities are in
:mod:`serhub.evaluate_data`, the figures in :mod:`serhub.evaluate_scores`, the report files in
:mod:`serhub.evaluate_report`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import warnings
from pathlib import Path

from serhub.calibration import abstention, check_threshold
from serhub.datasets_scripts.common import read_manifest, split_hashes
from serhub.evaluate_data import (
    EMBEDDED,
    SELF_REFERENCE_CLIPS,
    dataset_location,
    enrolment_plan,
    labelled_rows,
    load_split,
    model_labels,
    open_split,
    parse_label_map,
    predict_enrolled,
    predict_probabilities,
    scored_labels,
    self_enrolment_plan,
    split_list,
)
from serhub.evaluate_report import HEADLINE
from serhub.evaluate_scores import bootstrap_intervals, group_scores, score
from serhub.loading import load_classifier
from serhub.modeling.file_utils import atomic_output_dir, check_output_dir

UNCERTAIN = "uncertain"  # the answer below --abstain_below


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
    enroll_per_speaker: int | None = None,
    enroll_label: str | None = "neutral",
    enroll_self: bool = False,
) -> tuple[dict, list[dict]]:
    """``(results, predictions)``: the report's figures and one record per clip. ``abstain_below``: a
    confidence under which the answer is "uncertain" (the figures above stay forced-choice; the
    ``abstention`` entry gives coverage and accuracy at it, and the coverage/accuracy curve).
    ``label_set``: a label set shared across corpora (``recipes/cross_corpus.py``): the clips whose
    (mapped) label is outside it are left out and counted, and the model is restricted to it.
    ``classifier``: the model's pipeline when already loaded (``load_classifier(model)``).
    ``enroll_per_speaker``: K; each speaker is enrolled (the model's ``enroll_speaker``) on K of their
    clips, ``enroll_label`` ones first (a neutral recording, as a user would give), and their other
    clips are scored; the K are left out of the figures. ``enroll_self``: each speaker is enrolled on
    the audio of their own clips (up to ``SELF_REFERENCE_CLIPS`` of them; no label is read) and every
    clip is scored: no reference recording is needed. For models trained relative to the speaker
    (``--speaker_prosody``, ``--speaker_norm``)."""
    if enroll_self and enroll_per_speaker:
        raise ValueError(
            "enroll_self and enroll_per_speaker are two references for the same speakers: give one of them "
            "(--enroll_self: each speaker's own clips; --enroll_per_speaker K: K of them, left out of the figures)"
        )
    label_map = label_map or {}
    full_split = open_split(dataset, split)
    ds, raw_references, unlabelled = labelled_rows(full_split, dataset, split, label_column, max_samples)
    references = [label_map.get(r, r) for r in raw_references]
    outside = 0
    if label_set is not None:
        ds, references, raw_references, outside = _in_label_set(
            ds, references, raw_references, label_set, dataset, split
        )
        candidate_labels = candidate_labels or list(label_set)
    classifier = classifier if classifier is not None else load_classifier(model)
    labels = scored_labels(model_labels(classifier), candidate_labels, set(references))
    enrolled = None
    _check_reference_kind(classifier, model, enroll_per_speaker, enroll_self)
    if enroll_per_speaker or enroll_self:
        ds, references, raw_references, probs, enrolled = _enrolled_scores(
            classifier, ds, references, raw_references, labels, enroll_per_speaker or "self", enroll_label,
            batch_size, progress, f"split {split!r} of {dataset}",
        )  # fmt: skip
    else:
        probs = predict_probabilities(classifier, ds, labels, batch_size, progress)
    predictions = [labels[i] for i in probs.argmax(1)]
    groups = {c: ds[c] for c in ("speaker_id", "gender") if c in ds.column_names}
    results = score(predictions, references, probs, labels, groups, bootstrap, seed)
    results |= {
        "model": str(model),
        "speaker_normalization": _speaker_normalization(model, classifier, enrolled),
        "speaker_enrolment": enrolled,
        "dataset": str(dataset),
        "split": split,
        "label_map": label_map,
        "label_map_unused": sorted(set(label_map) - set(raw_references)),
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


def _enrolled_scores(
    classifier, ds, references, raw_references, labels, per_speaker, label, batch_size, progress, where
):
    """Each speaker enrolled on ``per_speaker`` of their clips and the rest scored, or (``per_speaker``
    "self") on their own clips and all scored: ``(ds, references, raw references, probabilities)`` of
    the scored rows, and the ``speaker_enrolment`` record."""
    if "speaker_id" not in ds.column_names:
        raise ValueError(f"enrolment needs each clip's speaker: {where} has no speaker_id column")
    if per_speaker == "self":
        plan = self_enrolment_plan(ds["speaker_id"])
        record = {"clips_per_speaker": "self", "label": None, "clips_left_out": 0,
                  "max_reference_clips": SELF_REFERENCE_CLIPS}  # fmt: skip
    else:
        plan = enrolment_plan(ds["speaker_id"], references, per_speaker, label)
        record = {"clips_per_speaker": per_speaker, "label": label, "clips_left_out": len(plan) * per_speaker}
    probs = predict_enrolled(classifier, ds, labels, plan, batch_size, progress)
    kept = sorted(i for _, scored in plan.values() for i in scored)
    return (
        ds.select(kept),
        [references[i] for i in kept],
        [raw_references[i] for i in kept],
        probs[kept],
        record,
    )


def _check_reference_kind(classifier, model: str, enroll_per_speaker, enroll_self: bool) -> None:
    """Warn when the speaker reference asked for is not the kind the model learnt with
    (``config.speaker_reference``: "enrolled" clips, neutral first, or the speaker's "own_clips")."""
    learnt = getattr(classifier.model.config, "speaker_reference", None)
    asked = "own_clips" if enroll_self else "enrolled" if enroll_per_speaker else None
    if learnt and asked and asked != learnt:
        kinds = {"own_clips": "their own clips", "enrolled": "a few enrolled clips, neutral first"}
        advice = "--enroll_self" if learnt == "own_clips" else "--enroll_per_speaker 2"
        warnings.warn(
            f"{model} learnt each speaker's reference from {kinds[learnt]}; read here against {kinds[asked]}, "
            f"it scores below what it can. Use {advice} to read it as it was trained.",
            UserWarning,
            stacklevel=3,  # evaluate_model's caller
        )


def _in_label_set(ds, references, raw_references, label_set, dataset: str, split: str):
    """The rows whose (mapped) label is in ``label_set``: ``(ds, references, raw references, the number
    left out)``; ``ValueError`` when none is."""
    keep = [i for i, r in enumerate(references) if r in label_set]
    if not keep:
        raise ValueError(
            f"no clip of split {split!r} of {dataset} has a label in the shared label set {label_set}; "
            f"its labels are {sorted(set(references))}. Map them with a label map (e.g. "
            f"{sorted(set(references))[0]}={label_set[0]}) or leave this corpus out."
        )
    outside = len(references) - len(keep)
    return ds.select(keep), [references[i] for i in keep], [raw_references[i] for i in keep], outside


def _speaker_normalization(model: str, classifier, enrolled: dict | None = None) -> str | None:
    """The model config's ``speaker_normalization`` note; without enrolment it is warned about (the
    figures are of raw frames)."""
    speaker_norm = getattr(classifier.model.config, "speaker_normalization", None)
    # the recipe standardised the test speakers' frames; without enrolment the model alone does not
    if speaker_norm and not enrolled:
        warnings.warn(
            f"{model} was trained relative to each speaker ({speaker_norm}); without enrolment the model has no "
            "speaker reference, so these figures differ from the recipe's test figures. Enrol each speaker "
            "on a few of their clips: --enroll_per_speaker 2 or --enroll_self (serhub evaluate), or model.enroll_speaker(...)",
            UserWarning,
            stacklevel=3,  # evaluate_model's caller
        )
    return speaker_norm


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
    """Macro-F1, UA and WA to three decimals, each with its 95 % interval where bootstrapped."""
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
    parser.add_argument(
        "--enroll_per_speaker",
        type=int,
        help="enrol each speaker on K of their clips (neutral ones first) and score the others: for a model "
        "trained relative to the speaker (--speaker_prosody, --speaker_norm); the K are left out of the figures",
    )
    parser.add_argument(
        "--enroll_self",
        action="store_true",
        help="enrol each speaker on their own clips' audio (no label read, no clip left out) and score every "
        "clip: a model trained relative to the speaker, with no reference recordings",
    )


def run(args: argparse.Namespace) -> dict:
    for name in ("batch_size", "max_samples", "enroll_per_speaker"):
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
        abstain_below=args.abstain_below, enroll_per_speaker=args.enroll_per_speaker,
        enroll_self=args.enroll_self,
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


__all__ = [
    "EMBEDDED",
    "UNCERTAIN",
    "bootstrap_intervals",
    "dataset_location",
    "evaluate_model",
    "group_scores",
    "load_split",
    "model_labels",
    "parse_label_map",
    "predict_probabilities",
    "score",
    "scored_labels",
    "split_list",
    "write_outputs",
]
