"""Reading a raw corpus: its layout, label files (CSV, any encoding), and its audio decoded to
16 kHz mono (video containers through ffmpeg) in threads, with a cache keyed by the files."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serhub.modeling.file_utils import ffmpeg_input

from .common import (
    SAMPLING_RATE,
    encode_wav,
    read_audio,
)
from .corpus_problems import MALFORMED, WRONG_LAYOUT, CorpusError, Problem, ProblemLog

# The shared label sets are nested prefixes of one list: "4" is the classic IEMOCAP set, "6" is
# the set CREMA-D and EmoSPeech define (Ekman's basic emotions without surprise, plus neutral),
# "8" is MSP-Podcast's challenge set.


FFMPEG_SUFFIXES = frozenset({".mp4", ".m4a", ".mkv", ".mov", ".avi", ".webm", ".aac"})


FFMPEG_HINT = (
    "ffmpeg was not found on PATH; it decodes the audio of video files (.mp4). Install it with "
    "`sudo apt-get install ffmpeg` (./setup.sh does this), or convert the files to .wav first."
)


_AUDIO_CACHE_VERSION = "serhub-corpus-audio-v1"  # bump when decoding changes, to invalidate caches


def find_path(root: Path, patterns: str | tuple[str, ...]) -> Path | None:
    """The first path under ``root`` matching a glob pattern (or the first of several that does)."""
    for pattern in (patterns,) if isinstance(patterns, str) else patterns:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def check_layout(
    corpus: str, raw_dir: str | Path, expected: Mapping[str | tuple[str, ...], str], hint: str
) -> Path:
    """``raw_dir`` as a Path when every ``expected`` entry exists, else a :class:`CorpusError`.

    ``expected`` maps a relative path or glob pattern (or a tuple of alternatives) to a description.
    The error lists every missing entry, what the folder holds, and a neighbouring folder (a
    subfolder or the parent) that has the layout, since a wrong --raw_dir is usually one level off.
    """
    raw = Path(raw_dir).expanduser().resolve()

    def missing_in(root: Path) -> list:
        return [entry for entry in expected if find_path(root, entry) is None]

    if not raw.is_dir():
        problems = [Problem(WRONG_LAYOUT, str(raw), "does not exist or is not a folder")]
        fix = hint
    else:
        missing = missing_in(raw)
        if not missing:
            return raw
        problems = [
            Problem(WRONG_LAYOUT, " or ".join((e,) if isinstance(e, str) else e), f"not found: {expected[e]}")
            for e in missing
        ]
        listing = sorted(p.name + ("/" if p.is_dir() else "") for p in raw.iterdir())
        found = ", ".join(listing[:20]) + (f", ... ({len(listing)} entries)" if len(listing) > 20 else "")
        fix = f"Found in {raw}: {found or 'nothing'}.\n{hint}"
        candidates = [p for p in sorted(raw.iterdir()) if p.is_dir()] + [raw.parent]
        fitting = [p for p in candidates if not missing_in(p)]
        if fitting:
            fix += f"\nDid you mean --raw_dir {fitting[0]}? It has the expected layout."
    raise CorpusError(corpus, raw, problems, fix)


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252; C1 control characters that are really
    Windows-1252 punctuation (``\\x92`` for an apostrophe, as in MELD's CSVs) are repaired."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return "".join(
        bytes([ord(ch)]).decode("cp1252", errors="ignore") if 0x80 <= ord(ch) <= 0x9F else ch for ch in text
    )


def read_csv(path: Path, required: Sequence[str], log: ProblemLog) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for each row of a CSV file with a header; missing columns are fatal."""
    reader = csv.DictReader(io.StringIO(decode_text(path.read_bytes()), newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in required if c not in columns]
    if missing:
        log.add(
            WRONG_LAYOUT,
            log.where(path),
            f"expected the columns {', '.join(required)}; missing {', '.join(missing)} (found: {', '.join(columns) or 'no header'})",
        )
        return []
    reader.fieldnames = columns
    rows = []
    for row in reader:
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}))
    return rows


