"""How well ``serhub timeline`` finds and labels emotion segments, on a recording with a known answer.

    HF_HUB_OFFLINE=1 python benchmarks/timeline_eval.py --model outputs/ssl_classifier [--num_clips 60]

The recording: held-out clips of a corpus' test split (``--dataset``, default the embedded synthetic
corpus; speakers the model never trained on), joined with 0.8-2.0 s of silence between them, written as one wav; each clip's
start, end and label are the ground truth. The timeline (Silero VAD -> segments -> the model) is then
scored per true clip: its predicted label is the label of the timeline segment that overlaps it most
(none: a miss), giving segment-level macro-F1 (with the classifier on the exact clips beside it, the
upper bound), and the boundary error is the mean |start| and |end| difference of the matched segments.
Writes the figures as JSON to --output_json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from serhub.metrics.ser_metrics.ser_metrics import classification_metrics
from serhub.recipes.data import load_dataset_dict
from serhub.recipes.reporting import write_json

from serhub.loading import load_classifier
from serhub.timeline import emotion_timeline
from serhub.timeline_segments import DEFAULT_PAD


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="outputs/ssl_classifier", help="a trained serhub model (run its recipe first)"
    )
    parser.add_argument(
        "--dataset",
        default="synthetic_emotions_v2",
        help="the clips' corpus: an embedded corpus name (synthetic_emotions, synthetic_emotions_v2) or a folder",
    )
    parser.add_argument("--split", default="test", help="its split (speakers the model never trained on)")
    parser.add_argument("--num_clips", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pad", type=float, default=DEFAULT_PAD, help="the timeline's --pad")
    parser.add_argument("--output_json", type=Path, default=Path("benchmarks/results/timeline_eval.json"))
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        raise SystemExit(
            f"{args.model} is not a folder: train a model first (accelerate launch recipes/ssl_classifier.py)"
        )
    test = load_dataset_dict(args.dataset)[args.split]
    names = test.features["emotion"].names
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(test), min(args.num_clips, len(test)), replace=False)
    audio, truth, t = [], [], 0.0
    for i in rows:
        gap = np.zeros(int(rng.uniform(0.8, 2.0) * 16000), dtype=np.float32)
        clip = np.asarray(test[int(i)]["audio"]["array"], dtype=np.float32)
        audio += [gap, clip]
        start = t + len(gap) / 16000
        t = start + len(clip) / 16000
        truth.append({"start": start, "end": t, "label": names[test[int(i)]["emotion"]]})
    audio.append(np.zeros(16000, dtype=np.float32))
    classifier = load_classifier(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "joined.wav"
        sf.write(path, np.concatenate(audio), 16000)
        segments = emotion_timeline(path, classifier, pad=args.pad)
    predicted, references, starts, ends, missed = [], [], [], [], 0
    for true in truth:
        overlap = [(min(s["end"], true["end"]) - max(s["start"], true["start"]), s) for s in segments]
        best = max(overlap, key=lambda o: o[0], default=(0.0, None))
        references.append(true["label"])
        if best[0] <= 0:
            missed += 1
            predicted.append("(missed)")
            continue
        predicted.append(best[1]["label"])
        starts.append(abs(best[1]["start"] - true["start"]))
        ends.append(abs(best[1]["end"] - true["end"]))
    labels = sorted(set(references))
    timeline = classification_metrics(predicted, references, labels=labels)
    clips = [a for a in audio[1::2]]
    direct = [max(r, key=lambda x: x["score"])["label"] for r in classifier(clips, top_k=None)]
    upper = classification_metrics(direct, references, labels=labels)
    result = {
        "model": args.model,
        "dataset": f"{args.dataset}:{args.split}",
        "pad_s": args.pad,
        "clips": len(truth),
        "segments": len(segments),
        "missed_clips": missed,
        "timeline_macro_f1": round(timeline["macro_f1"], 4),
        "clips_alone_macro_f1": round(upper["macro_f1"], 4),
        "mean_start_error_s": round(float(np.mean(starts)), 3) if starts else None,
        "mean_end_error_s": round(float(np.mean(ends)), 3) if ends else None,
    }
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    write_json(args.output_json, result, portable_paths=True)
    print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
