"""A synthetic emotional-speech corpus made with espeak-ng: the embedded default of every recipe.

    python -m serhub.datasets_scripts.synthetic_emotions --output_dir data/synthetic_emotions

What it is for: running and testing the whole toolkit offline, where no labelled emotional speech
exists. It is NOT a benchmark of real emotion recognition. Its design makes the modalities differ
measurably:

- **prosody carries the emotion** in every clip: each class shifts pitch, pitch range, speaking
  rate and volume (SSML ``<prosody>``) by its own amount, scaled by a random intensity and jittered
  per clip, on top of a per-speaker pitch baseline, so an audio model must normalise speakers;
- **the words carry it in only part of the clips** (``emotional_text_fraction``, default 0.5): the
  rest read lexically neutral sentences, so a text-only model is capped well below an audio model
  and audio+text is the best;
- **speakers are espeak-ng voices x variants** (15 by default), split speaker-independently into
  train / validation / test;
- **classes are imbalanced as in natural corpora**: neutral most frequent, fear rarest (~6:1).

The build is deterministic for a given ``seed`` (espeak-ng is deterministic, and all randomness
comes from one seeded generator).

Version 2, harder to learn by heart (unseen voices and sentences in validation / test, random
level and silences), is built by :mod:`synthetic_emotions_v2`, which shares this emotion model
(:mod:`synthetic_emotions_model`: classes, priors, prosody per class, :func:`plan_clip`).
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .common import (
    builder_argument_parser,
    check_output_dir,
    check_speaker_independent,
    describe,
    encode_wav,
    read_audio,
    save_dataset_dict,
    ser_features,
)
from .synthetic_emotions_model import (
    AVD,
    CLASS_PRIORS,
    EMOTIONS,
    PROSODY,
    PROSODY_JITTER,
    ClipSpec,
    plan_clip,
)

# 2: the ``descriptors`` column (the embedded corpus's cache folder is named by it)
CORPUS_VERSION = 2

# (espeak voice, variant, gender). Variants change the voice's pitch and timbre; voices the accent.
SPEAKERS = (
    ("en-us", "m1", "male"),
    ("en-us", "f2", "female"),
    ("en-gb", "m3", "male"),
    ("en-gb", "f4", "female"),
    ("en-gb-scotland", "m2", "male"),
    ("en-gb-scotland", "f1", "female"),
    ("en-029", "m4", "male"),
    ("en-029", "f3", "female"),
    ("en-gb-x-rp", "m5", "male"),
    ("en-gb-x-rp", "f5", "female"),
    ("en-us-nyc", "m6", "male"),
    ("en-us-nyc", "f2", "female"),
    ("en-gb-x-gbclan", "m7", "male"),
    ("en-gb-x-gbcwmd", "f4", "female"),
    ("en-us", "m3", "male"),
)

NEUTRAL_SENTENCES = (
    "The meeting has been moved to Thursday afternoon.",
    "Please put the blue folder on the second shelf.",
    "The train leaves the station at ten past nine.",
    "I will send you the report by the end of the week.",
    "The library closes at six on weekdays.",
    "We need two more chairs for the conference room.",
    "The package was delivered to the front desk this morning.",
    "Turn left at the next corner and walk for five minutes.",
    "The printer on the third floor is out of paper.",
    "My brother lives in a small town near the coast.",
    "The weather forecast mentions clouds for tomorrow.",
    "You can pay with a card or in cash at the counter.",
    "The new schedule starts on the first of the month.",
    "She wrote the numbers down on a piece of paper.",
    "There are four windows on the north side of the house.",
    "The bus stops in front of the old post office.",
    "We usually have lunch at half past twelve.",
    "The form asks for your name and your address.",
    "He parked the car behind the grey building.",
    "The store sells bread, milk and fresh vegetables.",
)

EMOTIONAL_SENTENCES = {
    "neutral": NEUTRAL_SENTENCES,
    "happy": (
        "This is wonderful news, I am so glad for you!",
        "We won the match and everyone is celebrating!",
        "I love this place, it makes me so happy.",
        "What a beautiful day, I feel fantastic!",
        "Thank you so much, this is the best gift ever!",
        "I am delighted that you could join us tonight.",
    ),
    "sad": (
        "I miss her so much, nothing feels the same anymore.",
        "It is over, and there is nothing left for me here.",
        "I feel so lonely since they moved away.",
        "We lost everything in the fire last winter.",
        "He never called back, and I cried all night.",
        "I am so sorry, I wish things had turned out differently.",
    ),
    "angry": (
        "This is completely unacceptable, I am furious!",
        "How dare you lie to me again!",
        "Stop wasting my time, I have had enough of this!",
        "I hate it when people ignore what I say!",
        "You broke it on purpose and you know it!",
        "Get out of my office right now!",
    ),
    "fear": (
        "Did you hear that? Someone is inside the house.",
        "I am terrified, please do not leave me alone here.",
        "Something is wrong, I think we are in danger.",
        "I cannot breathe, the walls are closing in on me.",
        "Please hurry, they are coming after us!",
        "I am scared of what will happen tomorrow.",
    ),
    "surprise": (
        "No way, you are here? I did not expect that at all!",
        "Wow, I cannot believe you actually did it!",
        "Really? They are getting married next week?",
        "What? The whole building was sold overnight?",
        "Oh my, I never thought I would see you again!",
        "You got the job? That is unbelievable!",
    ),
}


def _ssml(spec: ClipSpec) -> str:
    return (
        f'<speak><prosody pitch="{spec.pitch:+.0f}%" range="{spec.pitch_range:+.0f}%" '
        f'rate="{spec.rate:+.0f}%" volume="{spec.volume:+.0f}%">{spec.text}</prosody></speak>'
    )


def plan_clips(
    clips_per_speaker: int = 80,
    emotional_text_fraction: float = 0.5,
    seed: int = 0,
    speakers=SPEAKERS,
    neutral_sentences=NEUTRAL_SENTENCES,
    emotional_sentences=None,
) -> list[ClipSpec]:
    """Decide every clip (speaker, emotion, sentence, prosody) from one seeded generator.
    ``speakers`` (voice, variant, sex) and the sentence banks default to the corpus's own; others
    make held-out speech with the same emotion model (``benchmarks/heldout_speech.py``)."""
    emotional_sentences = emotional_sentences or EMOTIONAL_SENTENCES
    if not 0.0 <= emotional_text_fraction <= 1.0:
        raise ValueError(f"emotional_text_fraction must be in [0, 1], got {emotional_text_fraction}")
    if clips_per_speaker < len(EMOTIONS):
        raise ValueError(
            f"clips_per_speaker must be >= {len(EMOTIONS)} so every speaker has every class, got {clips_per_speaker}"
        )
    rng = np.random.default_rng(seed)
    priors = np.asarray(CLASS_PRIORS)
    clips = []
    for s in range(len(speakers)):
        speaker_pitch = rng.normal(0.0, 8.0)  # a speaker's own baseline, in percent
        speaker_rate = rng.normal(0.0, 5.0)
        # Exact per-speaker class counts (largest remainder), so each split keeps the priors.
        raw = priors * clips_per_speaker
        counts = np.floor(raw).astype(int)
        counts[np.argsort(raw - counts)[::-1][: clips_per_speaker - counts.sum()]] += 1
        while (counts == 0).any():  # every speaker has every class: borrow from the largest
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
        labels = [e for e, c in zip(EMOTIONS, counts) for _ in range(c)]
        rng.shuffle(labels)
        for k, emotion in enumerate(labels):
            clips.append(
                plan_clip(
                    rng,
                    f"synth_s{s:02d}_{k:04d}",
                    s,
                    emotion,
                    emotional_text_fraction,
                    neutral_sentences,
                    emotional_sentences,
                    speaker_pitch,
                    speaker_rate,
                )
            )
    return clips


def _espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FileNotFoundError(
            "espeak-ng was not found on PATH; it synthesises this corpus. Install it with "
            "`sudo apt-get install espeak-ng` (./setup.sh does this)."
        )
    return binary


def synthesize(spec: ClipSpec, binary: str, speakers=SPEAKERS) -> np.ndarray:
    voice, variant, _ = speakers[spec.speaker]
    result = subprocess.run(
        [binary, "-v", f"{voice}+{variant}", "-m", "--stdout", _ssml(spec)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(
            f"espeak-ng failed on {spec.utterance_id} ({voice}+{variant}): {result.stderr.decode(errors='replace')}"
        )
    return read_audio(result.stdout)


def default_split_speakers(num_speakers: int = len(SPEAKERS)) -> dict[str, list[int]]:
    """Speaker-independent split: 3 speakers (male+female mix) each for validation and test."""
    return {
        "train": list(range(num_speakers - 6)),
        "validation": list(range(num_speakers - 6, num_speakers - 3)),
        "test": list(range(num_speakers - 3, num_speakers)),
    }


def build(
    clips_per_speaker: int = 80, emotional_text_fraction: float = 0.5, seed: int = 0, num_workers: int = 4
):
    """Synthesise the corpus and return a ``DatasetDict`` (train / validation / test)."""
    import datasets
    from tqdm.auto import tqdm

    binary = _espeak_binary()
    clips = plan_clips(clips_per_speaker, emotional_text_fraction, seed)
    # espeak-ng runs as a subprocess, so threads synthesise in parallel.
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        audio = list(
            tqdm(
                pool.map(lambda c: synthesize(c, binary), clips),
                total=len(clips),
                desc="espeak-ng",
                unit="clip",
            )
        )
    features = ser_features(
        EMOTIONS, optional=("gender", "arousal", "valence", "dominance", "language", "descriptors")
    )
    splits = {}
    for split, speakers in default_split_speakers().items():
        rows = [(c, a) for c, a in zip(clips, audio) if c.speaker in speakers]
        splits[split] = datasets.Dataset.from_dict(
            {
                "audio": [{"bytes": encode_wav(a), "path": f"{c.utterance_id}.wav"} for c, a in rows],
                "emotion": [EMOTIONS.index(c.emotion) for c, _ in rows],
                "transcript": [c.text for c, _ in rows],
                "speaker_id": [f"{SPEAKERS[c.speaker][0]}+{SPEAKERS[c.speaker][1]}" for c, _ in rows],
                "utterance_id": [c.utterance_id for c, _ in rows],
                "gender": [SPEAKERS[c.speaker][2] for c, _ in rows],
                "arousal": [c.arousal for c, _ in rows],
                "valence": [c.valence for c, _ in rows],
                "dominance": [c.dominance for c, _ in rows],
                "language": ["en"] * len(rows),
                "descriptors": [c.descriptors for c, _ in rows],
            },
            features=features,
        )
    dataset_dict = datasets.DatasetDict(splits)
    check_speaker_independent(dataset_dict)
    return dataset_dict


CARD = """---
license: cc0-1.0
language: [en]
task_categories: [audio-classification]
tags: [speech-emotion-recognition, synthetic, espeak-ng, serhub]
pretty_name: serhub synthetic emotions
---

