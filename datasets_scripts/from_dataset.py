"""Clips from a ``datasets`` dataset -> serhub's DatasetDict, through the folder builder's checks.

    python -m serhub.datasets_scripts.folder --dataset data/my_saved --output_dir OUT
    python -m serhub.datasets_scripts.folder --dataset my_audiofolder --column_map speaker=client --output_dir OUT
    python -m serhub.datasets_scripts.folder --dataset user/corpus --dataset_split train,test \\
        --column_map emotion=label,speaker=client_id,transcript=sentence --output_dir OUT

``--dataset`` is a folder written by ``save_to_disk`` (``load_from_disk``), a local data folder
(``audiofolder`` with ``metadata.csv``, or CSV / JSON / Parquet files) or file that
``datasets.load_dataset`` reads, or a Hub id (needs the network, or the dataset in the Hugging Face
cache). Loading scripts are refused, never run. Columns are named by ``--column_map`` (or the
``--<role>_column`` flags), else guessed as for a label table; an ``Audio`` column is preferred for
the audio. A ClassLabel emotion column gives its class names, in its order. Audio comes from an
``Audio`` column (its stored bytes, or its file) or a column of file paths, which are relative to the
data file's folder (or the data folder) and must stay inside it. It is decoded by the folder builder's
decoder (16 kHz mono), so a clip gives the same array from a folder and from a dataset; a row that does
not decode is named by its split and row number (``train row 12``), like a broken file.

All the splits taken (``--dataset_split``, default all) are pooled and split by speaker, as the folder
builder does; ``--keep_splits`` keeps the dataset's own train / validation / test instead (leaks
between them are noted in the card and the manifest).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import corpus_tools as ct
from .corpus_builder import inside_corpus
from .folder import GIVEN_SPLITS, SPLIT_NAMES, build_from_utterances, outside_message, row_clip
from .folder_table import GUESSES, ROLE_ALIASES, choose_columns, named_columns

SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes
FILE_BUILDERS = {  # a data file -> the packaged datasets builder that reads it
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
    ".arrow": ("arrow", {}),
}
KEPT_SPLITS = ("train", "validation", "test")
OFFLINE_HINT = (
    "build from a local folder instead: python -m serhub.datasets_scripts.folder --audio_dir DIR "
    "--metadata labels.csv --output_dir OUT (or --dataset with a save_to_disk folder or a data file)"
)


class DatasetSourceError(ValueError):
    """The ``--dataset`` cannot be opened (missing, offline, a loading script, no such split): one line."""


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("with --dataset")
    group.add_argument("--dataset_config", help="the dataset's configuration (subset) name")
    group.add_argument("--dataset_split", help="the splits to take, comma-separated (default: all)")
    group.add_argument(
        "--keep_splits",
        action="store_true",
        help="keep the dataset's train/validation/test instead of pooling and splitting by speaker",
    )


def check_flags(args: argparse.Namespace) -> None:
    """``ValueError`` for a flag of the other source."""
    if args.dataset and args.metadata:
        raise ValueError("--metadata goes with --audio_dir; with --dataset, name columns with --column_map")
    own = [f"--{k}" for k in ("dataset_config", "dataset_split", "keep_splits") if getattr(args, k)]
    if not args.dataset and own:
        raise ValueError(f"{', '.join(own)} go with --dataset, not --audio_dir")


# ----------------------------------------------------------------------------- opening the source


def _refuse_script(path: Path) -> None:
    """A loading script is code from the data's author: never imported (datasets 5 refuses it too)."""
    script = path if path.suffix == ".py" else path / f"{path.resolve().name}.py"
    if script.is_file() or path.suffix == ".py":
        raise DatasetSourceError(
            f"{script} is a dataset loading script; serhub does not run code that comes with data. "
            "Run it yourself if you trust it, save the result with save_to_disk (or as Parquet/CSV with "
            "an audio column) and pass that folder or file to --dataset"
        )


