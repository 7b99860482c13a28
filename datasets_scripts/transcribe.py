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
    from tqdm.auto import tqdm

    if batch_size < 1 or save_every < 1:
        raise ValueError(f"batch_size and save_every must be >= 1, got {batch_size} and {save_every}")
    dataset_dir = Path(dataset_dir)
    data, single = _load(dataset_dir)
    progress = dataset_dir / PROGRESS_FILE
    header = {"model": model, "overwrite_transcripts": overwrite_transcripts}
    done = _read_progress(progress, header)

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
    total = sum(map(len, todo.values()))
    if total == 0:
        print(f"nothing to transcribe in {dataset_dir} (pass --overwrite_transcripts to redo all rows)")
        return data["train"] if single else data
    remaining = {split: [i for i in rows if (split, i) not in done] for split, rows in todo.items()}

    if any(remaining.values()):
        asr = asr or make_pipeline(model, device)
        generation_config = getattr(getattr(asr, "model", None), "generation_config", None)
        multilingual = bool(getattr(generation_config, "is_multilingual", False))
        bar = tqdm(
            total=total, initial=total - sum(map(len, remaining.values())), desc="transcribing", unit="clip"
        )
        pending, batches, skipped = [], 0, []
        for split, rows in remaining.items():
            raw = data[split].cast_column("audio", datasets.Audio(decode=False))
            lang = language
            if lang is None and multilingual and "language" in raw.column_names:
                langs = set(raw["language"])
                lang = langs.pop() if len(langs) == 1 else None
            kwargs = (
                {"generate_kwargs": {"language": lang, "task": "transcribe"}} if multilingual and lang else {}
            )
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                subset = raw.select(batch)
                ids = (
                    subset["utterance_id"]
                    if "utterance_id" in subset.column_names
                    else [str(i) for i in batch]
                )
                inputs, readable = [], []
                for row, uid, a in zip(batch, ids, subset["audio"]):
                    try:
                        inputs.append({"raw": read_audio(a["bytes"]), "sampling_rate": SAMPLING_RATE})
                        readable.append((row, uid))
                    except Exception as err:  # soundfile/ffmpeg raise many types for a corrupt file
                        if not skip_bad:
                            _append(progress, header, pending)  # the finished batches are kept
                            raise ValueError(
                                f"split {split!r}, row {row} (utterance_id {uid!r}): the audio cannot be read "
                                f"({err}). Fix or drop that row, or pass --skip_bad to leave it untranscribed; "
                                f"the {len(done) + len(pending)} rows transcribed so far are kept in {progress}."
                            ) from err
                        skipped.append(f"{split}/{row} ({uid}): {err}")
                bar.update(len(batch) - len(readable))
                batch, ids = [r for r, _ in readable], [u for _, u in readable]
                outputs = asr(inputs, batch_size=batch_size, **kwargs) if inputs else []
                for row, uid, out in zip(batch, ids, outputs):
                    pending.append(
                        {"split": split, "row": row, "utterance_id": uid, "transcript": out["text"].strip()}
                    )
                batches += 1
                bar.update(len(batch))
                if batches % save_every == 0:
                    _append(progress, header, pending)
                    pending = []
        _append(progress, header, pending)
        bar.close()
        done = _read_progress(progress, header)
        if skipped:
            print(
                f"[transcribe] {len(skipped)} rows left untranscribed (--skip_bad):\n  "
                + "\n  ".join(skipped)
            )

    updated = {}
    for split, ds in data.items():
        texts = list(ds["transcript"]) if "transcript" in ds.column_names else [""] * len(ds)
        for i in todo[split]:
            if (split, i) in done:  # rows skipped as unreadable keep their empty transcript
                texts[i] = done[(split, i)][1]
        columns = ds.column_names if "transcript" in ds.column_names else [*ds.column_names, "transcript"]
        if "transcript" in ds.column_names:
            ds = ds.remove_columns("transcript")
        updated[split] = ds.add_column("transcript", texts, feature=datasets.Value("string")).select_columns(
            columns
        )
    result = datasets.DatasetDict(updated)
    card_path = dataset_dir / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else f"# {dataset_dir.name}\n"
    to_save = result["train"] if single else result
    save_dataset_dict(to_save, dataset_dir, card=_card_with_transcripts(card, model, total), overwrite=True)
    print(f"transcribed {total} rows with {model}; saved to {dataset_dir}")
    return datasets.load_from_disk(str(dataset_dir))


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
