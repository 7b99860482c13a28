"""IEMOCAP (USC SAIL): dyadic acted English sessions, categorical labels, V/A/D and transcripts.

    python -m serhub.datasets_scripts.iemocap --raw_dir RAW/IEMOCAP_full_release --output_dir data/iemocap \\
        [--label_set 4 --merge_excited] [--test_session 5 --validation_session 4]

RAW is ``IEMOCAP_full_release`` as USC SAIL ships it (after its release form is accepted):

    SessionN/sentences/wav/<dialog>/<utterance>.wav          e.g. Ses01F_impro01/Ses01F_impro01_F000.wav
    SessionN/dialog/EmoEvaluation/<dialog>.txt               summary lines, tab-separated:
        [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    SessionN/dialog/transcriptions/<dialog>.txt              Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.

Only the ``[start - end]`` summary lines of EmoEvaluation are read (the per-evaluator lines below
them are not); their bracket is ``[V, A, D]`` (valence, activation, dominance, 1-5). Labels, in
this order: neu neutral, hap happy, exc excited, sad, ang angry, fru frustrated, fea fear, sur
surprise, dis disgust, oth other, xxx no agreement (left out by default; ``--keep_all_labels``).
``--label_set 4`` is the common 4-class setup (neutral, happy, sad, angry); ``--merge_excited``
counts excited as happy, as most papers do. The speaker is the session plus the letter F/M that
starts the utterance's last part (``Ses01F_script01_1_M012`` -> Ses01M). Splits hold whole
sessions (default: test Session 5, validation Session 4, train the rest);
:func:`leave_one_session_out` gives the 5 leave-one-session-out folds. macOS ``._*`` files are
ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import corpus_tools as ct
from . import splits as split_utils
from .corpus_builder import CorpusBuilder

LABELS = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "fea": "fear",
    "sur": "surprise",
    "dis": "disgust",
    "oth": "other",
    "xxx": "no_agreement",
}
TO_SHARED = {
    "neutral": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fear": "fear",
    "disgust": "disgust",
    "surprise": "surprise",
}
SESSIONS = (1, 2, 3, 4, 5)
EVALUATION = re.compile(
    r"^\[(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\]\s+(?P<utt>\S+)\s+(?P<label>\S+)\s+"
    r"\[(?P<v>[\d.]+),\s*(?P<a>[\d.]+),\s*(?P<d>[\d.]+)\]\s*$"
)
TRANSCRIPTION = re.compile(r"^(?P<utt>Ses\S+) \[[\d.]+-[\d.]+\]:\s?(?P<text>.*)$")
UTTERANCE_ID = re.compile(r"^Ses(?P<session>\d\d)[FM]_.+_(?P<speaker>[FM])\d+$")

SPEC = ct.CorpusSpec(
    name="IEMOCAP",
    module="iemocap",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="en",
    optional_columns=("gender", "arousal", "valence", "dominance"),
    license="other",
    license_note="""
IEMOCAP is distributed by USC's SAIL lab to researchers who submit its release form; the licence
forbids redistribution. Keep this dataset private (`--push_to_hub` creates a private repo).
""",
    citation="""
@article{busso2008iemocap,
  author  = {Busso, Carlos and Bulut, Murtaza and Lee, Chi-Chun and Kazemzadeh, Abe and Mower, Emily and Kim, Samuel and Chang, Jeannette N. and Lee, Sungbok and Narayanan, Shrikanth S.},
  title   = {{IEMOCAP}: Interactive emotional dyadic motion capture database},
  journal = {Language Resources and Evaluation},
  volume  = {42},
  number  = {4},
  pages   = {335--359},
  year    = {2008}
}""",
    about="""
