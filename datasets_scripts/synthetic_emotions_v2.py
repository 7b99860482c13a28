"""Version 2 of serhub's synthetic espeak-ng corpus: emotion that must transfer to unseen voices.

    python -m serhub.datasets_scripts.synthetic_emotions_v2 --output_dir data/synthetic_emotions_v2
    python -m serhub.datasets_scripts.synthetic_emotions_v2 --splits heldout --output_dir data/synthetic_emotions_v2_heldout

Embedded as ``synthetic_emotions_v2`` (``--dataset_name_or_path synthetic_emotions_v2`` in every
recipe, ``serhub evaluate --dataset synthetic_emotions_v2``). It keeps version 1's emotion model
(:func:`synthetic_emotions_model.plan_clip`) and class priors, but cannot be learnt by heart (issue 24): at
least 60 training voices (~95 espeak-ng variants x 8 accents), validation and test voices whose
variants (and sound-alike families) are in no other split, sentences built from templates whose
clauses are in no other split (the build checks both and fails on a leak), and every clip trimmed,
set to a random level and padded with random silence over a noise floor, so that neither its
silences nor its loudness carry the label (its length only through the speaking rate). A fourth
split, ``heldout`` (voices and sentences that no split of the corpus uses), is built only when asked
for, for held-out benchmarks.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .common import (
    SAMPLING_RATE,
    builder_argument_parser,
    check_output_dir,
    check_speaker_independent,
    describe,
    encode_wav,
    save_dataset_dict,
    ser_features,
)
from .synthetic_emotions import _espeak_binary, synthesize
from .synthetic_emotions_model import CLASS_PRIORS, EMOTIONS, ClipSpec, plan_clip
from .synthetic_emotions_v2_audio import (
    LEVEL_DBFS,
    NOISE_FLOOR_DBFS,
    PEAK,
    SILENCE_S,
    finish_clip,
    speech_level_db,
)
from .synthetic_emotions_v2_audio import _speech_span as _speech_span  # re-exported: tests measure with it
from .synthetic_emotions_v2_banks import (
    ACCENTS,
    ALL_SPLITS,
    EXCLUDED_VARIANTS,
    SPLITS,
    VARIANT_FAMILIES,
    VARIANTS,
    split_sentence_banks,
    split_voices,
)
from .synthetic_emotions_v2_report import _normalise as _normalise  # re-exported: tests compare with it
from .synthetic_emotions_v2_report import acoustic_report, check_unseen, format_report, leakage_report

# 1: names the embedded corpus's cache folder (recipes/data.embedded_dataset_path); raise it when
# the build's output changes
CORPUS_VERSION = 1


@dataclass(frozen=True)
class CorpusPlan:
    """Every clip of a version-2 corpus: ``voices`` indexes ``ClipSpec.speaker``; ``splits`` maps a
    split to its voice indices; ``finish`` holds each clip's (level dBFS, leading s, trailing s,
    noise floor dBFS), in clip order."""

    voices: tuple[tuple[str, str, str], ...]
    splits: dict[str, list[int]]
    clips: tuple[ClipSpec, ...]
    finish: tuple[tuple[float, float, float, float], ...]


def _split_labels(num_clips: int, rng: np.random.Generator) -> list[str]:
    """Class labels of a split in CLASS_PRIORS (largest remainder), shuffled."""
    raw = np.asarray(CLASS_PRIORS) * num_clips
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: num_clips - counts.sum()]] += 1
    labels = [e for e, c in zip(EMOTIONS, counts) for _ in range(c)]
    rng.shuffle(labels)
    return labels


def _finish_settings(num_clips: int, seed: int) -> tuple[tuple[float, float, float, float], ...]:
    """Each clip's (level dBFS, leading s, trailing s, noise floor dBFS), from a stream of its own: the
    presentation of a clip never changes what is said or how."""
    finish_rng = np.random.default_rng([seed, 3])
    return tuple(
        (
            float(finish_rng.uniform(*LEVEL_DBFS)),
            float(finish_rng.uniform(*SILENCE_S)),
            float(finish_rng.uniform(*SILENCE_S)),
            float(finish_rng.uniform(*NOISE_FLOOR_DBFS)),
        )
        for _ in range(num_clips)
    )


def plan_clips(
    clips_per_voice: int = 12,
    emotional_text_fraction: float = 0.5,
    seed: int = 0,
    splits: tuple[str, ...] = SPLITS,
) -> CorpusPlan:
    """Decide every clip of version 2 (voice, emotion, sentence, prosody, level and silences) from
    seeded generators. Class counts follow CLASS_PRIORS per split (not per voice, so a voice may
    lack the rarest class). ``splits=("heldout",)`` plans speech from the voices and sentences that
    no split of the corpus uses, for held-out benchmarks."""
    unknown = [s for s in splits if s not in ALL_SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be some of {ALL_SPLITS}; found {splits}")
    if not 0.0 <= emotional_text_fraction <= 1.0:
        raise ValueError(f"emotional_text_fraction must be in [0, 1], got {emotional_text_fraction}")
    if clips_per_voice < 1:
        raise ValueError(f"clips_per_voice must be >= 1, got {clips_per_voice}")
    rng = np.random.default_rng([seed, 2])
    voices_of = split_voices(seed)
    banks = split_sentence_banks(seed)
    voices, members, clips = [], {}, []
    for split in splits:
        members[split] = list(range(len(voices), len(voices) + len(voices_of[split])))
        voices += voices_of[split]
        labels = _split_labels(clips_per_voice * len(voices_of[split]), rng)
        neutral_bank, emotional_banks = banks[split]
        for n, s in enumerate(members[split]):
            speaker_pitch = rng.normal(0.0, 8.0)  # as version 1
            speaker_rate = rng.normal(0.0, 5.0)
            for k, emotion in enumerate(labels[n * clips_per_voice : (n + 1) * clips_per_voice]):
                utterance_id = f"synth2_{split}_v{s:03d}_{k:03d}"
                clips.append(
                    plan_clip(
                        rng,
                        utterance_id,
                        s,
                        emotion,
                        emotional_text_fraction,
                        neutral_bank,
                        emotional_banks,
                        speaker_pitch,
                        speaker_rate,
                    )
                )
    return CorpusPlan(tuple(voices), members, tuple(clips), _finish_settings(len(clips), seed))


def _check_espeak_voices(binary: str) -> None:
    """Fail before synthesising when this espeak-ng lacks an accent or variant version 2 uses."""
    listed = {}
    for kind in ("en", "variant"):
        out = subprocess.run([binary, f"--voices={kind}"], capture_output=True, text=True, check=False).stdout
        listed[kind] = out
    variants = {line.split("!v/", 1)[1].strip() for line in listed["variant"].splitlines() if "!v/" in line}
    variants = {v.split("  ")[0].strip() for v in variants}
    accents = {line.split()[1] for line in listed["en"].splitlines()[1:] if len(line.split()) > 1}
    missing = sorted(set(VARIANTS) - variants) + sorted(set(ACCENTS) - accents)
    if missing:
        raise RuntimeError(
            f"this espeak-ng lacks voices the version-2 corpus uses: {missing}. It was designed on "
            "espeak-ng 1.51 (apt-get install espeak-ng espeak-ng-data); build version 1 (synthetic_emotions) instead."
        )


def _synthesise(plan: CorpusPlan, binary: str, num_workers: int) -> list[np.ndarray]:
    """espeak-ng's speech for every clip of ``plan``, in clip order (threads: espeak-ng runs as a
    subprocess)."""
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        return list(
            tqdm(
                pool.map(lambda c: synthesize(c, binary, speakers=plan.voices), plan.clips),
                total=len(plan.clips),
                desc="espeak-ng",
                unit="clip",
            )
        )


def _split_dataset(plan: CorpusPlan, audio: list[np.ndarray], members: list[int], features):
    """The ``datasets.Dataset`` of the clips whose voice is one of ``members``, in the common schema."""
    import dataclasses

    import datasets

    rows = [(c, a) for c, a in zip(plan.clips, audio) if c.speaker in members]
    voice = [plan.voices[c.speaker] for c, _ in rows]
    return datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": encode_wav(a), "path": f"{c.utterance_id}.wav"} for c, a in rows],
            "emotion": [EMOTIONS.index(c.emotion) for c, _ in rows],
            "transcript": [c.text for c, _ in rows],
            "speaker_id": [f"{accent}+{variant}" for accent, variant, _ in voice],
            "utterance_id": [c.utterance_id for c, _ in rows],
            "gender": [gender for *_, gender in voice],
            "arousal": [c.arousal for c, _ in rows],
            "valence": [c.valence for c, _ in rows],
            "dominance": [c.dominance for c, _ in rows],
            "language": ["en"] * len(rows),
            # the file's loudness is random, so the descriptors say nothing about it
            "descriptors": [
                ", ".join(dataclasses.replace(c, volume=0.0).descriptors.split(", ")[:3]) for c, _ in rows
            ],
        },
        features=features,
    )


def build(
    clips_per_voice: int = 12,
    emotional_text_fraction: float = 0.5,
    seed: int = 0,
    num_workers: int = 4,
    splits: tuple[str, ...] = SPLITS,
):
    """Synthesise version 2 and return a checked ``DatasetDict`` (train / validation / test, or the
    ``splits`` asked for, e.g. ``("heldout",)`` for a held-out benchmark set): raises
    ``ValueError`` when a voice, variant or sentence is in two splits."""
    import datasets

    binary = _espeak_binary()
    _check_espeak_voices(binary)
    plan = plan_clips(clips_per_voice, emotional_text_fraction, seed, splits)
    speech = _synthesise(plan, binary, num_workers)
    audio = [
        finish_clip(s, *finish, noise_seed=(seed, 4, i))
        for i, (s, finish) in enumerate(zip(speech, plan.finish))
    ]
    features = ser_features(
        EMOTIONS, optional=("gender", "arousal", "valence", "dominance", "language", "descriptors")
    )
    dataset_dict = datasets.DatasetDict(
        {split: _split_dataset(plan, audio, members, features) for split, members in plan.splits.items()}
    )
    check_speaker_independent(dataset_dict)
    check_unseen(dataset_dict)
    return dataset_dict


CARD = """---
license: cc0-1.0
language: [en]
task_categories: [audio-classification]
tags: [speech-emotion-recognition, synthetic, espeak-ng, serhub]
pretty_name: serhub synthetic emotions v2
---

