"""Tiny raw corpora in each distributor's layout: the real folder structure, file names and label
file formats (as documented by the distributors; see each builder's module docstring), with short
generated tones as audio. ``make_<corpus>(root)`` writes one; ``break_<corpus>(raw)`` then plants one
problem of each kind that corpus can have and returns what the error must name and which
utterances ``skip_bad`` must drop.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone(path: Path, sr: int = 16_000, seconds: float = 0.25, freq: float = 220.0, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, **kwargs)
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@dataclass
class Breakage:
    named: list[str]  # strings the error must contain (file names, labels, kinds)
    dropped: set[str]  # utterance ids that skip_bad leaves out
    kinds: set[str] = field(default_factory=set)


# ----------------------------------------------------------------------------- MSP-Podcast

MSP_ROWS = """FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
MSP-PODCAST_0001_0008.wav,A,5.8,2.2,5.4,127,Male,Train
MSP-PODCAST_0001_0019.wav,N,4.0,4.2,4.0,127,Male,Train
MSP-PODCAST_0002_0003.wav,H,4.6,6.0,4.8,45,Female,Train
MSP-PODCAST_0002_0007.wav,X,3.4,3.0,3.2,45,Female,Train
MSP-PODCAST_0002_0011.wav,S,2.8,2.4,3.0,45,Female,Train
MSP-PODCAST_0003_0001.wav,S,2.6,2.0,3.0,211,Female,Development
MSP-PODCAST_0003_0002.wav,O,4.0,4.0,4.0,211,Female,Development
MSP-PODCAST_0004_0001.wav,C,4.4,3.0,5.0,Unknown,Unknown,Development
MSP-PODCAST_0005_0001.wav,U,5.0,5.0,4.0,88,Male,Test1
MSP-PODCAST_0005_0002.wav,F,5.5,2.0,2.5,88,Male,Test1
MSP-PODCAST_0006_0001.wav,D,4.5,2.5,4.5,301,Female,Test2
MSP-PODCAST_0007_0001.wav,,,,,502,Male,Test2
"""


def make_msp_podcast(root: Path) -> Path:
    raw = root / "MSP-Podcast"
    (raw / "Labels").mkdir(parents=True)
    (raw / "Labels" / "labels_consensus.csv").write_text(MSP_ROWS)
    for line in MSP_ROWS.splitlines()[1:]:
        write_tone(raw / "Audios" / line.split(",")[0])
    (raw / "Transcripts").mkdir()
    (raw / "Transcripts" / "MSP-PODCAST_0001_0008.txt").write_text("I can't believe you did that.\n")
    return raw


def break_msp_podcast(raw: Path) -> Breakage:
    (raw / "Audios" / "MSP-PODCAST_0001_0019.wav").unlink()
    truncate(raw / "Audios" / "MSP-PODCAST_0003_0001.wav")
    labels = raw / "Labels" / "labels_consensus.csv"
    text = labels.read_text().replace("0002_0003.wav,H,", "0002_0003.wav,Q,")
    labels.write_text(text + "MSP-PODCAST_0005_0001.wav,U,5.0,5.0,4.0,88,Male,Test1\n")
    return Breakage(
        named=[
            "Audios/MSP-PODCAST_0001_0019.wav",
            "'Q'",
            "Audios/MSP-PODCAST_0003_0001.wav",
            "MSP-PODCAST_0005_0001",
        ],
        dropped={
            "MSP-PODCAST_0001_0019",
            "MSP-PODCAST_0002_0003",
            "MSP-PODCAST_0003_0001",
            "MSP-PODCAST_0005_0001",
        },
        kinds={"missing file", "unknown label", "unreadable or truncated audio", "duplicate utterance id"},
    )


# ----------------------------------------------------------------------------- IEMOCAP

# session: (dialog, [(utterance suffix, label, [V, A, D], transcript)])
IEMOCAP = {
    1: (
        "Ses01F_impro01",
        [
            ("F000", "neu", (2.5, 2.5, 2.5), "Excuse me."),
            ("M000", "ang", (1.5, 3.5, 4.0), "Do you have your forms?"),
            ("F001", "exc", (4.0, 4.0, 3.0), "Yeah, I have them right here."),
            ("M001", "xxx", (2.0, 3.0, 3.0), "Let me see them."),
        ],
    ),
    2: (
        "Ses02M_script01_1",
        [
            ("F000", "hap", (4.5, 3.5, 3.0), "What a lovely day."),
            ("M003", "sad", (1.5, 2.0, 2.0), "I miss him."),
            ("F004", "fru", (2.0, 3.5, 3.5), "Why does this always happen?"),
        ],
    ),
    3: (
        "Ses03F_impro02",
        [("F000", "sad", (1.0, 2.0, 2.0), "He's gone."), ("M000", "neu", (3.0, 2.5, 3.0), "I know.")],
    ),
    4: (
        "Ses04F_impro01",
        [("F000", "ang", (1.5, 4.0, 4.0), "Stop it."), ("M000", "hap", (4.0, 3.0, 3.0), "Great!")],
    ),
    5: (
        "Ses05M_impro03",
        [
            ("F000", "neu", (3.0, 2.0, 3.0), "Okay."),
            ("M000", "sad", (1.5, 1.5, 2.0), "It's over."),
            ("M001", "sur", (3.5, 4.0, 3.0), "Really?"),
        ],
    ),
}


def make_iemocap(root: Path) -> Path:
    raw = root / "IEMOCAP_full_release"
    for session, (dialog, turns) in IEMOCAP.items():
        base = raw / f"Session{session}"
        evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript = []
        for k, (suffix, label, (v, a, d), text) in enumerate(turns):
            uid, start, end = f"{dialog}_{suffix}", 6.2901 + 4 * k, 8.2357 + 4 * k
            evaluation += [
                f"[{start:.4f} - {end:.4f}]\t{uid}\t{label}\t[{v:.4f}, {a:.4f}, {d:.4f}]",
                "C-E2:\tNeutral;\t()",
                "C-F1:\tNeutral;\t(curious)",
                "A-E3:\tval 3; act 2; dom  2;\t()",
                "",
            ]
            transcript.append(f"{uid} [{start:08.4f}-{end:08.4f}]: {text}")
            write_tone(base / "sentences" / "wav" / dialog / f"{uid}.wav", freq=200 + 20 * k)
        (base / "dialog" / "EmoEvaluation" / "Categorical").mkdir(parents=True)
        (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evaluation) + "\n")
        (base / "dialog" / "EmoEvaluation" / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (base / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text("not read\n")
        (base / "dialog" / "transcriptions").mkdir(parents=True)
        (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return raw


def break_iemocap(raw: Path) -> Breakage:
    (raw / "Session3/sentences/wav/Ses03F_impro02/Ses03F_impro02_M000.wav").unlink()
    truncate(raw / "Session4/sentences/wav/Ses04F_impro01/Ses04F_impro01_F000.wav")
    evaluation = raw / "Session2/dialog/EmoEvaluation/Ses02M_script01_1.txt"
    evaluation.write_text(evaluation.read_text().replace("_F000\thap\t", "_F000\tjoy\t"))
    evaluation = raw / "Session5/dialog/EmoEvaluation/Ses05M_impro03.txt"
    evaluation.write_text(
        evaluation.read_text() + "[30.0000 - 31.0000]\tSes05M_impro03_F000\tneu\t[3.0, 2.0, 3.0]\n"
    )
    return Breakage(
        named=[
            "Session3/sentences/wav/Ses03F_impro02/Ses03F_impro02_M000.wav",
            "Session4/sentences/wav/Ses04F_impro01/Ses04F_impro01_F000.wav",
            "'joy'",
            "Ses05M_impro03_F000",
        ],
        dropped={
            "Ses03F_impro02_M000",
            "Ses04F_impro01_F000",
            "Ses02M_script01_1_F000",
            "Ses05M_impro03_F000",
        },
        kinds={"missing file", "unknown label", "unreadable or truncated audio", "duplicate utterance id"},
    )


# ----------------------------------------------------------------------------- MELD

MELD_HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
)
MELD = {
    ("train_sent_emo.csv", "train_splits"): [
        (
            "also I was the point person on my company\u0092s transition.",
            "Chandler",
            "neutral",
            "neutral",
            0,
            0,
        ),
        ("You must\u0092ve had your hands full.", "The Interviewer", "neutral", "neutral", 0, 1),
        ("That I did. That I did.", "Chandler", "joy", "positive", 1, 0),
    ],
    ("dev_sent_emo.csv", "dev_splits_complete"): [
        ("Oh my God, he\u0092s lost it.", "Phoebe", "sadness", "negative", 0, 0),
        ("What?", "Monica", "surprise", "negative", 0, 1),
    ],
    ("test_sent_emo.csv", "test/output_repeated_splits_test"): [
        ("Why do all your coffee mugs have numbers on the bottom?", "Mark", "surprise", "positive", 0, 0),
        ("Oh. That\u0092s so Monica can keep track.", "Rachel", "anger", "negative", 0, 1),
    ],
}


def _tiny_mp4(path: Path) -> None:
    """A clip like MELD's: a video stream and an AAC audio stream."""
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=32x32:d=0.3",
            "-f",
            "lavfi",
        ]
        + [
            "-i",
            "sine=frequency=220:duration=0.3:sample_rate=48000",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-shortest",
        ]
        + [str(path)],
        check=True,
    )


