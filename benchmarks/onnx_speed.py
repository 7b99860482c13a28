"""onnxruntime vs PyTorch for serhub's speech classifier, on the same 3-s clips, in one run.

    HF_HUB_OFFLINE=1 python benchmarks/onnx_speed.py [--encoder offline:whisper-tiny.en] [--threads 2]

Builds the classifier around the real encoder (its head untrained: speed does not depend on it),
exports it with ``python -m serhub.export_onnx`` (parity checked there), and times batch 1
and batch 8 of 3-s real speech clips (Debian's Asterisk prompts, or noise): median ms per call and per
clip, and the ratio onnxruntime / PyTorch. Writes the figures as JSON to --output_json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from serhub.modeling import SpeechEmotionFeatureExtractor, SpeechEmotionForAudioClassification
from serhub.modeling.offline_assets import resolve_pretrained
from serhub.recipes.reporting import write_json

from serhub.export_onnx import OnnxAudioClassifier, check_clips, export_onnx


def timed(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="offline:whisper-tiny.en")
    parser.add_argument("--threads", type=int, default=0, help="threads for both runtimes (0: their default)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--output_json", type=Path, default=Path("benchmarks/results/onnx_speed.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = resolve_pretrained(args.encoder)
    model = SpeechEmotionForAudioClassification.from_encoder_pretrained(
        encoder, ["neutral", "happy", "sad"]
    ).eval()
    extractor = SpeechEmotionFeatureExtractor.from_encoder_pretrained(encoder)
    clip = np.resize(np.concatenate(check_clips()), 48000).astype(np.float32)  # 3 s of speech
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(f"{tmp}/model")
        extractor.save_pretrained(f"{tmp}/model")
        report = export_onnx(f"{tmp}/model", f"{tmp}/onnx")
        onnx = OnnxAudioClassifier(f"{tmp}/onnx", threads=args.threads or None)
        for batch in (1, 8):
            audio = [clip] * batch

            def run_torch(audio=audio):
                with torch.no_grad():
                    return model(**extractor(audio, sampling_rate=16000, return_tensors="pt")).logits

            torch_ms = statistics.median(timed(run_torch, args.repeats, args.warmup))
            onnx_ms = statistics.median(
                timed(lambda audio=audio: onnx.logits(audio), args.repeats, args.warmup)
            )
            rows.append(
                {
                    "batch": batch,
                    "torch_ms": round(torch_ms, 1),
                    "onnxruntime_ms": round(onnx_ms, 1),
                    "torch_ms_per_clip": round(torch_ms / batch, 1),
                    "onnxruntime_ms_per_clip": round(onnx_ms / batch, 1),
                    "ratio_onnxruntime_over_torch": round(onnx_ms / torch_ms, 3),
                }
            )
    print(
        f"{args.encoder} classifier, 3-s clips, CPU fp32, {torch.get_num_threads()} torch threads, median of {args.repeats}"
    )
    print(
        f"{'batch':>5} {'torch ms':>10} {'onnxruntime ms':>15} {'per clip (torch / ort)':>24} {'ort/torch':>10}"
    )
    for r in rows:
        per_clip = f"{r['torch_ms_per_clip']} / {r['onnxruntime_ms_per_clip']}"
        print(
            f"{r['batch']:>5} {r['torch_ms']:>10} {r['onnxruntime_ms']:>15} {per_clip:>24} "
            f"{r['ratio_onnxruntime_over_torch']:>10}"
        )
    print(
        f"parity: max |logit difference| {report['max_abs_difference']:.2e} on clips of {report['check_clip_seconds']} s"
    )
    # the model was built in a temporary folder: name what it was, not where
    report = {**report, "source": f"a new speech classifier on {args.encoder} (temporary folder)"}
    write_json(
        args.output_json, {"encoder": args.encoder, "rows": rows, "export": report}, portable_paths=True
    )
    print(f"wrote {args.output_json}")


if __name__ == "__main__":
    main()
