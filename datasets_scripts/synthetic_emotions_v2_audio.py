"""How version 2 of the synthetic corpus (:mod:`synthetic_emotions_v2`) presents each clip, whatever its
class: espeak-ng's own silence trimmed, the speech set to a random level, padded with random silence
and laid over a white noise floor, so that neither the silences nor the loudness carry the label."""

from __future__ import annotations

import numpy as np

from .common import SAMPLING_RATE
from .descriptors import active_frames_db

# Post-processing of every clip (independent of the class): speech level (mean power of the active
# frames), leading / trailing silence, white noise floor (RMS).
LEVEL_DBFS = (-38.0, -20.0)
SILENCE_S = (0.05, 1.0)
NOISE_FLOOR_DBFS = (-80.0, -60.0)
PEAK = 0.95


def _speech_span(audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within 40 dB of the loudest frame and 12 dB above
    the noise floor (the quietest 5 % of frames)."""
    hop = int(0.010 * sampling_rate)
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    if frames.size == 0:
        return 0, audio.size
    db = 10.0 * np.log10(np.maximum((frames.astype(np.float64) ** 2).mean(axis=1), 1e-12))
    active = np.flatnonzero(db > max(db.max() - 40.0, np.percentile(db, 5) + 12.0, -70.0))
    if active.size == 0:
        return 0, audio.size
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def speech_level_db(audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> float:
    """Mean power (dBFS) of the frames that hold speech (``descriptors.active_frames_db``)."""
    db = active_frames_db(audio, sampling_rate)
    return float(10.0 * np.log10(np.mean(10.0 ** (db / 10.0)))) if db.size else float("-inf")


def finish_clip(
    speech: np.ndarray,
    level_dbfs: float,
    lead_s: float,
    trail_s: float,
    noise_floor_dbfs: float,
    noise_seed,
    sampling_rate: int = SAMPLING_RATE,
) -> np.ndarray:
    """Trim espeak-ng's own silence, set the speech level (peak at most PEAK), pad with
    ``lead_s`` / ``trail_s`` of silence and add a white noise floor over the whole clip."""
    start, end = _speech_span(speech, sampling_rate)
    speech = speech[start:end].astype(np.float64)
    gain = 10.0 ** ((level_dbfs - speech_level_db(speech, sampling_rate)) / 20.0)
    peak = np.abs(speech).max() * gain
    if peak > PEAK:  # a loud target on a peaky clip: lower it rather than clip
        gain *= PEAK / peak
    lead, trail = round(lead_s * sampling_rate), round(trail_s * sampling_rate)
    clip = np.concatenate([np.zeros(lead), speech * gain, np.zeros(trail)])
    noise = np.random.default_rng(noise_seed).standard_normal(clip.size)
    clip += noise * 10.0 ** (noise_floor_dbfs / 20.0)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


__all__ = ["LEVEL_DBFS", "NOISE_FLOOR_DBFS", "PEAK", "SILENCE_S", "finish_clip", "speech_level_db"]
