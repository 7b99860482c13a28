"""What ``serhub timeline`` writes (:mod:`serhub.timeline`): ``timeline.json``, ``timeline.csv`` and
``timeline.png`` (class probabilities over time, each segment shaded by its label, and the dimensions
when the model predicts them)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from serhub.modeling.file_utils import atomic_write, check_output_dir


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


__all__ = ["plot_timeline", "write_timeline"]
