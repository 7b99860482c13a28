"""What every serhub recipe shares: argument parsing with YAML defaults, dataset loading and label
checks, the frozen-encoder cache, metrics, result files, plots and the model card."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import TrainerCallback

from modeling.file_utils import atomic_write

from .logs import get_logger, setup_logging

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "configs"
logger = get_logger("serhub")
TEMPLATES = REPO / "model_cards"


# ----------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------
@dataclass
class DataArguments:
    """Which data to train and evaluate on (a DatasetDict folder in serhub's common schema)."""

    dataset_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "save_to_disk folder or Hub dataset id; default: the embedded synthetic_emotions set (built once)"
        },
    )
    train_split: str = field(default="train")
    eval_split: str = field(default="validation")
    test_split: str | None = field(default="test", metadata={"help": "scored once at the end; empty to skip"})
    label_column: str = field(default="emotion")
    labels: list[str] | None = field(
        default=None, metadata={"help": "the label set, in order (default: the dataset's ClassLabel names)"}
    )
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    cache_encoder_outputs: bool = field(
        default=True,
        metadata={"help": "with a frozen encoder, encode every clip once and train on the cached outputs"},
    )
    bootstrap: int = field(
        default=1000, metadata={"help": "bootstrap resamples for the test macro-F1 confidence interval"}
    )


def parse_arguments(dataclass_types: Sequence[type], default_config: Path, argv: list[str] | None = None):
    """TrlParser over ``dataclass_types``; with no ``--config`` the recipe's embedded default YAML is used."""
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        argv = ["--config", str(default_config), *argv]
    check_config_file(_config_path(argv))
    parsed = TrlParser(dataclass_types=list(dataclass_types)).parse_args_and_config(args=argv)
    check_training_length(parsed[-1])
    return parsed


def _config_path(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    raise ValueError("--config needs a YAML file path")


def check_config_file(path: str) -> None:
    """A recipe YAML holds argument values only. TrlParser would export an ``env:`` block into this
    process and every child (LD_PRELOAD, HF_HUB_OFFLINE, ...): that is refused, not applied."""
    import yaml

    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file; recipe configs are in {CONFIGS}/<recipe>/")
    config = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"--config {path} must be a YAML mapping of argument names to values")
    if "env" in config:
        raise ValueError(
            f"--config {path} has an `env:` block ({sorted(config['env'] or {})}); serhub does not set environment "
            "variables from a config file. Set them in the shell that launches the recipe instead."
        )


def check_training_length(training_args) -> None:
    """Refuse a run that would train for zero steps (and then report an untrained model)."""
    if training_args.max_steps == 0 or (training_args.max_steps < 0 and training_args.num_train_epochs <= 0):
        raise ValueError(
            f"this run would train for zero steps (max_steps={training_args.max_steps}, "
            f"num_train_epochs={training_args.num_train_epochs}); set --num_train_epochs > 0 or --max_steps > 0."
        )


def start_run(dataclass_types: Sequence[type], default_config: Path, argv: list[str] | None = None):
    """Parse the arguments (TrainingArguments last), seed, and keep ``--push_to_hub`` for the end:
    the Trainer would otherwise push at every save, with its own model card. Returns the parsed
    dataclasses followed by the push flag."""
    from transformers import set_seed

    *args, training_args = parse_arguments(dataclass_types, default_config, argv)
    setup_logging(training_args)
    use_all_cpu_threads(training_args)
    set_seed(training_args.seed)
    push_to_hub = training_args.push_to_hub
    training_args.push_to_hub = False
    return (*args, training_args, push_to_hub)


