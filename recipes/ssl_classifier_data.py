"""What recipes/ssl_classifier.py trains on: the splits at 16 kHz with class ids, the collators (raw
audio through the feature extractor, or cached encoder outputs), augmented copies of the training
split, the encoder-output cache of a frozen encoder, speaker normalisation of the cached frames, and
the speaker-relative prosody numbers (``--speaker_prosody``). Defined beside the recipe: only it uses them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from serhub.modeling import SpeechEmotionFeatureExtractor
from serhub.modeling.modeling_speech_emotion import SPEAKER_STD_FLOOR
from serhub.recipes.data import (
    augmented_copy,
    cache_encoder_outputs,
    encode_labels,
    encoder_cache_dir,
    pad_cached_states,
)
from serhub.recipes.logs import get_logger
from serhub.recipes.speaker_prosody import check_speaker_data, speaker_prosody_columns

from serhub.augment import Augmenter

logger = get_logger("ssl_classifier")


@dataclass
class AudioCollator:
    """Raw audio -> features with the model's feature extractor (encoder runs in the model)."""

    feature_extractor: SpeechEmotionFeatureExtractor
    dimensions: tuple[str, ...] = ()

    def __call__(self, rows):
        batch = self.feature_extractor(
            [r["audio"]["array"] for r in rows],
            sampling_rate=self.feature_extractor.sampling_rate,
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor([r["labels"] for r in rows])
        if self.dimensions:
            batch["dimensional_labels"] = torch.tensor(
                [[r[d] for d in self.dimensions] for r in rows], dtype=torch.float
            )
        return with_speaker_ids(batch, rows)


def with_speaker_ids(batch: dict, rows) -> dict:
    """``batch`` plus the rows' training-speaker indices, when they carry them (a speaker adversary)."""
    if rows and SPEAKER_IDS in rows[0]:
        batch[SPEAKER_IDS] = torch.tensor([int(r[SPEAKER_IDS]) for r in rows])
    return batch


SPEAKER_IDS = "speaker_ids"  # each clip's training-speaker index, -100 outside training


def training_speakers(split, speaker_column: str) -> list[str]:
    """The training split's speakers in index order (the speaker adversary's classes)."""
    return sorted({str(s) for s in split[speaker_column]})


def add_speaker_ids(splits: dict, sources: dict, speakers: list[str], speaker_column: str) -> dict:
    """Every split of ``splits`` with a ``speaker_ids`` column: the index of each clip's speaker
    in ``speakers`` (read from the same split of ``sources``), -100 for a speaker not among them."""
    index = {s: i for i, s in enumerate(speakers)}
    out = {}
    for name, ds in splits.items():
        ids = [index.get(str(s), -100) for s in sources[name][speaker_column]]
        if SPEAKER_IDS in ds.column_names:
            ds = ds.remove_columns(SPEAKER_IDS)
        out[name] = ds.add_column(SPEAKER_IDS, ids)
    return out


# Speaker normalisation of the cached encoder frames: each layer's frames standardised (per dimension)
# with a speaker's statistics, the speaker-level z-normalisation of SER features (Busso et al. 2011,
# "Iterative feature normalization for emotional speech detection"). The attentive pooling's weighted
# mean is shift-equivariant (its weights sum to 1), so subtracting a speaker's frame mean subtracts it
# from every pooled mean of that speaker. Evaluated with each test speaker's statistics (transductive,
# as speaker-normalised SER is usually evaluated) and, as what one recording alone allows, per recording.
STD_FLOOR = SPEAKER_STD_FLOOR  # the model's enrolment divides by the same floor


def frame_statistics(states) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (L+1, D) over the frames of one clip's (T', L+1, D) outputs."""
    x = np.asarray(states, dtype=np.float64)
    return x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR)


def speaker_statistics(cached, speaker_column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per speaker, the mean and standard deviation (L+1, D) of every frame of their cached clips."""
    sums: dict[str, list] = {}
    for row in cached:
        x = np.asarray(row["encoder_hidden_states"], dtype=np.float64)
        acc = sums.setdefault(str(row[speaker_column]), [0, 0.0, 0.0])
        acc[0] += x.shape[0]
        acc[1] = acc[1] + x.sum(axis=0)
        acc[2] = acc[2] + (x**2).sum(axis=0)
    stats = {}
    for speaker, (n, total, squares) in sums.items():
        mean = total / n
        stats[speaker] = (mean, np.maximum(np.sqrt(np.maximum(squares / n - mean**2, 0.0)), STD_FLOOR))
    return stats


