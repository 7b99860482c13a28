"""Pitch for the prosody branch: a real pretrained F0 tracker and the quantiser into embedding bins.

- ``track_pitch``: frame-level F0 with swift-f0 (``swift-f0`` on PyPI: a 135 KB ONNX model, MIT,
  16 ms frames, 47-2094 Hz, a calibrated voicing confidence), standing in for the RMVPE tracker of
  the graph-fusion paper; unvoiced frames are 0 Hz. ``benchmarks/pitch_trackers.py`` measures it.
- ``quantize_f0``: Hz -> mel scale -> one of ``num_bins`` equal-width mel bins over
  [``fmin``, ``fmax``] (ids 1..num_bins); unvoiced frames get id 0, padding -1.
- ``measure_prosody``: ten numbers of one clip (``PROSODY_NUMBERS``: F0 level, spreads and movement in
  semitones, voicing and rhythm), what the speech classifier's ``--speaker_prosody`` reads relative to
  the speaker's enrolled reference.
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


PROSODY_NUMBERS = (
    "f0_median",
    "f0_spread_10_90",
    "f0_spread_5_95",
    "f0_iqr",
    "f0_std",
    "f0_mean_change",
    "f0_slope",
    "voiced_share",
    "voiced_stretches_per_s",
    "active_speech_s",
)
MIN_VOICED_FRAMES = 5  # fewer: the F0 numbers are NaN


def active_frames_db(audio: np.ndarray, sampling_rate: int = 16000) -> np.ndarray:
    """Power (dB re full scale) of the 25 ms frames (10 ms hop) that hold speech: within 35 dB of the
    clip's loudest frame and above -60 dBFS. Empty for silence."""
    frame, hop = int(0.025 * sampling_rate), int(0.010 * sampling_rate)
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size < frame:
        return np.zeros(0)
    starts = np.arange(0, audio.size - frame + 1, hop)
    power = np.array([np.mean(audio[s : s + frame] ** 2) for s in starts])
    db = 10.0 * np.log10(np.maximum(power, 1e-12))
    return db[(db > db.max() - 35.0) & (db > -60.0)]


def measure_prosody(audio: np.ndarray, sampling_rate: int = 16000) -> np.ndarray:
    """The ten ``PROSODY_NUMBERS`` of one clip: F0 (swift-f0, in semitones re 55 Hz) median, 10-90 % and
    5-95 % spread, interquartile range, standard deviation, mean frame-to-frame change and slope per
    frame (NaN when fewer than ``MIN_VOICED_FRAMES`` frames are voiced); the voiced share of frames,
    voiced stretches per second of active speech, and seconds of active speech (at least 0.2)."""
    f0 = track_pitch(audio, sampling_rate)
    voiced = f0 > 0
    seconds = max(active_frames_db(audio, sampling_rate).size * 0.010, 0.2)
    pitch = [np.nan] * 7
    if voiced.sum() >= MIN_VOICED_FRAMES:
        semitones = 12.0 * np.log2(f0[voiced] / 55.0)
        p5, p10, p25, p50, p75, p90, p95 = np.percentile(semitones, [5, 10, 25, 50, 75, 90, 95])
        slope = np.polyfit(np.flatnonzero(voiced), semitones, 1)[0]
        pitch = [
            p50,
            p90 - p10,
            p95 - p5,
            p75 - p25,
            semitones.std(),
            np.abs(np.diff(semitones)).mean(),
            slope,
        ]
    stretches = int((np.diff(np.r_[0, voiced.astype(int)]) == 1).sum())
    return np.array([*pitch, voiced.mean(), stretches / seconds, seconds], dtype=np.float64)


def pad_pitch(tracks: list[np.ndarray]) -> np.ndarray:
    """F0 tracks of different lengths -> (B, T) with PADDING (-1)."""
    longest = max((len(t) for t in tracks), default=1)
    out = np.full((len(tracks), max(1, longest)), float(PADDING), dtype=np.float32)
    for i, t in enumerate(tracks):
        out[i, : len(t)] = t
    return out


__all__ = [
    "F0_MAX",
    "F0_MIN",
    "PADDING",
    "PROSODY_NUMBERS",
    "UNVOICED",
    "active_frames_db",
    "hz_to_mel",
    "measure_prosody",
    "pad_pitch",
    "quantize_f0",
    "track_pitch",
]
