"""Add or refresh the ``transcript`` column of a saved dataset with a Whisper model (ASR pipeline).

    python -m serhub.datasets_scripts.transcribe --dataset data/msp_podcast --model openai/whisper-large-v3
    python -m serhub.datasets_scripts.transcribe --dataset DIR --model offline:whisper-tiny.en --batch_size 16

Rows with an empty transcript are transcribed (all rows with ``--overwrite_transcripts``), batched
through ``transformers.pipeline("automatic-speech-recognition")``. The work is resumable: every
``--save_every`` batches the new transcripts are appended to ``.transcribe_progress.jsonl`` in the
dataset folder, so a crash or a killed job keeps what was done and a re-run with the same model
continues where it stopped. At the end the updated DatasetDict replaces the folder atomically
(written to a temporary sibling first; the old folder, still memory-mapped while its rows are
copied, is swapped out only once the new one is complete), which also removes the progress file.
The dataset card gets a "Transcripts" section naming the model.

For a multilingual model the language is ``--language``, or else the dataset's ``language`` column
(e.g. "es" for EmoSPeech). ``--model`` takes a Hub id, a local folder or ``offline:<name>``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

from .common import SAMPLING_RATE, read_audio, save_dataset_dict

PROGRESS_FILE = ".transcribe_progress.jsonl"


def _load(dataset_dir: Path):
    import datasets

    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} is not a folder; pass the --output_dir of a dataset builder.")
    data = datasets.load_from_disk(str(dataset_dir))
    if isinstance(data, datasets.Dataset):
        return datasets.DatasetDict({"train": data}), True
    return data, False


def _read_progress(path: Path, header: dict) -> dict[tuple[str, int], tuple[str, str]]:
    """``{(split, row): (utterance_id, transcript)}`` saved by an earlier run with the same settings."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    found = json.loads(lines[0]) if lines else {}
    if found != header:
        raise ValueError(
            f"{path} holds the progress of a run with {found}, not {header}. Re-run with those settings "
            "to continue it, or delete the file to start over."
        )
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the last line of a run killed while writing
            continue
        done[(entry["split"], entry["row"])] = (entry["utterance_id"], entry["transcript"])
    return done


def _append(path: Path, header: dict, entries: list[dict]) -> None:
    new = not path.is_file()
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write(json.dumps(header) + "\n")
        f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        f.flush()
        os.fsync(f.fileno())


def make_pipeline(model: str, device=None):
    """The ASR pipeline, with Whisper's end-of-text token as padding (converted checkpoints may
    lack a pad token, and the pipeline cannot batch without one)."""
    import torch
    from serhub.modeling.offline_assets import resolve_pretrained
    from transformers import pipeline

    if device is None:
        device = 0 if torch.cuda.is_available() else -1
    asr = pipeline("automatic-speech-recognition", model=resolve_pretrained(model), device=device)
    if asr.tokenizer is not None and asr.tokenizer.pad_token is None:
        asr.tokenizer.pad_token = asr.tokenizer.eos_token
    return asr


def _card_with_transcripts(card: str, model: str, count: int) -> str:
    section = (
        f"## Transcripts\n\n`transcript` of {count} rows was written by `{model}` with serhub's "
        f"`datasets_scripts.transcribe` ({date.today().isoformat()}); the other rows keep their transcripts.\n"
    )
    if re.search(r"^## Transcripts\n", card, flags=re.M):
        return re.sub(r"^## Transcripts\n.*?(?=^## |\Z)", section + "\n", card, flags=re.M | re.S)
    return card.rstrip("\n") + "\n\n" + section


