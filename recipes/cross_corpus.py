"""Cross-corpus protocol (in the spirit of EmoBox's cross-corpus folds): a model trained once on
corpus A, evaluated on A's test split (in-corpus) and on corpora B..N (cross-corpus) over one shared
label set; one table of macro-F1 / UA / WA with bootstrap 95 % intervals, in-corpus against
cross-corpus.

    python -m serhub.recipes.cross_corpus --model outputs/ssl_classifier \\
        --eval_corpora data/crema_d data/ravdess --label_maps "hap=happy,neu=neutral,ang=angry" none \\
        --output_dir outputs/cross_corpus

The model is any recipe's output folder (or a transformers audio classifier); it is trained on A
first, e.g. ``accelerate launch recipes/ssl_classifier.py --dataset_name_or_path data/iemocap``.
``--train_corpus`` defaults to the dataset recorded in the model folder's ``serhub_run.json``. Each
corpus is a DatasetDict folder (``save_to_disk``: every serhub builder, ``python -m
serhub.datasets_scripts.folder`` for your own data), ``synthetic_emotions`` or a Hub id.

Labels: ``--label_maps`` gives one map per ``--eval_corpora`` entry (``none`` for none; the
``serhub evaluate --label_map`` forms: ``a=b`` pairs, a file of them or a JSON object), and
``--train_label_map`` one for A. The shared label set is ``--labels``, by default the model's labels
that every corpus has after mapping. Clips with another label are left out and counted, and the
model's scores are renormalised over the set. MSP-Podcast, IEMOCAP, CREMA-D and RAVDESS built with
``--label_set 4`` all name neutral, happy, sad and angry alike (no map needed); with their native
labels map them, e.g. CREMA-D ``anger=angry``, IEMOCAP ``excited=happy``.

Outputs in --output_dir: ``cross_corpus.md`` and ``cross_corpus.json`` (the table), and one
``serhub evaluate`` report folder per corpus (``<name>/report.md``, predictions, calibration).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from serhub.modeling.file_utils import atomic_output_dir, check_output_dir

from serhub.evaluate import (
    evaluate_model,
    load_split,
    model_labels,
    parse_label_map,
    split_list,
    write_outputs,
)
from serhub.evaluate_report import HEADLINE

from .logs import get_logger
from .reporting import write_json

logger = get_logger("cross_corpus")
NO_MAP = ("", "none", "-")


@dataclass
class CrossCorpusArguments:
    model: str = field(metadata={"help": "the model trained on corpus A: a recipe's output folder or Hub id"})
    eval_corpora: list[str] = field(metadata={"help": "corpora B..N, evaluated cross-corpus"})
    output_dir: str = field(metadata={"help": "where the table and the per-corpus reports go"})
    train_corpus: str | None = field(
        default=None,
        metadata={"help": "corpus A (in-corpus); default: the dataset in the model folder's serhub_run.json"},
    )
    label_maps: list[str] = field(
        default_factory=list,
        metadata={"help": "one label map per --eval_corpora entry (a=b pairs, a file; none: no map)"},
    )
    train_label_map: str | None = field(default=None, metadata={"help": "a label map for corpus A"})
    labels: str | None = field(
        default=None,
        metadata={"help": "the shared label set a,b,c (default: the model's labels in every corpus)"},
    )
    split: str = field(default="test", metadata={"help": "the split evaluated in every corpus"})
    label_column: str = "emotion"
    batch_size: int = 8
    max_samples: int | None = field(default=None, metadata={"help": "the first N labelled clips per corpus"})
    bootstrap: int = field(default=1000, metadata={"help": "resamples for the 95 % intervals (0: none)"})
    seed: int = 0
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output_dir"})

    def __post_init__(self):
        if self.label_maps and len(self.label_maps) != len(self.eval_corpora):
            raise ValueError(
                f"--label_maps needs one entry per --eval_corpora entry ({len(self.eval_corpora)}: "
                f"{self.eval_corpora}), found {len(self.label_maps)}; write none for a corpus without one"
            )
        for name in ("batch_size", "max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number, got {value}")
        if self.bootstrap < 0:
            raise ValueError(f"--bootstrap is a number of resamples (0 for none), got {self.bootstrap}")


@dataclass(frozen=True)
class Corpus:
    name: str
    dataset: str
    role: str  # "in-corpus" | "cross-corpus"
    label_map: dict[str, str]


def recorded_train_corpus(model: str) -> str:
    """The dataset a recipe trained ``model`` on (its ``serhub_run.json``; none recorded: the embedded one)."""
    import json

    from .run_folders import RUN_FILE

    record = Path(model) / RUN_FILE
    if not record.is_file():
        raise ValueError(
            f"{model} has no {RUN_FILE} (it was not trained by a serhub recipe): name the corpus it was "
            "trained on with --train_corpus"
        )
    settings = json.loads(record.read_text()).get("settings", {})
    return settings.get("DataArguments.dataset_name_or_path") or "synthetic_emotions"


def corpus_names(datasets: list[str]) -> list[str]:
    """Short unique names: each dataset's last path parts, as few as tell them apart (``A-data``)."""
    paths = [Path(d) for d in datasets]
    parts = [p.relative_to(p.anchor).parts or (str(p),) for p in paths]  # no "/" in a folder name
    for k in range(1, max(len(p) for p in parts) + 1):
        names = ["-".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [f"{i}-{p[-1]}" for i, p in enumerate(parts)]  # the same dataset twice


def corpora(args: CrossCorpusArguments) -> list[Corpus]:
    """Corpus A then B..N, named by :func:`corpus_names`."""
    train = args.train_corpus or recorded_train_corpus(args.model)
    maps = [m if m.strip().lower() not in NO_MAP else None for m in args.label_maps]
    maps = maps or [None] * len(args.eval_corpora)
    specs = [(train, "in-corpus", args.train_label_map)]
    specs += [(d, "cross-corpus", m) for d, m in zip(args.eval_corpora, maps)]
    names = corpus_names([dataset for dataset, _, _ in specs])
    return [
        Corpus(name, dataset, role, parse_label_map(label_map))
        for name, (dataset, role, label_map) in zip(names, specs)
    ]


def shared_label_set(
    model: list[str], corpora_labels: dict[str, set[str]], requested: list[str] | None
) -> list[str]:
    """``requested`` (checked against the model's labels) or the model's labels every corpus has."""
    if requested:
        unknown = [label for label in requested if label not in model]
        if unknown:
            raise ValueError(f"--labels {unknown} are not labels of the model; it can produce {model}")
        return list(dict.fromkeys(requested))
    shared = [label for label in model if all(label in labels for labels in corpora_labels.values())]
    if len(shared) < 2:
        found = "; ".join(f"{name}: {sorted(labels)}" for name, labels in corpora_labels.items())
        raise ValueError(
            f"the corpora share {len(shared)} of the model's labels {model} ({shared}); their labels after "
            f"mapping are {found}. Map them onto the model's labels with --label_maps / --train_label_map, "
            "or name the shared set with --labels."
        )
    return shared


def table_row(corpus: Corpus, results: dict) -> dict:
    row = {
        "corpus": corpus.name,
        "dataset": corpus.dataset,
        "role": corpus.role,
        "clips": results["num_samples"],
    }
    row["left_out"] = results["outside_label_set_left_out"]
    for key in HEADLINE:
        row[key] = results[key]
        if f"{key}_ci_low" in results:
            row[f"{key}_ci"] = [results[f"{key}_ci_low"], results[f"{key}_ci_high"]]
    row["ece"] = results["calibration"]["ece"]
    return row


def table_markdown(summary: dict) -> str:
    """The one table: a row per corpus, in-corpus first, then the cross-corpus mean and its drop."""
    lines = [
        f"# Cross-corpus: {Path(summary['model']).name}",
        "",
        f"Trained on `{summary['train_corpus']}`; split `{summary['split']}` of every corpus; shared label "
        f"set: {', '.join(summary['labels'])} (clips with another label left out; the model's scores "
        f"renormalised over the set). 95 % intervals from {summary['bootstrap']} bootstrap resamples.",
        "",
        "| corpus | role | clips | " + " | ".join(HEADLINE.values()) + " | ECE |",
        "|---|---|---|" + "---|" * len(HEADLINE) + "---|",
    ]
    for row in summary["rows"]:
        cells = []
        for key in HEADLINE:
            ci = row.get(f"{key}_ci")
            cells.append(f"{row[key]:.3f}" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else ""))
        lines.append(
            f"| {row['corpus']} | {row['role']} | {row['clips']} | {' | '.join(cells)} | {row['ece']:.3f} |"
        )
    if summary.get("cross_corpus_mean"):
        mean = summary["cross_corpus_mean"]
        cells = " | ".join(f"{mean[key]:.3f}" for key in HEADLINE)
        lines.append(f"| mean cross-corpus | | | {cells} | {mean['ece']:.3f} |")
        drop = summary["cross_corpus_drop"]
        lines += [
            "",
            "Cross-corpus minus in-corpus (mean): "
            + ", ".join(f"{name} {drop[key]:+.3f}" for key, name in HEADLINE.items())
            + ".",
        ]
    lines += [
        "",
        "Each corpus's full report (per class, per speaker, calibration): `<corpus>/report.md`.",
        "",
    ]
    return "\n".join(lines)


