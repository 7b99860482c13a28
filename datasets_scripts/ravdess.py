"""RAVDESS: 24 actors speak two fixed sentences in 8 emotions; labels and speakers come from the file names.

    python -m serhub.datasets_scripts.ravdess --raw_dir RAW --output_dir data/ravdess [--include_song]

RAW is the extracted ``Audio_Speech_Actors_01-24.zip`` from Zenodo (record 1188976), optionally
with ``Audio_Song_Actors_01-24.zip`` extracted into the same place:

    Actor_01/03-01-05-01-02-01-01.wav ... Actor_24/...   (Actor_NN may also sit one folder down)

A file name is ``MM-VV-EE-II-SS-RR-AA.wav``: modality (03 audio-only), vocal channel (01 speech,
02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08
surprised), intensity (01 normal, 02 strong), statement (01 "Kids are talking by the door", 02
"Dogs are sitting by the door"), repetition (01, 02) and actor (01-24; odd male, even female). The
statement becomes the transcript. Song files are left out unless ``--include_song``. Splits are
speaker-independent: whole actors, genders balanced, ``--validation_fraction`` and
``--test_fraction`` of the actors (default 2 + 2 of 24), chosen with ``--seed``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import corpus_tools as ct
from .corpus_builder import SpeakerSplitBuilder

LABELS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
TO_SHARED = {  # calm has no shared counterpart (merging it into neutral is a choice left to users)
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fearful": "fear",
    "disgust": "disgust",
    "surprised": "surprise",
}
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
FILE_NAME = re.compile(
    r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
    r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)$"
)
ACTOR_FOLDERS = ("Actor_*", "*/Actor_*")

SPEC = ct.CorpusSpec(
    name="RAVDESS",
    module="ravdess",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="en",
    optional_columns=("gender",),
    license="cc-by-nc-sa-4.0",
    license_note="""
RAVDESS is released by Livingstone & Russo under the Creative Commons Attribution-NonCommercial-
ShareAlike 4.0 licence (CC BY-NC-SA 4.0): credit the authors, no commercial use, share alike.
""",
    citation="""
@article{livingstone2018ravdess,
  author  = {Livingstone, Steven R. and Russo, Frank A.},
  title   = {The {Ryerson} Audio-Visual Database of Emotional Speech and Song ({RAVDESS}): A dynamic, multimodal set of facial and vocal expressions in {North American English}},
  journal = {PLoS ONE},
  volume  = {13},
  number  = {5},
  pages   = {e0196391},
  year    = {2018}
}""",
    about="""
24 professional actors (12 female, 12 male) speak two lexically matched sentences in a neutral,
calm, happy, sad, angry, fearful, surprised and disgusted voice, at normal and strong intensity,
twice each. Labels, speakers, the sentence and the intensity come from the file names. Splits
hold whole actors (speaker-independent), balanced by gender. Extra columns: `intensity`,
`vocal_channel` (speech or song).
""",
    layout_hint="the Actor_01..Actor_24 folders of Audio_Speech_Actors_01-24.zip",
    extra_features={"intensity": tuple(INTENSITIES.values()), "vocal_channel": tuple(CHANNELS.values())},
)


def scan(raw: Path, log: ct.ProblemLog, include_song: bool = False) -> list[ct.Utterance]:
    """One utterance per .wav file in the Actor_NN folders."""
    utterances = []
    files = sorted({p for pattern in ACTOR_FOLDERS for p in raw.glob(f"{pattern}/*.wav")})
    for path in files:
        if path.name.startswith("._"):
            continue
        where, uid = log.where(path), path.stem
        name = FILE_NAME.match(uid)
        if not name:
            log.add(ct.MALFORMED, where, "the name does not follow RAVDESS' MM-VV-EE-II-SS-RR-AA.wav", uid)
            continue
        fields = {
            "modality": (name["modality"], {"03": "audio-only"}),
            "vocal channel": (name["channel"], CHANNELS),
            "intensity": (name["intensity"], INTENSITIES),
            "statement": (name["statement"], STATEMENTS),
            "repetition": (name["repetition"], {"01": 1, "02": 2}),
        }
        for field_name, (code, known) in fields.items():
            if code not in known:
                log.add(ct.MALFORMED, where, f"{field_name} {code} is not one of {', '.join(known)}", uid)
        actor = int(name["actor"])
        if path.parent.name != f"Actor_{actor:02d}" or not 1 <= actor <= 24:
            log.add(
                ct.MALFORMED,
                where,
                f"actor {name['actor']} in the name, but the file is in {path.parent.name}",
                uid,
            )
        if name["channel"] == "02" and not include_song:
            log.exclude("song recordings (vocal channel 02; --include_song keeps them)")
            continue
        utterances.append(
            ct.Utterance(
                utterance_id=uid,
                split=None,
                audio=path,
                label=name["emotion"],
                speaker_id=f"Actor_{actor:02d}",
                source=where,
                transcript=STATEMENTS.get(name["statement"], ""),
                gender="male" if actor % 2 else "female",
                extra={
                    "intensity": INTENSITIES.get(name["intensity"]),
                    "vocal_channel": CHANNELS.get(name["channel"]),
                },
            )
        )
    return utterances


class Ravdess(SpeakerSplitBuilder):
    spec = SPEC
    hint = "Point --raw_dir at the folder where Audio_Speech_Actors_01-24.zip was extracted."
    options = {"include_song": False, **SpeakerSplitBuilder.options}

    def layout(self, options):
        return {ACTOR_FOLDERS: "the Actor_NN folders of .wav files"}

    def scan(self, raw, log, include_song=False, **options):
        return scan(raw, log, include_song)

    def add_arguments(self, parser):
        parser.add_argument("--include_song", action="store_true", help="also keep the song recordings")
        super().add_arguments(parser)


BUILDER = Ravdess()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
