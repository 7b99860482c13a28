"""The end of a run: metrics as scalars, result files written atomically, the model card, the push.

Reading a finished run's scores back lives in reporting_scores; its names are re-exported here, where
sweep, the README's figures and the tests import them from."""

from __future__ import annotations

import datetime
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from serhub.modeling.file_utils import atomic_write
from transformers import TrainerCallback

from .logs import get_logger
from .reporting_scores import MACRO_F1_SOURCES, MacroF1Source, read_macro_f1, read_test_metrics

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


def _process_start() -> float | None:
    """This process's start (epoch seconds) from /proc (Linux); None where there is no /proc."""
    try:
        # field 22 of /proc/self/stat, in clock ticks since boot; the command name (field 2) may hold
        # spaces, so count from its closing parenthesis
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _git_commit() -> str | None:
    """serhub's short commit, None when the checkout has no git metadata (a tarball, a pip install)."""
    if not (REPO / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_record() -> dict:
    """What the run cost and where it ran, for eval_results.json's ``run``: wall seconds of this process
    (start to now), its peak RSS in GB (ru_maxrss: KiB on Linux, bytes on macOS), torch threads, CPUs,
    world size, serhub commit and date. Children are not added: a child forked to run a program (espeak-ng,
    git) reports the parent's resident pages as its own, so adding it doubled the figure; the recipes load
    their data in this process (``dataloader_num_workers`` 0 in every default)."""
    import torch

    start = _process_start()
    unit = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    return {
        "wall_s": round(time.time() - start, 1) if start is not None else None,
        "peak_rss_gb": round(own / 1e9, 2),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_eval_results(folder: str | os.PathLike, results: dict) -> Path:
    """Every recipe's ``eval_results.json``: its ``results`` plus the ``run`` record (``run_record``)."""
    return write_json(Path(folder) / "eval_results.json", {**results, "run": run_record()})


def _eval_results(results: dict[str, dict], dataset_name: str, task_type: str) -> list:
    """The card's ``model-index`` entries: macro-F1, UA and WA of each split that has them."""
    from huggingface_hub import EvalResult

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
    return eval_results


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
    heldout: dict | None = None,
    **template_kwargs,
) -> Path:
    """README.md from ``model_cards/<template>``; ``results[split]`` metrics become ``model-index``.

    ``model_id``: what the card's usage snippet loads, the Hub repo id the model goes to; by default
    ``output_dir`` itself (the card's ``model_name`` is a display name, not a place to load from).
    ``heldout``: ``serhub.heldout.evaluate_heldout``'s scores, a section of the card and model-index
    entries of their own."""
    from huggingface_hub import ModelCard, ModelCardData

    scored_heldout = {k: v for k, v in (heldout or {}).items() if isinstance(v, dict)}
    eval_results = _eval_results(results, dataset_name, task_type)
    eval_results += _eval_results(scored_heldout, "synthetic_emotions_v2", task_type)
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
    if heldout:
        from serhub.heldout import heldout_markdown

        card.text = card.text.rstrip("\n") + "\n" + heldout_markdown(heldout)
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
    data_args=None,
) -> None:
    """Every recipe's end, on the main process: the model and its processor (``save``: objects with
    ``save_pretrained``), ``eval_results.json`` (``results`` + ``summary``), the confusion matrix of
    ``confusion`` = (metrics, title), the training curves, the model card (``write_model_card``'s
    arguments in ``card``; ``model_name`` defaults to the Hub id's name) and the private push. With
    ``data_args.heldout_eval``, the saved model is also scored on speech from voices and sentences
    no split holds (:func:`heldout_scores`), in ``eval_results.json`` and the card."""
    from serhub.metrics.plotting import plot_confusion_matrix, plot_training_curves

    for part in save:
        part.save_pretrained(output_dir)
    write_eval_results(output_dir, {**results, **summary})
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
    heldout = heldout_scores(output_dir, data_args)
    if heldout:  # written again with them: a long or stopped held-out pass loses nothing written above
        write_eval_results(output_dir, {**results, **summary, "heldout": heldout})
        write_model_card(output_dir, labels=labels, **card, heldout=heldout)
    if push_to_hub:
        push(output_dir, training_args.hub_model_id, training_args.hub_private_repo)


def heldout_scores(output_dir: str, data_args) -> dict | None:
    """With ``data_args.heldout_eval``: the saved model in ``output_dir`` scored on unseen voices and
    sentences, clean and telephone + noise (``serhub.heldout.evaluate_heldout``), logged; else None."""
    if data_args is None or not getattr(data_args, "heldout_eval", False):
        return None
    from serhub.heldout import evaluate_heldout

    logger.info("scoring the saved model on voices and sentences no split holds (serhub.heldout)")
    start = time.time()
    scores = evaluate_heldout(output_dir, data_args.heldout_clips_per_voice, seed=data_args.heldout_seed)
    if "skipped" in scores:
        logger.warning("held-out voices not scored: %s", scores["skipped"])
        return scores
    for condition, s in scores.items():
        logger.info(
            "%s: macro-F1 %.3f (95 %% CI %.3f-%.3f) on %d clips",
            condition, s["macro_f1"], s["macro_f1_ci_low"], s["macro_f1_ci_high"], s["num_samples"],
        )  # fmt: skip
    scores["seconds"] = round(time.time() - start, 1)
    return scores


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
        # an OSError: the recipe ends with this one line (not a bug's traceback)
        raise ConnectionError(
            f"pushing to {repo_id} failed ({err}); the model is saved in {folder}: "
            f"upload it later with `hf upload {repo_id} {folder}`"
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
    "read_test_metrics",
    "run_record",
    "scalar_metrics",
    "write_eval_results",
    "write_json",
    "write_model_card",
]
