"""Figures people would rather look at than read: the confusion matrix and training curves."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save_atomically(fig, path: str | os.PathLike) -> Path:
    from serhub.modeling.file_utils import atomic_write

    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]],
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Write a confusion-matrix PNG (rows: reference, columns: prediction).

    With ``normalize`` the colours are row-normalised recalls (so rare classes are visible) and
    each cell shows the recall and the raw count.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(
            f"expected a square confusion matrix of size {len(labels)} (one row per label), got {cm.shape}"
        )
    rows = cm.sum(1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    plt = _figure()
    size = 1.0 + 0.75 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall" if normalize else "count")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    threshold = shown.max() / 2 if shown.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if shown[i, j] > threshold else "black",
            )
    try:
        return _save_atomically(fig, path)
    finally:
        plt.close(fig)


# What a logged key measures, by its name (``eval_`` prefix removed). One panel per kind, so a loss,
# a score in [0, 1], a WER and the audio tokens' statistics never share a y-axis. Keys of no kind are
# not plotted: counters (num_samples, runtime, samples_per_second, flos), the learning rate, gradient
# norms, bootstrap bounds and per-class F1 (the confusion matrix shows those).
PANELS = ("loss", "score", "WER", "audio tokens")
_SCORES = {"macro_f1": "macro-F1", "unweighted_accuracy": "UA", "accuracy": "WA"}
_TOKEN_STATISTICS = ("token_norm_ratio", "token_diversity")


def metric_kind(key: str) -> str | None:
    """The panel of a ``log_history`` key: "loss", "score" (in [0, 1]), "WER", "audio tokens" or None."""
    name = key.removeprefix("eval_")
    if name == "loss" or name.endswith("_loss"):
        return "loss"
    if name == "wer" or name.endswith("_wer"):
        return "WER"
    if name.endswith(_TOKEN_STATISTICS):
        return "audio tokens"
    if any(name == s or name.endswith("_" + s) for s in _SCORES) or re.search(r"(^|_)ccc(_|$)", name):
        return "score"
    return None


def _display_name(key: str) -> str:
    evaluated = key.startswith("eval_")
    name = key.removeprefix("eval_")
    for suffix, short in _SCORES.items():
        if name == suffix or name.endswith("_" + suffix):
            name = name[: -len(suffix)] + short
            break
    name = name.replace("_", " ").strip()
    if name == "loss":
        return "eval loss" if evaluated else "train loss"
    return name


@dataclass
class TrainingCurves:
    """The data behind ``training_curves.png``: ``panels[kind][line] = [(x, value), ...]`` on one
    global axis (``x_label``: "step", or "epoch" for a history without steps), and where each phase
    or stage starts on it (``phases``: ``[(x, name)]``, empty for a single-stage run)."""

    x_label: str
    panels: dict[str, dict[str, list[tuple[float, float]]]]
    phases: list[tuple[float, str]]


def training_curves(history: Sequence[Mapping[str, float]]) -> TrainingCurves:
    """Sort ``Trainer.state.log_history`` entries (a list of dicts) into panels.

    Entries with a ``stage`` (EmoSLLM's phases, the descriptor system's stages) are laid end to end:
    each stage's steps count on from where the one before ended. An entry is placed at its ``step``
    (its ``epoch`` when the history records no steps). The trainer's closing summary (``train_runtime``,
    the run's mean ``train_loss``) is not a point on the curve and is left out.
    """
    entries = [h for h in history if "train_runtime" not in h]
    axis = "step" if any("step" in h for h in entries) else "epoch"
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    phases: list[tuple[float, str]] = []
    offset = end = 0.0
    stage = object()  # no entry's stage: the first entry opens a segment
    for h in entries:
        if axis not in h:
            continue
        if h.get("stage") != stage:
            stage, offset = h.get("stage"), end
            if stage is not None:
                phases.append((offset, str(stage)))
        x = offset + float(h[axis])
        end = max(end, x)
        for key, value in h.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            kind = metric_kind(key)
            if kind is not None:
                panels.setdefault(kind, {}).setdefault(_display_name(key), []).append((x, float(value)))
    ordered = {kind: panels[kind] for kind in PANELS if panels.get(kind)}
    return TrainingCurves(axis, ordered, phases if len(phases) > 1 else [])


_Y_LABELS = {
    "loss": "loss",
    "score": "score (0 = worst, 1 = best)",
    "WER": "word error rate",
    "audio tokens": "ratio",
}
_TITLES = {
    "loss": "loss",
    "score": "macro-F1 / UA / WA",
    "WER": "word error rate (held-out ASR)",
    "audio tokens": "audio tokens: diversity, norm / LLM embeddings",
}


def training_curves_figure(history: Sequence[Mapping[str, float]], title: str = "Training"):
    """The matplotlib figure of :func:`training_curves`: one panel per kind of quantity, phase
    boundaries as dashed vertical lines with the phase's name. The caller closes it."""
    plt = _figure()
    curves = training_curves(history)
    kinds = list(curves.panels) or [None]
    ncols = 2 if len(kinds) == 4 else len(kinds)
    nrows = math.ceil(len(kinds) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False, sharex=True)
    xs_all = [x for panel in curves.panels.values() for line in panel.values() for x, _ in line]
    starts = [x for x, _ in curves.phases]
    for ax, kind in zip(axes.flat, kinds):
        ax.set_xlabel(curves.x_label)
        ax.xaxis.set_tick_params(labelbottom=True)
        if kind is None:
            ax.set_title("nothing to plot")
            ax.text(
                0.5, 0.5, "no loss, score or WER was logged", ha="center", va="center", transform=ax.transAxes
            )
            continue
        for name, points in curves.panels[kind].items():
            # a loss is a different objective in each phase: its line stops at every boundary
            pieces = _split_at(points, starts[1:]) if kind == "loss" else [points]
            color = None
            for piece in pieces:
                xs, ys = zip(*piece)
                marker = "o" if len(points) <= 40 or name != "train loss" else None
                (line,) = ax.plot(
                    xs, ys, marker=marker, markersize=4, color=color, label=name if color is None else None
                )
                color = line.get_color()
        ax.set_title(_TITLES[kind])
        ax.set_ylabel(_Y_LABELS[kind])
        if kind == "score":
            low = min(y for points in curves.panels[kind].values() for _, y in points)
            ax.set_ylim(min(0.0, low) - 0.02, 1.02)
        for i, (x, name) in enumerate(curves.phases):
            if i:
                ax.axvline(x, color="grey", linestyle="--", linewidth=1)
            ax.text(
                x,
                0.98,
                f" {name}",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="left",
                va="top",
                fontsize=8,
                color="grey",
            )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(kinds) :]:
        ax.set_visible(False)
    if xs_all:  # steps and epochs count from 0: the axis starts there, whatever was logged first
        first = min(0.0, *xs_all)
        axes.flat[0].set_xlim(first, max(xs_all) + 0.03 * (max(xs_all) - first or 1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _split_at(points: list[tuple[float, float]], boundaries: list[float]) -> list[list[tuple[float, float]]]:
    """``points`` cut into runs that do not cross a boundary (a point on a boundary ends its phase)."""
    pieces: list[list[tuple[float, float]]] = [[]]
    edges = iter([*boundaries, math.inf])
    edge = next(edges)
    for x, y in points:
        while x > edge:
            edge = next(edges)
            if pieces[-1]:
                pieces.append([])
        pieces[-1].append((x, y))
    return [p for p in pieces if p]


def plot_training_curves(
    history: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str = "Training"
) -> Path:
    """Write the training curves of ``Trainer.state.log_history`` (see :func:`training_curves_figure`)."""
    plt = _figure()
    fig = training_curves_figure(history, title)
    try:
        return _save_atomically(fig, path)
    finally:
        plt.close(fig)


__all__ = [
    "TrainingCurves",
    "metric_kind",
    "plot_confusion_matrix",
    "plot_training_curves",
    "training_curves",
    "training_curves_figure",
]
