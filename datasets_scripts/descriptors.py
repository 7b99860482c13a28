"""Fine-grained speech descriptors ("high pitch, expressive intonation, fast, loud") for every clip of a
saved dataset, derived from measured acoustics relative to each speaker, in the manner of Parler-TTS's
dataspeech annotations. The descriptor-based SER system (arXiv:2505.23236) learns to write them.

    python -m serhub.datasets_scripts.descriptors --dataset data/iemocap
    python -m serhub.datasets_scripts.descriptors --dataset DIR --output_dir DIR_WITH_DESCRIPTORS

Per clip:

- **pitch level**: median F0 of the voiced frames (swift-f0, ``modeling.prosody.track_pitch``), in
  semitones, minus the speaker's median of those medians;
- **pitch range**: the clip's F0 spread (10th to 90th percentile, semitones) over the speaker's median
  spread;
- **speaking rate**: syllables of the transcript (vowel groups, a language-light count) per second
  of active speech, over the speaker's median;
- **loudness**: mean power of the active frames (25 ms frames within 35 dB of the clip's loudest and
  above -60 dBFS), in dB, minus the speaker's median.

Each becomes one of three words by the thresholds of :class:`DescriptorThresholds` (documented
there); a quantity that cannot be measured (no voiced frame, no transcript, silence) leaves its word
out. Speakers come from ``--speaker_column`` (default ``speaker_id``); a dataset without a
``speaker_id`` column is described relative to the whole corpus, with a warning, while a
``--speaker_column`` named explicitly must exist. The measurements are kept as columns
(``pitch_semitones``, ``pitch_range_ratio``, ``speaking_rate_ratio``, ``loudness_db``, null where not measured).

The dataset is written atomically (in place by default: the old folder is swapped out only when the
new one is complete); existing descriptors are kept unless ``--overwrite_descriptors``.
"""

from __future__ import annotations

import argparse
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from serhub.modeling.prosody import active_frames_db  # noqa: F401 (importable from here, as before)

from .common import SAMPLING_RATE, read_audio, save_dataset_dict

MEASURE_COLUMNS = ("pitch_semitones", "pitch_range_ratio", "speaking_rate_ratio", "loudness_db")
WORDS = {
    "pitch_semitones": ("low pitch", "moderate pitch", "high pitch"),
    "pitch_range_ratio": ("monotone", "moderate intonation", "expressive intonation"),
    "speaking_rate_ratio": ("slow", "moderate speed", "fast"),
    "loudness_db": ("soft", "moderate volume", "loud"),
}

ATTRIBUTE_OF_WORD = {word: name for name, words in WORDS.items() for word in words}


def descriptor_words(text: str | None) -> dict[str, str]:
    """The words of a descriptor text by attribute, e.g. "high pitch, fast" -> {"pitch_semitones":
    "high pitch", "speaking_rate_ratio": "fast"}; unknown words and unnamed attributes are left out
    (the first word of an attribute counts when a text names it twice)."""
    words = {}
    for word in (text or "").split(","):
        name = ATTRIBUTE_OF_WORD.get(word.strip().lower())
        if name is not None:
            words.setdefault(name, word.strip().lower())
    return words


@dataclass(frozen=True)
class DescriptorThresholds:
    """Where a quantity, relative to the speaker, turns from the middle word to the low / high one.

    pitch: +-1.5 semitones (about +-9 % in Hz, a little more than the F0 jitter of one speaker's
    neutral sentences); range: below 0.75x or above 1.3x the speaker's usual F0 spread; rate: below
    0.9x or above 1.1x the speaker's syllables per second; loudness: +-2.5 dB (about +-33 % / -25 % in
    amplitude).
    """

    pitch_semitones: float = 1.5
    range_low: float = 0.75
    range_high: float = 1.3
    rate_low: float = 0.9
    rate_high: float = 1.1
    loudness_db: float = 2.5

    def bounds(self, name: str) -> tuple[float, float]:
        return {
            "pitch_semitones": (-self.pitch_semitones, self.pitch_semitones),
            "pitch_range_ratio": (self.range_low, self.range_high),
            "speaking_rate_ratio": (self.rate_low, self.rate_high),
            "loudness_db": (-self.loudness_db, self.loudness_db),
        }[name]


DEFAULT_THRESHOLDS = DescriptorThresholds()
DEFAULT_SPEAKER_COLUMN = "speaker_id"


def describe(
    pitch_semitones: float | None = None,
    pitch_range_ratio: float | None = None,
    speaking_rate_ratio: float | None = None,
    loudness_db: float | None = None,
    thresholds: DescriptorThresholds = DEFAULT_THRESHOLDS,
) -> str:
    """The descriptor text of speaker-relative quantities, e.g. "high pitch, expressive intonation,
    fast, loud"; ``None`` (not measured) leaves that word out."""
    values = dict(
        zip(MEASURE_COLUMNS, (pitch_semitones, pitch_range_ratio, speaking_rate_ratio, loudness_db))
    )
    words = []
    for name, value in values.items():
        if value is None or not math.isfinite(value):
            continue
        low, high = thresholds.bounds(name)
        words.append(WORDS[name][0 if value < low else 2 if value > high else 1])
    return ", ".join(words)


