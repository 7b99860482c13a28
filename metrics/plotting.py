"""Figures people would rather look at than read: the confusion matrix and training curves."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
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


def plot_training_curves(
    history: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str = "Training"
) -> Path:
    """Write loss and evaluation curves from ``Trainer.state.log_history`` (a list of dicts)."""
    plt = _figure()
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = {}
    for h in history:
        for key, value in h.items():
            if (
                key.startswith("eval_")
                and key not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
                and isinstance(value, (int, float))
            ):
                evals.setdefault(key, []).append((h.get("step", 0), value))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        axes[0].plot(*zip(*train), label="train loss")
    if "eval_loss" in evals:
        axes[0].plot(*zip(*evals.pop("eval_loss")), marker="o", label="eval loss")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    for key, points in sorted(evals.items()):
        axes[1].plot(*zip(*points), marker="o", label=key.removeprefix("eval_"))
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("score")
    if evals:
        axes[1].legend(fontsize=8)
    fig.suptitle(title)
    try:
        return _save_atomically(fig, path)
    finally:
        plt.close(fig)


__all__ = ["plot_confusion_matrix", "plot_training_curves"]