Five sessions of improvised and scripted dyadic conversations by ten actors (one woman and one man
per session). Each utterance has the majority categorical label, valence / arousal / dominance
(1-5, the mean of the evaluators) and its transcript from the corpus. `speaker_id` is the session
and the actor's gender (Ses01F); the extra column `dialog` names the conversation (`impro` or
`script` in its name). Splits hold whole sessions, so they are speaker-independent.
""",
    layout_hint="Session1..Session5 with sentences/wav, dialog/EmoEvaluation and dialog/transcriptions",
    excluded_by_default=("no_agreement",),
    extra_features={"dialog": "string"},
)


def _read_transcripts(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        return None
    transcripts = {}
    for line in ct.decode_text(path.read_bytes()).splitlines():
        match = TRANSCRIPTION.match(line.strip())
        if match:  # other lines (e.g. non-speech turns) have no utterance id
            transcripts[match["utt"]] = ct.clean_text(match["text"])
    return transcripts


def scan(raw: Path, log: ct.ProblemLog, sessions=SESSIONS) -> list[ct.Utterance]:
    """One utterance per summary line of the EmoEvaluation files of ``sessions``."""
    utterances = []
    for session in sessions:
        base = raw / f"Session{session}"
        for evaluation in sorted((base / "dialog" / "EmoEvaluation").glob("*.txt")):
            if evaluation.name.startswith("._"):
                continue
            dialog = evaluation.stem
            transcript_file = base / "dialog" / "transcriptions" / f"{dialog}.txt"
            transcripts = _read_transcripts(transcript_file)
            found = []
            for number, line in enumerate(ct.decode_text(evaluation.read_bytes()).splitlines(), 1):
                if not line.startswith("["):
                    continue
                where = log.where(evaluation, number)
                match = EVALUATION.match(line.strip())
                if not match:
                    log.add(
                        ct.MALFORMED,
                        where,
                        f"expected '[START - END]<tab>UTTERANCE<tab>LABEL<tab>[V, A, D]', found {line.strip()!r}",
                    )
                    continue
                uid = match["utt"]
                ids = UTTERANCE_ID.match(uid)
                if not ids or int(ids["session"]) != session:
                    log.add(
                        ct.MALFORMED,
                        where,
                        f"utterance id {uid!r} is not of the form Ses{session:02d}[FM]_<dialog>_[FM]<number>",
                        uid,
                    )
                    continue
                if transcripts is not None and uid not in transcripts:
                    log.add(ct.MALFORMED, log.where(transcript_file), f"has no line for {uid}", uid)
                letter = ids["speaker"]
                found.append(uid)
                utterances.append(
                    ct.Utterance(
                        utterance_id=uid,
                        split=None,
                        audio=base / "sentences" / "wav" / uid.rsplit("_", 1)[0] / f"{uid}.wav",
                        label=match["label"],
                        speaker_id=f"Ses{session:02d}{letter}",
                        source=where,
                        transcript=(transcripts or {}).get(uid, ""),
                        gender="female" if letter == "F" else "male",
                        valence=float(match["v"]),
                        arousal=float(match["a"]),
                        dominance=float(match["d"]),
                        extra={"dialog": dialog},
                    )
                )
            if transcripts is None and found:
                log.add(
                    ct.MISSING_FILE,
                    log.where(transcript_file),
                    f"the transcriptions of {dialog} are missing ({len(found)} utterances)",
                    found,
                )
    return utterances


def session_of(speaker_or_utterance_id: str) -> int:
    """1-5 from ``Ses01F`` or ``Ses01F_impro01_F000``."""
    return int(speaker_or_utterance_id[3:5])


class Iemocap(CorpusBuilder):
    """Splits by session: ``test_session`` (5) and ``validation_session`` (4), the rest trains."""

    spec = SPEC
    hint = "Point --raw_dir at IEMOCAP_full_release (the folder holding Session1..Session5)."
    options = {"merge_excited": False, "test_session": 5, "validation_session": 4}

    def check_options(self, label_set, options):
        if options["merge_excited"] and label_set == "native":
            raise ValueError(
                "merge_excited maps excited to happy in a shared label set; use it with label_set 4, 6 or 8"
            )
        for name in ("test_session", "validation_session"):
            if options[name] is not None and options[name] not in SESSIONS:
                raise ValueError(f"{name} must be one of {SESSIONS}, got {options[name]}")
        if options["test_session"] == options["validation_session"]:
            raise ValueError(
                f"test_session and validation_session must differ, both are {options['test_session']}"
            )

    def layout(self, options):
        return {
            f"Session{s}/{sub}": "part of the IEMOCAP_full_release layout"
            for s in SESSIONS
            for sub in ("sentences/wav", "dialog/EmoEvaluation", "dialog/transcriptions")
        }

    def read(self, raw, log, merge_excited, test_session, validation_session):
        utterances = scan(raw, log)
        for u in utterances:
            session = session_of(u.speaker_id)
            u.split = (
                "test"
                if session == test_session
                else "validation"
                if session == validation_session
                else "train"
            )
        return utterances

    def assemble_settings(self, options):
        return {"to_shared": {**TO_SHARED, "excited": "happy"} if options["merge_excited"] else TO_SHARED}

    def add_arguments(self, parser):
        parser.add_argument(
            "--merge_excited", action="store_true", help="count excited as happy (with --label_set 4/6/8)"
        )
        parser.add_argument("--test_session", type=int, default=5, choices=SESSIONS)
        parser.add_argument(
            "--validation_session",
            type=int,
            default=4,
            choices=SESSIONS,
            help="the session of the validation split",
        )


BUILDER = Iemocap()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def leave_one_session_out(data) -> dict:
    """``{session: DatasetDict(train=the other sessions, test=this session)}`` for sessions 1-5.

    ``data`` is the DatasetDict of :func:`build` (its splits are put back together) or one Dataset."""
    import datasets

    dataset = (
        datasets.concatenate_datasets(list(data.values())) if isinstance(data, datasets.DatasetDict) else data
    )
    folds = split_utils.leave_one_group_out([session_of(s) for s in dataset["speaker_id"]])
    return {
        session: datasets.DatasetDict(train=dataset.select(train), test=dataset.select(test))
        for session, (train, test) in folds.items()
    }


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
