"""Your own recordings: a folder of audio files and a label table (CSV, TSV or JSONL) -> serhub's DatasetDict.

    python -m serhub.datasets_scripts.folder --audio_dir DIR --metadata labels.csv --output_dir OUT
    python -m serhub.datasets_scripts.folder --audio_dir DIR --output_dir OUT --allow_speaker_overlap
    python -m serhub.datasets_scripts.folder --dataset NAME_OR_PATH --column_map emotion=label --output_dir OUT

The table has one row per clip. Its columns are guessed (case-insensitive) or named by flags:
file (``file``, ``file_name``, ``path``, ``audio``, ...; relative to --audio_dir), emotion
(``emotion``, ``label``, ...), speaker (``speaker``, ``speaker_id``, ...), transcript, gender,
arousal / valence / dominance and split. Without --metadata, DIR/metadata.csv (or .tsv, .jsonl) is
used when it exists, else the label is the sub-folder a file is in (``DIR/<label>/x.wav``, the
``audiofolder`` layout). Any format libsndfile or ffmpeg reads is decoded to 16 kHz mono.

Splits hold whole speakers (genders balanced; ``--validation_fraction`` / ``--test_fraction`` of the
speakers, chosen with ``--seed``), or follow a split column. Without speakers the build is refused:
clips of one voice in train and test flatter every score; ``--allow_speaker_overlap`` draws
class-stratified splits of clips instead, and the card says so. Every problem (missing, unreadable or
unlabelled file, unknown label, a file outside DIR) is reported by name and nothing is written,
unless ``--skip_bad`` leaves those clips out and lists them in the card. Every recipe trains on the
result: ``--dataset_name_or_path OUT``.

``--dataset`` takes the clips from a ``datasets`` dataset instead (a ``save_to_disk`` folder, a data
folder or file ``load_dataset`` reads, or a Hub id; see ``from_dataset``), with the same checks.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from pathlib import Path

from . import corpus_tools as ct
from .common import builder_argument_parser
from .corpus_builder import add_speaker_split_arguments, inside_corpus
from .corpus_problems import OUTSIDE_CORPUS
from .folder_splits import (  # noqa: F401 (the split rules, importable from here)
    GIVEN_SPLITS,
    NO_SPEAKERS_HINT,
    TOO_FEW_SPEAKERS,
    _stratified_splits,
    assign_splits,
)
from .folder_table import GUESSES, ROLE_ALIASES, choose_columns, named_columns, read_table

# each column's guesses, tried in this order against the table's header (case-insensitive)
METADATA_NAMES = ("metadata.csv", "metadata.tsv", "metadata.jsonl")
AUDIO_SUFFIXES = frozenset(".wav .flac .mp3 .ogg .opus .aiff .aif .au .m4a .aac .mp4 .webm .mkv".split())
# split names as tables write them -> the names the recipes read (--train_split/--eval_split/--test_split)
SPLIT_NAMES = {"dev": "validation", "development": "validation", "val": "validation", "valid": "validation"}
NO_LABEL = "unlabelled clip"


@dataclasses.dataclass
class FolderBuildResult(ct.BuildResult):
    """The card names this builder's own command line instead of the corpus builders' --raw_dir."""

    source_flags: str = "--audio_dir AUDIO --metadata TABLE"

    def card(self) -> str:
        return (
            ct.render_card(self)
            .replace("--raw_dir RAW", self.source_flags)
            .replace("with `label_set=native`, `keep_all_labels=False`, ", "with ")
        )


def row_clip(row: dict, columns: dict, raw: Path, where: str, log: ct.ProblemLog) -> ct.Utterance | None:
    """One clip from a row of text cells (``{column: text}``) whose roles are ``columns``; None if unusable."""
    name = row.get(columns["file"], "")
    if not name:
        log.add(ct.MALFORMED, where, f"the {columns['file']!r} cell is empty; name the audio file", where)
        return None
    uid = Path(name).with_suffix("").as_posix()
    label = row.get(columns["label"], "") or None
    if label is None:
        log.add(
            NO_LABEL, where, f"{name} has an empty {columns['label']!r} cell; label it or remove the row", uid
        )
    cell = {role: row.get(col, "") if col else "" for role, col in columns.items()}
    floats = {
        d: ct.parse_float(cell[d], columns[d] or d, where, log, uid)
        for d in ("arousal", "valence", "dominance")
    }
    return ct.Utterance(
        utterance_id=uid,
        split=SPLIT_NAMES.get(cell["split"].lower(), cell["split"].lower()) or None,
        audio=raw / name,  # joined as written: inside_corpus judges ../ and absolute paths
        label=label,
        speaker_id=cell["speaker"] or ct.unknown_speaker(uid),
        source=where,
        transcript=ct.clean_text(cell["transcript"]),
        gender=cell["gender"].lower() or None,
        **floats,
    )


def _table_where(metadata: Path, log: ct.ProblemLog, line: int | None = None) -> str:
    """The table as problems name it: relative to --audio_dir when inside it, else its file name."""
    where = log.where(metadata, line)
    return where if not Path(where.split(" line ")[0]).is_absolute() else log.where(metadata.name, line)


def read_metadata(raw: Path, metadata: Path, named: dict, log: ct.ProblemLog):
    """The table's clips as utterances, and ``{role: column}`` of what it holds."""
    if not metadata.is_file():
        raise ct.CorpusError(
            log.corpus,
            raw,
            [ct.Problem(ct.WRONG_LAYOUT, str(metadata), "does not exist or is not a file")],
            "Pass --metadata with the path of the label table (CSV, TSV or JSONL).",
        )
    columns, rows = read_table(metadata, log)
    where = _table_where(metadata, log)
    try:
        chosen = choose_columns(columns, named, where)
    except ValueError as err:
        raise ct.CorpusError(log.corpus, raw, [ct.Problem(ct.WRONG_LAYOUT, where, str(err))], "") from None
    utterances = [row_clip(row, chosen, raw, _table_where(metadata, log, line), log) for line, row in rows]
    return [u for u in utterances if u is not None], chosen


