"""Cost of each waveform augmentation (``serhub.augment``) per second of 16 kHz audio, on CPU.

    python benchmarks/augment_speed.py [--seconds 4 --repeats 50 --output benchmarks/results/augment_speed.json]

Each transform alone (probability 1, the others 0), then the default ``Augmenter`` chain, on
synthetic speech-like clips; the babble pool is the other clips. Prints a table; ``--output`` also
writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from serhub.augment import TRANSFORMS, AugmentConfig, Augmenter

SR = 16_000


def clips(seconds: float, count: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for _ in range(count):
        phase = 2 * np.pi * np.cumsum(rng.uniform(100, 250) + 30 * np.sin(2 * np.pi * 0.5 * t)) / SR
        x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
        out.append((0.1 * x / np.abs(x).max()).astype(np.float32))
    return out


def time_per_second(augmenter: Augmenter, data: list[np.ndarray], repeats: int) -> float:
    """Median milliseconds of augmentation per second of audio."""
    times = []
    for r in range(repeats):
        x = data[r % len(data)]
        start = time.perf_counter()
        augmenter(x, SR, babble_pool=data[:1] if x is not data[0] else data[1:2])
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times)) / (data[0].size / SR)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    data = clips(args.seconds)
    off = {prob: 0.0 for prob, _ in TRANSFORMS.values()}
    results = {}
    for name, (prob, _) in TRANSFORMS.items():
        results[name] = time_per_second(Augmenter(seed=0, **{**off, prob: 1.0}), data, args.repeats)
    for noise in ("white", "pink", "brown", "babble"):
        augmenter = Augmenter(seed=0, **{**off, "noise_prob": 1.0, "noise_types": (noise,)})
        results[f"noise ({noise})"] = time_per_second(augmenter, data, args.repeats)
    results["default chain"] = time_per_second(Augmenter(AugmentConfig(), seed=0), data, args.repeats)
    print(f"| transform | ms per second of audio ({args.seconds:g} s clips) |\n|---|---|")
    for name, ms in results.items():
        print(f"| {name} | {ms:.2f} |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({"seconds": args.seconds, "ms_per_audio_second": results}, indent=2)
        )


if __name__ == "__main__":
    main()