def _load_hub(name: str, config: str | None, cache_dir: str | None):
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(name, config, cache_dir=cache_dir)
    except ConnectionError:
        if datasets.config.HF_HUB_OFFLINE:
            reason = "the Hub is offline (HF_HUB_OFFLINE=1)"
        else:
            reason = "the Hub cannot be reached"
        raise DatasetSourceError(
            f"--dataset {name!r} is not a local folder or file, {reason}, and it is not in the Hugging Face "
            f"cache ({datasets.config.HF_CACHE_HOME}); download it once with the network on, or "
            f"{OFFLINE_HINT}"
        ) from None
    except DatasetNotFoundError as err:
        raise DatasetSourceError(
            f"--dataset {name!r}: {err} Check the id, or log in (hf auth login)"
        ) from None
    except RuntimeError as err:
        if "scripts are no longer supported" not in str(err):
            raise
        raise DatasetSourceError(
            f"--dataset {name!r} is a dataset loading script on the Hub ({err}); serhub does not run code "
            "that comes with data. Use a Parquet revision of it (refs/convert/parquet), or run the script "
            "yourself and pass the save_to_disk folder"
        ) from None


def open_dataset(name: str, config: str | None = None, cache_dir: str | None = None):
    """``(DatasetDict, root)``: the data and the local folder its file paths must stay in (for a Hub
    dataset: the Hugging Face cache it was downloaded to)."""
    import datasets

    path = Path(name).expanduser()
    _refuse_script(path)
    if path.is_dir() and any((path / m).is_file() for m in SAVED_MARKERS):
        if config:
            raise DatasetSourceError(f"--dataset_config: {name} is a save_to_disk folder, it has no configs")
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.Dataset):
            data = datasets.DatasetDict({str(data.split or "train"): data})
        return data, path.resolve()
    if path.is_file() and path.suffix.lower() not in FILE_BUILDERS:
        raise DatasetSourceError(
            f"--dataset {name}: {path.suffix or 'a file without suffix'} is not a data file datasets reads "
            f"here; use one of {', '.join(FILE_BUILDERS)}, a data folder, or --audio_dir for a folder of audio"
        )
    if path.is_file() and config:
        raise DatasetSourceError(f"--dataset_config: {name} is one data file, it has no configs")
    if path.is_file() or path.is_dir():
        builder, kwargs = FILE_BUILDERS[path.suffix.lower()] if path.is_file() else (str(path.resolve()), {})
        if path.is_file():
            kwargs = {**kwargs, "data_files": str(path.resolve())}
        try:
            data = datasets.load_dataset(builder, config, cache_dir=cache_dir, **kwargs)
        except (FileNotFoundError, ValueError, datasets.exceptions.DatasetGenerationError) as err:
            raise DatasetSourceError(f"datasets could not read --dataset {name}: {err}") from None
        return data, (path.resolve().parent if path.is_file() else path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        raise DatasetSourceError(f"--dataset {name}: no such folder or file")
    return _load_hub(name, config, cache_dir), Path(datasets.config.HF_CACHE_HOME).resolve()


def choose_splits(data, wanted: list[str] | None, keep: bool) -> dict[str, str]:
    """``{source split: split of the build}``; the build's name is None when the splits are pooled."""
    available = list(data)
    unknown = [s for s in wanted or () if s not in available]
    if unknown:
        raise DatasetSourceError(f"--dataset_split {','.join(unknown)}: the dataset's splits are {available}")
    taken = wanted or available
    if not keep:
        return dict.fromkeys(taken)
    renamed = {s: SPLIT_NAMES.get(s.lower(), s.lower()) for s in taken}
    if not set(KEPT_SPLITS) <= set(renamed.values()) or len(set(renamed.values())) < len(renamed):
        raise DatasetSourceError(
            f"--keep_splits needs one train, one validation and one test split; the splits taken are {taken}. "
            "Leave --keep_splits out to pool them and split by speaker"
        )
    return renamed if wanted else {s: n for s, n in renamed.items() if n in KEPT_SPLITS}


def _columns(data, splits, flags: dict, column_map, where: str, log) -> dict[str, str | None]:
    """``{role: column}`` as the folder builder chooses them, an Audio column first for the audio."""
    import datasets

    features = data[next(iter(splits))].features
    columns = list(features)
    try:
        named = {role: column for role, column in named_columns(flags, column_map).items() if column}
    except ValueError as err:
        named = {}
        problems = [ct.Problem(ct.WRONG_LAYOUT, where, str(err))]
    else:
        problems = []
    problems += [
        ct.Problem(
            ct.WRONG_LAYOUT,
            where,
            f"{role} column {column!r} (--column_map / --{role}_column) is not a column",
        )
        for role, column in named.items()
        if column and column not in columns
    ]
    problems += [
        ct.Problem(ct.WRONG_LAYOUT, f"split {s}", f"its columns {data[s].column_names} differ from {columns}")
        for s in splits
        if set(data[s].column_names) != set(columns)
    ]
    audio = [c for c, f in features.items() if isinstance(f, datasets.Audio)]
    chosen = None
    if not problems:
        try:
            chosen = choose_columns(columns, {"file": audio[0] if audio else None, **named}, where)
        except ValueError as err:
            problems.append(ct.Problem(ct.WRONG_LAYOUT, where, str(err).removeprefix(f"{where}: ")))
    if chosen and not isinstance(features[chosen["file"]], datasets.Audio | datasets.Value):
        detail = f"the audio column {chosen['file']!r} holds {features[chosen['file']]}"
        problems.append(
            ct.Problem(ct.WRONG_LAYOUT, where, f"{detail}; expected an Audio or a file path column")
        )
    if problems:
        roles = ", ".join([*GUESSES, *ROLE_ALIASES])
        fix = f"The dataset's columns are {columns}. Name them with --column_map ROLE=COLUMN,... (roles: {roles})."
        raise ct.CorpusError(log.corpus, log.raw_dir, problems, fix)
    return chosen


class RowLog(ct.ProblemLog):
    """Problems named by the dataset row (``train row 12 (clip.wav)``), not by a file under --raw_dir."""

    def __init__(self, corpus: str, source: str):
        super().__init__(corpus, source)
        self.rows: dict[Path, str] = {}

    def where(self, path, line=None):
        return self.rows.get(Path(path)) or super().where(path, line)


def _audio_name(cell, split: str, index: int, tmp: Path, root: Path) -> tuple[Path, str, str]:
    """``(folder, name, shown)``: the clip is ``folder / name`` (its bytes written under ``tmp``, or the
    file a path names, joined as written so that ``inside_corpus`` judges it); ``shown`` names it."""
    if isinstance(cell, dict) and cell.get("bytes"):
        shown = cell.get("path") or ""
        suffix = Path(shown).suffix.lower()  # ffmpeg decodes video containers: the suffix says which
        name = f"{split}/{index}{suffix if suffix[1:].isalnum() and len(suffix) <= 6 else '.wav'}"
        (tmp / split).mkdir(exist_ok=True)
        (tmp / name).write_bytes(cell["bytes"])
        return tmp, name, shown
    path = (cell.get("path") if isinstance(cell, dict) else cell) or ""
    name = Path(os.path.relpath(path, root) if os.path.isabs(path) else path).as_posix() if path else ""
    return root, name, name


def read_rows(data, splits: dict, chosen: dict, root: Path, tmp: Path, log: RowLog) -> list[ct.Utterance]:
    """One utterance per row of the taken splits (problems recorded, as the folder builder does)."""
    import datasets

    used = list(dict.fromkeys(c for c in chosen.values() if c))
    utterances = []
    for split, kept in splits.items():
        ds = data[split].select_columns(used)
        if isinstance(ds.features[chosen["file"]], datasets.Audio):
            ds = ds.cast_column(chosen["file"], datasets.Audio(decode=False))
        label = ds.features[chosen["label"]]
        names = label.names if isinstance(label, datasets.ClassLabel) else None
        index = 0
        for batch in ds.iter(batch_size=256):
            for i in range(len(batch[used[0]])):
                folder, name, shown = _audio_name(batch[chosen["file"]][i], split, index, tmp, root)
                row = {c: "" if batch[c][i] is None else str(batch[c][i]).strip() for c in used}
                if names is not None:
                    value = batch[chosen["label"]][i]
                    row[chosen["label"]] = names[value] if value is not None and value >= 0 else ""
                row[chosen["file"]] = name
                where = f"{split} row {index}"
                u = row_clip(row, chosen, folder, where, log)
                if u is not None:
                    log.rows[u.audio] = f"{where} ({shown})" if shown else where
                    u.split = kept or u.split
                    utterances.append(u)
                index += 1
    return utterances


def build_with_report(
    dataset: str,
    *,
    dataset_config: str | None = None,
    dataset_split: str | list[str] | None = None,
    keep_splits: bool = False,
    columns: dict[str, str | None] | None = None,
    column_map: str | None = None,
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
):
    """The DatasetDict of the clips of ``dataset`` (see the module doc), its report and card. ``columns``:
    ``{role: column}`` as the ``--<role>_column`` flags give them; ``column_map``: ``--column_map``'s text."""
    import datasets

    if isinstance(dataset_split, str):
        dataset_split = [s.strip() for s in dataset_split.split(",") if s.strip()]
    data, root = open_dataset(dataset, dataset_config, cache_dir)
    splits = choose_splits(data, dataset_split, keep_splits)
    local = Path(dataset).expanduser().exists()
    shown = Path(dataset).expanduser().resolve().name if local else dataset
    log = RowLog(name or shown, dataset)
    chosen = _columns(data, splits, columns or {}, column_map, f"the dataset {shown}", log)
    if not local and isinstance(data[next(iter(splits))].features[chosen["file"]], datasets.Value):
        raise DatasetSourceError(
            f"--dataset {dataset}: the audio column {chosen['file']!r} holds file paths, which only a local "
            "dataset can resolve; a Hub dataset needs an Audio column"
        )
    label = data[next(iter(splits))].features[chosen["label"]]
    if labels is None and isinstance(label, datasets.ClassLabel):
        labels = list(label.names)  # the dataset's own classes, in its order (also those with no clip)
    flags = {
        "--dataset": "DATASET" if local else dataset,  # a local path would name the builder's own disk
        "--dataset_config": dataset_config,
        "--dataset_split": ",".join(dataset_split or ()),
    }
    flags = " ".join([f"{k} {v}" for k, v in flags.items() if v] + ["--keep_splits"] * keep_splits)
    pooled = "kept as they are" if keep_splits else "split again here"
    about = (
        f"Clips of the dataset {shown} (its splits {', '.join(splits)}, {pooled}), labelled from its columns "
        + ", ".join(f"{role}={column}" for role, column in chosen.items() if column)
        + "."
    )
    given = "splits as the dataset has them (--keep_splits)" if keep_splits else GIVEN_SPLITS
    with tempfile.TemporaryDirectory(prefix="serhub-dataset-audio-") as tmp:
        utterances = read_rows(data, splits, chosen, root, Path(tmp), log)
        files = [u for u in utterances if not u.audio.is_relative_to(tmp)]  # named by a path: inside root?
        inside = {id(u) for u in inside_corpus(files, root, log)}
        utterances = [u for u in utterances if id(u) in inside or u.audio.is_relative_to(tmp)]
        outside_message(log, "the dataset's folder")
        return build_from_utterances(
            utterances,
            chosen,
            log,
            about=about,
            labels=labels,
            allow_speaker_overlap=allow_speaker_overlap,
            split_options={
                "validation_fraction": validation_fraction,
                "test_fraction": test_fraction,
                "seed": seed,
            },
            given_splits=given,
            recorded={"keep_splits": keep_splits},
            source_flags=flags,
            language=language,
            skip_bad=skip_bad,
            num_workers=num_workers,
            cache_dir=cache_dir,
        )


def build(dataset: str, **kwargs):
    """The ``DatasetDict`` of :func:`build_with_report`."""
    return build_with_report(dataset, **kwargs).dataset_dict


def run_cli(args: argparse.Namespace, **options):
    """``folder.main``'s --dataset branch: the corpus builders' run_cli, one error line for the source."""
    try:
        return ct.run_cli(
            argparse.Namespace(**{**vars(args), "raw_dir": args.dataset}),
            build_with_report,
            dataset_config=args.dataset_config,
            dataset_split=args.dataset_split,
            keep_splits=args.keep_splits,
            column_map=args.column_map,
            **options,
        )
    except DatasetSourceError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


__all__ = ["DatasetSourceError", "build", "build_with_report", "choose_splits", "open_dataset", "read_rows"]