def scan_label_folders(raw: Path, log: ct.ProblemLog) -> list[ct.Utterance]:
    """``DIR/<label>/.../x.wav``: one utterance per audio file, labelled by its top sub-folder."""
    utterances = []
    for path in sorted(p for p in raw.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        relative = path.relative_to(raw)
        uid = relative.with_suffix("").as_posix()
        if len(relative.parts) < 2:
            log.add(NO_LABEL, relative.as_posix(), "not in a label sub-folder (DIR/<label>/file)", uid)
        label = relative.parts[0] if len(relative.parts) > 1 else None
        utterances.append(ct.Utterance(uid, None, path, label, ct.unknown_speaker(uid), relative.as_posix()))
    if not utterances:
        raise ct.CorpusError(
            log.corpus,
            raw,
            [ct.Problem(ct.WRONG_LAYOUT, str(raw), "no audio file found in its sub-folders")],
            "Put the clips in DIR/<label>/ sub-folders, or pass --metadata with a label table.",
        )
    return utterances


def outside_message(log: ct.ProblemLog, folder: str = "--audio_dir") -> None:
    """inside_corpus speaks of the corpus builders' --raw_dir; this command calls it ``folder``."""
    log.problems = [
        dataclasses.replace(p, detail=p.detail.replace("--raw_dir", folder))
        if p.kind == OUTSIDE_CORPUS
        else p
        for p in log.problems
    ]


def _label_names(utterances, labels: list[str] | None, log: ct.ProblemLog) -> list[str]:
    """The class names: ``labels`` as given, else every label found (sorted); counted in the notes."""
    counts = Counter(u.label for u in utterances if u.label is not None)
    by_case = Counter(name.lower() for name in counts)
    clashes = sorted(name for name in counts if by_case[name.lower()] > 1)
    if clashes:
        log.note(f"labels that differ only in case are separate classes: {', '.join(clashes)}", warn=True)
    names = list(labels) if labels else sorted(counts)
    if len(names) < 2:
        raise ct.CorpusError(
            log.corpus,
            log.raw_dir,
            [ct.Problem(ct.WRONG_LAYOUT, "labels", f"found {len(names)} class(es) {names}; need at least 2")],
            "Check the label column (--label_column) or the label sub-folders.",
        )
    log.note("clips per label: " + ", ".join(f"{n} {counts.get(n, 0)}" for n in names))
    return names


def _spec(name: str, language: str, labels: list[str], optional: tuple, speaker_splits: str, about: str):
    return ct.CorpusSpec(
        name=name,
        module="folder",
        labels={n: n for n in labels},
        to_shared={},
        language=language,
        optional_columns=optional,
        license="other",
        license_note="Set by the owner of the recordings; serhub adds no licence.",
        citation="",
        about=about,
        layout_hint="a folder of audio files, with a label table or DIR/<label>/ sub-folders",
        speaker_splits=speaker_splits,
    )


def build_with_report(
    audio_dir: str | Path,
    metadata: str | Path | None = None,
    *,
    columns: dict[str, str | None] | None = None,
    labels: list[str] | None = None,
    allow_speaker_overlap: bool = False,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    name: str | None = None,
    language: str = "und",
    skip_bad: bool = False,
    num_workers: int = 4,
    cache_dir: str | None = None,
) -> FolderBuildResult:
    """The DatasetDict of ``audio_dir`` (labels from ``metadata`` or sub-folders), its report and card."""
    raw = Path(audio_dir).expanduser().resolve()
    log = ct.ProblemLog(name or raw.name, raw)
    if not raw.is_dir():
        problems = [ct.Problem(ct.WRONG_LAYOUT, str(raw), "does not exist or is not a folder")]
        raise ct.CorpusError(log.corpus, raw, problems, "Pass --audio_dir with the folder of your clips.")
    if metadata is None:
        metadata = next((raw / m for m in METADATA_NAMES if (raw / m).is_file()), None)
    if metadata is not None:
        utterances, chosen = read_metadata(raw, Path(metadata).expanduser().resolve(), columns or {}, log)
        source = f"the label table {Path(metadata).name}: columns " + ", ".join(
            f"{role}={column}" for role, column in chosen.items() if column
        )
    else:
        utterances, chosen = scan_label_folders(raw, log), {}
        source = "the label sub-folders (DIR/<label>/file)"
    utterances = inside_corpus(utterances, raw, log)
    outside_message(log)
    options = {"validation_fraction": validation_fraction, "test_fraction": test_fraction, "seed": seed}
    return build_from_utterances(
        utterances,
        chosen,
        log,
        about=f"Clips of {raw.name}, labelled from {source}.",
        labels=labels,
        allow_speaker_overlap=allow_speaker_overlap,
        split_options=options,
        language=language,
        skip_bad=skip_bad,
        num_workers=num_workers,
        cache_dir=cache_dir,
    )


def build_from_utterances(
    utterances: list[ct.Utterance],
    chosen: dict,
    log: ct.ProblemLog,
    *,
    about: str,
    labels: list[str] | None,
    allow_speaker_overlap: bool,
    split_options: dict,
    given_splits: str = GIVEN_SPLITS,
    recorded: dict | None = None,
    source_flags: str = FolderBuildResult.source_flags,
    language: str = "und",
    **settings,
) -> FolderBuildResult:
    """Labels, splits (kept, by speaker, or refused), audio and card of clips read by either source
    (a folder here, a ``datasets`` dataset in ``from_dataset``); ``chosen``: ``{role: column}``;
    ``settings``: :func:`corpus_tools.assemble`'s ``skip_bad``, ``num_workers``, ``cache_dir``."""
    names = _label_names(utterances, labels, log)
    has_speakers = any(not u.speaker_id.startswith(ct.UNKNOWN_SPEAKER) for u in utterances)
    speaker_splits = assign_splits(
        utterances, has_speakers, allow_speaker_overlap, split_options, log, given_splits
    )
    optional = tuple(c for c in ("gender", "arousal", "valence", "dominance") if chosen.get(c))
    spec = _spec(log.corpus, language, names, optional, speaker_splits, about)
    result = ct.assemble(
        spec,
        utterances,
        log,
        options={**(recorded or {}), **split_options},
        **settings,
    )
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return FolderBuildResult(**fields, source_flags=source_flags)


def build(audio_dir, metadata=None, **kwargs):
    """The ``DatasetDict`` of :func:`build_with_report`."""
    return build_with_report(audio_dir, metadata, **kwargs).dataset_dict


def argument_parser() -> argparse.ArgumentParser:
    parser = builder_argument_parser(__doc__.strip().splitlines()[0])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n".join(__doc__.strip().splitlines()[1:]).strip()
    source = parser.add_mutually_exclusive_group(required=True)
    # dest raw_dir: the corpus builders' run_cli reads it
    source.add_argument("--audio_dir", dest="raw_dir", metavar="DIR", help="the folder of audio files")
    source.add_argument("--dataset", help="or a save_to_disk folder, a data folder or file, or a Hub id")
    parser.add_argument(
        "--metadata", help="label table: CSV, TSV or JSONL (default: DIR/metadata.*, else sub-folders)"
    )
    for role, guesses in GUESSES.items():
        parser.add_argument(f"--{role}_column", help=f"default: the first of {', '.join(guesses)}")
    parser.add_argument(
        "--column_map",
        help="the columns in one flag, e.g. emotion=label,speaker=client_id,transcript=sentence "
        f"(roles: {', '.join(GUESSES)}; also {', '.join(ROLE_ALIASES)})",
    )
    from .from_dataset import add_dataset_arguments  # imports this module: not at the top

    add_dataset_arguments(parser)
    parser.add_argument("--labels", help="the expected classes, comma-separated (others are reported)")
    parser.add_argument(
        "--allow_speaker_overlap",
        action="store_true",
        help="split clips without speaker ids (not speaker-independent)",
    )
    parser.add_argument("--name", help="the dataset's name in the card (default: the folder's name)")
    parser.add_argument("--language", default="und", help="ISO 639-1 code of the speech (default: und)")
    parser.add_argument(
        "--skip_bad", action="store_true", help="leave out problem clips (listed in the card)"
    )
    parser.add_argument("--num_workers", type=int, default=4, help="threads decoding audio")
    parser.add_argument("--cache_dir", help="Arrow cache of the decoded audio (default: the datasets cache)")
    parser.add_argument(
        "--push_to_hub", metavar="REPO", help="also upload the dataset to this private Hub repo"
    )
    add_speaker_split_arguments(parser)
    return parser


def main(argv=None) -> ct.BuildResult:
    from . import from_dataset

    parser = argument_parser()
    args = parser.parse_args(argv)
    columns = {role: getattr(args, f"{role}_column") for role in GUESSES}
    try:
        from_dataset.check_flags(args)
        if not args.dataset:  # a dataset's --column_map is read beside its columns, to list them
            columns = named_columns(columns, args.column_map)
    except ValueError as err:
        parser.error(str(err))
    common = {
        "columns": columns,
        "labels": [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None,
        "allow_speaker_overlap": args.allow_speaker_overlap,
        "validation_fraction": args.validation_fraction,
        "test_fraction": args.test_fraction,
        "seed": args.seed,
        "name": args.name,
        "language": args.language,
    }
    if args.dataset:
        return from_dataset.run_cli(args, **common)
    return ct.run_cli(args, build_with_report, metadata=args.metadata, **common)


if __name__ == "__main__":
    main()


__all__ = [
    "GUESSES",
    "build",
    "build_from_utterances",
    "build_with_report",
    "choose_columns",
    "main",
    "read_table",
]
