"""A finished run's scores, read back: which keys of its eval_results.json hold each recipe's
validation and test macro-F1, for what compares runs (sweep, the README's figures)."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MacroF1Source:
    """Where one recipe's finished run keeps macro-F1: ``eval_results.json[section][key]``. A section
    ``{eval_split}`` / ``{test_split}`` is the split name the run was given (its serhub_run.json
    records DataArguments). ``validation_record``: JSON files of the run folder (a glob; the last
    written one counts) whose ``log_history`` holds the validation key instead (the last entry that has
    it). ``validation_from``: a function (results, splits, settings) -> the figure, for a recipe that
    keeps it in a table row; ``validation_section=None``: the recipe has no validation figure.
    ``runtime_keys`` (globs over the results' top-level keys) are summed; without any, the ``run``
    record's wall time stands in."""

    validation_section: str | None
    validation_key: str = "macro_f1"
    test_section: str = "{test_split}"
    test_key: str = "macro_f1"
    validation_record: str | None = None
    runtime_keys: tuple[str, ...] = ("train_runtime_s",)
    validation_from: Callable[[dict, dict, dict], float | None] | None = None


def _graph_fusion_validation(results: dict, splits: dict, settings: dict) -> float | None:
    """graph_fusion's model is the ablation row "all, <fusion>"."""
    final = f"all, {settings.get('GraphFusionArguments.fusion') or 'gat'}"
    return next(
        (r["validation_macro_f1"] for r in results.get("ablation", []) if r.get("row") == final), None
    )


def _ensemble_validation(results: dict, splits: dict, settings: dict) -> float | None:
    """ensemble's model is the table row it chose on validation (its members and voting)."""
    chosen = results.get("chosen_on_validation") or {}
    return next(
        (
            r.get(f"{splits['eval_split']}_macro_f1")
            for r in results.get("table", [])
            if r.get("members") == chosen.get("members") and r.get("voting") == chosen.get("voting")
        ),
        None,
    )


# The one place that knows each recipe's result keys; what reads a run's scores (sweep, the README's
# figures) goes through read_macro_f1 / read_test_metrics. ssl_classifier's validation figures come
# from Trainer.evaluate(), which prefixes them with eval_; the others score every split with
# ser_metrics directly. emosllm and descriptors score test SER in several modes (label_logits is
# their classifier) and record validation SER in their last stage's evaluations; qwen2_audio_lora
# scores the test split only (label_scoring is its classifier).
MACRO_F1_SOURCES = {
    "ssl_classifier": MacroF1Source("{eval_split}", "eval_macro_f1"),
    "text_llm": MacroF1Source("{eval_split}"),
    "whisper_llm": MacroF1Source("{eval_split}"),
    "emosllm": MacroF1Source(
        "",
        "eval_label_logits_macro_f1",
        test_section="label_logits",
        validation_record="phase3/stage_done.json",
        runtime_keys=("phase1_s", "phase2_s", "phase3_s"),
    ),
    "descriptors": MacroF1Source(
        "",
        "eval_label_logits_macro_f1",
        test_section="label_logits",
        validation_record="stage*_*/stage_done.json",
        runtime_keys=("stage*_s",),
    ),
    "graph_fusion": MacroF1Source(
        "ablation", test_section="test", runtime_keys=("runtime_s",), validation_from=_graph_fusion_validation
    ),
    "zero_shot": MacroF1Source("{eval_split}", runtime_keys=("runtime_s",)),
    "ensemble": MacroF1Source("table", runtime_keys=("runtime_s",), validation_from=_ensemble_validation),
    "qwen2_audio_lora": MacroF1Source(None, test_section="label_scoring", runtime_keys=()),
}


def _finished_run(folder: Path, recipe: str) -> tuple[dict, dict, dict] | None:
    """(eval_results.json, the split names, the recorded settings) of a finished run, or None."""
    from .run_folders import RUN_FILE

    if recipe not in MACRO_F1_SOURCES:
        raise ValueError(
            f"no macro-F1 source is known for recipe {recipe!r}; known: {sorted(MACRO_F1_SOURCES)}"
        )
    path = folder / "eval_results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    record = folder / RUN_FILE
    settings = json.loads(record.read_text()).get("settings", {}) if record.is_file() else {}
    splits = {
        "eval_split": settings.get("DataArguments.eval_split") or "validation",
        "test_split": settings.get("DataArguments.test_split") or "test",
    }
    return results, splits, settings


def read_test_metrics(folder: str | os.PathLike, recipe: str) -> dict | None:
    """The ser_metrics record of a finished run's classifier on the test split (``{}`` when it has
    none); None when ``folder`` has no eval_results.json."""
    run = _finished_run(Path(folder), recipe)
    if run is None:
        return None
    results, splits, _ = run
    return results.get(MACRO_F1_SOURCES[recipe].test_section.format(**splits)) or {}


def read_macro_f1(folder: str | os.PathLike, recipe: str) -> dict | None:
    """A finished run's ``validation_macro_f1``, ``test_macro_f1``, ``test_ci`` (low, high) and
    ``runtime_s`` (None where the run has no such figure); None when ``folder`` has no eval_results.json."""
    source, folder = MACRO_F1_SOURCES.get(recipe), Path(folder)
    run = _finished_run(folder, recipe)
    if run is None:
        return None
    results, splits, settings = run
    if source.validation_from:
        validation = source.validation_from(results, splits, settings)
    elif source.validation_record:
        records = sorted(folder.glob(source.validation_record), key=lambda p: p.stat().st_mtime)
        entries = json.loads(records[-1].read_text()).get("log_history", []) if records else []
        validation = next(
            (e[source.validation_key] for e in reversed(entries) if source.validation_key in e), None
        )
    elif source.validation_section is not None:
        validation = (results.get(source.validation_section.format(**splits)) or {}).get(
            source.validation_key
        )
    else:
        validation = None
    test = read_test_metrics(folder, recipe)
    runtimes = [
        v
        for k, v in results.items()
        if any(fnmatch.fnmatchcase(k, key) for key in source.runtime_keys) and isinstance(v, (int, float))
    ]
    wall = (results.get("run") or {}).get("wall_s")
    return {
        "validation_macro_f1": validation,
        "test_macro_f1": test.get(source.test_key),
        "test_ci": (test["macro_f1_ci_low"], test["macro_f1_ci_high"]) if "macro_f1_ci_low" in test else None,
        "runtime_s": round(sum(runtimes), 1) if runtimes else wall,
    }


__all__ = ["MACRO_F1_SOURCES", "MacroF1Source", "read_macro_f1", "read_test_metrics"]
