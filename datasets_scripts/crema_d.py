"""CREMA-D: 91 actors speak 12 sentences in 6 emotions; labels and speakers come from the file names.

    python -m serhub.datasets_scripts.crema_d --raw_dir RAW/CREMA-D --output_dir data/crema_d [--label_set 6]

RAW is a clone of github.com/CheyneyComputerScience/CREMA-D with its Git LFS files pulled
(``git lfs pull``; without it the .wav files are small pointer files, reported as such):

    AudioWAV/1001_DFA_ANG_XX.wav        ActorID_Sentence_Emotion_Level.wav
    VideoDemographics.csv               ActorID,Age,Sex,Race,Ethnicity (optional: gives ``gender``)

Actor ids are 1001-1091. Sentences: IEO "It's eleven o'clock", TIE "That is exactly what
happened", IOM "I'm on my way to the meeting", IWW "I wonder what this is about", TAI "The
airplane is almost full", MTI "Maybe tomorrow it will be cold", IWL "I would like a new alarm
clock", ITH "I think I have a doctor's appointment", DFA "Don't forget a jacket", ITS "I think
I've seen this before", TSI "The surface is slick", WSI "We'll stop in a couple of minutes" (the
transcript). Emotions, in the corpus' order: ANG anger, DIS disgust, FEA fear, HAP happy, NEU
neutral, SAD sad. Level: LO low, MD medium, HI high, XX unspecified (extra column
``intensity``). Splits are speaker-independent: whole actors, genders balanced,
``--validation_fraction`` / ``--test_fraction`` of the actors, chosen with ``--seed``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import corpus_tools as ct
from .corpus_builder import SpeakerSplitBuilder

LABELS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
TO_SHARED = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
}
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
FILE_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")
DEMOGRAPHICS = "VideoDemographics.csv"

SPEC = ct.CorpusSpec(
    name="CREMA-D",
    module="crema_d",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="en",
    optional_columns=("gender",),
    license="odbl",
    license_note="""
CREMA-D is made available under the Open Database License (ODbL v1.0); its contents under the
Database Contents License (DbCL v1.0). Attribute the authors and share adapted databases alike.
""",
    citation="""
@article{cao2014cremad,
  author  = {Cao, Houwei and Cooper, David G. and Keutmann, Michael K. and Gur, Ruben C. and Nenkova, Ani and Verma, Ragini},
  title   = {{CREMA-D}: Crowd-sourced Emotional Multimodal Actors Dataset},
  journal = {IEEE Transactions on Affective Computing},
  volume  = {5},
  number  = {4},
  pages   = {377--390},
  year    = {2014}
}""",
    about="""
91 actors (48 male, 43 female, 20-74 years, several ethnicities) speak 12 sentences in anger,
disgust, fear, happy, neutral and sad voices; one sentence at four intensity levels, the others at
an unspecified level. Labels are the intended emotions, from the file names. Splits hold whole
actors (speaker-independent), balanced by gender where VideoDemographics.csv gives it. Extra
column: `intensity`.
""",
    layout_hint="AudioWAV/ (ActorID_Sentence_Emotion_Level.wav) and optionally VideoDemographics.csv",
    extra_features={"intensity": tuple(LEVELS.values())},
)


def _genders(raw: Path, log: ct.ProblemLog) -> dict[str, str]:
    path = raw / DEMOGRAPHICS
    if not path.is_file():
        log.note(f"{DEMOGRAPHICS} not found: no gender column values, splits not balanced by gender")
        return {}
    return {
        row["ActorID"]: row["Sex"].lower()
        for _, row in ct.read_csv(path, ("ActorID", "Sex"), log)
        if row["Sex"].lower() in ("male", "female")
    }


def scan(raw: Path, log: ct.ProblemLog) -> list[ct.Utterance]:
    """One utterance per file of AudioWAV/."""
    genders = _genders(raw, log)
    utterances = []
    for path in sorted((raw / "AudioWAV").glob("*.wav")):
        if path.name.startswith("._"):
            continue
        where, uid = log.where(path), path.stem
        name = FILE_NAME.match(uid)
        if not name:
            log.add(
                ct.MALFORMED,
                where,
                "the name does not follow CREMA-D's ActorID_Sentence_Emotion_Level.wav",
                uid,
            )
            continue
        if name["sentence"] not in SENTENCES:
            log.add(
                ct.MALFORMED, where, f"sentence {name['sentence']} is not one of {', '.join(SENTENCES)}", uid
            )
        if name["level"] not in LEVELS:
            log.add(ct.MALFORMED, where, f"level {name['level']} is not one of {', '.join(LEVELS)}", uid)
        utterances.append(
            ct.Utterance(
                utterance_id=uid,
                split=None,
                audio=path,
                label=name["emotion"],
                speaker_id=name["actor"],
                source=where,
                transcript=SENTENCES.get(name["sentence"], ""),
                gender=genders.get(name["actor"]),
                extra={"intensity": LEVELS.get(name["level"])},
            )
        )
    return utterances


class CremaD(SpeakerSplitBuilder):
    spec = SPEC
    hint = "Point --raw_dir at the CREMA-D clone (the folder holding AudioWAV/)."

    def layout(self, options):
        return {"AudioWAV/*.wav": "the AudioWAV folder of .wav clips"}

    def scan(self, raw, log, **options):
        return scan(raw, log)


BUILDER = CremaD()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
