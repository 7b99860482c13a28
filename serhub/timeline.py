"""Emotion along a recording of any length: voice activity -> segments -> any serhub model.

    serhub timeline call.mp3 --model outputs/ssl_classifier --output_dir call-emotions
    python -m serhub.timeline call.mp3 --model outputs/ssl_classifier --output_dir call-emotions

The audio (any format ffmpeg reads, video included, any length) is decoded to 16 kHz mono as a stream,
twice: first Silero VAD (``silero-vad``, its weights ship in the wheel) finds the speech, then each speech
segment (split when longer than ``--max_segment``) is classified with
``pipeline("audio-classification")`` on the model. Memory stays bounded: the stream is read in
blocks, and only the segments being classified are held. ``--vad none`` classifies fixed windows
(``--window``, ``--hop``) instead. ``--smoothing k`` averages each segment's probabilities with its
k-1 neighbours. Writes ``timeline.json``, ``timeline.csv`` and ``timeline.png`` (class probabilities
over time, segments shaded by label). In Python, :func:`emotion_timeline` returns the segment dicts.
A file that decodes shorter than it declares (a cut download, a truncated WAV) is warned about with both
durations, which ``timeline.json`` records (``declared_duration``, ``decoded_duration``).

A segment is ``{"start": s, "end": s, "label": str, "score": p, "probabilities": {label: p}}``, plus
``"dimensions": {"arousal": x, ...}`` when the model has a dimensional head, and ``"answer"`` /
``"transcript"`` when it is an audio-LLM that writes answers ("| ASR: <t> | Emotion: <label>", EmoSLLM).
Long input goes through this function rather than ``pipeline(..., chunk_length_s=...)``: transformers'
chunking is for CTC/seq2seq ASR (it stitches token streams); an emotion label per window needs the
speech boundaries, the windows and the per-window probabilities kept apart.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import numbers
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from serhub.audio_io import SAMPLING_RATE, audio_durations, duration, stream_audio
from serhub.loading import dimensional_values, load_answer_writer, load_classifier
from serhub.modeling.file_utils import atomic_write, check_output_dir
from serhub.modeling.prompting_audio_llm import parse_answer

VAD_FRAME = 512  # samples per Silero VAD frame at 16 kHz


def speech_regions(
    path,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.3,
    max_segment: float = 10.0,
    progress: bool = True,
    pad: float = 0.03,
):
    """(start, end) sample ranges of speech, from Silero VAD's per-frame probabilities (pass 1);
    ``pad`` seconds of context on each side."""
    check_arguments(min_speech=min_speech, max_segment=max_segment, pad=pad)
    import torch
    from silero_vad import get_speech_timestamps_from_probs, load_silero_vad
    from tqdm.auto import tqdm

    model = load_silero_vad()
    probs, total, rest = [], 0, np.zeros(0, dtype=np.float32)
    seconds = duration(path)
    bar = tqdm(
        total=round(seconds) if seconds else None, desc="finding speech", unit="s", disable=not progress
    )
    with torch.no_grad():
        for block in stream_audio(path):
            bar.update(round(len(block) / SAMPLING_RATE))
            total += len(block)
            rest = np.concatenate([rest, block])
            usable = len(rest) - len(rest) % VAD_FRAME
            for start in range(0, usable, VAD_FRAME):
                probs.append(
                    float(model(torch.from_numpy(rest[start : start + VAD_FRAME].copy()), SAMPLING_RATE))
                )
            rest = rest[usable:]
    bar.close()
    if not probs:
        return [], total
    stamps = get_speech_timestamps_from_probs(
        probs,
        SAMPLING_RATE,
        threshold=threshold,
        min_speech_duration_ms=int(min_speech * 1000),
        min_silence_duration_ms=int(min_silence * 1000),
        max_speech_duration_s=max_segment,
        speech_pad_ms=int(pad * 1000),
        audio_length_samples=total,
    )
    return [(s["start"], min(s["end"], total)) for s in stamps], total


def fixed_windows(total: int, window: float, hop: float) -> list[tuple[int, int]]:
    w, h = int(window * SAMPLING_RATE), int(hop * SAMPLING_RATE)
    if total <= 0:
        return []
    starts = range(0, max(total - w, 0) + 1, h)
    windows = [(s, min(s + w, total)) for s in starts]
    if windows[-1][1] < total:  # the tail
        windows.append((max(total - w, 0), total))
    return windows


def segment_audio(path, regions: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """The samples of each region in order, from a second pass over the stream."""
    buffer, offset, i = np.zeros(0, dtype=np.float32), 0, 0
    for block in stream_audio(path):
        buffer = np.concatenate([buffer, block])
        while i < len(regions) and regions[i][1] <= offset + len(buffer):
            start, end = regions[i]
            yield buffer[start - offset : end - offset].copy()
            i += 1
        keep_from = (regions[i][0] if i < len(regions) else offset + len(buffer)) - offset
        buffer, offset = buffer[max(keep_from, 0) :], offset + max(keep_from, 0)
    while i < len(regions):  # regions reaching the end of the stream
        start, end = regions[i]
        yield buffer[start - offset : end - offset].copy()
        i += 1


# what each numeric argument must be: (test, the rule as the error states it, a sensible value)
_ARGUMENT_RULES = {
    "window": (lambda x: x > 0, "a number of seconds > 0", 3.0),
    "hop": (lambda x: x > 0, "a number of seconds > 0", 3.0),
    "min_speech": (lambda x: x >= 0, "a number of seconds >= 0", 0.25),
    "max_segment": (lambda x: x > 0, "a number of seconds > 0", 10.0),
    "pad": (
        lambda x: x >= 0,
        "a number of seconds >= 0 (a negative pad would cut segments to nothing)",
        0.03,
    ),
    "smoothing": (
        lambda x: isinstance(x, numbers.Integral) and x >= 1,
        "an integer >= 1 (1: no smoothing)",
        1,
    ),
    "batch_size": (lambda x: isinstance(x, numbers.Integral) and x >= 1, "an integer >= 1", 8),
}


def check_arguments(**values) -> None:
    """A ``ValueError`` naming the first of ``window``, ``hop``, ``min_speech``, ``max_segment``, ``pad``,
    ``smoothing``, ``batch_size`` given that makes no sense (negative, zero where it must not be, NaN)."""
    for name, value in values.items():
        test, rule, example = _ARGUMENT_RULES[name]
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (ok and test(value)):
            raise ValueError(
                f"--{name} must be {rule}, got {value!r}; e.g. --{name} {example} (the default)."
            )


def emotion_timeline(
    audio_path: str | Path,
    model,
    vad: str = "silero",
    window: float = 3.0,
    hop: float = 3.0,
    min_speech: float = 0.25,
    max_segment: float = 10.0,
    smoothing: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    pad: float = 0.03,
    answers=None,
    return_durations: bool = False,
) -> list[dict] | tuple[list[dict], dict]:
    """Segments of ``audio_path`` with their emotion; ``model``: a path, Hub id or a ready
    ``pipeline("audio-classification")``. Empty when the file has no speech. ``answers``: also write
    each segment's answer and transcript (audio-LLMs trained to write them; None: whenever the model
    can, False: never, True: required, or a ready ``load_answer_writer`` result).
    ``return_durations``: return ``(segments, audio_durations(...))``, the file's declared and decoded
    durations (a file that decodes shorter than it declares is warned about either way)."""
    from tqdm.auto import tqdm

    if vad not in ("silero", "none"):
        raise ValueError(f"vad must be 'silero' or 'none', got {vad!r}")
    check_arguments(
        window=window, hop=hop, min_speech=min_speech, max_segment=max_segment, pad=pad,
        smoothing=smoothing, batch_size=batch_size,
    )  # fmt: skip
    classifier = model if callable(model) else load_classifier(model)
    config = getattr(getattr(classifier, "model", None), "config", None)
    order = [config.id2label[i] for i in range(len(config.id2label))] if config is not None else None
    dimensions = list(getattr(config, "dimensions", None) or [])
    writer = answers if callable(answers) else None  # a ready load_answer_writer(...) result
    if writer is None and answers is not False:
        source = (
            model
            if not callable(model)
            else getattr(getattr(classifier, "model", None), "name_or_path", None)
        )
        writer = load_answer_writer(source) if source else None
        if answers and writer is None:
            raise ValueError(f"{source} does not write answers (only audio-LLMs saved for generation do)")
    if vad == "silero":
        regions, total = speech_regions(
            audio_path, min_speech=min_speech, max_segment=max_segment, progress=progress, pad=pad
        )
    else:
        total = sum(len(b) for b in stream_audio(audio_path))
        regions = fixed_windows(total, window, hop)
    durations = audio_durations(audio_path, total)  # a cut file is reported before the slow part
    segments, batch, spans = [], [], []
    bar = tqdm(total=len(regions), desc="classifying", unit="segment", disable=not progress)

    def flush():
        results = classifier(list(batch), top_k=None)
        values = dimensional_values(classifier, batch) if dimensions else [None] * len(batch)
        written = writer(list(batch)) if writer else [None] * len(batch)
        for (start, end), scores, dims, answer in zip(spans, results, values, written):
            probabilities = {r["label"]: float(r["score"]) for r in scores}
            if order:  # the model's label order, so every file's columns are the same
                probabilities = {label: probabilities[label] for label in order}
            segment = {
                "start": start / SAMPLING_RATE,
                "end": end / SAMPLING_RATE,
                "probabilities": probabilities,
            }
            if dims is not None:
                segment["dimensions"] = dict(zip(dimensions, dims))
            if answer is not None:
                segment["answer"], segment["transcript"] = answer, parse_answer(answer)["transcript"] or ""
            segments.append(segment)
        bar.update(len(batch))
        batch.clear()
        spans.clear()

    for region, samples in zip(regions, segment_audio(audio_path, regions)):
        if len(samples) == 0:
            continue
        batch.append(samples)
        spans.append(region)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    bar.close()
    segments = _label(_smooth(segments, smoothing))
    return (segments, durations) if return_durations else segments


def _smooth(segments: list[dict], k: int) -> list[dict]:
    """Each segment's probabilities (and dimensions) averaged with its k-1 neighbours: a centred moving
    average (k // 2 before, the rest after) over the neighbours that exist, so it holds at the ends and
    for any k, larger than the number of segments included."""
    if k == 1 or not segments:
        return segments
    out = [dict(s) for s in segments]
    n = len(segments)
    lo = np.clip(np.arange(n) - k // 2, 0, n)  # window of segment i: [lo[i], hi[i])
    hi = np.clip(np.arange(n) + k - k // 2, 0, n)
    for key in ("probabilities", "dimensions"):
        if key not in segments[0]:
            continue
        names = list(segments[0][key])
        values = np.array([[s[key][name] for name in names] for s in segments], dtype=np.float64)
        sums = np.concatenate([np.zeros((1, len(names))), np.cumsum(values, axis=0)])
        smoothed = (sums[hi] - sums[lo]) / (hi - lo)[:, None]
        for segment, row in zip(out, smoothed):
            segment[key] = dict(zip(names, map(float, row)))
    return out


def _label(segments: list[dict]) -> list[dict]:
    out = []
    for s in segments:
        label, score = max(s["probabilities"].items(), key=lambda kv: kv[1])
        out.append(
            {
                "start": round(s["start"], 3),
                "end": round(s["end"], 3),
                "label": label,
                "score": score,
                "probabilities": s["probabilities"],
                **{k: s[k] for k in ("dimensions", "answer", "transcript") if k in s},
            }
        )
    return out


def write_timeline(
    segments: list[dict],
    output_dir: str | Path,
    source: str,
    model: str,
    overwrite: bool = False,
    durations: dict | None = None,
) -> Path:
    """timeline.json, timeline.csv and timeline.png in ``output_dir`` (each written atomically);
    ``durations`` (:func:`audio_durations`) are recorded in timeline.json."""
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    labels = list(segments[0]["probabilities"]) if segments else []
    dimensions = list(segments[0].get("dimensions", {})) if segments else []
    written = bool(segments) and "transcript" in segments[0]
    # the file ffmpeg read (a local file, by its resolved path: ffmpeg_input allows no other protocol)
    record = {"source": str(Path(source).resolve()), "model": model, **(durations or {}), "labels": labels}
    record["segments"] = segments
    if dimensions:
        record["dimensions"] = dimensions
    atomic_write(
        output_dir / "timeline.json", lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n")
    )
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(
        [
            "start",
            "end",
            "label",
            "score",
            *[f"p_{label}" for label in labels],
            *dimensions,
            *(["transcript"] if written else []),
        ]
    )
    for s in segments:
        writer.writerow(
            [
                s["start"],
                s["end"],
                s["label"],
                round(s["score"], 6),
                *[round(s["probabilities"][label], 6) for label in labels],
                *[round(s["dimensions"][name], 6) for name in dimensions],
                *([s["transcript"]] if written else []),
            ]
        )
    atomic_write(output_dir / "timeline.csv", lambda tmp: tmp.write_text(table.getvalue()))
    plot_timeline(segments, output_dir / "timeline.png", title=Path(source).name)
    return output_dir


def plot_timeline(segments: list[dict], path, title: str = "") -> Path:
    """Class probabilities over time (one line per class), each segment shaded by its label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = list(segments[0].get("dimensions", {})) if segments else []
    if dimensions:
        fig, (ax, dim_ax) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(12, 3.5))
    labels = list(segments[0]["probabilities"]) if segments else []
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    for s in segments:
        ax.axvspan(s["start"], s["end"], color=colours[s["label"]], alpha=0.15, lw=0)
    for label in labels:
        xs, ys = [], []
        for i, s in enumerate(segments):
            if i and s["start"] > segments[i - 1]["end"] + 0.05:  # no line across non-speech
                xs.append(np.nan)
                ys.append(np.nan)
            xs += [s["start"], s["end"]]
            ys += [s["probabilities"][label]] * 2
        ax.plot(xs, ys, color=colours[label], label=label, lw=1.2)
    if dimensions:  # arousal / valence / dominance as the model predicts them, one line each
        for i, name in enumerate(dimensions):
            xs = [t for s in segments for t in (s["start"], s["end"])]
            ys = [s["dimensions"][name] for s in segments for _ in range(2)]
            dim_ax.plot(xs, ys, color=plt.cm.Dark2(i % 8), label=name, lw=1.2)
        dim_ax.set_xlabel("time (s)")
        dim_ax.set_ylabel("dimension")
        dim_ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    else:
        ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(title + ("" if segments else " (no speech found)"))
    if labels:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return Path(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", help="an audio or video file of any length")
    parser.add_argument("--model", required=True, help="a serhub model folder or Hub id")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vad", choices=("silero", "none"), default="silero", help="none: fixed windows")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per window with --vad none")
    parser.add_argument("--hop", type=float, default=3.0, help="seconds between windows with --vad none")
    parser.add_argument("--min_speech", type=float, default=0.25, help="shortest speech segment kept (s)")
    parser.add_argument("--max_segment", type=float, default=10.0, help="longer speech is split (s)")
    parser.add_argument("--pad", type=float, default=0.03, help="context kept around each speech segment (s)")
    parser.add_argument(
        "--smoothing", type=int, default=1, help="average over this many neighbouring segments"
    )
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--answers",
        choices=("auto", "yes", "no"),
        default="auto",
        help="write each segment's transcript with an audio-LLM that writes answers (auto: when it can)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder (its timeline files are replaced)",
    )


def run(args: argparse.Namespace) -> list[dict]:
    check_output_dir(args.output_dir, args.overwrite)  # before the slow part
    segments, durations = emotion_timeline(
        args.audio,
        args.model,
        args.vad,
        args.window,
        args.hop,
        args.min_speech,
        args.max_segment,
        args.smoothing,
        args.batch_size,
        pad=args.pad,
        answers={"auto": None, "yes": True, "no": False}[getattr(args, "answers", "auto")],
        return_durations=True,
    )
    write_timeline(
        segments, args.output_dir, str(args.audio), str(args.model), args.overwrite, durations=durations
    )
    print(f"{len(segments)} segments -> {args.output_dir}/timeline.json, .csv, .png")
    return segments


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()


__all__ = ["emotion_timeline", "plot_timeline", "write_timeline"]
