"""Recipe data: the embedded corpora, loading and label checks, and the frozen-encoder cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .arguments import DataArguments
from .logs import get_logger
from .run_folders import fingerprint

logger = get_logger("serhub")


def require_splits(dataset_dict, names: Sequence[str]) -> None:
    missing = [s for s in names if s and s not in dataset_dict]
    if missing:
        raise ValueError(
            f"splits {missing} not in the dataset; it has {list(dataset_dict)}. Set --train_split/--eval_split/--test_split."
        )


# corpora serhub builds itself, offline, into its cache on first use; their names work wherever a
# dataset folder does (--dataset_name_or_path, serhub evaluate --dataset)
# (synthetic_emotions_v2: unseen voices and sentences in validation / test, for emotion that transfers)
EMBEDDED_CORPORA = ("synthetic_emotions", "synthetic_emotions_v2", "asterisk_prompts")


def embedded_dataset_path(name: str = "synthetic_emotions") -> Path:
    """Build the embedded corpus once into the serhub cache (file-locked for DDP ranks)."""
    from filelock import FileLock
    from serhub.datasets_scripts import asterisk_prompts, synthetic_emotions, synthetic_emotions_v2
    from serhub.datasets_scripts.common import save_dataset_dict
    from serhub.modeling.offline_assets import cache_dir

    builders = {
        "synthetic_emotions": synthetic_emotions,
        "synthetic_emotions_v2": synthetic_emotions_v2,
        "asterisk_prompts": asterisk_prompts,
    }
    if name not in builders:
        raise ValueError(f"no embedded corpus {name!r}; expected one of {sorted(builders)}")
    # a builder's CORPUS_VERSION names its folder: a cache built by an older builder (other columns)
    # is not reused
    version = getattr(builders[name], "CORPUS_VERSION", 1)
    path = cache_dir() / "datasets" / (name if version == 1 else f"{name}-v{version}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not (path / "dataset_dict.json").is_file():
            logger.info("building the embedded %s corpus -> %s (once)", name, path)
            dataset_dict = builders[name].build()
            save_dataset_dict(dataset_dict, path, card=builders[name].dataset_card(dataset_dict))
    return path


# The test subset of --max_test_samples is drawn with its own fixed seed, not --seed: runs with other
# training seeds are scored on the same clips, so their figures compare.
TEST_SUBSET_SEED = 0


def limit_test_split(dataset_dict, data_args: DataArguments):
    """``dataset_dict`` with its test split cut to ``--max_test_samples`` clips: a random subset drawn
    with ``TEST_SUBSET_SEED`` (a split is often ordered by speaker or label, so its first N clips would
    not represent it), kept in the split's order. A new DatasetDict; the one given is unchanged."""
    import datasets

    limit, name = data_args.max_test_samples, data_args.test_split
    if not limit or not name or name not in dataset_dict or len(dataset_dict[name]) <= limit:
        return dataset_dict
    split = dataset_dict[name]
    rows = np.sort(np.random.default_rng(TEST_SUBSET_SEED).choice(len(split), size=limit, replace=False))
    logger.info(
        "scoring %d of the %d clips of the %r split (--max_test_samples; a fixed random subset, seed %d)",
        limit,
        len(split),
        name,
        TEST_SUBSET_SEED,
    )
    return datasets.DatasetDict({**dataset_dict, name: split.select(rows.tolist())})


def load_dataset_dict(
    name_or_path: str | None, data_args: DataArguments | None = None, option: str = "--dataset_name_or_path"
):
    """The DatasetDict at ``name_or_path`` (a save_to_disk folder, a Hub id when online, None for the
    embedded corpus); with ``data_args``, its test split cut to ``--max_test_samples`` (``limit_test_split``).
    ``option`` is the command-line option an error names (``serhub evaluate`` takes ``--dataset``)."""
    if data_args is None:
        return _load_dataset_dict(name_or_path, option)
    return limit_test_split(_load_dataset_dict(name_or_path, option), data_args)


