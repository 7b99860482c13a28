"""A run owns its ``--output_dir``: what it depends on (``serhub_run.json``), a lock while it writes,
refusal of other runs' folders, and the last complete checkpoint to resume from."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .logs import get_logger
from .reporting import write_json

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "configs"
logger = get_logger("serhub")


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-<step>`` in ``folder`` that a save finished (it has its
    trainer_state.json); a newer one left half-written by a kill is skipped, with a warning."""
    path = Path(folder)
    if not path.is_dir():
        return None
    checkpoints = sorted(
        (p for p in path.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for checkpoint in checkpoints:
        if (checkpoint / "trainer_state.json").is_file():
            return str(checkpoint)
        logger.warning(
            "%s is incomplete (no trainer_state.json; the run was stopped while saving it): resuming from an "
            "earlier checkpoint",
            checkpoint,
        )
    return None


RUN_FILE = "serhub_run.json"


class OutputDirError(ValueError):
    """The output folder holds something this run must not resume from or write over."""


def claim_output_dir(
    output_dir: str, recipe: str, settings: dict, overwrite: bool = False, is_main: bool = True
):
    """Make ``output_dir`` this run's own, or refuse before anything is written.

    ``settings``: everything that changes what the run trains (data fingerprints, labels, model and
    training arguments). A folder that is empty or absent is claimed; one holding a serhub run with
    the same settings is resumed; one with other settings is refused (or, with ``overwrite``,
    emptied); one that is not a serhub run is always refused. The main process then holds a lock
    on the folder until it exits, so a second run into the same folder stops at once.
    Returns the lock (keep a reference to it)."""
    from filelock import FileLock, Timeout

    if not is_main:
        return None
    path = Path(output_dir)
    key = fingerprint(recipe, settings)
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"--output_dir {path} is a file, not a folder; choose another --output_dir.")
    lock = FileLock(str(path.with_name(path.name + ".serhub.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        # filelock also times out when it cannot create the lock file at all (e.g. under /proc)
        error = _cannot_create(lock.lock_file)
        if error is not None:
            raise _not_writable(path, lock.lock_file, error) from None
        raise OutputDirError(
            f"another serhub run is writing to {path} (it holds {lock.lock_file}); wait for it to finish "
            "or choose another --output_dir."
        ) from None
    except OSError as error:
        raise _not_writable(path, lock.lock_file, error) from None
    try:
        _check_run_record(path, recipe, key, settings, overwrite)
    except OutputDirError:
        lock.release()
        raise
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / RUN_FILE, {"recipe": recipe, "fingerprint": key, "settings": _jsonable(settings)})
    return lock


def _cannot_create(lock_file: str) -> OSError | None:
    """The error opening (or creating) ``lock_file`` for writing gives, or None if it can be."""
    try:
        os.close(os.open(lock_file, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError as error:
        return error
    return None


def _not_writable(path: Path, lock_file: str, error: OSError) -> OutputDirError:
    return OutputDirError(
        f"--output_dir {path}: {path.parent} is not writable (creating the run's lock file {lock_file} failed: "
        f"{error.strerror or error}); choose an --output_dir in a folder you can write to."
    )


def _check_run_record(path: Path, recipe: str, key: str, settings: dict, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, empty) a folder that is not this run's; see claim_output_dir.
    A record whose settings agree key by key is this run's even when its fingerprint differs: the
    recipe gained an argument since, left unset (absent before, None now)."""
    import shutil

    record = path / RUN_FILE
    if path.is_dir() and any(path.iterdir()):
        if not record.is_file():
            raise _not_a_run(path)
        earlier = json.loads(record.read_text())
        if earlier.get("fingerprint") != key:
            changed = (["recipe"] if earlier.get("recipe", recipe) != recipe else []) + _changed(
                earlier.get("settings", {}), settings
            )
            if not changed:
                return
            if not overwrite:
                raise _other_settings(path, earlier, changed)
            logger.info(
                "--overwrite_output_dir: replacing the earlier run in %s (changed: %s)", path, changed
            )
            shutil.rmtree(path)


def matches_recorded_run(
    output_dir: str | os.PathLike, recipe: str, settings: dict, overwrite: bool = False
) -> bool:
    """For a caller that knows part of a run's settings before running it (a sweep deciding whether
    a point is done): whether ``output_dir`` holds a ``recipe`` run whose serhub_run.json agrees with
    ``settings`` on every key both have. False for an absent or empty folder, and (``overwrite``) for
    a run with other settings, which the run will replace. A folder that is not a serhub run, or a
    run with other settings, is refused as claim_output_dir refuses it (OutputDirError naming what changed)."""
    path = Path(output_dir)
    if not path.is_dir() or not any(path.iterdir()):
        return False
    if not (path / RUN_FILE).is_file():
        raise _not_a_run(path)
    earlier = json.loads((path / RUN_FILE).read_text())
    old = earlier.get("settings", {})
    changed = (["recipe"] if earlier.get("recipe") != recipe else []) + _changed(
        {k: v for k, v in old.items() if k in settings}, {k: v for k, v in settings.items() if k in old}
    )
    if not changed:
        return True
    if overwrite:
        return False
    raise _other_settings(path, earlier, changed)


def _changed(old: dict, settings: dict) -> list[str]:
    """The settings that differ; an argument the recipe gained since the old run (absent from its
    record) counts as changed only when it is set to something else than its default or None."""
    defaults = getattr(settings, "defaults", {})
    return sorted(
        k
        for k in set(old) | set(settings)
        if old.get(k) != _jsonable(settings.get(k))
        and not (k not in old and _jsonable(settings.get(k)) in (None, _jsonable(defaults.get(k))))
    )


class Settings(dict):
    """A run's settings (``run_settings``) and, in ``defaults``, each argument's default value."""

    defaults: dict


def _not_a_run(path: Path) -> OutputDirError:
    return OutputDirError(
        f"--output_dir {path} is not empty and is not a serhub run (no {RUN_FILE}); serhub does not "
        "write into it. Choose a new or empty folder."
    )


def _other_settings(path: Path, earlier: dict, changed: list[str]) -> OutputDirError:
    return OutputDirError(
        f"--output_dir {path} holds an earlier {earlier.get('recipe', 'serhub')} run made with other settings "
        f"(changed: {', '.join(changed)}); resuming it would mix the two runs. Choose "
        "another --output_dir, or pass --overwrite_output_dir true to replace it."
    )


# TrainingArguments that change the trained weights (not logging, saving or evaluation). The
# length of training is left out on purpose: re-running with more steps or epochs continues a run.
TRAINING_KEYS = (
    "seed",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "optim",
)


def run_settings(training_args, labels, splits: dict, *arguments, exclude: Sequence[str] = ()) -> dict:
    """What a run's output depends on, for ``claim_output_dir``: the data (each split's datasets
    fingerprint), the labels, the recipe's argument dataclasses and the training hyperparameters."""
    import dataclasses

    settings = Settings({f"data.{name}": getattr(ds, "_fingerprint", None) for name, ds in splits.items()})
    settings["labels"] = list(labels)
    settings.defaults = {}
    for args in arguments:
        for field in dataclasses.fields(args):
            key = field.name
            if key not in exclude and key != "overwrite_output_dir":
                settings[f"{type(args).__name__}.{key}"] = getattr(args, key)
                settings.defaults[f"{type(args).__name__}.{key}"] = _default(field)
    for key in TRAINING_KEYS:
        settings[f"training.{key}"] = getattr(training_args, key, None)
    return settings


def _default(field):
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _jsonable(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# Keys that saving and reloading adds or changes without changing what a config computes: they must
# not change a cache key, or a resumed run (whose parts come from a checkpoint) recomputes its cache.
VOLATILE_KEYS = ("auto_map", "processor_class", "_name_or_path", "transformers_version")


def fingerprint(*parts) -> str:
    """A short stable hash of ``parts`` (dicts lose their VOLATILE_KEYS first)."""
    parts = [
        {k: v for k, v in part.items() if k not in VOLATILE_KEYS} if isinstance(part, dict) else part
        for part in parts
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = [
    "CONFIGS",
    "OutputDirError",
    "RUN_FILE",
    "TRAINING_KEYS",
    "VOLATILE_KEYS",
    "claim_output_dir",
    "fingerprint",
    "last_complete_checkpoint",
    "matches_recorded_run",
    "run_settings",
]