def describe_prosody_percent(pitch: float, pitch_range: float, rate: float, volume: float) -> str:
    """Descriptors of SSML ``<prosody>`` changes in percent relative to the speaker's own voice (the
    synthetic corpus's exact settings): the same words and thresholds as measured descriptors."""
    return describe(
        12.0 * math.log2(max(1.0 + pitch / 100.0, 1e-3)),
        max(1.0 + pitch_range / 100.0, 0.0),
        max(1.0 + rate / 100.0, 0.0),
        20.0 * math.log10(max(1.0 + volume / 100.0, 1e-3)),
    )


# ------------------------------------------------------------------------------------ measuring
def count_syllables(text: str) -> int:
    """Syllables of a transcript: vowel groups per word (a final silent "e" dropped), at least one per
    word with letters. Exact enough for a rate relative to the same speaker."""
    count = 0
    for word in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", (text or "").lower()):
        groups = len(re.findall(r"[aeiouyàáâäèéêëìíîïòóôöùúûü]+", word))
        if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
            groups -= 1
        count += max(groups, 1)
    return count


@dataclass(frozen=True)
class ClipAcoustics:
    """Absolute measurements of one clip (None where not measurable)."""

    median_semitones: float | None  # re 55 Hz
    spread_semitones: float | None
    syllables_per_second: float | None
    loudness_db: float | None


def measure_clip(
    audio: np.ndarray, transcript: str | None, sampling_rate: int = SAMPLING_RATE
) -> ClipAcoustics:
    from serhub.modeling.prosody import track_pitch

    f0 = track_pitch(audio, sampling_rate)
    voiced = f0[f0 > 0]
    median = spread = None
    if voiced.size >= 5:  # fewer voiced frames (80 ms) say little about a pitch level
        semitones = 12.0 * np.log2(voiced / 55.0)
        median = float(np.median(semitones))
        spread = float(np.percentile(semitones, 90) - np.percentile(semitones, 10))
    active = active_frames_db(audio, sampling_rate)
    loudness = float(10.0 * np.log10(np.mean(10.0 ** (active / 10.0)))) if active.size else None
    syllables = count_syllables(transcript or "")
    seconds = active.size * 0.010
    rate = syllables / seconds if syllables and seconds >= 0.2 else None
    return ClipAcoustics(median, spread, rate, loudness)


