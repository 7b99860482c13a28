"""The end of a run: metrics as scalars, result files written atomically, the model card, the push."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from serhub.modeling.file_utils import atomic_write
from transformers import TrainerCallback

from .logs import get_logger

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "configs"
TEMPLATES = REPO / "model_cards"
logger = get_logger("serhub")


class EpochTimer(TrainerCallback):
    """Records each epoch's wall time, from its first step to its last (evaluation excluded)."""

    def __init__(self):
        self.epoch_seconds: list[float] = []
        self._start = self._last = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = self._last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.epoch_seconds.append(self._last - self._start)


def scalar_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Flatten the ser_metrics output to scalars (per-class F1 as ``f1_<label>``) for logging."""
    out = {}
    for key, value in metrics.items():
        if key == "per_class_f1":
            out.update({f"{prefix}f1_{label}": v for label, v in value.items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def calibration_line(calibration: dict) -> str:
    """serhub.calibration.calibrate's record as one log line: T and each split's ECE before -> after."""
    splits = ", ".join(
        f"{split} {c['ece_before']:.4f} -> {c['ece_after']:.4f}"
        for split, c in calibration.items()
        if isinstance(c, dict)
    )
    return f"calibration temperature {calibration['temperature']:.4f} (fitted on {calibration['fitted_on']}); ECE {splits}"


def write_json(path: str | os.PathLike, data, portable_paths: bool = False) -> Path:
    """Write ``data`` as JSON atomically (temp file + ``os.replace``): a reader never sees half a file.

    ``portable_paths=True`` writes absolute paths under the working directory as relative paths and
    those under the home directory as ``~/...``, for results that are shared (benchmarks).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if portable_paths:
        for prefix, replacement in ((Path.cwd(), ""), (Path.home(), "~/")):
            text = text.replace(json.dumps(f"{prefix}/")[1:-1], replacement)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


@dataclass(frozen=True)
class MacroF1Source:
    """Where one recipe's finished run keeps macro-F1: ``eval_results.json[section][key]``. A section
    ``{eval_split}`` / ``{test_split}`` is the split name the run was given (its serhub_run.json
    records DataArguments). ``validation_record``: a JSON file of the run folder whose
    ``log_history`` holds the validation key instead (the last entry that has it)."""

    validation_section: str
    validation_key: str
    test_section: str = "{test_split}"
    test_key: str = "macro_f1"
    validation_record: str | None = None
    runtime_keys: tuple[str, ...] = ("train_runtime_s",)


# The one place that knows each recipe's result keys; what reads a run's scores (sweep) goes through
# read_macro_f1. ssl_classifier's validation figures come from Trainer.evaluate(), which prefixes them
# with eval_; the others score every split with ser_metrics directly. emosllm scores test SER in two
# modes (label_logits is its classifier) and records validation SER in phase 3's evaluations.
MACRO_F1_SOURCES = {
    "ssl_classifier": MacroF1Source("{eval_split}", "eval_macro_f1"),
    "text_llm": MacroF1Source("{eval_split}", "macro_f1"),
    "whisper_llm": MacroF1Source("{eval_split}", "macro_f1"),
    "emosllm": MacroF1Source(
        "",
        "eval_label_logits_macro_f1",
        test_section="label_logits",
        validation_record="phase3/stage_done.json",
        runtime_keys=("phase1_s", "phase2_s", "phase3_s"),
    ),
}


