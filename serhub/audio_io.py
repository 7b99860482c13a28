"""Decoding audio for serhub's tools: any file ffmpeg reads (audio or video, any length) as a stream of
16 kHz mono blocks, read as a local file and nothing else (``file_utils.ffmpeg_input``), with the
durations it declares and decodes so that a truncated file is reported rather than silently cut."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from serhub.modeling.file_utils import ffmpeg_input

SAMPLING_RATE = 16000
BLOCK_SECONDS = 30.0
# decoded audio this much shorter than declared is reported as truncated; encoder delay/padding and
# container rounding (mp3, AAC: tens of milliseconds) stay well under it
TRUNCATION_TOLERANCE = 0.5


def stream_audio(path: str | Path, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """16 kHz mono float32 blocks of any file ffmpeg decodes (audio or video), never all at once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file")
    if shutil.which("ffmpeg") is None:
        raise FileNotFoundError("ffmpeg is needed to decode audio and video files: apt-get install ffmpeg")
    command = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        *ffmpeg_input(path),
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLING_RATE),
    ]
    # stderr goes to a file: a damaged file can make ffmpeg write more errors than a pipe holds, and
    # ffmpeg would then block on them while this reader waits for samples
    errors = tempfile.TemporaryFile()
    process = subprocess.Popen([*command, "-f", "f32le", "-"], stdout=subprocess.PIPE, stderr=errors)
    size = int(block_seconds * SAMPLING_RATE) * 4
    finished = False
    try:
        while True:
            data = process.stdout.read(size)
            if not data:
                break
            yield np.frombuffer(data[: len(data) - len(data) % 4], dtype=np.float32)
        finished = True
    finally:
        if not finished:  # the reader stopped early (or failed): stop ffmpeg, it has nothing to report
            process.kill()
        process.stdout.close()
        code = process.wait()
        errors.seek(0)
        error = errors.read().decode(errors="replace").strip()
        errors.close()
        if finished and code != 0:
            raise ValueError(f"ffmpeg cannot decode {path}: {error or f'exit code {code}'}")
        if finished and error:  # decoded, but not all of it cleanly: the audio may be incomplete
            lines = error.splitlines()
            shown = "; ".join(lines[:3]) + (f" (+{len(lines) - 3} more lines)" if len(lines) > 3 else "")
            warnings.warn(
                f"ffmpeg reported errors decoding {path}, so its audio may be incomplete or damaged: {shown}",
                stacklevel=2,
            )


def duration(path) -> float | None:
    """The file's duration in seconds as ffprobe reads it (None if it cannot tell)."""
    try:
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                *ffmpeg_input(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return float(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def declared_duration(path) -> float | None:
    """The audio's duration as the file declares it: a WAV header's data size, else the audio stream's
    (or container's) duration as ffprobe reads it. None when the file does not say (a streamed WAV, or
    a duration ffprobe only estimates from the file size, which cutting the file shrinks as well)."""
    seconds = _wav_header_duration(path)
    if seconds is not None:
        return seconds
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "warning", "-select_streams", "a:0", "-show_entries",
             "stream=duration:format=duration", "-of", "json", *ffmpeg_input(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        info = json.loads(out.stdout or "{}")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if "Estimating duration from bitrate" in out.stderr:
        return None
    for value in [s.get("duration") for s in info.get("streams", [])] + [
        info.get("format", {}).get("duration")
    ]:
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _wav_header_duration(path) -> float | None:
    """data chunk size / byte rate from a RIFF WAVE header (None: not a WAV, or no size given)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:] != b"WAVE":
                return None
            order, byte_rate = ("<" if head[:4] == b"RIFF" else ">"), None
            while len(chunk := f.read(8)) == 8:
                name, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                if name == b"data":  # 0 or 0xFFFFFFFF: written as a stream, size unknown
                    return size / byte_rate if byte_rate and size not in (0, 0xFFFFFFFF) else None
                if name == b"fmt ":  # format, channels, sample rate, byte rate, ...
                    body = f.read(size)
                    byte_rate = struct.unpack(order + "I", body[8:12])[0] if len(body) >= 12 else None
                else:
                    f.seek(size, os.SEEK_CUR)
                f.seek(size % 2, os.SEEK_CUR)  # chunks are padded to an even size
    except OSError:
        return None
    return None


def audio_durations(path, decoded_samples: int) -> dict:
    """``{"declared_duration": s | None, "decoded_duration": s}`` of ``path``; warns (and adds a
    ``"warning"``) when the decoded audio is shorter than the file declares: it is truncated or damaged."""
    decoded, declared = decoded_samples / SAMPLING_RATE, declared_duration(path)
    record = {"declared_duration": None if declared is None else round(declared, 3)}
    record["decoded_duration"] = round(decoded, 3)
    if declared is not None and declared - decoded > TRUNCATION_TOLERANCE:
        record["warning"] = (
            f"{path} declares {declared:.2f} s of audio, but only {decoded:.2f} s could be decoded: the file "
            "is truncated or damaged, and the timeline covers only the decoded part. Copy or download it again."
        )
        warnings.warn(record["warning"], stacklevel=2)
    return record


__all__ = [
    "SAMPLING_RATE",
    "audio_durations",
    "declared_duration",
    "duration",
    "stream_audio",
]
