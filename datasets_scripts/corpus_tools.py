"""Shared machinery of the real-corpus builders (msp_podcast, iemocap, meld, emospeech, ravdess, crema_d).

A builder only knows its corpus: which files it expects (:func:`check_layout`) and how to turn
them into :class:`Utterance` records, recording every problem in a :class:`ProblemLog` instead of
stopping at the first. :func:`assemble` does the rest, the same way for every corpus:

1. decodes the corpus' label codes (an unknown code is a problem), leaves out the labels a corpus
   excludes by default and, with ``label_set`` 4/6/8, maps them to :data:`SHARED_EMOTIONS`;
2. finds duplicate utterance ids and missing audio files;
3. decodes every audio file to 16 kHz mono in threads (video containers through ffmpeg), finding
   unreadable and truncated ones; the Arrow data is cached under the files' names, sizes and
   modification times, so a re-run after fixing a label file does not decode the audio again;
4. raises one :class:`CorpusError` listing every problem, or with ``skip_bad`` leaves the affected
   utterances out and keeps the list for the dataset card;
5. returns a :class:`BuildResult`: the DatasetDict, what was left out and why, and the card.

:func:`corpus_argument_parser` and :func:`run_cli` give every builder the same command line.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    SAMPLING_RATE,
    builder_argument_parser,
    check_output_dir,
    check_speaker_independent,
    describe,
    encode_wav,
    read_audio,
    save_dataset_dict,
    ser_features,
)

# The shared label sets are nested prefixes of one list: "4" is the classic IEMOCAP set, "6" is
# the set CREMA-D and EmoSPeech define (Ekman's basic emotions without surprise, plus neutral),
# "8" is MSP-Podcast's challenge set.
SHARED_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise", "contempt")
LABEL_SETS = {"4": SHARED_EMOTIONS[:4], "6": SHARED_EMOTIONS[:6], "8": SHARED_EMOTIONS}
LABEL_SET_CHOICES = ("native", *LABEL_SETS)

# Kinds of problem. WRONG_LAYOUT is fatal: --skip_bad cannot build around a missing label file.
WRONG_LAYOUT = "wrong --raw_dir or file format"
MISSING_FILE = "missing file"
UNREADABLE_AUDIO = "unreadable or truncated audio"
UNKNOWN_LABEL = "unknown label"
DUPLICATE_ID = "duplicate utterance id"
MALFORMED = "malformed entry"

SKIP_HINT = (
    "Fix these files (each line says what was expected), or pass --skip_bad (build(..., skip_bad=True)) "
    "to leave the affected utterances out; the dataset card then lists them."
)
FFMPEG_SUFFIXES = frozenset({".mp4", ".m4a", ".mkv", ".mov", ".avi", ".webm", ".aac"})
FFMPEG_HINT = (
    "ffmpeg was not found on PATH; it decodes the audio of video files (.mp4). Install it with "
    "`sudo apt-get install ffmpeg` (./setup.sh does this), or convert the files to .wav first."
)
SPLIT_ORDER = ("train", "validation", "test", "test1", "test2", "test3")
_AUDIO_CACHE_VERSION = "serhub-corpus-audio-v1"  # bump when decoding changes, to invalidate caches


# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    kind: str
    where: str  # a file relative to --raw_dir, with a line number where it helps
    detail: str
    utterance_ids: tuple[str, ...] = ()  # the utterances it makes unusable (left out with skip_bad)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


def format_problems(problems: Iterable[Problem], indent: str = "  ") -> str:
    """Problems grouped by kind, one ``- file: detail`` line each."""
    by_kind: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        by_kind[problem.kind].append(problem)
    lines = []
    for kind, items in by_kind.items():
        lines.append(f"{indent}{kind} ({len(items)}):")
        lines.extend(f"{indent}  - {p}" for p in items)
    return "\n".join(lines)


class CorpusError(ValueError):
    """Every problem found in a raw corpus folder, raised at once; nothing was written."""

    def __init__(self, corpus: str, raw_dir: str | Path, problems: Sequence[Problem], fix: str):
        self.problems = list(problems)
        super().__init__(
            f"{corpus}: {len(self.problems)} problem(s) in {raw_dir}; nothing was written.\n"
            f"{format_problems(self.problems)}\n{fix}"
        )


class ProblemLog:
    """Collects what a build finds: problems (with files), exclusions by design, and notes."""

    def __init__(self, corpus: str, raw_dir: Path):
        self.corpus = corpus
        self.raw_dir = raw_dir
        self.problems: list[Problem] = []
        self.excluded: Counter[str] = Counter()
        self.notes: list[str] = []

    def where(self, path: str | Path, line: int | None = None) -> str:
        """``path`` relative to the raw folder (as users see it in their download), with the line."""
        path = Path(path)
        try:
            name = path.relative_to(self.raw_dir).as_posix()
        except ValueError:
            name = str(path)
        return f"{name} line {line}" if line is not None else name

    def add(self, kind: str, where: str, detail: str, utterance_ids: str | Iterable[str] = ()) -> None:
        ids = (utterance_ids,) if isinstance(utterance_ids, str) else tuple(utterance_ids)
        self.problems.append(Problem(kind, where, detail, ids))

    def exclude(self, reason: str, count: int = 1) -> None:
        """Leave utterances out by design (not a problem), counted for the card."""
        self.excluded[reason] += count

    def note(self, text: str, warn: bool = False) -> None:
        self.notes.append(text)
        if warn:
            warnings.warn(f"{self.corpus}: {text}", UserWarning, stacklevel=3)

    def bad_ids(self) -> set[str]:
        return {uid for problem in self.problems for uid in problem.utterance_ids}

    def raise_if_needed(self, skip_bad: bool) -> None:
        fatal = any(p.kind == WRONG_LAYOUT for p in self.problems)
        if fatal or (self.problems and not skip_bad):
            fix = (
                "The files above are not in the format the distributor ships; check --raw_dir."
                if fatal
                else SKIP_HINT
            )
            raise CorpusError(self.corpus, self.raw_dir, self.problems, fix)


# ----------------------------------------------------------------------------- layout and files


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


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# ----------------------------------------------------------------------------- audio


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
        command = [binary, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn"]
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


# ----------------------------------------------------------------------------- corpus description


UNKNOWN_SPEAKER = "unknown-"


def unknown_speaker(utterance_id: str) -> str:
    """The speaker id of an utterance whose speaker the corpus does not name: one per utterance, so
    that it never counts as a leak, and recognisable so that the build can warn about it."""
    return f"{UNKNOWN_SPEAKER}{utterance_id}"


@dataclass
class Utterance:
    utterance_id: str
    split: str | None
    audio: Path
    label: str | None  # the label code as written in the corpus' files; None = not annotated
    speaker_id: str
    source: str  # where it is listed, for messages: "Labels/labels_consensus.csv line 7"
    transcript: str = ""
    gender: str | None = None
    arousal: float | None = None
    valence: float | None = None
    dominance: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CorpusSpec:
    """What the shared pipeline and the dataset card need to know about a corpus."""

    name: str
    module: str  # datasets_scripts.<module>
    labels: Mapping[str, str]  # label code in the files -> class name, in the corpus' own order
    to_shared: Mapping[str, str]  # class name -> SHARED_EMOTIONS name; absent: no counterpart
    language: str
    optional_columns: tuple[str, ...]  # of common.ser_features, besides "language"
    license: str  # Hub licence id
    license_note: str
    citation: str
    about: str  # the corpus and how the builder reads it (markdown)
    layout_hint: str  # what --raw_dir should contain, for error messages and --help
    speaker_splits: str = "ours"  # "ours" (checked, a leak is a bug), "official" (leaks noted), "none"
    excluded_by_default: tuple[str, ...] = ()
    # corpus-specific columns: a Value dtype ("string", "int32") or a tuple of class names (ClassLabel)
    extra_features: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.to_shared.values()) - set(SHARED_EMOTIONS)
        if unknown or set(self.to_shared) - set(self.labels.values()):
            raise ValueError(f"{self.name}: bad to_shared mapping {dict(self.to_shared)}")


# ----------------------------------------------------------------------------- the pipeline


@dataclass
class BuildResult:
    spec: CorpusSpec
    dataset_dict: Any
    label_set: str
    excluded: Counter
    skipped: list[Problem]
    notes: list[str]
    options: dict[str, Any]

    def summary(self) -> str:
        lines = [describe(self.dataset_dict)]
        lines += [
            f"left out by design: {plural(n, 'utterance')} {reason}" for reason, n in self.excluded.items()
        ]
        if self.skipped:
            lines.append(
                f"skipped (--skip_bad): {len(self.skipped)} problem(s)\n{format_problems(self.skipped)}"
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def card(self) -> str:
        return render_card(self)


def _sorted_splits(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))


@dataclass
class _Row:
    utterance: Utterance
    emotion: int  # into the class names of the build; -1: ClassLabel's "no label"
    native: int  # into the corpus' own kept classes
    has_audio: bool


@dataclass
class _Labels:
    """The classes of a build, and how an utterance's label code becomes one of them."""

    spec: CorpusSpec
    label_set: str
    keep_all_labels: bool
    to_shared: Mapping[str, str]
    native: list[str] = field(init=False)  # the corpus' classes kept by this build
    names: list[str] = field(init=False)  # the classes of ``emotion``

    def __post_init__(self):
        if self.label_set not in LABEL_SET_CHOICES:
            raise ValueError(
                f"label_set must be one of {', '.join(LABEL_SET_CHOICES)}, got {self.label_set!r}"
            )
        excluded = () if self.keep_all_labels else self.spec.excluded_by_default
        self.native = [n for n in self.spec.labels.values() if n not in excluded]
        self.names = self.native if self.label_set == "native" else list(LABEL_SETS[self.label_set])

    def encode(self, u: Utterance, log: ProblemLog) -> tuple[int, int] | None:
        """``(emotion, native)`` ids, (-1, -1) when unlabelled or unknown (a problem), None when left out."""
        if u.label is None:
            return -1, -1
        name = self.spec.labels.get(u.label)
        if name is None:
            codes = ", ".join(self.spec.labels)
            log.add(
                UNKNOWN_LABEL,
                u.source,
                f"label {u.label!r} is unknown to {self.spec.name}; expected one of {codes}",
                u.utterance_id,
            )
            return -1, -1
        if name not in self.native:
            log.exclude(f"labelled {name} (left out by default; --keep_all_labels keeps them)")
            return None
        target = name if self.label_set == "native" else self.to_shared.get(name)
        if target not in self.names:
            log.exclude(f"labelled {name} (no counterpart in the {self.label_set}-class set)")
            return None
        return self.names.index(target), self.native.index(name)

    def features(self):
        import datasets

        features = ser_features(self.names, optional=(*self.spec.optional_columns, "language"))
        if self.label_set != "native":
            features["native_emotion"] = datasets.ClassLabel(names=self.native)
        for column, kind in self.spec.extra_features.items():
            features[column] = (
                datasets.Value(kind) if isinstance(kind, str) else datasets.ClassLabel(names=list(kind))
            )
        return features


