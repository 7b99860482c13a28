"""Shared pieces of the dataset builders: the common schema, audio I/O, checks and atomic saving.

Every builder returns a ``DatasetDict`` whose splits have the columns of :func:`ser_features`
(``audio``, ``emotion``, ``transcript``, ``speaker_id``, ``utterance_id`` and optional
``gender``, ``arousal``, ``valence``, ``dominance``, ``language``) and saves it with
:func:`save_dataset_dict`, which never leaves a half-written folder behind and writes ``manifest.json``
beside the data: per split the clip count, sha256 hashes of its clip ids and speakers, the label
counts, and the leaks (speakers in two splits, train transcripts found again in validation/test).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from serhub.modeling.file_utils import atomic_output_dir, check_output_dir

SAMPLING_RATE = 16_000
OPTIONAL_STRING_COLUMNS = ("gender", "language", "descriptors")
OPTIONAL_FLOAT_COLUMNS = ("arousal", "valence", "dominance")
logger = logging.getLogger(__name__)


def ser_features(labels: Sequence[str], optional: Iterable[str] = ()):
    """The common schema, with ``emotion`` a ClassLabel over ``labels`` (the corpus' own order)."""
    import datasets

    features = {
        "audio": datasets.Audio(sampling_rate=SAMPLING_RATE),
        "emotion": datasets.ClassLabel(names=list(labels)),
        "transcript": datasets.Value("string"),
        "speaker_id": datasets.Value("string"),
        "utterance_id": datasets.Value("string"),
    }
    for column in optional:
        if column in OPTIONAL_STRING_COLUMNS:
            features[column] = datasets.Value("string")
        elif column in OPTIONAL_FLOAT_COLUMNS:
            features[column] = datasets.Value("float32")
        else:
            raise ValueError(
                f"unknown optional column {column!r}; the schema allows {OPTIONAL_STRING_COLUMNS + OPTIONAL_FLOAT_COLUMNS}"
            )
    return datasets.Features(features)


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation) of a mono float waveform."""
    if orig_sr == target_sr:
        return waveform.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as AF

    return AF.resample(
        torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)), orig_sr, target_sr
    ).numpy()


def read_audio(path_or_bytes: str | os.PathLike | bytes, target_sr: int = SAMPLING_RATE) -> np.ndarray:
    """Read a sound file (any format libsndfile reads) as mono float32 at ``target_sr``.

    Raises ``ValueError`` naming the file when it is missing, unreadable or empty.
    """
    import soundfile as sf

    name = "<bytes>" if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/OSError by case
        raise ValueError(
            f"could not read audio file {name}: {err}. Check that it is a complete, uncorrupted sound file."
        ) from err
    if data.shape[0] == 0:
        raise ValueError(f"audio file {name} has no samples; remove it or re-export it.")
    return resample(data.mean(axis=1), sr, target_sr)


def encode_wav(waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> bytes:
    """16-bit PCM WAV bytes, the storage format of the ``audio`` column."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(waveform, -1.0, 1.0), sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def class_counts(dataset, column: str = "emotion", num_classes: int | None = None) -> list[int]:
    """Rows per class id of an integer label ``column`` (a ClassLabel gives the number of classes;
    otherwise pass ``num_classes``): the training-set counts that weight the losses. Rows without a
    label (-1) are not counted."""
    if num_classes is None:
        num_classes = len(dataset.features[column].names)
    values = np.asarray(dataset[column], dtype=np.int64)
    return np.bincount(values[values >= 0], minlength=num_classes).tolist()  # -1: no label (e.g. MSP "X")