def run(args: CrossCorpusArguments) -> dict:
    from serhub.loading import load_classifier

    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    specs = corpora(args)
    corpus_labels = {}
    for corpus in specs:
        _, references, _ = load_split(corpus.dataset, args.split, args.label_column, args.max_samples)
        corpus_labels[corpus.name] = {corpus.label_map.get(r, r) for r in references}
    classifier = load_classifier(args.model)
    labels = shared_label_set(model_labels(classifier), corpus_labels, split_list(args.labels))
    logger.info("shared label set: %s", ", ".join(labels))
    reports, rows = {}, []
    for corpus in specs:
        results, records = evaluate_model(
            args.model, corpus.dataset, args.split, label_map=corpus.label_map, label_column=args.label_column,
            batch_size=args.batch_size, max_samples=args.max_samples, bootstrap=args.bootstrap, seed=args.seed,
            progress=False, label_set=labels, classifier=classifier,
        )  # fmt: skip
        reports[corpus.name] = (results, records)
        rows.append(table_row(corpus, results))
        logger.info(
            "%s (%s): macro-F1 %.4f on %d clips", corpus.name, corpus.role, results["macro_f1"], len(records)
        )
    summary = {
        "model": args.model,
        "train_corpus": specs[0].dataset,
        "split": args.split,
        "labels": labels,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "rows": rows,
    }
    cross = [r for r in rows if r["role"] == "cross-corpus"]
    if cross:
        mean = {key: sum(r[key] for r in cross) / len(cross) for key in (*HEADLINE, "ece")}
        summary["cross_corpus_mean"] = mean
        summary["cross_corpus_drop"] = {key: mean[key] - rows[0][key] for key in HEADLINE}
    with atomic_output_dir(args.output_dir, overwrite=args.overwrite) as tmp:
        for name, (results, records) in reports.items():
            (tmp / name).mkdir()
            write_outputs(tmp / name, results, records)
        write_json(tmp / "cross_corpus.json", summary)
        (tmp / "cross_corpus.md").write_text(table_markdown(summary), encoding="utf-8")
    return summary


def main(argv=None) -> dict:
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(CrossCorpusArguments).parse_args_into_dataclasses(argv)
    summary = run(args)
    print(table_markdown(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = ["CrossCorpusArguments", "corpora", "main", "run", "shared_label_set", "table_markdown"]