def read_macro_f1(folder: str | os.PathLike, recipe: str) -> dict | None:
    """A finished run's ``validation_macro_f1``, ``test_macro_f1``, ``test_ci`` (low, high) and
    ``runtime_s`` (None where the run has no such figure); None when ``folder`` has no eval_results.json."""
    from .run_folders import RUN_FILE

    if recipe not in MACRO_F1_SOURCES:
        raise ValueError(
            f"no macro-F1 source is known for recipe {recipe!r}; known: {sorted(MACRO_F1_SOURCES)}"
        )
    source, folder = MACRO_F1_SOURCES[recipe], Path(folder)
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
    if source.validation_record:
        history = folder / source.validation_record
        entries = json.loads(history.read_text()).get("log_history", []) if history.is_file() else []
        validation = next(
            (e[source.validation_key] for e in reversed(entries) if source.validation_key in e), None
        )
    else:
        validation = (results.get(source.validation_section.format(**splits)) or {}).get(
            source.validation_key
        )
    test = results.get(source.test_section.format(**splits)) or {}
    runtimes = [results[k] for k in source.runtime_keys if isinstance(results.get(k), (int, float))]
    return {
        "validation_macro_f1": validation,
        "test_macro_f1": test.get(source.test_key),
        "test_ci": (test["macro_f1_ci_low"], test["macro_f1_ci_high"]) if "macro_f1_ci_low" in test else None,
        "runtime_s": round(sum(runtimes), 1) if runtimes else None,
    }


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    template: str,
    model_name: str,
    labels: list[str],
    dataset_name: str,
    results: dict[str, dict],
    base_model: str | None = None,
    tags: Sequence[str] = (),
    language: str | list[str] = "en",
    task_type: str = "audio-classification",
    model_id: str | None = None,
    **template_kwargs,
) -> Path:
    """README.md from ``model_cards/<template>``; ``results[split]`` metrics become ``model-index``.

    ``model_id``: what the card's usage snippet loads, the Hub repo id the model goes to; by default
    ``output_dir`` itself (the card's ``model_name`` is a display name, not a place to load from)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    eval_results = []
    for split, metrics in results.items():
        for metric in ("macro_f1", "unweighted_accuracy", "accuracy"):
            if metric in metrics:
                eval_results.append(
                    EvalResult(
                        task_type=task_type,
                        dataset_type=dataset_name,
                        dataset_name=dataset_name,
                        dataset_split=split,
                        metric_type=metric,
                        metric_name={"macro_f1": "Macro F1", "unweighted_accuracy": "UA", "accuracy": "WA"}[
                            metric
                        ],
                        metric_value=round(float(metrics[metric]), 4),
                    )
                )
    # only a Hub id belongs in the metadata (not a local folder or an offline: alias)
    is_hub_id = (
        base_model and ":" not in base_model and not Path(base_model).exists() and base_model.count("/") == 1
    )
    base_models = base_model if is_hub_id else None
    card_data = ModelCardData(
        model_name=model_name,
        language=language,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=task_type,
        tags=["speech-emotion-recognition", "serhub", *tags],
        base_model=base_models,
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATES / template),
        model_name=model_name,
        model_id=model_id or str(output_dir),
        labels=labels,
        dataset_name=dataset_name,
        results=results,
        base_model=base_model,
        **template_kwargs,
    )
    return atomic_write(Path(output_dir) / "README.md", card.save)


def finish_run(
    output_dir: str,
    *,
    save: Sequence,
    results: dict,
    summary: dict,
    labels: list[str],
    confusion: tuple[dict, str] | None,
    history: list[dict],
    curves_title: str,
    card: dict,
    training_args,
    push_to_hub: bool,
) -> None:
    """Every recipe's end, on the main process: the model and its processor (``save``: objects with
    ``save_pretrained``), ``eval_results.json`` (``results`` + ``summary``), the confusion matrix of
    ``confusion`` = (metrics, title), the training curves, the model card (``write_model_card``'s
    arguments in ``card``; ``model_name`` defaults to the Hub id's name) and the private push."""
    from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves

    for part in save:
        part.save_pretrained(output_dir)
    write_json(f"{output_dir}/eval_results.json", {**results, **summary})
    if confusion is not None:
        metrics, title = confusion
        plot_confusion_matrix(
            metrics["confusion_matrix"], labels, f"{output_dir}/confusion_matrix.png", title=title
        )
    plot_training_curves(history, f"{output_dir}/training_curves.png", title=curves_title)
    if training_args.hub_model_id:
        card = {
            **card,
            "model_name": training_args.hub_model_id.split("/")[-1],
            "model_id": training_args.hub_model_id,
        }
    write_model_card(output_dir, labels=labels, **card)
    if push_to_hub:
        push(output_dir, training_args.hub_model_id, training_args.hub_private_repo)


def push(folder: str, repo_id: str | None, private: bool | None) -> None:
    from huggingface_hub import HfApi

    if not repo_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. your-name/ser-wavlm-msp)")
    try:
        api = HfApi()
        # private unless --hub_private_repo false says otherwise (datasets push private too)
        api.create_repo(repo_id, private=True if private is None else bool(private), exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            ignore_patterns=["checkpoint-*/**", "encoder_cache/**", "*.tmp", ".*.tmp.*"],
        )
    except (
        Exception
    ) as err:  # network/auth errors come in many types; the local folder is complete either way
        raise RuntimeError(
            f"pushing to {repo_id} failed ({err}); the model is saved in {folder}: upload it later with `hf upload {repo_id} {folder}`"
        ) from err
    logger.info("pushed %s to https://huggingface.co/%s", folder, repo_id)


__all__ = [
    "CONFIGS",
    "EpochTimer",
    "MACRO_F1_SOURCES",
    "MacroF1Source",
    "calibration_line",
    "finish_run",
    "push",
    "read_macro_f1",
    "scalar_metrics",
    "write_json",
    "write_model_card",
]
