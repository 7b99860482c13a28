"""Real English telephone speech with transcripts: Asterisk's core sound prompts (one speaker).

    python -m serhub.datasets_scripts.asterisk_prompts --output_dir data/asterisk_prompts

Source: Debian's ``asterisk-core-sounds-en-wav`` (the recordings, 8 kHz, installed under
``/usr/share/asterisk/sounds/en``) and ``asterisk-core-sounds-en`` (the transcripts,
``/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``, lines ``name: text``, ``;``
comments, names with a folder prefix such as ``dictate/pause``). Both are CC-BY-SA 3.0 (Digium,
voice of Allison Smith). ``./setup.sh`` installs them.

It is the real ASR data of serhub's audio-LLM alignment phases (EmoSLLM phases 1-2). Prompts whose
transcript is a description such as ``[this is a simple beep tone]`` are dropped (no speech), as are
recordings without a transcript line. Audio is resampled to 16 kHz. The held-out split is chosen by
a hash of the prompt name, so it is stable when the package changes. There are no emotion labels:
``emotion`` is a one-class ClassLabel ("neutral", read speech) to keep the common schema.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

from .common import (
    builder_argument_parser,
    check_output_dir,
    describe,
    encode_wav,
    read_audio,
    save_dataset_dict,
    ser_features,
)

DEFAULT_SOUNDS_DIR = "/usr/share/asterisk/sounds/en"
DEFAULT_TRANSCRIPTS = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
INSTALL_HINT = "install them with `sudo apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en` (./setup.sh does this)"
SPEAKER = "asterisk-allison"


def read_transcripts(path: str | Path) -> dict[str, str]:
    """``{prompt name: transcript}`` from the Asterisk sound-list file (plain or .gz)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript file {path} not found; {INSTALL_HINT}, or pass --transcripts.")
    opener = gzip.open if path.suffix == ".gz" else open
    transcripts = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            text = " ".join(text.split())
            if text:
                transcripts[name.strip()] = text
    if not transcripts:
        raise ValueError(f"{path} contains no 'name: text' lines; is it the Asterisk core-sounds list?")
    return transcripts


def is_speech(text: str) -> bool:
    """Descriptions of non-speech sounds are bracketed: ``[ascending tones]``."""
    return bool(re.sub(r"\[[^\]]*\]", "", text).strip())


def heldout(name: str, fraction: float) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def build(
    sounds_dir: str = DEFAULT_SOUNDS_DIR,
    transcripts: str = DEFAULT_TRANSCRIPTS,
    test_fraction: float = 0.1,
    skip_bad: bool = False,
):
    """Read, resample and split the prompts; returns a ``DatasetDict`` (train / test)."""
    return build_with_report(sounds_dir, transcripts, test_fraction, skip_bad)[0]


def build_with_report(sounds_dir: str, transcripts: str, test_fraction: float, skip_bad: bool):
    """:func:`build`, plus the list of recordings left out as unreadable (with ``skip_bad``)."""
    import datasets
    from tqdm.auto import tqdm

    sounds = Path(sounds_dir)
    if not sounds.is_dir():
        raise FileNotFoundError(f"sound folder {sounds} not found; {INSTALL_HINT}, or pass --sounds_dir.")
    texts = read_transcripts(transcripts)
    files = sorted(p for p in sounds.rglob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no .wav files under {sounds}; {INSTALL_HINT}.")
    columns = ("audio", "emotion", "transcript", "speaker_id", "utterance_id", "gender", "language")
    rows = {split: {key: [] for key in columns} for split in ("train", "test")}
    problems, used = [], 0
    for path in tqdm(files, desc="asterisk prompts", unit="file"):
        name = path.relative_to(sounds).with_suffix("").as_posix()
        text = texts.get(name)
        if text is None or not is_speech(text):
            continue
        try:
            audio = read_audio(path)
        except ValueError as err:
            problems.append(str(err))
            continue
        split = "test" if heldout(name, test_fraction) else "train"
        for key, value in (
            ("audio", {"bytes": encode_wav(audio), "path": f"{name.replace('/', '__')}.wav"}),
            ("emotion", 0),
            ("transcript", text),
            ("speaker_id", SPEAKER),
            ("utterance_id", name),
            ("gender", "female"),
            ("language", "en"),
        ):
            rows[split][key].append(value)
        used += 1
    if problems and not skip_bad:
        raise ValueError(
            f"{len(problems)} unreadable recordings (pass --skip_bad to leave them out):\n"
            + "\n".join(problems)
        )
    if used == 0:
        raise ValueError(
            f"none of the {len(files)} recordings under {sounds} has a transcript in {transcripts}"
        )
    features = ser_features(["neutral"], optional=("gender", "language"))
    # an empty split (e.g. test_fraction=0) is left out: load_from_disk cannot read one back
    dataset_dict = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(cols, features=features)
            for split, cols in rows.items()
            if cols["utterance_id"]
        }
    )
    return dataset_dict, problems


CARD = """---
license: cc-by-sa-3.0
language: [en]
task_categories: [automatic-speech-recognition]
tags: [telephone-speech, serhub]
pretty_name: Asterisk core sound prompts (English)
---

# Asterisk core sound prompts (English)

Real read telephone speech (one female speaker, Allison Smith) with transcripts, built by serhub's
`datasets_scripts/asterisk_prompts.py` from Debian's `asterisk-core-sounds-en-wav` and
`asterisk-core-sounds-en` (CC-BY-SA 3.0, Digium). Recordings are 8 kHz, resampled to 16 kHz.
Used as ASR data for the audio-LLM alignment phases. No emotion annotation (`emotion` is "neutral").
The held-out `test` split is chosen by a hash of the prompt name.

{skipped}

## Statistics

{table}
"""


def dataset_card(dataset_dict, skipped: list[str] = ()) -> str:
    note = (
        f"{len(skipped)} unreadable recordings were skipped:\n\n" + "\n".join(f"- {p}" for p in skipped)
        if skipped
        else ""
    )
    return CARD.format(table=describe(dataset_dict), skipped=note)


def main(argv=None):
    parser = builder_argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--sounds_dir", default=DEFAULT_SOUNDS_DIR)
    parser.add_argument("--transcripts", default=DEFAULT_TRANSCRIPTS)
    parser.add_argument("--test_fraction", type=float, default=0.1)
    parser.add_argument(
        "--skip_bad", action="store_true", help="leave out unreadable recordings instead of failing"
    )
    args = parser.parse_args(argv)
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    dataset_dict, skipped = build_with_report(
        args.sounds_dir, args.transcripts, args.test_fraction, args.skip_bad
    )
    print(describe(dataset_dict))
    path = save_dataset_dict(
        dataset_dict, args.output_dir, card=dataset_card(dataset_dict, skipped), overwrite=args.overwrite
    )
    print(f"saved to {path}")


if __name__ == "__main__":
    main()