def _check_duplicates(utterances: Sequence[Utterance], log: ProblemLog) -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for u in utterances:
        places[u.utterance_id].append(u.source)
    for uid, where in places.items():
        if len(where) > 1:
            log.add(
                DUPLICATE_ID,
                where[0],
                f"utterance id {uid!r} appears {len(where)} times: {'; '.join(where)}",
                uid,
            )


def _decode(rows: list[_Row], split: str, log: ProblemLog, num_workers: int, cache_dir):
    """The audio table of the rows whose file exists; unreadable files become problems."""
    present = [r for r in rows if r.has_audio]
    table = decode_audio_table(
        [r.utterance.audio for r in present],
        [f"{r.utterance.utterance_id.replace('/', '__')}.wav" for r in present],
        split,
        num_workers,
        cache_dir,
    )
    for r, problem in zip(present, table["_problem"]):
        if problem:
            where = log.where(r.utterance.audio)
            log.add(
                UNREADABLE_AUDIO,
                where,
                problem.replace(str(r.utterance.audio), where),
                r.utterance.utterance_id,
            )
    return table.remove_columns("_problem")


def _make_split(spec: CorpusSpec, rows: list[_Row], audio, features, bad: set[str]):
    """The split's Dataset: its decoded audio beside the metadata of its good rows (None if none)."""
    import datasets

    present = [r for r in rows if r.has_audio]
    keep = [i for i, r in enumerate(present) if r.utterance.utterance_id not in bad]
    if not keep:
        return None  # only bad utterances (left out with skip_bad): no empty split
    good = [present[i].utterance for i in keep]
    columns: dict[str, list] = {
        "emotion": [present[i].emotion for i in keep],
        "transcript": [u.transcript for u in good],
        "speaker_id": [u.speaker_id for u in good],
        "utterance_id": [u.utterance_id for u in good],
    }
    for column in spec.optional_columns:
        columns[column] = [getattr(u, column) for u in good]
    columns["language"] = [spec.language] * len(good)
    if "native_emotion" in features:
        columns["native_emotion"] = [present[i].native for i in keep]
    for column in spec.extra_features:
        columns[column] = [u.extra.get(column) for u in good]
    meta = datasets.Dataset.from_dict(columns, features=datasets.Features({k: features[k] for k in columns}))
    audio = audio if len(keep) == len(present) else audio.select(keep)
    return datasets.concatenate_datasets([audio, meta], axis=1)