@dataclass
class CachedEncoderCollator:
    """Cached encoder outputs (T', L+1, D) float16 -> a padded float batch (B, L+1, T', D) and mask.

    ``speaker_norm``: None (the frames as cached), ``"speaker"`` (standardised with
    ``speaker_stats[row[speaker_column]]``) or ``"recording"`` (each clip with its own statistics)."""

    dimensions: tuple[str, ...] = ()
    speaker_norm: str | None = None
    speaker_stats: dict = field(default_factory=dict)
    speaker_column: str = "speaker_id"
    prosody: bool = False  # rows hold "prosody_values" and "prosody_reference" (--speaker_prosody)

    def _normalised(self, row) -> dict:
        states = np.asarray(row["encoder_hidden_states"], dtype=np.float32)
        if self.speaker_norm == "recording":
            mean, std = frame_statistics(states)
        else:
            speaker = str(row[self.speaker_column])
            if speaker not in self.speaker_stats:
                raise ValueError(
                    f"no speaker statistics for {speaker!r} (speakers with statistics: {len(self.speaker_stats)}); "
                    "compute them with speaker_statistics() over the split, or normalise per recording"
                )
            mean, std = self.speaker_stats[speaker]
        return {**row, "encoder_hidden_states": ((states - mean) / std).astype(np.float32)}

    def __call__(self, rows):
        if self.speaker_norm:
            rows = [self._normalised(r) for r in rows]
        states, mask = pad_cached_states(rows)  # B, T', L+1, D
        batch = {
            "encoder_hidden_states": states.transpose(1, 2),
            "encoder_attention_mask": mask,
            "labels": torch.tensor([r["labels"] for r in rows]),
        }
        if self.dimensions:
            batch["dimensional_labels"] = torch.tensor(
                [[r[d] for d in self.dimensions] for r in rows], dtype=torch.float
            )
        if self.prosody:
            for key in ("prosody_values", "prosody_reference"):
                batch[key] = torch.tensor(np.stack([np.asarray(r[key], dtype=np.float32) for r in rows]))
        return with_speaker_ids(batch, rows)


def load_splits(data_args, training_args, raw, labels) -> dict:
    """The splits the run uses, at 16 kHz with class ids (``--max_*_samples`` subsets drawn by seed)."""
    limits = {
        data_args.train_split: data_args.max_train_samples,
        data_args.eval_split: data_args.max_eval_samples,
    }
    data = {}
    for split in [s for s in (data_args.train_split, data_args.eval_split, data_args.test_split) if s]:
        ds = raw[split]
        if limits.get(split):
            ds = ds.shuffle(seed=training_args.seed).select(range(min(limits[split], len(ds))))
        data[split] = encode_labels(
            ds.cast_column("audio", datasets.Audio(sampling_rate=16000)), data_args.label_column, labels
        )
    return data


def encoded_inputs(
    model, feature_extractor, model_args, data_args, training_args, data, adversary_speakers=None
):
    """A frozen encoder runs once per split (cached); otherwise the collator feeds raw audio.
    With ``--augment`` the training split (only) is augmented: a fresh copy on every read of raw
    audio, or ``--augment_copies`` fixed copies cached beside the clean one. ``adversary_speakers``
    (the training speakers of a model with a speaker adversary): every row also carries its
    ``speaker_ids``. Returns the datasets to train on, their collator and the seconds the cache
    took."""
    dims = tuple(model.config.dimensions)
    train_split = data_args.train_split
    augmenter = Augmenter(data_args.augment_config(), seed=training_args.seed) if data_args.augment else None
    if not (model.config.freeze_encoder and data_args.cache_encoder_outputs):
        if adversary_speakers:
            data = add_speaker_ids(data, data, adversary_speakers, data_args.speaker_column)
        return _raw_audio_inputs(
            feature_extractor, model_args, training_args, data, train_split, augmenter, dims
        )
    if model_args.speaker_norm or model_args.speaker_prosody:
        option = "--speaker_norm" if model_args.speaker_norm else "--speaker_prosody"
        check_speaker_data(option, data_args, data[train_split].column_names)
    sources = dict(data)
    if augmenter is not None:
        for copy in range(data_args.augment_copies):
            sources[f"{train_split}-augment{copy}"] = augmented_copy(
                data[train_split], augmenter, copy, training_args.per_device_eval_batch_size
            )
    cached, seconds = _cached_encoder_outputs(
        model, feature_extractor, model_args, data_args, training_args, sources
    )
    if model_args.speaker_norm:  # beside the cache, not in it: the same cache serves runs without it
        cached = {
            split: ds.add_column(
                data_args.speaker_column, list(sources[split][data_args.speaker_column])
            ).with_format("numpy")
            for split, ds in cached.items()
        }
    if model_args.speaker_prosody:  # beside the cache too: measured once per run
        with training_args.main_process_first(desc="prosody numbers"):
            labels = list(model.config.id2label.values())
            cached, statistics = speaker_prosody_columns(
                cached, sources, data_args.speaker_column, labels, train_split, data_args.speaker_reference
            )
            model.prosody.set_statistics(*statistics)
    if adversary_speakers:  # beside the cache too; augmented copies keep their clip's speaker
        cached = add_speaker_ids(cached, sources, adversary_speakers, data_args.speaker_column)
    cached = _with_augmented_copies(cached, train_split)
    prosody = bool(model_args.speaker_prosody)
    if prosody:
        training_args.remove_unused_columns = False  # the collator reads the prosody columns
    if not model_args.speaker_norm:
        return cached, CachedEncoderCollator(dims, prosody=prosody), seconds
    stats = _speaker_statistics_of_splits(cached, data_args.speaker_column)
    collator = CachedEncoderCollator(dims, "speaker", stats, data_args.speaker_column, prosody=prosody)
    training_args.remove_unused_columns = False  # the collator reads the speaker column
    return cached, collator, seconds