def relative_to_speakers(clips: list[ClipAcoustics], speakers: list[str]) -> list[dict[str, float | None]]:
    """Each clip's quantities relative to its speaker's median clip (``MEASURE_COLUMNS``)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(speakers):
        groups[s].append(i)
    out: list[dict[str, float | None]] = [{} for _ in clips]
    fields = (
        ("pitch_semitones", "median_semitones", "difference"),
        ("pitch_range_ratio", "spread_semitones", "ratio"),
        ("speaking_rate_ratio", "syllables_per_second", "ratio"),
        ("loudness_db", "loudness_db", "difference"),
    )
    for rows in groups.values():
        for column, attribute, kind in fields:
            values = [getattr(clips[i], attribute) for i in rows]
            known = [v for v in values if v is not None]
            reference = float(np.median(known)) if known else None
            for i, v in zip(rows, values):
                if v is None or reference is None or (kind == "ratio" and reference <= 0):
                    out[i][column] = None
                else:
                    out[i][column] = v - reference if kind == "difference" else v / reference
    return out


# ------------------------------------------------------------------------------------ the dataset
def add_descriptors(
    dataset_dir: str | Path,
    output_dir: str | Path | None = None,
    speaker_column: str | None = None,
    overwrite_descriptors: bool = False,
    thresholds: DescriptorThresholds = DEFAULT_THRESHOLDS,
):
    """Measure every clip, write the ``descriptors`` column (and the measurements) and save the dataset
    to ``output_dir`` (default: in place, atomically). Returns the new DatasetDict. ``speaker_column``:
    None reads speakers from ``speaker_id`` when there is one (else the whole corpus is the reference, with
    a warning); a name given must be a column of every split."""
    import datasets
    from tqdm.auto import tqdm

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} is not a folder; pass the --output_dir of a dataset builder.")
    data = datasets.load_from_disk(str(dataset_dir))
    single = isinstance(data, datasets.Dataset)
    data = datasets.DatasetDict({"train": data}) if single else data
    for split, ds in data.items():
        if "audio" not in ds.column_names:
            raise ValueError(f"split {split!r} has no 'audio' column; columns: {ds.column_names}")
        if "descriptors" in ds.column_names and not overwrite_descriptors:
            raise ValueError(
                f"split {split!r} already has a 'descriptors' column; pass --overwrite_descriptors to "
                "measure them again (the dataset is left as it is)."
            )
        if speaker_column is not None and speaker_column not in ds.column_names:
            raise ValueError(
                f"split {split!r} has no speaker column {speaker_column!r}; its columns are {ds.column_names}. "
                "Pass --speaker_column with one of them, or leave it out to use 'speaker_id' when present "
                "(without it, descriptors are relative to the whole corpus)."
            )
        if speaker_column is None and DEFAULT_SPEAKER_COLUMN not in ds.column_names:
            warnings.warn(
                f"split {split!r} has no {DEFAULT_SPEAKER_COLUMN!r} column (columns: {ds.column_names}), so its "
                "descriptors are relative to the whole corpus, not to each speaker; pass --speaker_column NAME "
                "if the speakers are in another column.",
                stacklevel=2,
            )
    speaker_column = speaker_column or DEFAULT_SPEAKER_COLUMN
    keys, measures, speakers = [], [], []
    total = sum(len(ds) for ds in data.values())
    with tqdm(total=total, desc="measuring pitch, rate, loudness", unit="clip") as bar:
        for split, ds in data.items():
            raw = ds.cast_column("audio", datasets.Audio(decode=False))
            has_speakers = speaker_column in ds.column_names
            texts = list(ds["transcript"]) if "transcript" in ds.column_names else [""] * len(ds)
            who = list(ds[speaker_column]) if has_speakers else [""] * len(ds)
            for row, (audio, text, speaker) in enumerate(zip(raw["audio"], texts, who)):
                try:
                    waveform = read_audio(audio["bytes"] if audio.get("bytes") else audio["path"])
                except Exception as err:  # soundfile/ffmpeg raise many types for a corrupt file
                    raise ValueError(
                        f"split {split!r}, row {row}: the audio cannot be read ({err}); fix or drop that "
                        f"row. Nothing was written: {dataset_dir} is unchanged."
                    ) from err
                keys.append((split, row))
                measures.append(measure_clip(waveform, text))
                speakers.append(speaker or "")
                bar.update(1)
    relative = relative_to_speakers(measures, speakers)
    columns = {split: {c: [] for c in ("descriptors", *MEASURE_COLUMNS)} for split in data}
    for (split, _), values in zip(keys, relative):
        columns[split]["descriptors"].append(describe(**values, thresholds=thresholds))
        for c in MEASURE_COLUMNS:
            v = values[c]
            columns[split][c].append(None if v is None else round(float(v), 4))
    updated = {}
    for split, ds in data.items():
        ds = ds.remove_columns([c for c in ("descriptors", *MEASURE_COLUMNS) if c in ds.column_names])
        ds = ds.add_column("descriptors", columns[split]["descriptors"], feature=datasets.Value("string"))
        for c in MEASURE_COLUMNS:
            ds = ds.add_column(c, columns[split][c], feature=datasets.Value("float32"))
        updated[split] = ds
    result = datasets.DatasetDict(updated)
    card_path = dataset_dir / "README.md"
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else f"# {dataset_dir.name}\n"
    target = Path(output_dir) if output_dir else dataset_dir
    save_dataset_dict(
        result["train"] if single else result,
        target,
        card=card_with_descriptors(card, thresholds, any(s for s in speakers)),
        overwrite=target == dataset_dir,
    )
    return result


def card_with_descriptors(card: str, thresholds: DescriptorThresholds, by_speaker: bool) -> str:
    section = (
        "\n## Descriptors\n\n`descriptors` was derived by `python -m serhub.datasets_scripts.descriptors` from "
        "measured acoustics relative to each "
        + ("speaker" if by_speaker else "corpus (no speaker ids)")
        + f": pitch (swift-f0) +-{thresholds.pitch_semitones} semitones, F0 range below "
        f"{thresholds.range_low}x / above {thresholds.range_high}x, speaking rate below {thresholds.rate_low}x / "
        f"above {thresholds.rate_high}x (transcript syllables per second of speech), loudness "
        f"+-{thresholds.loudness_db} dB. Machine-made labels, not annotations.\n"
    )
    return card.split("\n## Descriptors\n")[0].rstrip("\n") + "\n" + section


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a dataset folder (save_to_disk)")
    parser.add_argument("--output_dir", help="write the described dataset here (default: in place)")
    parser.add_argument(
        "--speaker_column",
        help="the column of speaker ids (default: speaker_id when present, else the whole corpus is the reference)",
    )
    parser.add_argument("--overwrite_descriptors", action="store_true")
    args = parser.parse_args(argv)
    result = add_descriptors(args.dataset, args.output_dir, args.speaker_column, args.overwrite_descriptors)
    for split, ds in result.items():
        print(f"{split}: {len(ds)} clips, e.g. {ds[0]['descriptors']!r}")


if __name__ == "__main__":
    main()
