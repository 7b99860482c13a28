"""The prosody branch's pitch tracker (swift-f0) on known tones and real speech, with its speed.

    .venv/bin/python benchmarks/pitch_trackers.py

Synthetic tones (sine, and a harmonic-rich sawtooth) at known frequencies: median error of voiced
frames in cents and the share of frames off by more than 50 cents (gross error); voicing on silence
and white noise; the median F0 of real telephone prompts (Asterisk, one female voice); speed as
seconds of audio per second of compute. torchcrepe is measured too when it is installed (it is not a
serhub dependency: it imports librosa and resampy).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

RATE = 16000


def tone(hz: float, seconds: float = 1.0, kind: str = "sine") -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    if kind == "sine":
        return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return (0.3 * (2 * ((hz * t) % 1.0) - 1)).astype(np.float32)  # sawtooth: every harmonic


def cents(estimate: np.ndarray, truth: float) -> np.ndarray:
    return 1200 * np.abs(np.log2(estimate / truth))


def trackers():
    from serhub.modeling.prosody import track_pitch

    out = {"swift-f0": track_pitch}
    try:
        import torch
        import torchcrepe

        def crepe(audio):
            f0, periodicity = torchcrepe.predict(
                torch.tensor(audio)[None],
                RATE,
                160,
                50.0,
                1100.0,
                "tiny",
                return_periodicity=True,
                batch_size=512,
            )
            f0, periodicity = f0[0].numpy(), periodicity[0].numpy()
            return np.where(periodicity > 0.5, f0, 0.0)

        out["torchcrepe (tiny)"] = crepe
    except ImportError:
        print("torchcrepe is not installed: only swift-f0 is measured")
    return out


def main() -> None:
    from serhub.audio_io import stream_audio

    prompts = sorted(Path("/usr/share/asterisk/sounds/en").glob("*.wav"))[:40]
    speech = [np.concatenate(list(stream_audio(p))) for p in prompts]
    for name, track in trackers().items():
        print(f"\n== {name}")
        errors, gross, voiced = [], [], []
        for kind in ("sine", "sawtooth"):
            for hz in (82.0, 110.0, 165.0, 220.0, 330.0, 440.0, 660.0, 880.0):
                f0 = track(tone(hz, kind=kind))
                v = f0[f0 > 0]
                voiced.append(len(v) / len(f0))
                if len(v):
                    c = cents(v, hz)
                    errors.append(np.median(c))
                    gross.append(float(np.mean(c > 50)))
        print(f"tones: median error {np.median(errors):.1f} cents, gross errors (>50 cents) {np.mean(gross):.1%}, "
              f"voiced share {np.mean(voiced):.1%}")  # fmt: skip
        silence = track(np.zeros(RATE, dtype=np.float32))
        noise = track((0.1 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32))
        print(f"voiced frames in silence {np.mean(silence > 0):.1%}, in white noise {np.mean(noise > 0):.1%}")
        start = time.perf_counter()
        f0s = [track(s) for s in speech]
        seconds = time.perf_counter() - start
        total = sum(len(s) for s in speech) / RATE
        medians = [np.median(f[f > 0]) for f in f0s if (f > 0).any()]
        print(f"Asterisk prompts ({len(speech)}, {total:.0f} s): median F0 {np.median(medians):.0f} Hz "
              f"(clip medians {np.percentile(medians, 10):.0f}-{np.percentile(medians, 90):.0f} Hz), "
              f"voiced share {np.mean([np.mean(f > 0) for f in f0s]):.0%}; {total / seconds:.0f}x real time")  # fmt: skip


if __name__ == "__main__":
    main()
