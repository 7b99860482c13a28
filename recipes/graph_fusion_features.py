"""What recipes/graph_fusion.py trains on: every split through the model's frozen parts once (speech
encoders, ASR, text encoder, F0), reduced to each branch's summary and cached in
``<output_dir>/features/``; ``batch_of`` turns rows of a cached split back into the model's
``summaries``. Defined beside the recipe: only it uses them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import numpy as np
import torch
from serhub.modeling.file_utils import atomic_write
from serhub.recipes.data import encode_labels
from serhub.recipes.logs import get_logger

if TYPE_CHECKING:
    from serhub.recipes.graph_fusion import GraphFusionArguments

logger = get_logger("graph_fusion")

# the cached summaries besides the log-mel frames and the speech_<i> layer means (the prosody numbers
# and references of --speaker_prosody are measured beside the cache, not in it: speaker_prosody_caches)
CACHE_KEYS = ("text", "text_mask", "f0_histogram", "f0_mask", "prosody_values", "prosody_reference")


def extract_split(model, fe, dataset, source: str, args: GraphFusionArguments, batch_size: int) -> dict:
    """One split through the frozen parts: every branch's summary, on the CPU, as tensors/lists."""
    from tqdm.auto import tqdm

    audio = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    parts: dict[str, list] = {}
    for start in tqdm(range(0, len(audio), batch_size), desc="frozen features", unit="batch"):
        rows = audio[start : start + batch_size]
        clips = [np.asarray(a["array"], dtype=np.float32) for a in rows["audio"]]
        inputs = fe(clips, sampling_rate=16000, return_tensors="pt")
        given = [t or "" for t in rows[args.transcript_column]] if source == "dataset" else None
        with torch.no_grad():
            s = model.summaries(
                inputs["input_features"], inputs["attention_mask"], inputs.get("pitch_hz"),
                inputs.get("input_values"), inputs.get("audio_attention_mask"), given,
            )  # fmt: skip
        lengths = inputs["attention_mask"].sum(-1).tolist()
        parts.setdefault("log_mel", []).extend(
            s["log_mel"][i, : int(n)].half() for i, n in enumerate(lengths)
        )
        for key, value in s.items():
            if key.startswith("speech_") or key in CACHE_KEYS:
                parts.setdefault(key, []).append(value.cpu())
            elif key == "transcripts":
                parts.setdefault(key, []).extend(value)
    out = {k: (torch.cat(v) if k != "log_mel" and k != "transcripts" else v) for k, v in parts.items()}
    out["labels"] = torch.tensor(list(dataset["labels"]))
    return out


def batch_of(cache: dict, index: list[int]) -> dict:
    """Rows of a cached split as the model's ``summaries`` (log-mel frames padded, with a mask)."""
    frames = [cache["log_mel"][i].float() for i in index]
    longest = max(f.shape[0] for f in frames)
    log_mel = torch.zeros(len(frames), longest, frames[0].shape[1])
    mask = torch.zeros(len(frames), longest, dtype=torch.bool)
    for j, f in enumerate(frames):
        log_mel[j, : len(f)] = f
        mask[j, : len(f)] = True
    out = {"log_mel": log_mel, "log_mel_mask": mask}
    for key, value in cache.items():
        if key.startswith("speech_") or key in CACHE_KEYS:
            out[key] = value[index]
    return out


def safe_split_name(split: str) -> str:
    """A split name fit for a file name in the run folder (no separators, no "..")."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", split) or ".." in split:
        raise ValueError(f"split name {split!r}: use letters, digits, '_', '-' and '.' only (e.g. 'test')")
    return split


def frozen_features(base, fe, raw, splits, key, args, label_column, labels, out: Path, batch_size) -> dict:
    """Every split through the frozen parts once; later runs load ``features/<split>-<key>.pt``."""
    caches = {}
    for name, split in splits.items():
        path = out / "features" / f"{safe_split_name(split)}-{key[:16]}.pt"
        if path.is_file():
            # tensors, lists and strings only: a run folder received from elsewhere cannot run code here
            caches[name] = torch.load(path, weights_only=True)
            continue
        logger.info("frozen features of %s (%d clips), once", split, len(raw[split]))
        data = encode_labels(raw[split], label_column, labels)
        source = args.test_transcripts if name == "test" else args.transcripts
        caches[name] = extract_split(base, fe, data, source, args, batch_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp, c=caches[name]: torch.save(c, tmp))
    return caches


def speaker_prosody_caches(
    caches: dict,
    raw,
    splits: dict,
    label_column: str,
    labels,
    speaker_column: str,
    speaker_reference: str = "enrolled",
):
    """Every cached split with its clips' ``prosody_values`` and ``prosody_reference`` (each speaker's
    first clips of the split, neutral first, or with ``speaker_reference`` "own_clips" the mean over their own
    clips: ``recipes.speaker_prosody``); returns the training
    split's statistics for the model's prosody node."""
    from serhub.recipes.speaker_prosody import speaker_prosody_arrays

    sources = {
        name: encode_labels(raw[split], label_column, labels).cast_column(
            "audio", datasets.Audio(sampling_rate=16000)
        )
        for name, split in splits.items()
    }
    measured, references, statistics = speaker_prosody_arrays(
        sources, speaker_column, labels, "train", speaker_reference
    )
    for name in caches:
        caches[name]["prosody_values"] = torch.tensor(measured[name], dtype=torch.float32)
        caches[name]["prosody_reference"] = torch.tensor(references[name], dtype=torch.float32)
    return statistics


__all__ = [
    "CACHE_KEYS",
    "batch_of",
    "extract_split",
    "frozen_features",
    "safe_split_name",
    "speaker_prosody_caches",
]
