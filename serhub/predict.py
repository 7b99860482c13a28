"""Classify audio files into a CSV, in batches, resumably.

    serhub predict FILES_OR_DIR... --model M --output preds.csv [--batch_size 8] [--top_k 1]
                   [--enroll REFERENCE... | --enroll_self]

A folder is searched recursively for audio and video files; any format ffmpeg reads works (decoded
by :mod:`serhub.audio_io`, local files only). Each row of the CSV is one file: ``file``, ``label``,
``score`` (the top label and its probability), ``label_2``, ``score_2``, ... up to ``--top_k``, and
``error`` (why a file could not be classified, or what ffmpeg reported about a file it decoded only
in part; empty otherwise). A file that cannot be read is reported on its row and on stderr, and the
run goes on.

``--enroll``: a few recordings of the one speaker all the files are from (a neutral one preferably). A
speech classifier trained relative to the speaker (``--speaker_prosody``, ``--speaker_norm``) reads
every file relative to them (its ``enroll_speaker``); without them it logs that it has no reference.
``--enroll_self``: the files themselves are that speaker's reference (up to 32 of them, evenly spread
over the list, so a resumed run uses the same ones), when no reference recording is at hand.
The CSV does not record the enrolment: write one CSV per speaker.

Rows are appended and flushed to disk batch by batch, so a run stopped at any point (Ctrl-C, a killed
job) can be started again with the same command: files already in the CSV are skipped, and a last
row cut short by the stop is dropped first. To retry files that failed, delete their rows.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from serhub.audio_io import stream_audio
from serhub.loading import load_classifier

# what a folder is searched for (named files are read whatever their suffix)
MEDIA_SUFFIXES = frozenset(
    ".wav .flac .mp3 .ogg .opus .oga .m4a .aac .wma .aiff .aif .au .amr .webm .mp4 .mkv .mov .avi".split()
)


def find_files(inputs: list[str]) -> list[Path]:
    """The named files, and the media files under the named folders (sorted), each once."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(
                f"{item} is neither a file nor a folder; pass audio files or folders of them"
            )
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(
            f"no audio file found in {', '.join(inputs)} (searched for {', '.join(sorted(MEDIA_SUFFIXES))})"
        )
    return unique


def columns(top_k: int) -> list[str]:
    extra = [name for k in range(2, top_k + 1) for name in (f"label_{k}", f"score_{k}")]
    return ["file", "label", "score", *extra, "error"]