# serhub synthetic emotions, version 2

**Synthetic speech, made with espeak-ng by `datasets_scripts/synthetic_emotions_v2.py`.
Not real emotional speech; do not report results on it as emotion-recognition performance.**

The same emotion model as version 1 (prosody per class scaled by a random intensity and jittered,
words carrying the emotion in {emotional_pct:.0f} % of the emotional clips, the same class priors),
made hard to learn by heart: {train_voices} training voices (espeak-ng variants x {accents} English
accents); validation and test voices are variants never heard in training nor in each other, and
their sentences are built from clauses never used in training. Each clip is trimmed, set to a random
speech level ({level[0]:.0f} to {level[1]:.0f} dBFS), padded with {silence[0]:.2f} to {silence[1]:.2f} s of
silence at each end over a white noise floor, so neither the silences nor the loudness follow the
class, and the length only through the emotion model's speaking rate (the descriptors leave
loudness out). Voices and sentences kept out of every split (`split_voices(seed)["heldout"]`,
`split_sentence_banks(seed)["heldout"]`) are for held-out benchmarks.

Parameters: clips_per_voice={clips_per_voice}, emotional_text_fraction={emotional_text_fraction}, seed={seed}.

## Statistics

{table}

## Unseen voices and sentences, and what does not carry the class