def describe(dataset_dict, column: str = "emotion") -> str:
    """A table of class counts per split (printed by every builder, written into the card)."""
    splits = list(dataset_dict)
    names = dataset_dict[splits[0]].features[column].names
    counts = {split: dict(zip(names, class_counts(dataset_dict[split], column))) for split in splits}
    width = max(len(n) for n in [*names, "total"]) + 2
    lines = ["| class | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for name in names:
        lines.append(f"| {name:<{width}} | " + " | ".join(str(counts[s][name]) for s in splits) + " |")
    lines.append(f"| {'total':<{width}} | " + " | ".join(str(len(dataset_dict[s])) for s in splits) + " |")
    speakers = [str(len(set(dataset_dict[s]["speaker_id"]))) for s in splits]
    lines.append(f"| {'speakers':<{width}} | " + " | ".join(speakers) + " |")
    return "\n".join(lines)


def check_speaker_independent(splits, *, dataset=None, speaker_column: str = "speaker_id") -> None:
    """Raise ``ValueError`` naming every speaker found in more than one split.

    ``splits`` is a DatasetDict (or a mapping of names to Datasets), or a mapping of names to row
    indices of ``dataset``."""
    seen: dict[str, str] = {}
    leaks = []
    for split, part in splits.items():
        part = dataset.select(part) if dataset is not None else part
        for speaker in set(part[speaker_column]):
            if speaker in seen and seen[speaker] != split:
                leaks.append(f"{speaker} ({seen[speaker]}, {split})")
            seen.setdefault(speaker, split)
    if leaks:
        raise ValueError(
            f"splits are not speaker-independent; speakers in two splits: {', '.join(sorted(leaks))}"
        )


# ----------------------------------------------------------------------------- reproducibility manifest

MANIFEST = "manifest.json"  # beside every saved dataset: what each split holds, and its leaks
LEAK_EXAMPLES = 10  # examples listed per leak in the manifest (the counts are complete)
HELD_OUT_SPLITS = ("validation", "test")  # splits whose transcripts must not be seen in training


def sorted_sha256(values: Iterable) -> str:
    """sha256 of the values as strings, sorted, one per line (UTF-8): the same set of clips in any row
    order gives the same hash, one clip more, less or moved gives another."""
    text = "\n".join(sorted(str(v) for v in values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_hashes(split) -> dict:
    """The hashes of one split (a ``datasets.Dataset``) that say which clips and speakers it holds:
    written into the dataset's ``manifest.json`` and ``serhub evaluate``'s results, so that two of
    them can be compared. Clips are named by ``utterance_id`` (the row number when there is none)."""
    columns = split.column_names
    ids = split["utterance_id"] if "utterance_id" in columns else range(len(split))
    out = {"clip_ids_sha256": sorted_sha256(ids)}
    if "speaker_id" in columns:
        out["speakers_sha256"] = sorted_sha256(set(split["speaker_id"]))
    return out


def normalise_transcript(text: str | None) -> str:
    """Lowercase, punctuation dropped, spaces collapsed: ``"Kids are talking!"`` == ``"kids are talking"``."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in (text or "").lower())
    return " ".join(kept.split())


def _shared(found: dict[str, set[str]], what: str) -> dict:
    """``{value: splits}`` of the values in more than one split -> a count and examples."""
    shared = sorted((v, sorted(s)) for v, s in found.items() if len(s) > 1)
    examples = [{what: v, "splits": s} for v, s in shared[:LEAK_EXAMPLES]]
    return {"count": len(shared), "examples": examples}


def leakage(dataset_dict, train_split: str = "train") -> dict:
    """Speakers in more than one split, and transcripts (normalised) of ``train_split`` found again in
    a held-out split: an identical sentence in train and test flatters every text branch."""
    speakers: dict[str, set[str]] = defaultdict(set)
    for split, ds in dataset_dict.items():
        if "speaker_id" in ds.column_names:
            for speaker in set(ds["speaker_id"]):
                speakers[speaker].add(split)
    out = {"shared_speakers": _shared(speakers, "speaker"), "shared_transcripts": {}}
    if train_split not in dataset_dict or "transcript" not in dataset_dict[train_split].column_names:
        return out
    seen = {normalise_transcript(t) for t in dataset_dict[train_split]["transcript"]} - {""}
    for split in (s for s in HELD_OUT_SPLITS if s in dataset_dict):
        texts = {normalise_transcript(t) for t in dataset_dict[split]["transcript"]} & seen
        out["shared_transcripts"][split] = _shared({t: {train_split, split} for t in texts}, "transcript")
    return out


def _label_counts(ds, column: str = "emotion") -> dict[str, int]:
    if column not in ds.column_names:
        return {}
    names = getattr(ds.features[column], "names", None)
    if names:
        return dict(zip(names, class_counts(ds, column)))
    return dict(sorted(Counter(str(v) for v in ds[column]).items()))


def dataset_manifest(dataset_dict) -> dict:
    """Per split the clip count, the hashes of :func:`split_hashes` and the label counts; the leaks of
    :func:`leakage`. Leaks are logged as warnings (the splits' own checks decide what is an error)."""
    splits = {
        split: {"num_clips": len(ds), **split_hashes(ds), "label_counts": _label_counts(ds)}
        for split, ds in dataset_dict.items()
    }
    leaks = leakage(dataset_dict)
    if leaks["shared_speakers"]["count"]:
        names = ", ".join(e["speaker"] for e in leaks["shared_speakers"]["examples"])
        logger.warning(
            "%d speakers are in more than one split (e.g. %s): scores are not speaker-independent",
            leaks["shared_speakers"]["count"],
            names,
        )
    for split, shared in leaks["shared_transcripts"].items():
        if shared["count"]:
            logger.warning(
                "%d transcripts of train are also in %s (e.g. %r): a text branch is scored on sentences it "
                "was trained on",
                shared["count"],
                split,
                shared["examples"][0]["transcript"],
            )
    return {"hash": "sha256 of the sorted values, one per line (UTF-8)", "splits": splits, "leakage": leaks}


def read_manifest(dataset_dir: str | os.PathLike) -> dict | None:
    """The ``manifest.json`` of a saved dataset folder, or None when it has none."""
    path = Path(dataset_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def save_dataset_dict(
    dataset_dict, output_dir: str | os.PathLike, card: str | None = None, overwrite: bool = False
) -> Path:
    """``save_to_disk`` into a temporary sibling folder, add the card and ``manifest.json``
    (:func:`dataset_manifest`), then rename into place.

    An existing ``output_dir`` is left untouched unless ``overwrite``; either way a crash never
    leaves a half-written dataset at ``output_dir``.
    """
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        dataset_dict.save_to_disk(str(tmp))
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        manifest = json.dumps(dataset_manifest(dataset_dict), indent=2, ensure_ascii=False)
        (tmp / MANIFEST).write_text(manifest + "\n", encoding="utf-8")
    return Path(output_dir).resolve()


def builder_argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--output_dir", required=True, help="folder to write the DatasetDict to (save_to_disk)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    return parser


__all__ = [
    "MANIFEST",
    "SAMPLING_RATE",
    "builder_argument_parser",
    "check_output_dir",
    "check_speaker_independent",
    "class_counts",
    "dataset_manifest",
    "describe",
    "encode_wav",
    "leakage",
    "normalise_transcript",
    "read_manifest",
    "read_audio",
    "resample",
    "save_dataset_dict",
    "ser_features",
    "sorted_sha256",
    "split_hashes",
]