def transcribe(
    dataset_dir: str | os.PathLike,
    model: str,
    batch_size: int = 8,
    overwrite_transcripts: bool = False,
    save_every: int = 10,
    language: str | None = None,
    device=None,
    asr: Callable | None = None,
    skip_bad: bool = False,
):
    """Transcribe the rows without a transcript (all with ``overwrite_transcripts``) and save the
    dataset in place; returns the updated DatasetDict (or Dataset). ``asr``: a ready pipeline
    (or any callable with its interface), else one is made from ``model``. A row whose audio cannot
    be read stops the run with its split, row and id (the finished batches are kept), or with
    ``skip_bad`` is left untranscribed and listed at the end."""
    import datasets

    if batch_size < 1 or save_every < 1:
        raise ValueError(f"batch_size and save_every must be >= 1, got {batch_size} and {save_every}")
    dataset_dir = Path(dataset_dir)
    data, single = _load(dataset_dir)
    progress = dataset_dir / PROGRESS_FILE
    header = {"model": model, "overwrite_transcripts": overwrite_transcripts}
    done = _read_progress(progress, header)
    todo = _rows_to_transcribe(data, overwrite_transcripts, done, progress)
    total = sum(map(len, todo.values()))
    if total == 0:
        print(f"nothing to transcribe in {dataset_dir} (pass --overwrite_transcripts to redo all rows)")
        return data["train"] if single else data
    remaining = {split: [i for i in rows if (split, i) not in done] for split, rows in todo.items()}
    if any(remaining.values()):
        run = _Transcription(asr or make_pipeline(model, device), progress, header, len(done), skip_bad)
        run.transcribe(data, remaining, total, batch_size, save_every, language)
        done = _read_progress(progress, header)
        if run.skipped:
            print(
                f"[transcribe] {len(run.skipped)} rows left untranscribed (--skip_bad):\n  "
                + "\n  ".join(run.skipped)
            )
    _save_transcripts(data, todo, done, dataset_dir, single, model, total)
    print(f"transcribed {total} rows with {model}; saved to {dataset_dir}")
    return datasets.load_from_disk(str(dataset_dir))


def _rows_to_transcribe(
    data, overwrite_transcripts: bool, done: dict, progress: Path
) -> dict[str, list[int]]:
    """Per split, the rows to transcribe; a progress file made for other rows is refused."""
    todo: dict[str, list[int]] = {}
    for split, ds in data.items():
        if "audio" not in ds.column_names:
            raise ValueError(f"split {split} has no 'audio' column; columns: {ds.column_names}")
        texts = ds["transcript"] if "transcript" in ds.column_names else [""] * len(ds)
        ids = ds["utterance_id"] if "utterance_id" in ds.column_names else [str(i) for i in range(len(ds))]
        rows = [i for i, t in enumerate(texts) if overwrite_transcripts or not (t or "").strip()]
        for i in rows:
            if (split, i) in done and done[(split, i)][0] != ids[i]:
                raise ValueError(
                    f"{progress} was made for another version of this dataset (row {i} of {split} was "
                    f"{done[(split, i)][0]!r}, is {ids[i]!r}); delete it to start over."
                )
        todo[split] = rows
    return todo