def use_all_cpu_threads(training_args) -> None:
    """``accelerate launch`` without a config sets OMP_NUM_THREADS=1 for every process; a single
    process on a CPU would then leave the other cores idle (~1.3-2x slower). Give it all of them."""
    import torch

    launched_by_accelerate = "ACCELERATE_DYNAMO_BACKEND" in os.environ
    cores = os.cpu_count() or 1
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if (
        launched_by_accelerate
        and on_cpu
        and training_args.world_size == 1
        and torch.get_num_threads() == 1
        and cores > 1
    ):
        torch.set_num_threads(cores)
        logger.info(
            "accelerate launch set 1 CPU thread for this single process; using %d (set OMP_NUM_THREADS>1 to choose)",
            cores,
        )


def require_splits(dataset_dict, names: Sequence[str]) -> None:
    missing = [s for s in names if s and s not in dataset_dict]
    if missing:
        raise ValueError(
            f"splits {missing} not in the dataset; it has {list(dataset_dict)}. Set --train_split/--eval_split/--test_split."
        )


@dataclass
class RunArguments:
    """How a run treats its output folder."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "replace an earlier serhub run in --output_dir that was made with other data, labels or "
            "settings (a folder that is not a serhub run is never touched)"
        },
    )


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
        raise OutputDirError(
            f"another serhub run is writing to {path} (it holds {lock.lock_file}); wait for it to finish "
            "or choose another --output_dir."
        ) from None
    try:
        _check_run_record(path, key, settings, overwrite)
    except OutputDirError:
        lock.release()
        raise
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / RUN_FILE, {"recipe": recipe, "fingerprint": key, "settings": _jsonable(settings)})
    return lock


def _check_run_record(path: Path, key: str, settings: dict, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, empty) a folder that is not this run's; see claim_output_dir."""
    import shutil

    record = path / RUN_FILE
    if path.is_dir() and any(path.iterdir()):
        if not record.is_file():
            raise OutputDirError(
                f"--output_dir {path} is not empty and is not a serhub run (no {RUN_FILE}); serhub does not "
                "write into it. Choose a new or empty folder."
            )
        earlier = json.loads(record.read_text())
        if earlier.get("fingerprint") != key:
            old = earlier.get("settings", {})
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != _jsonable(settings.get(k)))
            if not overwrite:
                raise OutputDirError(
                    f"--output_dir {path} holds an earlier {earlier.get('recipe', 'serhub')} run made with other settings "
                    f"(changed: {', '.join(changed) or 'the recipe'}); resuming it would mix the two runs. Choose "
                    "another --output_dir, or pass --overwrite_output_dir true to replace it."
                )
            logger.info(
                "--overwrite_output_dir: replacing the earlier run in %s (changed: %s)", path, changed
            )
            shutil.rmtree(path)


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

    settings = {f"data.{name}": getattr(ds, "_fingerprint", None) for name, ds in splits.items()}
    settings["labels"] = list(labels)
    for args in arguments:
        for key, value in dataclasses.asdict(args).items():
            if key not in exclude and key != "overwrite_output_dir":
                settings[f"{type(args).__name__}.{key}"] = value
    for key in TRAINING_KEYS:
        settings[f"training.{key}"] = getattr(training_args, key, None)
    return settings


def _jsonable(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def embedded_dataset_path(name: str = "synthetic_emotions") -> Path:
    """Build the embedded corpus once into the serhub cache (file-locked for DDP ranks)."""
    from filelock import FileLock

    from datasets_scripts import asterisk_prompts, synthetic_emotions
    from datasets_scripts.common import save_dataset_dict
    from modeling.offline_assets import cache_dir

    builders = {"synthetic_emotions": synthetic_emotions, "asterisk_prompts": asterisk_prompts}
    path = cache_dir() / "datasets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not (path / "dataset_dict.json").is_file():
            logger.info("building the embedded %s corpus -> %s (once)", name, path)
            dataset_dict = builders[name].build()
            save_dataset_dict(dataset_dict, path, card=builders[name].dataset_card(dataset_dict))
    return path


def load_dataset_dict(name_or_path: str | None):
    import datasets

    from modeling.file_utils import is_local_reference

    if name_or_path is None:
        name_or_path = str(embedded_dataset_path())
    if Path(name_or_path).is_dir():
        return datasets.load_from_disk(name_or_path)
    looks_local = is_local_reference(name_or_path)
    if looks_local or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "false", "False", ""):
        raise FileNotFoundError(
            f"--dataset_name_or_path {name_or_path}: no such folder"
            + ("" if looks_local else " (and the Hub is offline, HF_HUB_OFFLINE is set)")
            + ". Pass a DatasetDict folder written by a datasets_scripts builder (save_to_disk), or a Hub "
            "dataset id 'owner/name' with network access."
        )
    return datasets.load_dataset(name_or_path)


