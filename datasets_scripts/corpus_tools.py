"""Shared machinery of the real-corpus builders (msp_podcast, iemocap, meld, emospeech, ravdess, crema_d).

A builder only knows its corpus (a ``corpus_builder.CorpusBuilder`` subclass): which files it expects and how to turn
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

The toolbox is split by concern and re-exported here, so a builder needs only ``corpus_tools as
ct``: ``corpus_problems`` (the problem log), ``corpus_files`` (layout, label files, audio decoding
and its cache), ``corpus_spec`` (label sets, the spec, the utterance record), ``corpus_cli`` (card
and command line); this module is the pipeline itself, and ``corpus_builder`` the base class each
corpus module subclasses (``CorpusBuilder``, ``SpeakerSplitBuilder``).
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .common import (
    check_speaker_independent,
    describe,
    ser_features,
)
from .corpus_cli import (  # noqa: F401 (re-exported: the builders' toolbox)
    COMMON_OPTIONS,
    corpus_argument_parser,
    push_to_hub,
    render_card,
    run_cli,
)
from .corpus_files import (  # noqa: F401 (re-exported: the builders' toolbox)
    _AUDIO_CACHE_VERSION,
    FFMPEG_HINT,
    FFMPEG_SUFFIXES,
    check_layout,
    clean_text,
    decode_audio_table,
    decode_text,
    find_path,
    load_audio,
    parse_float,
    read_csv,
    wav_truncation,
)
from .corpus_problems import (  # noqa: F401 (re-exported: the builders' toolbox)
    DUPLICATE_ID,
    MALFORMED,
    MISSING_FILE,
    SKIP_HINT,
    UNKNOWN_LABEL,
    UNREADABLE_AUDIO,
    WRONG_LAYOUT,
    CorpusError,
    Problem,
    ProblemLog,
    format_problems,
    plural,
)
from .corpus_spec import (  # noqa: F401 (re-exported: the builders' toolbox)
    LABEL_SET_CHOICES,
    LABEL_SETS,
    SHARED_EMOTIONS,
    SPLIT_ORDER,
    UNKNOWN_SPEAKER,
    CorpusSpec,
    Utterance,
    unknown_speaker,
)

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
