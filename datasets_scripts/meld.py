"""MELD: multi-party conversations from the TV series Friends, 7 emotions and 3 sentiments per utterance.

    python -m serhub.datasets_scripts.meld --raw_dir RAW/MELD.Raw --output_dir data/meld [--label_set 6]

RAW is ``MELD.Raw`` as distributed (github.com/declare-lab/MELD, the MELD.Raw.tar.gz archive),
with its three media archives extracted in place:

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
        Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime
    train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
    dev_splits_complete/dia{D}_utt{U}.mp4
    output_repeated_splits_test/dia{D}_utt{U}.mp4

A media folder may also sit one level down (``train/train_splits``, as the archives unpack), and a
clip converted to ``.wav`` next to where its ``.mp4`` would be is used instead. The audio track of
the mp4 clips is decoded with ffmpeg. Splits are the official ones (train / dev -> validation /
test); they are not speaker-independent (the six main characters speak in all of them).
``utterance_id`` is ``<split>_dia<D>_utt<U>`` (the pair alone repeats across splits); the extra
columns ``dialogue_id`` (``<split>_dia<D>``) and ``sentiment`` keep the conversation structure.
Windows-1252 punctuation that the CSVs carry as control characters is repaired in transcripts.
"""

from __future__ import annotations

from pathlib import Path

from . import corpus_tools as ct
from .corpus_builder import CorpusBuilder

# The order of the MELD paper and README: anger, disgust, sadness, joy, neutral, surprise, fear.
LABELS = {name: name for name in ("anger", "disgust", "sadness", "joy", "neutral", "surprise", "fear")}
TO_SHARED = {
    "anger": "angry",
    "disgust": "disgust",
    "sadness": "sad",
    "joy": "happy",
    "neutral": "neutral",
    "surprise": "surprise",
    "fear": "fear",
}
SENTIMENTS = ("negative", "neutral", "positive")
COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
SPLITS = {  # split: (label file, media folder)
    "train": ("train_sent_emo.csv", "train_splits"),
    "validation": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}

SPEC = ct.CorpusSpec(
    name="MELD",
    module="meld",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="en",
    optional_columns=(),
    license="gpl-3.0",
    license_note="""
MELD is released by its authors under the GPL-3.0 licence of its repository
(github.com/declare-lab/MELD) for research; the clips are excerpts of the TV series Friends, whose
rights stay with their owners. Keep uploads private unless you have checked that you may share them.
""",
    citation="""
@inproceedings{poria2019meld,
  author    = {Poria, Soujanya and Hazarika, Devamanyu and Majumder, Navonil and Naik, Gautam and Cambria, Erik and Mihalcea, Rada},
  title     = {{MELD}: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversations},
  booktitle = {Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics},
  pages     = {527--536},
  year      = {2019}
}""",
    about="""
Utterances of multi-party conversations from the TV series Friends, each labelled with one of 7
emotions and a sentiment, with its transcript. The audio is the soundtrack of the official video
clips (music and laughter included). Splits are MELD's official train / dev (validation) / test;
they share speakers (the main characters), so they are not speaker-independent. `speaker_id` is the
character's name; `dialogue_id` and `sentiment` are extra columns.
""",
    layout_hint="train/dev/test_sent_emo.csv and the media folders train_splits, dev_splits_complete, "
    "output_repeated_splits_test",
    speaker_splits="none",
    extra_features={"dialogue_id": "string", "sentiment": SENTIMENTS},
)


def _media_patterns(folder: str) -> tuple[str, str]:
    return folder, f"*/{folder}"


def scan(raw: Path, log: ct.ProblemLog) -> list[ct.Utterance]:
    """One utterance per row of the three label files."""
    utterances = []
    for split, (label_file, folder) in SPLITS.items():
        media = ct.find_path(raw, _media_patterns(folder))
        for line, row in ct.read_csv(raw / label_file, COLUMNS, log):
            where = log.where(raw / label_file, line)
            try:
                dialogue, number = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            except ValueError:
                log.add(
                    ct.MALFORMED,
                    where,
                    f"Dialogue_ID and Utterance_ID should be integers, found {row['Dialogue_ID']!r}, {row['Utterance_ID']!r}",
                )
                continue
            uid = f"{split}_dia{dialogue}_utt{number}"
            clip = media / f"dia{dialogue}_utt{number}.mp4"
            if not clip.is_file() and clip.with_suffix(".wav").is_file():
                clip = clip.with_suffix(".wav")
            sentiment = row["Sentiment"]
            if sentiment not in SENTIMENTS:
                log.add(
                    ct.UNKNOWN_LABEL,
                    where,
                    f"Sentiment {sentiment!r} is not one of {', '.join(SENTIMENTS)}",
                    uid,
                )
            utterances.append(
                ct.Utterance(
                    utterance_id=uid,
                    split=split,
                    audio=clip,
                    label=row["Emotion"],
                    speaker_id=row["Speaker"],
                    source=where,
                    transcript=ct.clean_text(row["Utterance"]),
                    extra={"dialogue_id": f"{split}_dia{dialogue}", "sentiment": sentiment},
                )
            )
    return utterances


class Meld(CorpusBuilder):
    """The official train / dev / test files (not speaker-independent)."""

    spec = SPEC
    hint = "Point --raw_dir at MELD.Raw (the folder with the *_sent_emo.csv files)."

    def layout(self, options):
        expected = {}
        for label_file, folder in SPLITS.values():
            expected[label_file] = "a MELD label file"
            expected[_media_patterns(folder)] = (
                "a folder of dia<D>_utt<U>.mp4 clips (extract the media archive)"
            )
        return expected

    def read(self, raw, log, **options):
        return scan(raw, log)


BUILDER = Meld()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