def _raw_audio_inputs(feature_extractor, model_args, training_args, data, train_split, augmenter, dims):
    """The splits as they are, read by :class:`AudioCollator` (the encoder runs in the model); the
    training split augmented on every read when ``augmenter`` is given."""
    for option, on in (
        ("--speaker_norm", model_args.speaker_norm),
        ("--speaker_prosody", model_args.speaker_prosody),
    ):
        if on:
            raise ValueError(
                f"{option} works on cached encoder outputs; it needs --freeze_encoder true and "
                f"--cache_encoder_outputs true (or leave {option} off)"
            )
    if augmenter is not None:
        data = {**data, train_split: data[train_split].with_transform(augmenter.transform_function())}
    # the collator reads the raw "audio" column, which is not a forward argument: the Trainer
    # would drop it otherwise
    training_args.remove_unused_columns = False
    return data, AudioCollator(feature_extractor, dims), 0.0


def _cached_encoder_outputs(model, feature_extractor, model_args, data_args, training_args, sources):
    """Every split of ``sources`` through the frozen encoder once (the cache is found again on a
    re-run): ``(cached splits, the seconds it took)``."""
    dims = tuple(model.config.dimensions)
    weights = model_args.model_name_or_path or model_args.encoder_name_or_path
    encoder = (weights, model.config.audio_config.to_dict(), "all layers")
    batch_size = training_args.per_device_eval_batch_size
    cache_dir = encoder_cache_dir(data_args, training_args.output_dir)
    start = time.time()
    with training_args.main_process_first(desc="encoder cache"):
        cached = {
            split: cache_encoder_outputs(
                model.encode, feature_extractor, ds, cache_dir, split, batch_size, ("labels", *dims), encoder
            )
            for split, ds in sources.items()
        }
    seconds = time.time() - start
    logger.info("encoder outputs cached in %.1f s; training never runs the encoder again", seconds)
    return cached, seconds


def _with_augmented_copies(cached: dict, train_split: str) -> dict:
    """The cached augmented copies of the training split appended to it (and dropped as splits)."""
    copies = [cached.pop(name) for name in list(cached) if name.startswith(f"{train_split}-augment")]
    if copies:
        cached[train_split] = datasets.concatenate_datasets([cached[train_split], *copies]).with_format(
            "numpy"
        )
        logger.info(
            "training on the clean split and %d augmented copies: %d clips",
            len(copies),
            len(cached[train_split]),
        )
    return cached


def _speaker_statistics_of_splits(cached: dict, speaker_column: str) -> dict:
    """Each speaker's frame statistics, from the split they are in; ``ValueError`` when a speaker is
    in two splits (speaker normalisation is evaluated on speaker-independent splits)."""
    stats = {}
    for split, ds in cached.items():
        split_stats = speaker_statistics(ds, speaker_column)
        shared = sorted(set(split_stats) & set(stats))
        if shared:
            raise ValueError(
                f"--speaker_norm: speakers {shared[:5]} are in split {split!r} and another; speaker "
                "normalisation is evaluated on speaker-independent splits"
            )
        stats.update(split_stats)
    logger.info(
        "speaker normalisation: encoder frames standardised per speaker (%d speakers; validation and "
        "test speakers with their own statistics, transductively)",
        len(stats),
    )
    return stats


__all__ = [
    "SPEAKER_IDS",
    "AudioCollator",
    "CachedEncoderCollator",
    "add_speaker_ids",
    "augmented_copy",
    "encoded_inputs",
    "frame_statistics",
    "load_splits",
    "speaker_statistics",
    "training_speakers",
    "with_speaker_ids",
]