def make_meld(root: Path) -> Path:
    raw = root / "MELD.Raw"
    raw.mkdir(parents=True)
    clip = root / "clip.mp4"
    _tiny_mp4(clip)
    for (csv_name, media), rows in MELD.items():
        lines = [MELD_HEADER]
        for k, (text, speaker, emotion, sentiment, dia, utt) in enumerate(rows, 1):
            quoted = '"' + text.replace('"', '""') + '"'
            lines.append(
                f'{k},{quoted},{speaker},{emotion},{sentiment},{dia},{utt},8,21,"00:16:16,059","00:16:21,731"'
            )
            (raw / media).mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, raw / media / f"dia{dia}_utt{utt}.mp4")
        (raw / csv_name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    # a clip converted to .wav by the user is used in place of its .mp4
    (raw / "dev_splits_complete" / "dia0_utt1.mp4").unlink()
    write_tone(raw / "dev_splits_complete" / "dia0_utt1.wav", sr=48_000, seconds=0.3)
    return raw


def break_meld(raw: Path) -> Breakage:
    (raw / "train_splits" / "dia1_utt0.mp4").unlink()
    truncate(raw / "test/output_repeated_splits_test/dia0_utt0.mp4")
    dev = raw / "dev_sent_emo.csv"
    dev.write_text(dev.read_text().replace(",sadness,negative,", ",happiness,negative,"))
    train = raw / "train_sent_emo.csv"
    train.write_text(
        train.read_text() + '4,"Again.",Chandler,joy,positive,0,1,8,21,"00:16:22,000","00:16:23,000"\n'
    )
    return Breakage(
        named=[
            "train_splits/dia1_utt0.mp4",
            "output_repeated_splits_test/dia0_utt0.mp4",
            "'happiness'",
            "train_dia0_utt1",
        ],
        dropped={"train_dia1_utt0", "test_dia0_utt0", "validation_dia0_utt0", "train_dia0_utt1"},
        kinds={"missing file", "unknown label", "unreadable or truncated audio", "duplicate utterance id"},
    )


# ----------------------------------------------------------------------------- EmoSPeech

EMOSPEECH_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness")
EMOSPEECH_TEXT = {
    "anger": "Pedimos que se tiren de las orejas a quien las ha paralizado.",
    "disgust": "Es curioso lo mucho que les gusta a ustedes pedir la unidad.",
    "fear": "No sé lo que me está ocurriendo. Estoy cambiando.",
    "joy": "Acertamos cuando estamos unidos, todos los grupos parlamentarios.",
    "neutral": "Casi un millón y medio de personas trabajan más de 50 horas.",
    "sadness": "Entonces se vive con mucha tristeza, la tristeza está ahí.",
}


def emospeech_id(k: int) -> str:
    return f"{k:08x}-{(k * 2654435761) % 16**8:08x}.mp3"


def make_emospeech(root: Path) -> Path:
    raw = root / "emospeech"
    train = ["id,label,transcription"]
    for k in range(18):
        label = EMOSPEECH_LABELS[k % 6]
        train.append(f'{emospeech_id(k)},{label},"{EMOSPEECH_TEXT[label]}"')
        write_tone(raw / "segments" / emospeech_id(k), sr=22_050, format="MP3")
    test = ["id,transcription"]
    for k in range(18, 21):
        test.append(f"{emospeech_id(k)},¿Qué ha salido de esta votación?")
        write_tone(raw / "segments" / emospeech_id(k), sr=22_050, format="MP3")
    (raw / "EmoSPeech_phase_2_train.csv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (raw / "EmoSPeech_phase_2_test_public.csv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return raw


def break_emospeech(raw: Path) -> Breakage:
    (raw / "segments" / emospeech_id(1)).unlink()
    (raw / "segments" / emospeech_id(19)).write_bytes(b"\xff\xfb garbage, not an mp3 frame")
    train = raw / "EmoSPeech_phase_2_train.csv"
    text = train.read_text(encoding="utf-8").replace(
        f"{emospeech_id(2)},fear,", f"{emospeech_id(2)},surprise,"
    )
    train.write_text(text + f'{emospeech_id(3)},joy,"otra vez"\n', encoding="utf-8")
    stem = lambda k: emospeech_id(k)[:-4]  # noqa: E731
    return Breakage(
        named=[emospeech_id(1), emospeech_id(19), "'surprise'", stem(3)],
        dropped={stem(1), stem(19), stem(2), stem(3)},
        kinds={"missing file", "unknown label", "unreadable or truncated audio", "duplicate utterance id"},
    )


# ----------------------------------------------------------------------------- RAVDESS


def ravdess_name(emotion: int, actor: int, channel: int = 1, intensity: int = 1, statement: int = 1) -> str:
    intensity = 1 if emotion == 1 else intensity  # neutral has no strong intensity
    return f"03-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-01-{actor:02d}.wav"


def make_ravdess(root: Path) -> Path:
    raw = root / "ravdess"
    for actor in range(1, 25):
        for k in range(2):
            emotion = 1 + (actor + 3 * k) % 8
            name = ravdess_name(emotion, actor, intensity=1 + k, statement=1 + k)
            write_tone(raw / f"Actor_{actor:02d}" / name, sr=48_000, seconds=0.2)
    write_tone(raw / "Actor_01" / ravdess_name(3, 1, channel=2), sr=48_000, seconds=0.2)  # a song file
    (raw / "Actor_01" / ".DS_Store").write_bytes(b"\x00")
    return raw


def break_ravdess(raw: Path) -> Breakage:
    write_tone(raw / "Actor_05" / "03-01-09-01-01-01-05.wav", sr=48_000, seconds=0.2)  # emotion 09
    write_tone(raw / "Actor_05" / "03-01-05-01-01-05.wav", sr=48_000, seconds=0.2)  # a field missing
    write_tone(raw / "Actor_06" / ravdess_name(5, 7), sr=48_000, seconds=0.2)  # actor 07 in Actor_06
    victim = sorted((raw / "Actor_08").glob("*.wav"))[0]
    truncate(victim)
    twin = sorted((raw / "Actor_09").glob("*.wav"))[0]
    shutil.copytree(raw / "Actor_09", raw / "copy" / "Actor_09")
    return Breakage(
        named=["'09'", "03-01-05-01-01-05.wav", "Actor_06/" + ravdess_name(5, 7), victim.name, twin.stem],
        dropped={"03-01-09-01-01-01-05", "03-01-05-01-01-05", ravdess_name(5, 7)[:-4], victim.stem}
        | {p.stem for p in (raw / "Actor_09").glob("*.wav")},
        kinds={"unknown label", "malformed entry", "unreadable or truncated audio", "duplicate utterance id"},
    )


# ----------------------------------------------------------------------------- CREMA-D

CREMA_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMA_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def make_crema_d(root: Path) -> Path:
    raw = root / "CREMA-D"
    demographics = ["ActorID,Age,Sex,Race,Ethnicity"]
    for a in range(10):
        actor = 1001 + a
        demographics.append(f"{actor},{25 + a},{'Male' if a % 2 else 'Female'},Caucasian,Not Hispanic")
        for k in range(2):
            sentence, emotion = CREMA_SENTENCES[(a + k) % 12], CREMA_EMOTIONS[(a + 2 * k) % 6]
            level = "HI" if sentence == "IEO" else "XX"
            write_tone(raw / "AudioWAV" / f"{actor}_{sentence}_{emotion}_{level}.wav")
    (raw / "VideoDemographics.csv").write_text("\n".join(demographics) + "\n")
    return raw


def break_crema_d(raw: Path) -> Breakage:
    write_tone(raw / "AudioWAV" / "1003_DFA_JOY_XX.wav")
    write_tone(raw / "AudioWAV" / "1003_DFA_ANG.wav")
    victim, pointer = sorted((raw / "AudioWAV").glob("1005_*.wav"))[:2]
    truncate(victim)
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 51021\n")
    return Breakage(
        named=["'JOY'", "1003_DFA_ANG.wav", victim.name, pointer.name, "git lfs pull"],
        dropped={"1003_DFA_JOY_XX", "1003_DFA_ANG", victim.stem, pointer.stem},
        kinds={"unknown label", "malformed entry", "unreadable or truncated audio"},
    )