def resolve_labels(dataset_dict, data_args: DataArguments, known: dict[int, str] | None = None) -> list[str]:
    """The label set; refuses data whose labels the model does not know, naming them."""
    split = dataset_dict[data_args.train_split]
    feature = split.features.get(data_args.label_column)
    if feature is None:
        raise ValueError(
            f"the dataset has no {data_args.label_column!r} column; columns: {split.column_names}"
        )
    names = list(getattr(feature, "names", None) or sorted(set(split[data_args.label_column])))
    labels = list(data_args.labels) if data_args.labels else (list(known.values()) if known else names)
    for split_name, ds in dataset_dict.items():
        used = set(ds[data_args.label_column])
        used = {names[i] for i in used} if hasattr(feature, "names") else used
        unknown = sorted(used - set(labels))
        if unknown:
            raise ValueError(
                f"split {split_name!r} has labels the model does not know: {unknown}; the model's labels are {labels}. "
                "Map or drop those rows, or pass --labels with the full label set (for a new model)."
            )
    return labels


def encode_labels(dataset, column: str, labels: list[str]):
    """Replace ``column`` by ``labels`` (ids into ``labels``), whatever the dataset's own id order."""
    feature = dataset.features[column]
    names = getattr(feature, "names", None)
    index = {name: i for i, name in enumerate(labels)}
    return dataset.map(
        lambda batch: {"labels": [index[names[v] if names else v] for v in batch[column]]},
        batched=True,
        desc="labels",
    )


def encoder_code_version() -> str:
    """A hash of the code that turns audio into cached encoder outputs (feature extraction, the
    encoder wrapper, the caching itself): a change to it invalidates every encoder cache."""
    import inspect

    from modeling import feature_extraction_speech_emotion, speech_encoder

    sources = [inspect.getsource(m) for m in (feature_extraction_speech_emotion, speech_encoder)]
    return fingerprint(*sources, inspect.getsource(cache_encoder_outputs))


def cache_encoder_outputs(
    encode,
    feature_extractor,
    dataset,
    cache_dir: str | os.PathLike,
    name: str,
    batch_size: int,
    keep: Sequence[str],
    encoder_key: Sequence = (),
):
    """Run a frozen encoder once over ``dataset`` and keep its outputs (float16) in an Arrow cache.

    ``encode(inputs, mask)`` returns hidden states (B, T, D) or all layers (B, L, T, D) and a frame
    mask (B, T). Only valid frames are stored, time first: (T', D) or (T', L, D). ``keep``: columns
    kept next to them. The cache file, ``<cache_dir>/<name>-<key>.arrow``, is keyed by the encoder
    (``encoder_key``: its weights' reference and config, and what it returns), the feature extractor,
    the dataset's fingerprint and the code version; a re-run with the same key loads it instead.
    """
    import datasets
    import torch

    os.makedirs(cache_dir, exist_ok=True)
    key = fingerprint(encoder_code_version(), *encoder_key, feature_extractor.to_dict(), dataset._fingerprint)
    cache_file = f"{cache_dir}/{name}-{key}.arrow"

    def run(batch):
        inputs = feature_extractor(
            [a["array"] for a in batch["audio"]],
            sampling_rate=feature_extractor.sampling_rate,
            return_tensors="pt",
        )
        main = inputs.get("input_values", inputs.get("input_features"))
        with torch.no_grad():
            states, mask = encode(main, inputs["attention_mask"])
        if states.ndim == 4:  # B, L, T, D -> per clip (T', L, D)
            return {
                "encoder_hidden_states": [
                    states[i][:, mask[i]].transpose(0, 1).half().cpu().numpy() for i in range(len(states))
                ]
            }
        return {
            "encoder_hidden_states": [states[i][mask[i]].half().cpu().numpy() for i in range(len(states))]
        }

    probe = run(dataset.select(range(1))[:1])["encoder_hidden_states"][0]
    array = datasets.Array3D if probe.ndim == 3 else datasets.Array2D
    features = datasets.Features(
        {
            **{k: dataset.features[k] for k in keep},
            "encoder_hidden_states": array(shape=(None, *probe.shape[1:]), dtype="float16"),
        }
    )
    encoded = dataset.map(
        run,
        batched=True,
        batch_size=batch_size,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        features=features,
        cache_file_name=cache_file,
        desc="encoding once (frozen encoder)",
    )
    return encoded.with_format("numpy")  # python lists of arrays would dominate the epoch time


