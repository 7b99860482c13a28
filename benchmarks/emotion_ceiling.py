"""What a perfect listener could score on the synthetic corpus, version 2: the ceiling of each cue.

Every clip of ``synthetic_emotions_v2`` is decided by a seeded plan (``plan_clips``): its emotion, its
sentence (emotional words in half of the emotional clips), and its prosody, i.e. pitch, pitch range
and rate, each the class's shift scaled by a random intensity (0.5 to 1) plus a per-clip jitter, on
top of the speaker's own baseline pitch and rate. The level of each clip is set at random afterwards,
so the SSML volume does not reach the audio. This script reads those planned numbers (no audio is
made) and asks how well an ideal classifier of them does, which bounds what any model that hears
the speech can score:

- ``prosody, speaker-normalised``: pitch, range and rate relative to the speaker's own neutral
  voice (what a model with a perfect per-speaker reference could hear);
- ``prosody, speaker baseline unknown``: the speaker's baseline pitch and rate left in (the voice's
  own base frequency removed: an optimistic case for a model without a reference);
- ``range and rate only``: no pitch level at all (a pessimistic case for a model without a reference);
- ``words only``: the sentence's emotion when its words carry one, neutral otherwise (a perfect reader);
- each prosody case with the words as well.

The ideal classifier is a gradient-boosted model trained on clips drawn from the emotion model
itself (many more than the corpus holds), with class-balanced weights (macro-F1 rewards the rare
classes); it is scored on the corpus's real test plan and on the held-out voices' plan with a
bootstrap 95 % interval, and on a large fresh draw for the ceiling without sampling noise.

    python benchmarks/emotion_ceiling.py --output_json benchmarks/results/emotion_ceiling.json
"""

from __future__ import annotations

import argparse

import numpy as np
from serhub.datasets_scripts.synthetic_emotions_model import CLASS_PRIORS, EMOTIONS, plan_clip
from serhub.datasets_scripts.synthetic_emotions_v2 import plan_clips
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.recipes.reporting import write_json


def _relative(value: float, baseline: float) -> float:
    """A shift in percent relative to the speaker's baseline (as the descriptors measure it)."""
    return 100.0 * ((1.0 + value / 100.0) / (1.0 + baseline / 100.0) - 1.0)


def clip_features(clip) -> dict[str, np.ndarray]:
    """The cues of one planned clip, by what a listener is assumed to know."""
    pitch_rel = _relative(clip.pitch, clip.speaker_pitch)
    rate_rel = _relative(clip.rate, clip.speaker_rate)
    words = np.zeros(len(EMOTIONS))
    words[EMOTIONS.index(clip.emotion) if clip.lexical else 0] = 1.0
    return {
        "normalised": np.array([pitch_rel, clip.pitch_range, rate_rel]),
        "baseline_unknown": np.array([clip.pitch, clip.pitch_range, clip.rate]),
        "range_rate": np.array([clip.pitch_range, clip.rate]),
        "words": words,
    }


CASES = {
    "prosody, speaker-normalised": ("normalised",),
    "prosody, speaker baseline unknown": ("baseline_unknown",),
    "range and rate only": ("range_rate",),
    "words only": ("words",),
    "words + prosody, speaker-normalised": ("words", "normalised"),
    "words + prosody, speaker baseline unknown": ("words", "baseline_unknown"),
    "words + range and rate only": ("words", "range_rate"),
}


def table(clips) -> tuple[dict[str, np.ndarray], np.ndarray]:
    feats = [clip_features(c) for c in clips]
    columns = {key: np.stack([f[key] for f in feats]) for key in feats[0]}
    labels = np.array([EMOTIONS.index(c.emotion) for c in clips])
    return columns, labels