# serhub synthetic emotions

**Synthetic speech, made with espeak-ng by `datasets_scripts/synthetic_emotions.py`. Not real
emotional speech; do not report results on it as emotion-recognition performance.**

It exists so that every serhub model, recipe and test runs offline, where no labelled emotional
speech can be downloaded. Emotion is carried by prosody (pitch, pitch range, rate, volume) in every
clip and by the words in only {lexical_pct:.0f} % of the training clips, so audio-only, text-only and audio+text
models differ measurably. Speakers are espeak-ng voices x variants; splits are speaker-independent.
Arousal / valence / dominance (1-7) are derived from the class and the clip's prosody.

Parameters: clips_per_speaker={clips_per_speaker}, emotional_text_fraction={emotional_text_fraction}, seed={seed}.

## Statistics

{table}
"""


def dataset_card(
    dataset_dict, clips_per_speaker: int = 80, emotional_text_fraction: float = 0.5, seed: int = 0
) -> str:
    train = dataset_dict["train"]
    lexical = sum(
        1 for t, e in zip(train["transcript"], train["emotion"]) if t not in NEUTRAL_SENTENCES and e
    )
    return CARD.format(
        lexical_pct=100.0 * lexical / max(len(train), 1),
        clips_per_speaker=clips_per_speaker,
        emotional_text_fraction=emotional_text_fraction,
        seed=seed,
        table=describe(dataset_dict),
    )


def main(argv=None):
    parser = builder_argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--clips_per_speaker", type=int, default=80)
    parser.add_argument("--emotional_text_fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=4)
    args = parser.parse_args(argv)
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    dataset_dict = build(args.clips_per_speaker, args.emotional_text_fraction, args.seed, args.num_workers)
    print(describe(dataset_dict))
    card = dataset_card(dataset_dict, args.clips_per_speaker, args.emotional_text_fraction, args.seed)
    path = save_dataset_dict(dataset_dict, args.output_dir, card=card, overwrite=args.overwrite)
    print(f"saved to {path}")


if __name__ == "__main__":
    main()


__all__ = [
    "AVD",
    "CLASS_PRIORS",
    "CORPUS_VERSION",
    "EMOTIONAL_SENTENCES",
    "EMOTIONS",
    "NEUTRAL_SENTENCES",
    "PROSODY",
    "PROSODY_JITTER",
    "SPEAKERS",
    "ClipSpec",
    "build",
    "dataset_card",
    "default_split_speakers",
    "main",
    "plan_clip",
    "plan_clips",
    "synthesize",
]
