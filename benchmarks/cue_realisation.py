"""How the synthetic corpus's planned emotion cues reach the audio, and how much of them one clip holds.

Every clip of ``synthetic_emotions_v2`` is spoken from a seeded plan (``plan_clips``): pitch, pitch range
and rate, each the emotion's shift plus a per-clip jitter on top of the speaker's own baseline
(``benchmarks/emotion_ceiling.py`` bounds what those planned numbers allow). This script measures each
clip's ten prosody numbers from the audio (``modeling.prosody.measure_prosody``: swift-f0 pitch in
semitones, voicing and rhythm) and asks, for the training split (888 clips of 74 voices) and the
held-out voices and sentences:

- **where each cue lands**: the correlation of every measured number with the planned pitch (relative to
  the speaker), pitch range and rate (relative to the speaker), across all clips and within voices (each
  voice's mean removed from both); and the share of each measured number's variance that lies between
  voices (what a single clip cannot separate from the voice without a reference for it);
- **what one clip holds**: a gradient-boosted classifier (class-balanced, trained on the training split)
  of the measured numbers per clip, and of the same numbers minus the mean of their voice's clips,
  scored on the test split and the held-out voices (clean, telephone band + 15 dB noise); also with the
  speaking rate an ideal reader of the words would give (syllables of the corpus's own transcript per
  second of active speech: an oracle no model has, the best rate measure this audio allows).

    python benchmarks/cue_realisation.py --output_json benchmarks/results/cue_realisation.json
"""

from __future__ import annotations

import argparse
import re

import numpy as np
from serhub.datasets_scripts.synthetic_emotions_v2 import plan_clips
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.modeling.prosody import PROSODY_NUMBERS, measure_prosody
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.reporting import write_json
from tqdm.auto import tqdm

from serhub.heldout import heldout_dataset

PLANNED = ("pitch_relative", "pitch_range", "rate_relative")
TEXT_RATE = "syllables_per_s_from_transcript"


def syllables(text: str) -> int:
    """Syllables of an English text, counted as vowel groups per word (a final silent "e" dropped); the
    approximation is the same for every clip, which is all a rate comparison needs."""
    count = 0
    for word in re.findall(r"[a-z']+", text.lower()):
        groups = len(re.findall(r"[aeiouy]+", word))
        if word.endswith("e") and not word.endswith("le") and groups > 1:
            groups -= 1
        count += max(1, groups)
    return count


def _relative(value: float, baseline: float) -> float:
    return 100.0 * ((1.0 + value / 100.0) / (1.0 + baseline / 100.0) - 1.0)


def planned_row(clip) -> list[float]:
    return [
        _relative(clip.pitch, clip.speaker_pitch),
        clip.pitch_range,
        _relative(clip.rate, clip.speaker_rate),
    ]


def minus_voice_mean(x: np.ndarray, voices) -> np.ndarray:
    """Each row minus the NaN-aware mean of its voice's rows."""
    out = x.astype(np.float64).copy()
    voices = np.asarray(voices)
    for v in np.unique(voices):
        rows = voices == v
        out[rows] -= np.nanmean(x[rows], axis=0)
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")


def between_voice_share(x: np.ndarray, voices) -> float:
    """The share of a number's variance that lies between voices (1 - within-voice variance / total)."""
    ok = np.isfinite(x)
    within = minus_voice_mean(x[ok, None], np.asarray(voices)[ok])[:, 0]
    return float(1.0 - np.var(within) / np.var(x[ok]))


