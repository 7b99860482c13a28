"""EmoSPeech 2024 (IberLEF) / Spanish MEACorpus 2023: Spanish speech from YouTube, 6 emotions, transcripts.

    python -m serhub.datasets_scripts.emospeech --raw_dir RAW --output_dir data/emospeech [--label_set 6]

RAW holds what the task organisers (University of Murcia, UMUTeam) distribute:

    EmoSPeech_phase_2_train.csv         id,label,transcription   (id is the audio file name)
        9591e23d-70123687.mp3,anger,Pedimos que se tiren de las orejas ...
    EmoSPeech_phase_2_test_public.csv   id,transcription[,label] (optional; without labels -> -1)
    <any folder>/<id>                   the audio segments (.mp3), found by file name anywhere in RAW

The CSV names and columns are those of the task's phase-2 files; the folder of the audio
segments is not fixed (its archive has changed between releases), so files are found by name.
Other CSV names: ``--train_csv`` / ``--test_csv``. Labels: anger, disgust, fear, joy, neutral,
sadness. The corpus has no official validation set and no speaker ids: ``validation`` is a
stratified ``--validation_fraction`` of the training file (seeded), and every utterance gets its
own speaker id, so no split can be checked for speaker independence.
"""

from __future__ import annotations

from pathlib import Path

from . import corpus_tools as ct
from . import splits as split_utils
from .corpus_builder import CorpusBuilder

LABELS = {name: name for name in ("anger", "disgust", "fear", "joy", "neutral", "sadness")}
TO_SHARED = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "joy": "happy",
    "neutral": "neutral",
    "sadness": "sad",
}
TRAIN_CSV = "EmoSPeech_phase_2_train.csv"
TEST_CSV = "EmoSPeech_phase_2_test_public.csv"
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".m4a")

SPEC = ct.CorpusSpec(
    name="EmoSPeech 2024 (Spanish MEACorpus 2023)",
    module="emospeech",
    labels=LABELS,
    to_shared=TO_SHARED,
    language="es",
    optional_columns=(),
    license="other",
    license_note="""
The EmoSPeech 2024 data (Spanish MEACorpus 2023) is distributed by the task organisers of the
University of Murcia to participants for research; the audio comes from public YouTube videos whose
rights stay with their owners. Keep uploads private and follow the organisers' terms.
""",
    citation="""
@article{pan2024meacorpus,
  author  = {Pan, Ronghao and Garc{\\'i}a-D{\\'i}az, Jos{\\'e} Antonio and Rodr{\\'i}guez-Garc{\\'i}a, Miguel {\\'A}ngel and Valencia-Garc{\\'i}a, Rafael},
  title   = {Spanish {MEACorpus} 2023: A multimodal speech-text corpus for emotion analysis in {Spanish} from natural environments},
  journal = {Computer Standards \\& Interfaces},
  volume  = {90},
  pages   = {103856},
  year    = {2024}
}""",
    about="""
Spanish speech segments from YouTube videos in natural settings (news, parliament, interviews, award
speeches), labelled with one of six emotions (Ekman's basic emotions without surprise, plus
neutral) and transcribed, as released for the IberLEF 2024 EmoSPeech shared task. `train` and
`validation` come from the task's training file (validation is a seeded stratified hold-out, not an
official split); `test` is the task's test file. The corpus has no speaker ids.
""",
    layout_hint=f"{TRAIN_CSV} (id,label,transcription), optionally {TEST_CSV}, and the audio segments",
    speaker_splits="none",
)


def _index_audio(raw: Path, log: ct.ProblemLog) -> dict[str, Path]:
    """Audio files by name; two files with one name are a problem (which one is meant?)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(raw.rglob("*")):
        if path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith("._") and path.is_file():
            found.setdefault(path.name, []).append(path)
    for name, paths in found.items():
        if len(paths) > 1:
            log.add(
                ct.DUPLICATE_ID,
                log.where(paths[0]),
                f"{len(paths)} audio files are named {name}: {', '.join(log.where(p) for p in paths)}",
                Path(name).stem,
            )
    return {name: paths[0] for name, paths in found.items()}


def _read(csv_path: Path, split: str, audio: dict[str, Path], log: ct.ProblemLog) -> list[ct.Utterance]:
    """The rows of one CSV file; its ``label`` column is required for training and optional for test."""
    required = ("id", "label", "transcription") if split == "train" else ("id", "transcription")
    utterances = []
    for line, row in ct.read_csv(csv_path, required, log):
        where, name = log.where(csv_path, line), row["id"]
        uid = Path(name).stem if Path(name).suffix.lower() in AUDIO_SUFFIXES else name
        path = audio.get(name) or next((audio[uid + s] for s in AUDIO_SUFFIXES if uid + s in audio), None)
        if split == "train" and not row["label"]:
            log.add(ct.MALFORMED, where, "the label is empty", uid)
        utterances.append(
            ct.Utterance(
                utterance_id=uid,
                split=split,
                audio=path or csv_path.parent / name,  # a missing file is reported under its name
                label=row.get("label") or None,
                speaker_id=ct.unknown_speaker(uid),
                source=where,
                transcript=ct.clean_text(row["transcription"]),
            )
        )
    return utterances


class EmoSpeech(CorpusBuilder):
    """The training CSV with a stratified validation hold-out, and the test CSV when present."""

    spec = SPEC
    hint = (
        "Point --raw_dir at the folder holding the EmoSPeech CSV files and the audio (or pass --train_csv)."
    )
    options = {"train_csv": TRAIN_CSV, "test_csv": TEST_CSV, "validation_fraction": 0.1, "seed": 0}
    card_options = ("validation_fraction", "seed")

    def layout(self, options):
        return {
            options["train_csv"]: "the training labels (id,label,transcription)",
            tuple(f"**/*{s}" for s in AUDIO_SUFFIXES): "the audio segments",
        }

    def read(self, raw, log, train_csv, test_csv, validation_fraction, seed):
        audio = _index_audio(raw, log)
        train = _read(raw / train_csv, "train", audio, log)
        _, held = split_utils.stratified_holdout([u.label for u in train], validation_fraction, seed=seed)
        for i in held:
            train[i].split = "validation"
        if test_csv and (raw / test_csv).is_file():
            return train + _read(raw / test_csv, "test", audio, log)
        log.note(f"no test file ({test_csv}): the dataset has no test split")
        return train

    def add_arguments(self, parser):
        parser.add_argument("--train_csv", default=TRAIN_CSV, help="relative to --raw_dir")
        parser.add_argument("--test_csv", default=TEST_CSV, help="relative to --raw_dir; skipped when absent")
        parser.add_argument("--validation_fraction", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=0)


BUILDER = EmoSpeech()
build_with_report, build = BUILDER.build_with_report, BUILDER.build


def main(argv=None):
    BUILDER.main(argv, __doc__)


if __name__ == "__main__":
    main()
