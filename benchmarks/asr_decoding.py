"""Whisper transcripts through the ASR pipeline: its default 5-beam search against greedy decoding, side
by side on the same clips (time and word error rate), with serhub's length cap in both.

    python benchmarks/asr_decoding.py [--model offline:whisper-tiny.en --dataset synthetic_emotions_v2
        --split validation --clips 48 --batch_size 16 --output benchmarks/results/asr_decoding.json]

The ensemble's transcript members and ``datasets_scripts.transcribe`` decode greedily
(``transcript_generate_kwargs``); this script measures what that choice costs and gives.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from serhub.recipes.reporting import write_json


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="offline:whisper-tiny.en")
    parser.add_argument("--dataset", default="synthetic_emotions_v2")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    import datasets
    import torch
    from serhub.datasets_scripts.transcribe import make_pipeline
    from serhub.metrics.asr import word_error_rate
    from serhub.modeling.modeling_ensemble import transcript_generate_kwargs

    from serhub.evaluate_data import open_split

    split = open_split(args.dataset, args.split)
    split = split.select(range(min(args.clips, len(split))))
    split = split.cast_column("audio", datasets.Audio(sampling_rate=16000))
    clips = [np.asarray(a["array"], dtype=np.float32) for a in split["audio"]]
    references = list(split["transcript"])
    asr = make_pipeline(args.model, device="cpu")
    rows = {}
    for name, beams in (("pipeline default (5 beams)", 5), ("greedy (serhub)", 1)):
        texts, start = [], time.perf_counter()
        for i in range(0, len(clips), args.batch_size):
            batch = clips[i : i + args.batch_size]
            decoding = {**transcript_generate_kwargs(batch), "num_beams": beams}
            texts += [o["text"] for o in asr(batch, batch_size=len(batch), generate_kwargs=decoding)]
        seconds = time.perf_counter() - start
        rows[name] = {
            "seconds": round(seconds, 1),
            "seconds_per_clip": round(seconds / len(clips), 3),
            "wer": round(word_error_rate(texts, references), 3),
            "example": texts[0].strip(),
        }
    beam, greedy = rows.values()
    result = {
        "model": args.model,
        "dataset": f"{args.dataset}/{args.split}",
        "clips": len(clips),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "reference_example": references[0],
        "decodings": rows,
        "greedy_speedup": round(beam["seconds"] / greedy["seconds"], 2),
    }
    print(f"{'decoding':<28} {'s/clip':>8} {'WER':>6}")
    for name, row in rows.items():
        print(f"{name:<28} {row['seconds_per_clip']:>8.3f} {row['wer']:>6.3f}")
    print(f"greedy is {result['greedy_speedup']}x faster")
    if args.output:
        write_json(args.output, result, portable_paths=True)
    return result


if __name__ == "__main__":
    main()
