"""The emotion model of serhub's synthetic espeak-ng corpora (:mod:`synthetic_emotions` and
:mod:`synthetic_emotions_v2` share it): the classes and their priors, each class's prosody relative to
the speaker's neutral voice, the arousal / valence / dominance targets, and :func:`plan_clip`, which
draws one clip (sentence, intensity, prosody, A/V/D) from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .descriptors import describe_prosody_percent

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "surprise")
# Share of each class; neutral/fear = 6.3, close to MSP-Podcast's skew among these classes.
CLASS_PRIORS = (0.38, 0.18, 0.14, 0.13, 0.06, 0.11)

# Prosody of each emotion relative to the speaker's neutral voice, in percent, following the
# direction of the acoustic correlates in Scherer (2003) / Banse & Scherer (1996):
# (pitch, pitch range, rate, volume).
PROSODY = {
    "neutral": (0, 0, 0, 0),
    "happy": (18, 45, 8, 15),
    "sad": (-14, -45, -22, -30),
    "angry": (6, 30, 14, 55),
    "fear": (32, 60, 24, -15),
    "surprise": (38, 90, -6, 20),
}
PROSODY_JITTER = (6.0, 14.0, 6.0, 10.0)  # per-clip standard deviation of each, in percent

# Arousal / valence / dominance (1..7, MSP-Podcast's scale) of each class (Russell's circumplex);
# a clip's arousal also follows its rate/volume/range so the dimensional targets vary within class.
AVD = {
    "neutral": (4.0, 4.0, 4.0),
    "happy": (5.2, 6.0, 4.8),
    "sad": (2.6, 2.3, 2.8),
    "angry": (6.0, 2.2, 5.8),
    "fear": (5.6, 2.0, 2.2),
    "surprise": (5.8, 4.8, 4.0),
}


@dataclass(frozen=True)
class ClipSpec:
    utterance_id: str
    speaker: int
    emotion: str
    text: str
    lexical: bool  # the words themselves express the emotion
    pitch: float
    pitch_range: float
    rate: float
    volume: float
    arousal: float
    valence: float
    dominance: float
    speaker_pitch: float = 0.0  # the speaker's own baseline (in pitch / rate), percent
    speaker_rate: float = 0.0

    @property
    def descriptors(self) -> str:
        """ "high pitch, expressive intonation, fast, loud": the clip's exact prosody relative to its
        speaker, in the words and thresholds of ``datasets_scripts.descriptors``."""

        def relative(value: float, baseline: float) -> float:
            return 100.0 * ((1.0 + value / 100.0) / (1.0 + baseline / 100.0) - 1.0)

        return describe_prosody_percent(
            relative(self.pitch, self.speaker_pitch),
            self.pitch_range,
            relative(self.rate, self.speaker_rate),
            self.volume,
        )


def plan_clip(
    rng: np.random.Generator,
    utterance_id: str,
    speaker: int,
    emotion: str,
    emotional_text_fraction: float,
    neutral_sentences,
    emotional_sentences,
    speaker_pitch: float,
    speaker_rate: float,
) -> ClipSpec:
    """One clip of the emotion model: sentence, intensity, prosody and A/V/D (every corpus version;
    the order of the ``rng`` draws is part of the corpus, keep it)."""
    lexical = emotion != "neutral" and rng.random() < emotional_text_fraction
    bank = emotional_sentences[emotion] if lexical else neutral_sentences
    text = bank[rng.integers(len(bank))]
    intensity = rng.uniform(0.5, 1.0) if emotion != "neutral" else 0.0
    base = np.asarray(PROSODY[emotion], dtype=float) * intensity
    jitter = rng.normal(0.0, PROSODY_JITTER)
    pitch, prange, rate, volume = base + jitter
    pitch += speaker_pitch
    rate += speaker_rate
    a, v, d = AVD[emotion]
    a = a + 0.02 * (rate - speaker_rate) + 0.01 * volume + 0.005 * prange
    v = v + (v - 4.0) * (intensity - 0.75) + rng.normal(0.0, 0.3)
    d = d + 0.01 * volume + rng.normal(0.0, 0.3)
    return ClipSpec(
        utterance_id=utterance_id,
        speaker=speaker,
        emotion=emotion,
        text=text,
        lexical=lexical,
        pitch=float(pitch),
        pitch_range=float(max(prange, -90.0)),
        rate=float(max(rate, -60.0)),
        volume=float(max(volume, -70.0)),
        arousal=float(np.clip(a, 1.0, 7.0)),
        valence=float(np.clip(v, 1.0, 7.0)),
        dominance=float(np.clip(d, 1.0, 7.0)),
        speaker_pitch=float(speaker_pitch),
        speaker_rate=float(speaker_rate),
    )


__all__ = ["AVD", "CLASS_PRIORS", "EMOTIONS", "PROSODY", "PROSODY_JITTER", "ClipSpec", "plan_clip"]