def draw_clips(num_clips: int, seed: int, clips_per_speaker: int = 12):
    """Clips of the emotion model itself: class priors of the corpus, a new speaker every
    ``clips_per_speaker`` clips (baselines as the builder draws them), emotional words in half of the
    emotional clips."""
    rng = np.random.default_rng(seed)
    neutral_bank = ("neutral words",)
    emotional_bank = {e: (f"{e} words",) for e in EMOTIONS}
    labels = rng.choice(len(EMOTIONS), size=num_clips, p=np.asarray(CLASS_PRIORS) / sum(CLASS_PRIORS))
    clips = []
    for k, y in enumerate(labels):
        if k % clips_per_speaker == 0:
            speaker_pitch, speaker_rate = rng.normal(0.0, 8.0), rng.normal(0.0, 5.0)
        clips.append(
            plan_clip(
                rng, f"draw{k}", k // clips_per_speaker, EMOTIONS[y], 0.5, neutral_bank, emotional_bank,
                speaker_pitch, speaker_rate,
            )
        )  # fmt: skip
    return clips


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train_draws", type=int, default=60000, help="clips drawn to fit the ideal classifier"
    )
    parser.add_argument(
        "--eval_draws", type=int, default=60000, help="fresh clips for the noise-free ceiling"
    )
    parser.add_argument("--heldout_clips_per_voice", type=int, default=12)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)

    from sklearn.ensemble import HistGradientBoostingClassifier

    train_x, train_y = table(draw_clips(args.train_draws, args.seed + 1))
    fresh_x, fresh_y = table(draw_clips(args.eval_draws, args.seed + 2))
    corpus = plan_clips(12, 0.5, 0)
    test_ids = set(corpus.splits["test"])
    test_x, test_y = table([c for c in corpus.clips if c.speaker in test_ids])
    heldout = plan_clips(args.heldout_clips_per_voice, 0.5, 0, splits=("heldout",))
    held_x, held_y = table(list(heldout.clips))
    weights = (1.0 / np.bincount(train_y, minlength=len(EMOTIONS)))[train_y]

    results = {}
    for case, keys in CASES.items():

        def stack(columns, keys=keys):
            return np.concatenate([columns[k] for k in keys], axis=1)

        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=args.seed)
        model.fit(stack(train_x), train_y, sample_weight=weights)
        row = {}
        for name, (x, y) in {
            "fresh_draw": (fresh_x, fresh_y),
            "test_split": (test_x, test_y),
            "heldout_voices": (held_x, held_y),
        }.items():
            scores = classification_metrics(
                model.predict(stack(x)).tolist(),
                y.tolist(),
                labels=list(range(len(EMOTIONS))),
                bootstrap=0 if name == "fresh_draw" else args.bootstrap,
                seed=args.seed,
            )
            row[name] = {
                k: round(float(scores[k]), 4)
                for k in ("macro_f1", "macro_f1_ci_low", "macro_f1_ci_high", "unweighted_accuracy")
                if k in scores
            }
            row[name]["num_samples"] = int(len(y))
        results[case] = row
        print(
            f"{case:45s} fresh {row['fresh_draw']['macro_f1']:.3f}   test {row['test_split']['macro_f1']:.3f} "
            f"({row['test_split']['macro_f1_ci_low']:.2f}-{row['test_split']['macro_f1_ci_high']:.2f})   "
            f"held-out {row['heldout_voices']['macro_f1']:.3f}"
        )
    out = {
        "what": (
            "macro-F1 of an ideal classifier of the planned cues of synthetic_emotions_v2 (no audio): an "
            "upper bound for models that hear the speech; volume is left out (each clip's level is set at "
            "random after synthesis)"
        ),
        "command": "python benchmarks/emotion_ceiling.py --output_json benchmarks/results/emotion_ceiling.json",
        "classifier": "HistGradientBoostingClassifier(max_iter=300), class-balanced sample weights",
        "train_draws": args.train_draws,
        "results": results,
    }
    if args.output_json:
        write_json(args.output_json, out)
    return out


if __name__ == "__main__":
    main()