def realisation(measured: np.ndarray, planned: np.ndarray, voices) -> dict:
    names = [*PROSODY_NUMBERS, TEXT_RATE]
    measured_within, planned_within = minus_voice_mean(measured, voices), minus_voice_mean(planned, voices)
    table = {}
    for j, name in enumerate(names):
        table[name] = {"between_voice_share": round(between_voice_share(measured[:, j], voices), 3)}
        for k, cue in enumerate(PLANNED):
            table[name][f"corr_{cue}"] = round(correlation(measured[:, j], planned[:, k]), 3)
            table[name][f"corr_{cue}_within_voice"] = round(
                correlation(measured_within[:, j], planned_within[:, k]), 3
            )
    planned_share = {
        cue: round(between_voice_share(planned[:, k], voices), 3) for k, cue in enumerate(PLANNED)
    }
    return {"measured": table, "planned_between_voice_share": planned_share}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout_clips_per_voice", type=int, default=12)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)

    import datasets
    from sklearn.ensemble import HistGradientBoostingClassifier

    corpus = load_dataset_dict("synthetic_emotions_v2")
    heldout = datasets.load_from_disk(str(heldout_dataset(args.heldout_clips_per_voice, args.seed)))
    plan = {c.utterance_id: c for c in plan_clips(seed=0).clips}
    plan.update(
        {
            c.utterance_id: c
            for c in plan_clips(args.heldout_clips_per_voice, seed=args.seed, splits=("heldout",)).clips
        }
    )
    splits = {
        "train": corpus["train"],
        "test": corpus["test"],
        "heldout_voices": heldout["heldout_voices"],
        "heldout_voices_telephone": heldout["heldout_voices_telephone"],
    }
    data = {}
    for name, split in splits.items():
        rows, planned = [], []
        for ex in tqdm(split, desc=name):
            numbers = measure_prosody(ex["audio"]["array"], ex["audio"]["sampling_rate"])
            rows.append([*numbers, syllables(ex["transcript"]) / numbers[-1]])
            clip = plan.get(ex["utterance_id"])
            planned.append(planned_row(clip) if clip is not None else [np.nan] * len(PLANNED))
        data[name] = (
            np.asarray(rows),
            np.asarray(planned),
            list(split["speaker_id"]),
            np.asarray(split["emotion"]),
        )

    out = {
        "what": __doc__.split("\n\n")[0],
        "command": "python benchmarks/cue_realisation.py --output_json benchmarks/results/cue_realisation.json",
        "realisation": {
            name: realisation(*data[name][:3])
            for name in ("train", "heldout_voices")
            if np.isfinite(data[name][1]).all()
        },
        "per_clip_classifiers": {},
    }
    for name, result in out["realisation"].items():
        print(
            f"\n{name}: measured number | between-voice share | corr. with planned range, all / within voice"
        )
        for number, row in result["measured"].items():
            print(
                f"  {number:32s} {row['between_voice_share']:5.2f}   "
                f"{row['corr_pitch_range']:+.2f} / {row['corr_pitch_range_within_voice']:+.2f}"
            )
        print(f"  planned cues' between-voice share: {result['planned_between_voice_share']}")

    ten = list(range(len(PROSODY_NUMBERS)))
    views = {
        "the ten numbers, per clip": (ten, False),
        "the ten numbers without the F0 median, per clip": (ten[1:], False),
        "the ten numbers + the transcript's syllable rate (oracle), per clip": ([*ten, len(ten)], False),
        "the ten numbers minus their voice's mean over its clips": (ten, True),
    }
    x_train, _, voices_train, y_train = data["train"]
    labels = list(range(len(corpus["train"].features["emotion"].names)))
    for view, (columns, relative) in views.items():

        def transform(x, voices, columns=columns, relative=relative):
            return (minus_voice_mean(x, voices) if relative else x)[:, columns]

        model = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=3, random_state=args.seed
        )
        model.fit(
            transform(x_train, voices_train), y_train, sample_weight=(1.0 / np.bincount(y_train))[y_train]
        )
        row = {}
        for name in ("test", "heldout_voices", "heldout_voices_telephone"):
            x, _, voices, y = data[name]
            scores = classification_metrics(
                model.predict(transform(x, voices)).tolist(),
                y.tolist(),
                labels=labels,
                bootstrap=args.bootstrap,
                seed=args.seed,
            )
            row[name] = {
                k: round(float(scores[k]), 4) for k in ("macro_f1", "macro_f1_ci_low", "macro_f1_ci_high")
            }
        out["per_clip_classifiers"][view] = row
        print(f"{view:70s} " + "  ".join(f"{n} {r['macro_f1']:.3f}" for n, r in row.items()))
    if args.output_json:
        write_json(args.output_json, out)
    return out


if __name__ == "__main__":
    main()