def _note_unchecked(dataset_dict, spec: CorpusSpec, log: ProblemLog) -> None:
    """Notes on unlabelled rows and unknown speakers; the speaker-independence check of the splits."""
    for split, ds in dataset_dict.items():
        unlabelled = sum(e == -1 for e in ds["emotion"])
        if unlabelled:
            log.note(
                f"{plural(unlabelled, 'utterance')} of {split} have no label (emotion = -1, ClassLabel's 'missing')"
            )
    unknown = sum(s.startswith(UNKNOWN_SPEAKER) for ds in dataset_dict.values() for s in ds["speaker_id"])
    if unknown:
        log.note(
            f"{plural(unknown, 'utterance')} without a speaker id in the corpus got one each "
            f"({UNKNOWN_SPEAKER}<utterance>), so speaker independence cannot be checked for them",
            warn=True,
        )
    if spec.speaker_splits == "ours":
        check_speaker_independent(dataset_dict)  # splits made by the builder: a leak is a bug
    elif spec.speaker_splits == "official":
        try:
            check_speaker_independent(dataset_dict)
        except ValueError as err:
            log.note(f"the distributor's partitions share speakers: {err}", warn=True)


def assemble(
    spec: CorpusSpec,
    utterances: Sequence[Utterance],
    log: ProblemLog,
    *,
    label_set: str = "native",
    keep_all_labels: bool = False,
    to_shared: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    num_workers: int = 4,
    cache_dir: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> BuildResult:
    """Labels, checks, audio and splits for the ``utterances`` a builder read (see the module doc)."""
    import datasets

    labels = _Labels(spec, label_set, keep_all_labels, spec.to_shared if to_shared is None else to_shared)
    _check_duplicates(utterances, log)
    rows: dict[str, list[_Row]] = defaultdict(list)
    for u in utterances:
        ids = labels.encode(u, log)
        if ids is None:
            continue
        has_audio = u.audio.is_file()
        if not has_audio:
            log.add(MISSING_FILE, log.where(u.audio), f"listed in {u.source} but not found", u.utterance_id)
        rows[u.split or "(no split)"].append(_Row(u, *ids, has_audio))
    if any(p.kind == WRONG_LAYOUT for p in log.problems):
        log.raise_if_needed(skip_bad)  # a broken label file: decoding the audio would be wasted
    if shutil.which("ffmpeg") is None and any(
        r.utterance.audio.suffix.lower() in FFMPEG_SUFFIXES for split in rows.values() for r in split
    ):
        raise FileNotFoundError(FFMPEG_HINT)

    # Every present file is decoded, also those of utterances with other problems: one run reports all.
    audio = {
        split: _decode(split_rows, split, log, num_workers, cache_dir) for split, split_rows in rows.items()
    }
    log.raise_if_needed(skip_bad)

    features, bad = labels.features(), log.bad_ids()
    made = {
        split: _make_split(spec, rows[split], audio[split], features, bad) for split in _sorted_splits(rows)
    }
    if not any(ds is not None for ds in made.values()):
        raise CorpusError(spec.name, log.raw_dir, log.problems, "No usable utterance is left to build.")
    dataset_dict = datasets.DatasetDict({split: ds for split, ds in made.items() if ds is not None})
    _note_unchecked(dataset_dict, spec, log)
    return BuildResult(
        spec=spec,
        dataset_dict=dataset_dict,
        label_set=label_set,
        excluded=log.excluded,
        skipped=list(log.problems),
        notes=log.notes,
        options={"label_set": label_set, "keep_all_labels": keep_all_labels, **(options or {})},
    )


def assign_speaker_splits(
    utterances: Sequence[Utterance],
    log: ProblemLog,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> None:
    """Give every utterance the split of its speaker: whole speakers per split, genders balanced
    (:func:`splits.split_speakers`); the held-out speakers are noted for the card."""
    from .splits import split_speakers

    genders = {u.speaker_id: u.gender or "unknown" for u in utterances}
    fractions = {"train": 1.0 - validation_fraction - test_fraction, "validation": validation_fraction}
    fractions["test"] = test_fraction
    assignment = split_speakers(genders, fractions, seed=seed)
    for u in utterances:
        u.split = assignment[u.speaker_id]
    held_out = [
        f"{split}: {', '.join(sorted(k for k, v in assignment.items() if v == split))}"
        for split in ("validation", "test")
        if fractions[split] > 0
    ]
    log.note(f"speakers held out (seed {seed}): " + "; ".join(held_out))


def add_speaker_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`assign_speaker_splits`."""
    parser.add_argument("--validation_fraction", type=float, default=0.1, help="share of the speakers")
    parser.add_argument("--test_fraction", type=float, default=0.1, help="share of the speakers")
    parser.add_argument("--seed", type=int, default=0, help="which speakers are held out")


# ----------------------------------------------------------------------------- card and CLI

CARD = """---
license: {license}
language: [{language}]
task_categories: [audio-classification]
tags: [speech-emotion-recognition, serhub]
pretty_name: {name} (serhub)
---

# {name}

{about}

Built by serhub: `python -m serhub.datasets_scripts.{module} --raw_dir RAW --output_dir DIR` with {options}.
Audio is decoded, mixed down to mono and resampled to 16 kHz (16-bit WAV in the `audio` column).
Columns follow serhub's common schema: `audio`, `emotion`, `transcript`, `speaker_id`,
`utterance_id`{optional}.

## Labels

{labels}
{excluded}{skipped}{notes}
## Statistics

{table}

## Licence

{license_note}

## Citation

```bibtex
{citation}
```
"""


def render_card(result: BuildResult) -> str:
    spec = result.spec
    if result.label_set == "native":
        labels = f"`emotion` has the corpus' own classes, in its order: {', '.join(result.dataset_dict[next(iter(result.dataset_dict))].features['emotion'].names)}."
    else:
        mapping = [f"| {name} | {spec.to_shared.get(name, '(left out)')} |" for name in spec.labels.values()]
        labels = (
            f"`emotion` is serhub's shared {result.label_set}-class set "
            f"({', '.join(LABEL_SETS[result.label_set])}); `native_emotion` keeps the corpus' own class.\n\n"
            "| corpus class | shared class |\n|---|---|\n" + "\n".join(mapping)
        )
    excluded = ""
    if result.excluded:
        excluded = "\nLeft out by design:\n\n" + "\n".join(
            f"- {plural(n, 'utterance')} {r}" for r, n in result.excluded.items()
        )
        excluded += "\n"
    skipped = ""
    if result.skipped:
        skipped = (
            f"\n## Skipped items\n\n{len(result.skipped)} problem(s) were found and the affected utterances "
            f"left out (--skip_bad):\n\n{format_problems(result.skipped, indent='')}\n"
        )
    notes = "\n## Notes\n\n" + "\n".join(f"- {n}" for n in result.notes) + "\n" if result.notes else ""
    options = ", ".join(f"`{k}={v}`" for k, v in result.options.items())
    optional = "".join(f", `{c}`" for c in (*spec.optional_columns, "language", *spec.extra_features))
    if result.label_set != "native":
        optional += ", `native_emotion`"
    return CARD.format(
        license=spec.license,
        language=spec.language,
        name=spec.name,
        about=spec.about.strip(),
        module=spec.module,
        options=options,
        optional=optional,
        labels=labels,
        excluded=excluded,
        skipped=skipped,
        notes=notes,
        table=describe(result.dataset_dict),
        license_note=spec.license_note.strip(),
        citation=spec.citation.strip(),
    )


def push_to_hub(dataset_dict, repo_id: str, card: str) -> None:
    """Upload to a private Hub dataset repo. The card goes first, so that ``push_to_hub`` adds its
    metadata (configs, dataset_info) to this README instead of writing a bare one."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    api.upload_file(
        path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id, repo_type="dataset"
    )
    dataset_dict.push_to_hub(repo_id, private=True)


COMMON_OPTIONS = ("label_set", "keep_all_labels", "skip_bad", "num_workers", "cache_dir")


def corpus_argument_parser(spec: CorpusSpec, doc: str) -> argparse.ArgumentParser:
    """The options every corpus builder has; builders add their own."""
    parser = builder_argument_parser(doc.strip().splitlines()[0])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n".join(doc.strip().splitlines()[1:]).strip()  # the layout --raw_dir must have
    parser.add_argument(
        "--raw_dir", required=True, help=f"the {spec.name} folder as distributed: {spec.layout_hint}"
    )
    parser.add_argument(
        "--label_set",
        choices=LABEL_SET_CHOICES,
        default="native",
        help="native: the corpus' own classes; 4/6/8: serhub's shared set "
        f"({', '.join(SHARED_EMOTIONS)}: the first 4, 6 or all), keeping the corpus' class in native_emotion",
    )
    if spec.excluded_by_default:
        parser.add_argument(
            "--keep_all_labels",
            action="store_true",
            help=f"also keep {', '.join(spec.excluded_by_default)} (left out by default)",
        )
    parser.add_argument(
        "--skip_bad",
        action="store_true",
        help="leave out utterances with problems (missing/unreadable audio, unknown labels, duplicates) "
        "instead of failing; the card lists them",
    )
    parser.add_argument(
        "--push_to_hub", metavar="REPO", help="also upload the dataset to this private Hub repo"
    )
    parser.add_argument("--num_workers", type=int, default=4, help="threads decoding audio")
    parser.add_argument("--cache_dir", help="Arrow cache of the decoded audio (default: the datasets cache)")
    return parser


def run_cli(
    args: argparse.Namespace, build_with_report: Callable[..., BuildResult], **options
) -> BuildResult:
    """Build with the common options plus the builder's ``options``, print, save (and push)."""
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    common = {name: getattr(args, name) for name in COMMON_OPTIONS if hasattr(args, name)}
    try:
        result = build_with_report(args.raw_dir, **common, **options)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(result.summary())
    card = result.card()
    path = save_dataset_dict(result.dataset_dict, args.output_dir, card=card, overwrite=args.overwrite)
    print(f"saved to {path}")
    if args.push_to_hub:
        push_to_hub(result.dataset_dict, args.push_to_hub, card)
        print(f"pushed to the private dataset repo {args.push_to_hub}")
    return result


__all__ = [
    "DUPLICATE_ID",
    "LABEL_SETS",
    "LABEL_SET_CHOICES",
    "MALFORMED",
    "MISSING_FILE",
    "SHARED_EMOTIONS",
    "UNKNOWN_LABEL",
    "UNREADABLE_AUDIO",
    "WRONG_LAYOUT",
    "BuildResult",
    "CorpusError",
    "CorpusSpec",
    "Problem",
    "ProblemLog",
    "Utterance",
    "assemble",
    "add_speaker_split_arguments",
    "assign_speaker_splits",
    "unknown_speaker",
    "check_layout",
    "clean_text",
    "corpus_argument_parser",
    "decode_text",
    "find_path",
    "load_audio",
    "parse_float",
    "push_to_hub",
    "read_csv",
    "render_card",
    "run_cli",
    "wav_truncation",
]
