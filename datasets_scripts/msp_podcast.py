"""MSP-Podcast (UT Dallas MSP lab): naturalistic podcast speech, 8 categorical classes + arousal/valence/dominance.

    python -m serhub.datasets_scripts.msp_podcast --raw_dir RAW --output_dir data/msp_podcast [--label_set 8]

RAW is the release as the MSP lab ships it (v1.x / v2.0, after signing its academic licence):

    RAW/Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    RAW/Audios/<FileName>             e.g. MSP-PODCAST_0001_0008.wav (16 kHz)
    RAW/Transcripts/<stem>.txt        optional; read into ``transcript`` when present

``EmoClass`` codes: A angry, S sad, H happy, U surprise, F fear, D disgust, C contempt, N neutral,
O other, X no agreement. Like the Odyssey 2024 / Interspeech 2025 SER challenges, O and X are left
out by default (their count is printed and written into the card; ``--keep_all_labels`` keeps them
as classes "other" and "no_agreement"). ``EmoAct``/``EmoVal``/``EmoDom`` (1-7) become ``arousal``,
``valence`` and ``dominance``. ``Split_Set`` partitions become splits: Train -> train, Development ->
validation, Test1 -> test1, Test2 -> test2, Test3 -> test3 (recipes: ``--test_split test1``). Rows
of test partitions whose labels are withheld get ``emotion`` -1 (ClassLabel's "no label"); an empty
EmoClass in Train/Development is a problem. Speakers with ``SpkrID`` "Unknown" get one id per file
(``unknown-<file>``) with a warning: speaker independence cannot be checked for them.
"""

from __future__ import annotations

from pathlib import Path

from . import corpus_tools as ct
from .corpus_builder import CorpusBuilder

LABELS_CSV = "Labels/labels_consensus.csv"
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
LABELS = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprise",
    "F": "fear",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
    "O": "other",
    "X": "no_agreement",
}
# The challenge's 8 classes are serhub's 8 shared classes.
TO_SHARED = {name: name for name in LABELS.values() if name in ct.SHARED_EMOTIONS}
SPLITS = {"Train": "train", "Development": "validation", "Test1": "test1", "Test2": "test2", "Test3": "test3"}
LABELLED_PARTITIONS = ("Train", "Development")
GENDERS = {"male": "male", "female": "female"}

SPEC = ct.CorpusSpec(
    name="MSP-Podcast",
    module="msp_podcast",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="en",
    optional_columns=("gender", "arousal", "valence", "dominance"),
    license="other",
    license_note="""
MSP-Podcast is distributed by the MSP lab of The University of Texas at Dallas under an academic
licence that must be signed before download and forbids redistribution: keep this dataset private
(`--push_to_hub` creates a private repo) and share it only with people covered by the licence.
""",
    citation="""
@article{lotfian2019msppodcast,
  author  = {Lotfian, Reza and Busso, Carlos},
  title   = {Building Naturalistic Emotionally Balanced Speech Corpus by Retrieving Emotional Speech from Existing Podcast Recordings},
  journal = {IEEE Transactions on Affective Computing},
  volume  = {10},
  number  = {4},
  pages   = {471--483},
  year    = {2019}
}""",
    about="""
Naturalistic English speech segments from podcasts, annotated by crowd workers with a consensus
categorical emotion and arousal / valence / dominance on a 1-7 scale. Splits are the official
partitions (Train -> train, Development -> validation, Test1 -> test1, Test2 -> test2, Test3 ->
test3); the partitions are speaker-independent for identified speakers. As in the Odyssey 2024 and
Interspeech 2025 challenges, "O" (other) and "X" (no agreement) are left out unless the build kept
them; withheld test labels are -1.
""",
    layout_hint="Labels/labels_consensus.csv and Audios/ (optionally Transcripts/)",
    speaker_splits="official",
    excluded_by_default=("other", "no_agreement"),
)


def scan(raw: Path, log: ct.ProblemLog) -> list[ct.Utterance]:
    """One utterance per row of labels_consensus.csv."""
    labels_csv = raw / LABELS_CSV
    transcripts = raw / "Transcripts"
    utterances, no_transcript = [], 0
    for line, row in ct.read_csv(labels_csv, COLUMNS, log):
        where = log.where(labels_csv, line)
        uid = Path(row["FileName"]).stem
        partition, label = row["Split_Set"], row["EmoClass"] or None
        if partition not in SPLITS:
            log.add(ct.MALFORMED, where, f"Split_Set {partition!r} is not one of {', '.join(SPLITS)}", uid)
        if label is None and partition in LABELLED_PARTITIONS:
            log.add(ct.MALFORMED, where, f"EmoClass is empty, but {partition} is a labelled partition", uid)
        speaker = row["SpkrID"]
        if speaker.lower() in ("", "unknown"):
            speaker = ct.unknown_speaker(uid)
        transcript = ""
        if transcripts.is_dir():
            path = transcripts / f"{uid}.txt"
            if path.is_file():
                transcript = ct.clean_text(ct.decode_text(path.read_bytes()))
            else:
                no_transcript += 1
        utterances.append(
            ct.Utterance(
                utterance_id=uid,
                split=SPLITS.get(partition),
                audio=raw / "Audios" / row["FileName"],
                label=label,
                speaker_id=speaker,
                source=where,
                transcript=transcript,
                gender=GENDERS.get(row["Gender"].lower()),
                arousal=ct.parse_float(row["EmoAct"], "EmoAct", where, log, uid),
                valence=ct.parse_float(row["EmoVal"], "EmoVal", where, log, uid),
                dominance=ct.parse_float(row["EmoDom"], "EmoDom", where, log, uid),
            )
        )
    if no_transcript:
        log.note(
            f"{ct.plural(no_transcript, 'utterance')} without a file in Transcripts/ (transcript left empty)"
        )
    return utterances


class MspPodcast(CorpusBuilder):
    """The official splits, read from the consensus label file."""

    spec = SPEC
    hint = "Point --raw_dir at the MSP-Podcast release folder (the one holding Labels/ and Audios/)."

    def layout(self, options):
        return {LABELS_CSV: "the consensus labels", "Audios": "the folder of .wav segments"}

    def read(self, raw, log, **options):
        return scan(raw, log)


BUILDER = MspPodcast()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