def parse_float(text: str, column: str, where: str, log: ProblemLog, utterance_id: str) -> float | None:
    """A float cell; empty is None (not annotated), anything else unparsable is a problem."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        log.add(MALFORMED, where, f"{column} should be a number, found {text!r}", utterance_id)
        return None


def clean_text(text: str) -> str:
    return " ".join(text.split())


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is truncated, or None. libsndfile reads a truncated WAV without
    complaint (returning the samples that are there), so the header's data size is checked."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None  # not a plain WAV (or too short to be one): libsndfile will judge it
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                available = size - f.tell()
                streamed = length in (0, 0xFFFFFFFF)  # written to a pipe: the size was never filled in
                if not streamed and available < length:
                    return f"its data chunk declares {length} bytes but the file holds only {available}"
                return None
            f.seek(length + (length & 1), 1)


def _ffmpeg_decode(path: Path):
    binary = shutil.which("ffmpeg")
    if binary is None:
        raise FileNotFoundError(FFMPEG_HINT)
    with tempfile.TemporaryDirectory(prefix="serhub-ffmpeg-") as tmp:
        wav = Path(tmp) / "audio.wav"
        command = [binary, "-nostdin", "-v", "error", *ffmpeg_input(path), "-map", "0:a:0", "-vn"]
        result = subprocess.run([*command, "-c:a", "pcm_f32le", str(wav)], capture_output=True, check=False)
        if result.returncode != 0 or not wav.is_file():
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise ValueError(
                f"ffmpeg could not decode the audio of {path}: {message[-1] if message else 'no output'}. "
                "Check that the file is complete (re-download it)."
            )
        try:
            return read_audio(wav)  # mixed down and resampled like every other file
        except ValueError as err:
            raise ValueError(f"{path}: the decoded audio is unusable ({err})") from err


def load_audio(path: str | Path):
    """Mono float32 at 16 kHz from a sound file (libsndfile: WAV, FLAC, MP3, ...) or a video/AAC
    container (ffmpeg). ``ValueError`` naming the file when it is unreadable, empty or truncated."""
    path = Path(path)
    if path.suffix.lower() in FFMPEG_SUFFIXES:
        return _ffmpeg_decode(path)
    with open(path, "rb") as f:
        if f.read(24).startswith(b"version https://git-lfs"):
            raise ValueError(
                f"{path} is a Git LFS pointer, not audio; run `git lfs pull` in the cloned repository."
            )
    reason = wav_truncation(path) if path.suffix.lower() == ".wav" else None
    if reason:
        raise ValueError(f"audio file {path} is truncated: {reason}. Re-download or re-extract it.")
    return read_audio(path)


def _encode(path: str) -> tuple[bytes | None, str]:
    try:
        return encode_wav(load_audio(path)), ""
    except (ValueError, OSError) as err:  # OSError: e.g. no permission to read the file
        return None, str(err)


def _generate_audio(paths: list[str], names: list[str], num_workers: int, chunk: int = 64):
    # Threads suffice: libsndfile, torch's resampler and ffmpeg (a subprocess) release the GIL.
    # Chunks bound how many decoded clips wait in memory for the Arrow writer.
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        for start in range(0, len(paths), chunk):
            results = pool.map(_encode, paths[start : start + chunk])
            for name, (data, problem) in zip(names[start : start + chunk], results):
                yield {"audio": None if data is None else {"bytes": data, "path": name}, "_problem": problem}


def _audio_features():
    import datasets

    return datasets.Features(
        {"audio": datasets.Audio(sampling_rate=SAMPLING_RATE), "_problem": datasets.Value("string")}
    )


def decode_audio_table(paths: Sequence[Path], names: Sequence[str], split: str, num_workers: int, cache_dir):
    """A Dataset of ``audio`` (16 kHz WAV bytes, None when unreadable) and ``_problem`` (why)."""
    import datasets

    if not paths:
        return datasets.Dataset.from_dict({"audio": [], "_problem": []}, features=_audio_features())
    digest = hashlib.sha256(f"{_AUDIO_CACHE_VERSION}|{SAMPLING_RATE}".encode())
    for path, name in zip(paths, names):
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{name}\n".encode())
    return datasets.Dataset.from_generator(
        _generate_audio,
        features=_audio_features(),
        gen_kwargs={"paths": [str(p) for p in paths], "names": list(names), "num_workers": num_workers},
        cache_dir=cache_dir,
        fingerprint=digest.hexdigest()[:32],
        split=datasets.NamedSplit(split),
    )