def _load_dataset_dict(name_or_path: str | None, option: str = "--dataset_name_or_path"):
    import datasets
    from serhub.modeling.file_utils import is_local_reference

    if name_or_path is None:
        name_or_path = str(embedded_dataset_path())
    if Path(name_or_path).is_dir():
        return datasets.load_from_disk(name_or_path)
    if name_or_path in EMBEDDED_CORPORA:  # a name, not a folder of that name: the corpus built once
        return datasets.load_from_disk(str(embedded_dataset_path(name_or_path)))
    looks_local = is_local_reference(name_or_path)
    if looks_local or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "false", "False", ""):
        raise FileNotFoundError(
            f"{option} {name_or_path}: no such folder"
            + ("" if looks_local else " (and the Hub is offline, HF_HUB_OFFLINE is set)")
            + ". Pass a DatasetDict folder written by a datasets_scripts builder (save_to_disk), the name of "
            f"an embedded corpus ({', '.join(EMBEDDED_CORPORA)}), or a Hub dataset id 'owner/name' with "
            "network access."
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


def encoder_cache_dir(data_args, output_dir: str | os.PathLike) -> str:
    """Where a recipe caches its frozen encoder's outputs: ``--encoder_cache_dir`` when given (runs may
    share it: the files are keyed, ``cache_encoder_outputs``), else ``<output_dir>/encoder_cache``."""
    return str(getattr(data_args, "encoder_cache_dir", None) or f"{output_dir}/encoder_cache")


def encoder_code_version() -> str:
    """A hash of the code that turns audio into cached encoder outputs (feature extraction, the
    encoder wrapper, the caching itself): a change to it invalidates every encoder cache."""
    import inspect

    from serhub.modeling import feature_extraction_speech_emotion, speech_encoder

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
    # the columns kept beside the outputs are part of the key: a cache made with fewer columns is not reused
    key = fingerprint(
        encoder_code_version(), *encoder_key, feature_extractor.to_dict(), dataset._fingerprint, sorted(keep)
    )
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


def frame_counts(dataset, key: str = "encoder_hidden_states") -> list[int]:
    """Each clip's number of cached encoder frames (an encoder cache, ``cache_encoder_outputs``)."""
    counts = []
    for batch in dataset.select_columns([key]).iter(batch_size=256):
        counts += [len(states) for states in batch[key]]
    return counts


class LengthGroupedSampler:
    """Training order in batches of clips of similar length (less padding per step), reproducible:
    each epoch's order is a function of ``seed`` and the epoch alone, so a resumed run sees the
    batches an uninterrupted one saw. The clips are shuffled, cut into groups of ``group_batches``
    batches, sorted by length within each group (longest first) and cut into batches, and the
    full batches are shuffled (a short one last). What ``--train_sampling_strategy group_by_length``
    gives the cached-encoder recipes (transformers' own sampler draws from the global RNG, which a
    resume does not restore)."""

    def __init__(self, lengths, batch_size: int, seed: int = 0, group_batches: int = 50):
        if batch_size < 1 or group_batches < 1:
            raise ValueError(
                f"batch_size and group_batches must be >= 1, got {batch_size} and {group_batches}"
            )
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.group_batches = batch_size, seed, group_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        group = self.batch_size * self.group_batches
        batches = []
        for start in range(0, len(order), group):
            members = order[start : start + group]
            members = members[np.argsort(-self.lengths[members], kind="stable")]
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        # the loader cuts the indices into batches again: a short batch (the last group's) goes last
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        for b in [*(full[k] for k in rng.permutation(len(full))), *short]:
            yield from (int(i) for i in b)


def with_trimming(
    feature_extractor, trim_silence_db: float | None, trim_noise_margin_db: float | None = None
):
    """The feature extractor, trimming silence at ``--trim_silence_db`` when it is given (and, with
    ``--trim_noise_margin_db``, noise-filled pauses too; checked as the extractor checks them); saved
    with the model, so that it trims what it is given too."""
    if trim_silence_db is None and trim_noise_margin_db is None:
        return feature_extractor
    settings = {
        **feature_extractor.to_dict(),
        "trim_silence_db": trim_silence_db,
        "trim_noise_margin_db": trim_noise_margin_db,
    }
    settings.pop("feature_extractor_type", None)
    settings.pop("processor_class", None)
    return type(feature_extractor)(**settings)


def augmented_copy(dataset, augmenter, copy: int, batch_size: int):
    """One fixed augmented copy of ``dataset`` (``copy`` keys its draws), fingerprinted by the dataset
    and the augmenter, so that its encoder cache is found again on a re-run."""
    return dataset.map(
        augmenter.map_function(epoch=copy),
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        new_fingerprint=fingerprint(dataset._fingerprint, augmenter.fingerprint(copy, batch_size)),
        desc=f"augmenting (copy {copy + 1})",
    )


def augmented_copies(dataset, data_args: DataArguments, seed: int, batch_size: int) -> list:
    """``--augment_copies`` fixed augmented copies of a training split (``serhub.augment``), for
    recipes whose frozen encoder's outputs are cached: each copy is encoded once, beside the clean
    split. None without ``--augment``."""
    if not data_args.augment:
        return []
    from serhub.augment import Augmenter

    if data_args.augment_copies < 1:
        raise ValueError(f"--augment_copies must be >= 1 with --augment, got {data_args.augment_copies}")
    augmenter = Augmenter(data_args.augment_config(), seed=seed)
    return [augmented_copy(dataset, augmenter, k, batch_size) for k in range(data_args.augment_copies)]


def refuse_augment(data_args: DataArguments, recipe: str, why: str) -> None:
    """``--augment`` given to a recipe that cannot apply it: said, not silently ignored."""
    if data_args.augment:
        raise ValueError(
            f"--augment: {recipe} {why}; the recipes that augment their training audio are "
            f"{', '.join(AUGMENTING_RECIPES)}"
        )


AUGMENTING_RECIPES = ("ssl_classifier", "whisper_llm", "emosllm", "descriptors")


def refuse_heldout(data_args: DataArguments, recipe: str, why: str) -> None:
    """``--heldout_eval`` given to a recipe whose model does not classify audio: said, not ignored."""
    if getattr(data_args, "heldout_eval", False):
        raise ValueError(
            f"--heldout_eval scores audio classifiers on unseen voices: {recipe} {why}; leave it off "
            "(it is for ssl_classifier, whisper_llm, emosllm, descriptors, graph_fusion, qwen2_audio_lora, ensemble)"
        )


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


__all__ = [
    "AUGMENTING_RECIPES",
    "augmented_copies",
    "augmented_copy",
    "cache_encoder_outputs",
    "embedded_dataset_path",
    "encode_labels",
    "encoder_code_version",
    "limit_test_split",
    "load_dataset_dict",
    "pad_cached_states",
    "refuse_augment",
    "refuse_heldout",
    "require_splits",
    "resolve_labels",
]
