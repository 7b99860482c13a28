"""recipes/graph_fusion.py's ablation: the rows it plans (each branch alone, the three fusions, GAT
without F0), each trained or reloaded from its finished record in ``<output_dir>/ablation/``, scored on
validation and test, the vote of the three fusions, and the table (ablation.csv, ablation.png).
Defined beside the recipe: only it uses them."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from serhub.modeling.file_utils import atomic_write
from serhub.modeling.modeling_ensemble import hard_vote
from serhub.recipes.graph_fusion_training import evaluate, predict, train_variant
from serhub.recipes.logs import get_logger
from serhub.recipes.reporting import write_json

if TYPE_CHECKING:
    from serhub.recipes.graph_fusion import GraphFusionArguments

logger = get_logger("graph_fusion")
VOTE = "vote of the 3 fusions"


# ------------------------------------------------------------------------------- the planned rows
def encoder_names(speech_models: list[str]) -> list[str]:
    """The speech encoders as the table names them: "offline:whisper-tiny.en" -> "whisper-tiny.en", a
    Hub id or a folder -> its last part; a name two encoders share keeps their node number too."""
    short = [Path(str(m).removeprefix("offline:")).name or str(m) for m in speech_models]
    return [name if short.count(name) == 1 else f"{name} (speech_{i})" for i, name in enumerate(short)]


def row_label(row: str, speech_models: list[str]) -> str:
    """A planned row's name in the table: "speech_<i> alone" names the encoder by its model."""
    match = re.fullmatch(r"speech_(\d+) alone", row)
    return f"{encoder_names(speech_models)[int(match[1])]} alone" if match else row


def ablation_rows(args: GraphFusionArguments, available: list[str]) -> list[tuple[str, dict]]:
    """(row id, config overrides): each branch alone, the three fusions, GAT without F0 (and without
    the speaker-relative prosody node, when there is one). The id names the row's record in
    ``ablation/``; the table shows ``row_label``."""
    rows = [(f"{b} alone", {"branches": [b], "fusion": "gat"}) for b in available]
    rows += [
        (f"all, {f}", {"branches": available, "fusion": f}) for f in ("concat", "cross_attention", "gat")
    ]
    for left_out in ("f0", "prosody"):  # the F0 node (the paper's row) and the speaker-relative one
        if left_out in available:
            branches = [b for b in available if b != left_out]
            rows.append((f"all but {left_out}, gat", {"branches": branches, "fusion": "gat"}))
    return rows


# ---------------------------------------------------------------------------- training and scoring
def table_row(row: str, label: str, validation: float, test: dict) -> dict:
    """One row of the table: ``model`` its name as shown, ``row`` its id (the record's name);
    ``test_ci`` None when no interval was drawn (--bootstrap 0)."""
    ci = [test["macro_f1_ci_low"], test["macro_f1_ci_high"]] if "macro_f1_ci_low" in test else None
    return {
        "model": label,
        "row": row,
        "validation_macro_f1": validation,
        "test_macro_f1": test["macro_f1"],
        "test_ci": ci,
        "test_ua": test["unweighted_accuracy"],
        "test": test,
    }


def _train_row(name: str, config, base_state, caches, training_args, record: Path):
    """Train one row; its record (history, validation and test probabilities) is written for re-runs."""
    logger.info("training %s", name)
    model, history = train_variant(base_state, config, caches, training_args, training_args.seed)
    row = {"model": name, "history": history}
    for split in ("validation", "test"):
        row[f"{split}_probabilities"] = predict(model, caches[split]).tolist()
    record.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, row)
    return row, model, history


def _scored_row(row: str, label: str, probabilities: dict, caches, labels, bootstrap, seed) -> dict:
    """A table row from ``{split: (N, C) probabilities}`` of validation and test."""
    validation = evaluate(None, caches["validation"], labels, probabilities=probabilities["validation"])
    test = evaluate(None, caches["test"], labels, bootstrap, seed, probabilities["test"])
    return table_row(row, label, validation["macro_f1"], test)