def pad_cached_states(rows, key: str = "encoder_hidden_states"):
    """The cached encoder outputs of a batch, (T', ...) float16 per clip, as one zero-padded float
    tensor (B, T, ...) and its frame mask (B, T): what both families' cached collators start from."""
    import torch

    states = [torch.as_tensor(np.asarray(r[key])).float() for r in rows]
    frames = max(s.shape[0] for s in states)
    padded = torch.zeros(len(rows), frames, *states[0].shape[1:])
    mask = torch.zeros(len(rows), frames, dtype=torch.bool)
    for i, s in enumerate(states):
        padded[i, : s.shape[0]], mask[i, : s.shape[0]] = s, True
    return padded, mask


# Keys that saving and reloading adds or changes without changing what a config computes: they must
# not change a cache key, or a resumed run (whose parts come from a checkpoint) recomputes its cache.
VOLATILE_KEYS = ("auto_map", "processor_class", "_name_or_path", "transformers_version")


def config_kwargs(args, config_class, exclude: Sequence[str] = ()) -> dict:
    """The arguments of a recipe dataclass that name parameters of ``config_class`` (a model config):
    the recipe's options and the config stay one list, not copied by hand."""
    import dataclasses
    import inspect

    parameters = inspect.signature(config_class.__init__).parameters
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(args)
        if f.name in parameters and f.name not in exclude
    }


def fingerprint(*parts) -> str:
    """A short stable hash of ``parts`` (dicts lose their VOLATILE_KEYS first)."""
    parts = [
        {k: v for k, v in part.items() if k not in VOLATILE_KEYS} if isinstance(part, dict) else part
        for part in parts
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
def scalar_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Flatten the ser_metrics output to scalars (per-class F1 as ``f1_<label>``) for logging."""
    out = {}
    for key, value in metrics.items():
        if key == "per_class_f1":
            out.update({f"{prefix}f1_{label}": v for label, v in value.items()})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


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
    **template_kwargs,
) -> Path:
    """README.md from ``model_cards/<template>``; ``results[split]`` metrics become ``model-index``."""
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
        labels=labels,
        dataset_name=dataset_name,
        results=results,
        base_model=base_model,
        **template_kwargs,
    )
    return atomic_write(Path(output_dir) / "README.md", card.save)


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
    "DataArguments",
    "EpochTimer",
    "cache_encoder_outputs",
    "embedded_dataset_path",
    "encode_labels",
    "fingerprint",
    "load_dataset_dict",
    "parse_arguments",
    "push",
    "require_splits",
    "start_run",
    "resolve_labels",
    "scalar_metrics",
    "write_json",
    "write_model_card",
]
