"""The segments ``serhub timeline`` classifies (:mod:`serhub.timeline`): speech regions from Silero VAD
over a decoded stream (pass 1), fixed windows instead with ``--vad none``, and each region's samples
from a second pass over the stream; and the checks of the numeric arguments."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

import numpy as np

from serhub.audio_io import SAMPLING_RATE, duration, stream_audio

VAD_FRAME = 512  # samples per Silero VAD frame at 16 kHz
# seconds of context kept on each side of a speech segment (neighbours closer than twice this share the
# gap); Silero's own default. A wider pad was measured (benchmarks/timeline_eval.py --pad; README: the
# timeline) and helped one model on one set only.
DEFAULT_PAD = 0.03


def speech_regions(
    path,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.3,
    max_segment: float = 10.0,
    progress: bool = True,
    pad: float = DEFAULT_PAD,
):
    """(start, end) sample ranges of speech, from Silero VAD's per-frame probabilities (pass 1);
    ``pad`` seconds of context on each side."""
    check_arguments(min_speech=min_speech, max_segment=max_segment, pad=pad)
    import torch
    from silero_vad import get_speech_timestamps_from_probs, load_silero_vad
    from tqdm.auto import tqdm

    model = load_silero_vad()
    probs, total, rest = [], 0, np.zeros(0, dtype=np.float32)
    seconds = duration(path)
    bar = tqdm(
        total=round(seconds) if seconds else None, desc="finding speech", unit="s", disable=not progress
    )
    with torch.no_grad():
        for block in stream_audio(path):
            bar.update(round(len(block) / SAMPLING_RATE))
            total += len(block)
            rest = np.concatenate([rest, block])
            usable = len(rest) - len(rest) % VAD_FRAME
            for start in range(0, usable, VAD_FRAME):
                probs.append(
                    float(model(torch.from_numpy(rest[start : start + VAD_FRAME].copy()), SAMPLING_RATE))
                )
            rest = rest[usable:]
    bar.close()
    if not probs:
        return [], total
    stamps = get_speech_timestamps_from_probs(
        probs,
        SAMPLING_RATE,
        threshold=threshold,
        min_speech_duration_ms=int(min_speech * 1000),
        min_silence_duration_ms=int(min_silence * 1000),
        max_speech_duration_s=max_segment,
        speech_pad_ms=int(pad * 1000),
        audio_length_samples=total,
    )
    return [(s["start"], min(s["end"], total)) for s in stamps], total


def fixed_windows(total: int, window: float, hop: float) -> list[tuple[int, int]]:
    w, h = int(window * SAMPLING_RATE), int(hop * SAMPLING_RATE)
    if total <= 0:
        return []
    starts = range(0, max(total - w, 0) + 1, h)
    windows = [(s, min(s + w, total)) for s in starts]
    if windows[-1][1] < total:  # the tail
        windows.append((max(total - w, 0), total))
    return windows


def segment_audio(path, regions: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """The samples of each region in order, from a second pass over the stream."""
    buffer, offset, i = np.zeros(0, dtype=np.float32), 0, 0
    for block in stream_audio(path):
        buffer = np.concatenate([buffer, block])
        while i < len(regions) and regions[i][1] <= offset + len(buffer):
            start, end = regions[i]
            yield buffer[start - offset : end - offset].copy()
            i += 1
        # drop what no region still needs, but never past the buffer's end: the samples between it and
        # a region starting later are still to come in the next blocks
        keep_from = (regions[i][0] if i < len(regions) else offset + len(buffer)) - offset
        keep_from = min(max(keep_from, 0), len(buffer))
        buffer, offset = buffer[keep_from:], offset + keep_from
    while i < len(regions):  # regions reaching the end of the stream
        start, end = regions[i]
        yield buffer[start - offset : end - offset].copy()
        i += 1


# what each numeric argument must be: (test, the rule as the error states it, a sensible value)
_ARGUMENT_RULES = {
    "window": (lambda x: x > 0, "a number of seconds > 0", 3.0),
    "hop": (lambda x: x > 0, "a number of seconds > 0", 3.0),
    "min_speech": (lambda x: x >= 0, "a number of seconds >= 0", 0.25),
    "max_segment": (lambda x: x > 0, "a number of seconds > 0", 10.0),
    "pad": (
        lambda x: x >= 0,
        "a number of seconds >= 0 (a negative pad would cut segments to nothing)",
        DEFAULT_PAD,
    ),
    "smoothing": (
        lambda x: isinstance(x, numbers.Integral) and x >= 1,
        "an integer >= 1 (1: no smoothing)",
        1,
    ),
    "batch_size": (lambda x: isinstance(x, numbers.Integral) and x >= 1, "an integer >= 1", 8),
}


def check_arguments(**values) -> None:
    """A ``ValueError`` naming the first of ``window``, ``hop``, ``min_speech``, ``max_segment``, ``pad``,
    ``smoothing``, ``batch_size`` given that makes no sense (negative, zero where it must not be, NaN)."""
    for name, value in values.items():
        test, rule, example = _ARGUMENT_RULES[name]
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (ok and test(value)):
            raise ValueError(
                f"--{name} must be {rule}, got {value!r}; e.g. --{name} {example} (the default)."
            )


__all__ = ["VAD_FRAME", "check_arguments", "fixed_windows", "segment_audio", "speech_regions"]
