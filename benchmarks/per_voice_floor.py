"""How low the lowest test voice's macro-F1 falls by chance alone, against the overall figure.

A model that hears every voice equally well (each clip right with probability ``accuracy``, a wrong
answer any other label at random) is scored on a split's real references and voices, many times; the
lowest voice's macro-F1 (over the emotions that voice has, as the recipes report it) is summarised
beside the overall macro-F1. It says what a per-voice floor asks of the overall figure on a split with
few clips per voice (synthetic_emotions_v2's test split: 20 voices of 12 clips).

    python benchmarks/per_voice_floor.py --dataset synthetic_emotions_v2 --split test \
        --output_json benchmarks/results/per_voice_floor.json
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from serhub.metrics.ser_metrics.ser_metrics import (
    _scores_from_confusion,
    confusion_matrix,
    per_speaker_macro_f1,
)
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.reporting import write_json


def simulate(
    references: np.ndarray, speakers: list, num_labels: int, accuracy: float, draws: int, rng
) -> dict:
    """Overall macro-F1 and the lowest voice's, over ``draws`` simulated equally-hearing models."""
    overall, lowest = np.empty(draws), np.empty(draws)
    labels = list(range(num_labels))
    for b in range(draws):
        wrong = (references + rng.integers(1, num_labels, len(references))) % num_labels
        predictions = np.where(rng.random(len(references)) < accuracy, references, wrong)
        overall[b] = _scores_from_confusion(confusion_matrix(references, predictions, num_labels))["macro_f1"]
        lowest[b] = min(
            per_speaker_macro_f1(predictions.tolist(), references.tolist(), speakers, labels).values()
        )
    return {
        "accuracy": accuracy,
        "overall_macro_f1": round(float(overall.mean()), 4),
        "lowest_voice_median": round(float(np.median(lowest)), 4),
        "lowest_voice_10_90": [round(float(v), 4) for v in np.percentile(lowest, [10, 90])],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic_emotions_v2", help="a serhub dataset name or folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--label_column", default="emotion")
    parser.add_argument("--accuracies", type=float, nargs="+", default=[0.45, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    split = load_dataset_dict(args.dataset, option="--dataset")[args.split]
    names = split.features[args.label_column].names
    references = np.asarray(split[args.label_column])
    speakers = list(split["speaker_id"])
    rng = np.random.default_rng(args.seed)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for accuracy in args.accuracies:
            rows.append(simulate(references, speakers, len(names), accuracy, args.draws, rng))
    voices = len(set(speakers))
    print(f"{args.dataset} {args.split}: {len(references)} clips, {voices} voices")
    print("| clips right | overall macro-F1 | lowest voice: median (10-90 %) |")
    print("|---|---|---|")
    for r in rows:
        low, high = r["lowest_voice_10_90"]
        print(
            f"| {r['accuracy']:.2f} | {r['overall_macro_f1']:.2f} | {r['lowest_voice_median']:.2f} ({low:.2f}-{high:.2f}) |"
        )
    result = {
        "what": "the lowest voice's macro-F1 (over its emotions) of simulated models that hear every voice "
        "equally well, on a split's real references and voices",
        "command": "python benchmarks/per_voice_floor.py",
        "dataset": args.dataset,
        "split": args.split,
        "clips": len(references),
        "voices": voices,
        "draws": args.draws,
        "rows": rows,
    }
    if args.output_json:
        write_json(args.output_json, result)
    return result


if __name__ == "__main__":
    main()
