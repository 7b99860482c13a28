"""Pitch for the prosody branch: a real pretrained F0 tracker and the quantiser into embedding bins.

- ``track_pitch``: frame-level F0 with swift-f0 (``swift-f0`` on PyPI: a 135 KB ONNX model, MIT,
  16 ms frames, 47-2094 Hz, a calibrated voicing confidence), standing in for the RMVPE tracker of
  the graph-fusion paper; unvoiced frames are 0 Hz. ``benchmarks/pitch_trackers.py`` measures it.
- ``quantize_f0``: Hz -> mel scale -> one of ``num_bins`` equal-width mel bins over
  [``fmin``, ``fmax``] (ids 1..num_bins); unvoiced frames get id 0, padding -1.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

F0_MIN, F0_MAX = 50.0, 1100.0  # Hz: the range the bins span (speech and singing-like excursions)
UNVOICED, PADDING = 0, -1
VOICED_CONFIDENCE = 0.5  # swift-f0's calibrated voicing threshold


def hz_to_mel(hz):
    """O'Shaughnessy's mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * (
        torch.log10(1.0 + hz / 700.0) if torch.is_tensor(hz) else np.log10(1.0 + np.asarray(hz) / 700.0)
    )


def quantize_f0(
    f0_hz: torch.Tensor, num_bins: int = 256, fmin: float = F0_MIN, fmax: float = F0_MAX
) -> torch.Tensor:
    """(..., T) F0 in Hz (0: unvoiced, < 0: padding) -> (..., T) bin ids: 1..num_bins for voiced
    frames (equal steps of mel between fmin and fmax, clamped at the ends), 0 unvoiced, -1 padding."""
    f0 = f0_hz.float()
    lo, hi = float(hz_to_mel(fmin)), float(hz_to_mel(fmax))
    position = (hz_to_mel(f0.clamp_min(0.0)) - lo) / (hi - lo)  # 0..1 inside the range
    ids = (position * num_bins).floor().long().clamp(0, num_bins - 1) + 1
    ids = torch.where(f0 > 0, ids, torch.full_like(ids, UNVOICED))
    return torch.where(f0 < 0, torch.full_like(ids, PADDING), ids)


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        from swift_f0 import SwiftF0
    except ImportError as error:  # pragma: no cover - installed by setup.sh
        raise ImportError(
            "the prosody branch needs swift-f0: pip install swift-f0==0.3.0 (and onnxruntime)"
        ) from error
    return SwiftF0(threads=1)


def track_pitch(audio: np.ndarray, sampling_rate: int = 16000) -> np.ndarray:
    """Frame-level F0 (Hz, 0 where unvoiced) of a mono clip, every 16 ms; an empty or very short clip
    gives at least one (unvoiced) frame, never NaN."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size < 256 or not np.isfinite(audio).all():
        return np.zeros(max(1, math.ceil(audio.size / 256)), dtype=np.float32)
    result = _detector().detect(audio, sampling_rate)
    f0 = np.where(result.confidence >= VOICED_CONFIDENCE, result.pitch_hz, 0.0)
    return np.nan_to_num(f0, nan=0.0).astype(np.float32)


def pad_pitch(tracks: list[np.ndarray]) -> np.ndarray:
    """F0 tracks of different lengths -> (B, T) with PADDING (-1)."""
    longest = max((len(t) for t in tracks), default=1)
    out = np.full((len(tracks), max(1, longest)), float(PADDING), dtype=np.float32)
    for i, t in enumerate(tracks):
        out[i, : len(t)] = t
    return out


__all__ = ["F0_MAX", "F0_MIN", "PADDING", "UNVOICED", "hz_to_mel", "pad_pitch", "quantize_f0", "track_pitch"]