class _Transcription:
    """One transcription pass: batches through the ASR pipeline, progress appended every
    ``save_every`` batches (and before an unreadable row stops the run)."""

    def __init__(self, asr, progress: Path, header: dict, done: int, skip_bad: bool):
        self.asr, self.progress, self.header, self.done, self.skip_bad = asr, progress, header, done, skip_bad
        self.pending: list[dict] = []
        self.skipped: list[str] = []
        config = getattr(getattr(asr, "model", None), "generation_config", None)
        self.multilingual = bool(getattr(config, "is_multilingual", False))

    def transcribe(self, data, remaining, total, batch_size, save_every, language) -> None:
        import datasets
        from serhub.modeling.modeling_ensemble import transcript_generate_kwargs
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, initial=total - sum(map(len, remaining.values())), desc="transcribing", unit="clip"
        )
        batches = 0
        for split, rows in remaining.items():
            raw = data[split].cast_column("audio", datasets.Audio(decode=False))
            lang = language
            if lang is None and self.multilingual and "language" in raw.column_names:
                langs = set(raw["language"])
                lang = langs.pop() if len(langs) == 1 else None
            language_kwargs = {"language": lang, "task": "transcribe"} if self.multilingual and lang else {}
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                inputs, readable = self._read(split, raw.select(batch), batch)
                bar.update(len(batch) - len(readable))
                outputs = []
                if inputs:
                    decoding = {**transcript_generate_kwargs([i["raw"] for i in inputs]), **language_kwargs}
                    outputs = self.asr(inputs, batch_size=batch_size, generate_kwargs=decoding)
                for (row, uid), out in zip(readable, outputs):
                    self.pending.append(
                        {"split": split, "row": row, "utterance_id": uid, "transcript": out["text"].strip()}
                    )
                batches += 1
                bar.update(len(readable))
                if batches % save_every == 0:
                    self.flush()
        self.flush()
        bar.close()

    def flush(self) -> None:
        _append(self.progress, self.header, self.pending)
        self.done += len(self.pending)
        self.pending = []

    def _read(self, split: str, subset, batch: list[int]):
        """The batch's decodable clips as pipeline inputs, and their (row, utterance id)."""
        ids = subset["utterance_id"] if "utterance_id" in subset.column_names else [str(i) for i in batch]
        inputs, readable = [], []
        for row, uid, audio in zip(batch, ids, subset["audio"]):
            try:
                inputs.append({"raw": read_audio(audio["bytes"]), "sampling_rate": SAMPLING_RATE})
                readable.append((row, uid))
            except Exception as err:  # soundfile/ffmpeg raise many types for a corrupt file
                if not self.skip_bad:
                    self.flush()  # the finished batches are kept
                    raise ValueError(
                        f"split {split!r}, row {row} (utterance_id {uid!r}): the audio cannot be read "
                        f"({err}). Fix or drop that row, or pass --skip_bad to leave it untranscribed; "
                        f"the {self.done} rows transcribed so far are kept in {self.progress}."
                    ) from err
                self.skipped.append(f"{split}/{row} ({uid}): {err}")
        return inputs, readable


def _save_transcripts(data, todo, done, dataset_dir: Path, single: bool, model: str, total: int) -> None:
    """The dataset with its new transcripts (unreadable rows keep theirs), saved in place atomically."""
    import datasets

    updated = {}
    for split, ds in data.items():
        texts = list(ds["transcript"]) if "transcript" in ds.column_names else [""] * len(ds)
        for i in todo[split]:
            if (split, i) in done:  # rows skipped as unreadable keep their empty transcript
                texts[i] = done[(split, i)][1]
        columns = ds.column_names if "transcript" in ds.column_names else [*ds.column_names, "transcript"]
        if "transcript" in ds.column_names:
            ds = ds.remove_columns("transcript")
        column = ds.add_column("transcript", texts, feature=datasets.Value("string"))
        updated[split] = column.select_columns(columns)
    result = datasets.DatasetDict(updated)
    card_path = dataset_dir / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else f"# {dataset_dir.name}\n"
    to_save = result["train"] if single else result
    save_dataset_dict(to_save, dataset_dir, card=_card_with_transcripts(card, model, total), overwrite=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", required=True, help="a dataset folder (save_to_disk), e.g. a builder's --output_dir"
    )
    parser.add_argument(
        "--model", required=True, help="Whisper: Hub id, local folder or offline:whisper-tiny.en"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--overwrite_transcripts", action="store_true", help="transcribe every row, not only empty ones"
    )
    parser.add_argument("--save_every", type=int, default=10, help="save progress every N batches")
    parser.add_argument("--language", help="for multilingual models (default: the dataset's language column)")
    parser.add_argument("--device", help="e.g. cpu, cuda:0 (default: the first GPU if any)")
    parser.add_argument(
        "--skip_bad",
        action="store_true",
        help="leave rows with unreadable audio untranscribed instead of stopping",
    )
    args = parser.parse_args(argv)
    transcribe(
        args.dataset,
        args.model,
        batch_size=args.batch_size,
        overwrite_transcripts=args.overwrite_transcripts,
        save_every=args.save_every,
        language=args.language,
        device=args.device,
        skip_bad=args.skip_bad,
    )


if __name__ == "__main__":
    main()