{report}
"""


def dataset_card(
    dataset_dict, clips_per_voice: int = 12, emotional_text_fraction: float = 0.5, seed: int = 0
) -> str:
    first = "train" if "train" in dataset_dict else next(iter(dataset_dict))
    return CARD.format(
        emotional_pct=100.0 * emotional_text_fraction,
        train_voices=len(set(dataset_dict[first]["speaker_id"])),
        accents=len(ACCENTS),
        level=LEVEL_DBFS,
        silence=SILENCE_S,
        clips_per_voice=clips_per_voice,
        emotional_text_fraction=emotional_text_fraction,
        seed=seed,
        table=describe(dataset_dict),
        report=format_report(dataset_dict),
    )


def main(argv=None):
    parser = builder_argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--clips_per_voice", type=int, default=12)
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=ALL_SPLITS,
        default=list(SPLITS),
        help="the splits to build; 'heldout' alone gives voices and sentences no split of the corpus uses",
    )
    parser.add_argument("--emotional_text_fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=4)
    args = parser.parse_args(argv)
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    settings = (args.clips_per_voice, args.emotional_text_fraction, args.seed)
    dataset_dict = build(*settings, args.num_workers, tuple(args.splits))
    card = dataset_card(dataset_dict, *settings)
    print(describe(dataset_dict))
    print(card[card.index("## Unseen voices") :])
    path = save_dataset_dict(dataset_dict, args.output_dir, card=card, overwrite=args.overwrite)
    print(f"saved to {path}")


if __name__ == "__main__":
    main()


__all__ = [
    "ACCENTS",
    "ALL_SPLITS",
    "CLASS_PRIORS",
    "CORPUS_VERSION",
    "EMOTIONS",
    "EXCLUDED_VARIANTS",
    "LEVEL_DBFS",
    "PEAK",
    "SAMPLING_RATE",
    "SILENCE_S",
    "SPLITS",
    "VARIANTS",
    "VARIANT_FAMILIES",
    "CorpusPlan",
    "acoustic_report",
    "build",
    "check_unseen",
    "dataset_card",
    "finish_clip",
    "format_report",
    "leakage_report",
    "main",
    "plan_clips",
    "speech_level_db",
    "split_sentence_banks",
    "split_voices",
]