def _vote_row(probabilities: dict, caches, labels, bootstrap, seed) -> dict | None:
    """The majority vote of the three fusions (ties: GAT's answer); None unless all three ran."""
    fusions = [
        f"all, {f}" for f in ("gat", "cross_attention", "concat") if f"all, {f}" in probabilities["test"]
    ]
    if len(fusions) < 3:
        return None
    voted = {
        split: hard_vote(torch.stack([probabilities[split][f] for f in fusions], 1), tie_breaker=0)
        for split in probabilities
    }
    return _scored_row(VOTE, VOTE, voted, caches, labels, bootstrap, seed)


def run_ablation(plan, final_name, base, base_state, caches, labels, training_args, bootstrap, out: Path):
    """Train (or reload the finished record of) every planned row, then the vote of the three
    fusions; returns the table, the model of ``final_name`` and its training history."""
    rows, final_model, final_history = [], None, []
    probabilities: dict[str, dict[str, torch.Tensor]] = {"validation": {}, "test": {}}
    speech_models = base.config.component_names.get("speech") or []
    for name, overrides in plan:
        record = out / "ablation" / f"{name.replace(', ', '_').replace(' ', '_')}.json"
        row = json.loads(record.read_text()) if record.is_file() else {}
        # the saved model is always the one trained now; a record without validation answers (an
        # older run's) is trained again, so the vote is scored on validation too
        if name == final_name or "validation_probabilities" not in row:
            config = copy.deepcopy(base.config)
            for k, v in overrides.items():
                setattr(config, k, v)
            row, model, history = _train_row(name, config, base_state, caches, training_args, record)
            if name == final_name:
                final_model, final_history = model, history
        for split in probabilities:
            probabilities[split][name] = torch.tensor(row[f"{split}_probabilities"])
        mine = {split: probabilities[split][name] for split in probabilities}
        label = row_label(name, speech_models)
        rows.append(_scored_row(name, label, mine, caches, labels, bootstrap, training_args.seed))
    vote = _vote_row(probabilities, caches, labels, bootstrap, training_args.seed)
    if vote is not None:
        rows.append(vote)
    return rows, final_model, final_history


# ----------------------------------------------------------------------------------- the table
def row_summary(row: dict) -> str:
    """A table row as one log line; an interval not drawn is said, not printed as nan."""
    low, high = row["test_ci"] or (None, None)
    ci = f"({low:.4f}-{high:.4f})" if row["test_ci"] else "(no interval: --bootstrap 0)"
    return f"{row['model']:<28} validation {row['validation_macro_f1']:.4f}  test {row['test_macro_f1']:.4f} {ci}"


def _write_csv(rows: list[dict], path: Path) -> None:
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        ["model", "validation_macro_f1", "test_macro_f1", "test_ci_low", "test_ci_high", "test_ua"]
    )
    for r in rows:  # no interval drawn (--bootstrap 0): empty cells
        ci = [round(v, 4) for v in r["test_ci"]] if r["test_ci"] else ["", ""]
        writer.writerow([r["model"], round(r["validation_macro_f1"], 4), round(r["test_macro_f1"], 4),
                         *ci, round(r["test_ua"], 4)])  # fmt: skip
    atomic_write(path, lambda tmp: tmp.write_text(table.getvalue()))


def _plot(rows: list[dict], path: Path) -> None:
    """Test macro-F1 per row as horizontal bars (the branches alone in grey), with the intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    values = [r["test_macro_f1"] for r in rows]
    with_ci = all(r["test_ci"] for r in rows)
    err = (
        [
            [v - r["test_ci"][0] for v, r in zip(values, rows)],
            [r["test_ci"][1] - v for v, r in zip(values, rows)],
        ]
        if with_ci
        else None
    )
    ax.barh(y, values, xerr=err, color=["tab:grey" if "alone" in r["model"] else "tab:blue" for r in rows])
    ax.set_yticks(y, [r["model"] for r in rows], fontsize=8)
    ax.set_xlabel(
        "test macro-F1 (95 % bootstrap interval)" if with_ci else "test macro-F1 (no interval: --bootstrap 0)"
    )
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def write_table(rows: list[dict], out: Path) -> None:
    """ablation.csv and ablation.png in ``out``."""
    _write_csv(rows, out / "ablation.csv")
    _plot(rows, out / "ablation.png")


__all__ = [
    "ablation_rows",
    "encoder_names",
    "row_label",
    "row_summary",
    "run_ablation",
    "table_row",
    "write_table",
]