def done_files(output: Path, header: list[str]) -> set[str]:
    """The files already in ``output`` (a CSV of an earlier run); a last line cut short by a killed run
    is dropped from the file. ``ValueError`` when its columns are not this run's."""
    if not output.exists() or output.stat().st_size == 0:
        return set()
    with output.open("rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):  # the run was stopped while writing this line
            f.truncate(data.rfind(b"\n") + 1)
    with output.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        found = next(reader, None)
        if found is None:
            return set()
        if found != header:
            raise ValueError(
                f"{output} has the columns {found}, but this run writes {header} (another --top_k?). "
                "Pass the same --top_k as before, or another --output."
            )
        return {os.path.abspath(row[0]) for row in reader if row}


def decode(path: Path) -> tuple[np.ndarray | None, str]:
    """``(16 kHz mono samples, "")``; ``(None, why)`` when the file cannot be read; ``(samples, note)``
    when ffmpeg decoded it but reported errors (the audio may be incomplete): classified, and noted."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            samples = np.concatenate(list(stream_audio(path)) or [np.zeros(0, np.float32)])
    except (OSError, ValueError) as err:  # any failure of this one file is reported on its row
        return None, " ".join(str(err).split())
    if samples.size == 0:
        return None, f"{path} holds no audio samples"
    notes = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, UserWarning)]
    return samples, "; ".join(notes)


def rows_for(classifier, batch: list[tuple[Path, np.ndarray | None, str]], top_k: int, batch_size: int):
    """One CSV row per file of the batch: the top labels of the readable ones (a model with fewer labels
    than ``top_k`` leaves the last cells empty), and what went wrong."""
    readable = [samples for _, samples, _ in batch if samples is not None]
    results = iter(classifier(readable, top_k=top_k, batch_size=batch_size) if readable else [])
    rows = []
    for path, samples, problem in batch:
        cells = [""] * (2 * top_k)
        if samples is not None:
            for k, s in enumerate(next(results)[:top_k]):
                cells[2 * k : 2 * k + 2] = [s["label"], f"{float(s['score']):.6f}"]
        rows.append([str(path), *cells, problem])
    return rows


def check_can_enroll(classifier, option: str = "--enroll") -> None:
    """Refuse a model that cannot enrol a speaker, or one trained without a speaker reference."""
    model = getattr(classifier, "model", None)
    if not hasattr(model, "enroll_speaker"):
        raise ValueError(
            f"{option}: {type(model).__name__} cannot enrol a speaker; enrolment is for serhub's speech "
            "classifier and audio-LLMs trained with --speaker_prosody (or the speech classifier with "
            f"--speaker_norm); leave {option} out for this model"
        )
    config = model.config
    if not (getattr(config, "speaker_normalization", None) or getattr(config, "speaker_prosody", False)):
        raise ValueError(
            f"{option}: this model was trained without a speaker reference (not --speaker_prosody nor "
            f"--speaker_norm); enrolling would change what it reads. Leave {option} out for this model."
        )


def enroll_clips(classifier, clips: list) -> None:
    """Enrol the classifier's model on the speaker's ``clips`` (waveforms at the feature extractor's rate)."""
    model = classifier.model
    rate = getattr(classifier.feature_extractor, "sampling_rate", 16000)
    inputs = classifier.feature_extractor(
        clips, sampling_rate=rate, return_tensors="pt", padding=True, return_attention_mask=True
    )
    model.enroll_speaker(**{k: v.to(model.device) for k, v in inputs.items()})


def enroll(classifier, references: list[str]) -> None:
    """Enrol the classifier's model on the speaker's ``references`` (audio files), refusing a model
    that cannot enrol a speaker and a reference that cannot be read."""
    check_can_enroll(classifier)
    clips = []
    for path in references:
        samples, problem = decode(Path(path))
        if samples is None:
            raise ValueError(f"--enroll {path}: {problem}")
        clips.append(samples)
    enroll_clips(classifier, clips)


def enroll_on_own_files(classifier, files: list[Path]) -> None:
    """Enrol the one speaker of ``files`` on their own audio: up to ``SELF_REFERENCE_CLIPS`` of them,
    evenly spread over the whole list (the same files on a resumed run); unreadable ones are skipped."""
    from serhub.evaluate_data import SELF_REFERENCE_CLIPS, spread

    check_can_enroll(classifier, "--enroll_self")
    picks = spread(len(files), SELF_REFERENCE_CLIPS)
    clips = [samples for samples, _ in (decode(files[k]) for k in picks) if samples is not None]
    if len(clips) < 2:
        raise ValueError(
            f"--enroll_self: {len(clips)} readable file(s) to make the speaker's reference from; it needs at "
            "least 2. Enrol the speaker on other recordings (--enroll REFERENCE) or leave --enroll_self out."
        )
    enroll_clips(classifier, clips)


def predict_files(
    inputs: list[str],
    model,
    output: str | os.PathLike,
    batch_size: int = 8,
    top_k: int = 1,
    progress: bool = True,
    enroll_on: list[str] | None = None,
    enroll_self: bool = False,
) -> dict:
    """Classify the files into ``output`` (appending, resumable); ``{"done", "skipped", "failed"}`` counts.
    ``enroll_on``: the speaker's reference recordings (see the module's ``--enroll``); ``enroll_self``:
    the files themselves are the reference (``--enroll_self``)."""
    from tqdm.auto import tqdm

    if batch_size < 1 or top_k < 1:
        raise ValueError(f"--batch_size and --top_k must be at least 1, got {batch_size} and {top_k}")
    if enroll_on and enroll_self:
        raise ValueError(
            "--enroll and --enroll_self are two references for the one speaker: give one of them"
        )
    output = Path(output)
    if output.is_dir():
        raise IsADirectoryError(
            f"--output {output} is a folder; name a CSV file, e.g. {output / 'preds.csv'}"
        )
    header = columns(top_k)
    done = done_files(output, header)
    files = find_files(inputs)
    todo = [p for p in files if os.path.abspath(p) not in done]
    counts = {"done": 0, "skipped": len(done), "failed": 0}
    if not todo:
        return counts
    classifier = model if callable(model) else load_classifier(model)
    if enroll_on:
        enroll(classifier, enroll_on)
    elif enroll_self:
        enroll_on_own_files(classifier, files)
    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        output.open("a", newline="", encoding="utf-8") as f,
        tqdm(total=len(todo), desc="predicting", unit="file", disable=not progress) as bar,
    ):
        writer = csv.writer(f)
        if f.tell() == 0:
            writer.writerow(header)
        for start in range(0, len(todo), batch_size):
            batch = [(path, *decode(path)) for path in todo[start : start + batch_size]]
            for path, samples, problem in batch:
                if problem:
                    verb = "cannot classify" if samples is None else "classified, but"
                    tqdm.write(f"{verb} {path}: {problem}", file=sys.stderr)
                counts["failed" if samples is None else "done"] += 1
            writer.writerows(rows_for(classifier, batch, top_k, batch_size))
            f.flush()
            os.fsync(f.fileno())  # a batch is on disk before the next starts: a stop loses at most one
            bar.update(len(batch))
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="FILES_OR_DIR", help="audio/video files or folders of them"
    )
    parser.add_argument("--model", required=True, help="a serhub model or transformers audio classifier")
    parser.add_argument(
        "--output", required=True, help="the CSV to write (appended to, and resumed, if it exists)"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--top_k", type=int, default=1, help="how many labels per file, best first")
    parser.add_argument(
        "--enroll",
        nargs="+",
        metavar="REFERENCE",
        default=None,
        help="recordings of the one speaker of all the files (a neutral one preferably): a model trained "
        "relative to the speaker (--speaker_prosody, --speaker_norm) reads every file relative to them",
    )
    parser.add_argument(
        "--enroll_self",
        action="store_true",
        help="the files themselves are the one speaker's reference (up to 32 of them, evenly spread): such a "
        "model reads every file relative to them, with no reference recordings",
    )


def run(args: argparse.Namespace) -> dict:
    counts = predict_files(
        args.inputs, args.model, args.output, args.batch_size, args.top_k, enroll_on=args.enroll,
        enroll_self=args.enroll_self,
    )  # fmt: skip
    print(
        f"{counts['done']} files classified, {counts['failed']} could not be read, "
        f"{counts['skipped']} were already in the CSV; results in {args.output}"
    )
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = ["check_can_enroll", "enroll", "enroll_clips", "enroll_on_own_files", "find_files", "predict_files"]
