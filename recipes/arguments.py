"""Recipe arguments: parsing with YAML defaults (``--config``), the checks made before anything runs,
the data and run-folder options every recipe shares, and model config kwargs derived from them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from serhub.augment import AugmentConfig

from .logs import get_logger, setup_logging

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "configs"
TEMPLATES = REPO / "model_cards"
logger = get_logger("serhub")


SPEAKER_REFERENCES = ("enrolled", "own_clips")  # --speaker_reference


@dataclass
class DataArguments:
    """Which data to train and evaluate on (a DatasetDict folder in serhub's common schema)."""

    dataset_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "save_to_disk folder, Hub dataset id, or an embedded corpus' name (synthetic_emotions, "
            "synthetic_emotions_v2, asterisk_prompts; built once); default: synthetic_emotions"
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
    max_test_samples: int | None = field(
        default=None,
        metadata={
            "help": "score only this many test clips, a fixed random subset (seed 0, the same in every run), "
            "for quick runs; default: the whole test split"
        },
    )
    cache_encoder_outputs: bool = field(
        default=True,
        metadata={"help": "with a frozen encoder, encode every clip once and train on the cached outputs"},
    )
    encoder_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "where a frozen encoder's outputs are cached (ssl_classifier, whisper_llm, emosllm, descriptors; "
            "keyed by encoder, feature extraction, data and code, so runs with other heads, connectors or "
            "LLMs may share one folder and skip the encoding); default: <output_dir>/encoder_cache"
        },
    )
    bootstrap: int = field(
        default=1000, metadata={"help": "bootstrap resamples for the test macro-F1 confidence interval"}
    )
    speaker_column: str = field(
        default="speaker_id", metadata={"help": "the speaker of each clip (speaker normalisation)"}
    )
    speaker_reference: str = field(
        default="enrolled",
        metadata={
            "help": "with --speaker_prosody, what a speaker's reference is in training, and so how the model is "
            "used: enrolled (each voice's first 2 clips, neutral first: the speaker is enrolled on a few "
            "recordings) or own_clips (the mean over up to 32 of the voice's own clips, emotions mixed: the "
            "model is used with --enroll_self, on several clips of each speaker or a long recording)"
        },
    )
    heldout_eval: bool = field(
        default=False,
        metadata={
            "help": "after training, score the saved model through the pipeline on speech from voices and "
            "sentences that no split of the synthetic corpora holds, clean and telephone band + 15 dB noise "
            "(serhub.heldout; built once into the serhub cache): eval_results.json's 'heldout' and the card"
        },
    )
    heldout_clips_per_voice: int = field(
        default=6, metadata={"help": "--heldout_eval: clips per held-out voice (20 voices)"}
    )
    heldout_seed: int = field(default=0, metadata={"help": "--heldout_eval: the held-out set's seed"})
    # waveform augmentation of the training split (serhub.augment); validation and test never
    augment: bool = field(
        default=False,
        metadata={
            "help": "augment the training audio (noise, room, telephone band, codec, gain): a fresh copy on "
            "every read, or with a cached frozen encoder --augment_copies fixed copies beside the clean one "
            "(ssl_classifier, whisper_llm, emosllm, descriptors; the other recipes refuse it)"
        },
    )
    augment_copies: int = field(
        default=1,
        metadata={"help": "with the encoder cache: augmented copies of the training split, each cached"},
    )
    augment_noise_prob: float = field(default=AugmentConfig.noise_prob)
    augment_snr_db: list[float] = field(
        default_factory=lambda: list(AugmentConfig.snr_db),
        metadata={"help": "SNR range (low high) of the noise"},
    )
    augment_reverb_prob: float = field(default=AugmentConfig.reverb_prob)
    augment_telephone_prob: float = field(default=AugmentConfig.telephone_prob)
    augment_codec_prob: float = field(default=AugmentConfig.codec_prob)
    augment_gain_prob: float = field(default=AugmentConfig.gain_prob)

    def augment_config(self) -> AugmentConfig:
        """The AugmentConfig of the ``--augment_*`` options (its other fields at their defaults)."""
        return AugmentConfig(
            noise_prob=self.augment_noise_prob,
            snr_db=tuple(self.augment_snr_db),
            reverb_prob=self.augment_reverb_prob,
            telephone_prob=self.augment_telephone_prob,
            codec_prob=self.augment_codec_prob,
            gain_prob=self.augment_gain_prob,
        )

    def __post_init__(self):
        from .validation import check_labels

        if self.labels is not None:
            self.labels = check_labels(self.labels, "--labels")
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(
                    f"--{name} must be at least 1 (or unset for every row), found {getattr(self, name)}"
                )
        if self.heldout_clips_per_voice < 1:
            raise ValueError(
                f"--heldout_clips_per_voice must be at least 1, found {self.heldout_clips_per_voice}"
            )
        if self.bootstrap < 0:
            raise ValueError(f"--bootstrap is a number of resamples (0 for none), found {self.bootstrap}")
        if self.speaker_reference not in SPEAKER_REFERENCES:
            raise ValueError(
                f"--speaker_reference is one of {', '.join(SPEAKER_REFERENCES)}; found {self.speaker_reference!r}"
            )
        if self.augment_copies < 1:
            raise ValueError(f"--augment_copies must be at least 1, found {self.augment_copies}")
        self.augment_config()  # refuses a bad probability or range now, before anything runs


def parse_arguments(dataclass_types: Sequence[type], default_config: Path, argv: list[str] | None = None):
    """TrlParser over ``dataclass_types``; with no ``--config`` the recipe's embedded default YAML is used."""
    from trl import TrlParser

    from .validation import check_training_values

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        argv = ["--config", str(default_config), *argv]
    check_config_file(_config_path(argv), dataclass_types)
    parsed = TrlParser(dataclass_types=list(dataclass_types)).parse_args_and_config(args=argv)
    check_training_values(*parsed)
    check_training_length(parsed[-1])
    return parsed


def _config_path(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    raise ValueError("--config needs a YAML file path")


def check_config_file(path: str, dataclass_types: Sequence[type] = ()) -> None:
    """A recipe YAML holds argument values only: at most 1 MB, no anchors/aliases, every key an
    argument of ``dataclass_types`` with a value of its type (recipes/validation.py), refused before
    anything is written. TrlParser would export an ``env:`` block into this process and every child
    (LD_PRELOAD, HF_HUB_OFFLINE, ...): that is refused, not applied."""
    from .validation import check_config, load_config

    config = load_config(path)
    if "env" in config:
        raise ValueError(
            f"--config {path} has an `env:` block ({sorted(config['env'] or {})}); serhub does not set environment "
            "variables from a config file. Set them in the shell that launches the recipe instead."
        )
    if dataclass_types:
        check_config(config, dataclass_types, path)


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


__all__ = [
    "CONFIGS",
    "DataArguments",
    "REPO",
    "RunArguments",
    "TEMPLATES",
    "check_config_file",
    "check_training_length",
    "config_kwargs",
    "parse_arguments",
    "start_run",
    "use_all_cpu_threads",
]
