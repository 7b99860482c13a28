"""Evaluation splits on a ``datasets.Dataset``: speaker-independent and stratified k-fold, a
class-balanced subset, leave-one-group-out, and checks that fail loudly on leakage.

    from serhub.datasets_scripts import splits

    folds = splits.speaker_kfold(ds, n_splits=5)               # [(train_rows, test_rows), ...]
    splits.check_folds(ds, folds)                                # raises if a speaker is on both sides
    train, test = ds.select(folds[0][0]), ds.select(folds[0][1])
    val = dd["validation"].select(splits.balanced_subset(dd["validation"], per_class=326))
    splits.check_speaker_independent(dd)                         # a DatasetDict, or {name: rows}

Functions return row indices (``Dataset.select`` turns them into datasets cheaply, as an indices
mapping). Where a function reads a column, a plain sequence of values works too. Everything is
deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from .common import check_speaker_independent

Folds = list[tuple[list[int], list[int]]]


def _values(data, column: str) -> list:
    """The ``column`` of a Dataset, or ``data`` itself when it is already a sequence of values."""
    if hasattr(data, "column_names"):
        if column not in data.column_names:
            raise ValueError(f"the dataset has no {column!r} column; columns: {data.column_names}")
        return list(data[column])
    return list(data)


def _check_n_splits(n_splits: int, available: int, what: str) -> None:
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2, got {n_splits}")
    if available < n_splits:
        raise ValueError(f"cannot make {n_splits} folds from {available} {what}; lower n_splits")


def _as_folds(fold_rows: list[list[int]], n: int) -> Folds:
    folds = []
    for test in fold_rows:
        held = set(test)
        folds.append(([i for i in range(n) if i not in held], sorted(test)))
    return folds


def speaker_kfold(dataset, n_splits: int = 5, *, speaker_column: str = "speaker_id", seed: int = 0) -> Folds:
    """k folds with whole speakers in each test fold, fold sizes balanced (largest speakers first,
    each to the currently smallest fold, ties in a seeded order)."""
    speakers = _values(dataset, speaker_column)
    rows_of: dict[Hashable, list[int]] = defaultdict(list)
    for i, speaker in enumerate(speakers):
        rows_of[speaker].append(i)
    _check_n_splits(n_splits, len(rows_of), "speakers")
    order = sorted(rows_of, key=str)
    np.random.default_rng(seed).shuffle(order)
    order.sort(key=lambda s: -len(rows_of[s]))  # stable: equal sizes keep the shuffled order
    fold_rows: list[list[int]] = [[] for _ in range(n_splits)]
    for speaker in order:
        smallest = min(range(n_splits), key=lambda k: len(fold_rows[k]))
        fold_rows[smallest].extend(rows_of[speaker])
    return _as_folds(fold_rows, len(speakers))


def stratified_kfold(dataset, n_splits: int = 5, *, label_column: str = "emotion", seed: int = 0) -> Folds:
    """k folds in which every class is spread evenly: each test fold holds floor or ceil of
    (class count / k) of each class, and fold sizes differ by at most one."""
    labels = _values(dataset, label_column)
    _check_n_splits(n_splits, len(labels), "rows")
    rng = np.random.default_rng(seed)
    rows_of: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        rows_of[label].append(i)
    fold_rows: list[list[int]] = [[] for _ in range(n_splits)]
    offset = 0  # continue dealing where the previous class stopped, so fold sizes stay balanced
    for label in sorted(rows_of, key=str):
        rows = rows_of[label]
        rng.shuffle(rows)
        for j, i in enumerate(rows):
            fold_rows[(offset + j) % n_splits].append(i)
        offset = (offset + len(rows)) % n_splits
    return _as_folds(fold_rows, len(labels))


def stratified_holdout(
    dataset, fraction: float, *, label_column: str = "emotion", seed: int = 0
) -> tuple[list[int], list[int]]:
    """``(rest, held_out)`` with about ``fraction`` of every class held out (rounded per class)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    labels = _values(dataset, label_column)
    rng = np.random.default_rng(seed)
    rows_of: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        rows_of[label].append(i)
    held: list[int] = []
    for label in sorted(rows_of, key=str):
        rows = rows_of[label]
        rng.shuffle(rows)
        held += rows[: math.floor(fraction * len(rows) + 0.5)]
    chosen = set(held)
    return [i for i in range(len(labels)) if i not in chosen], sorted(held)


def balanced_subset(
    dataset,
    per_class: int = 326,
    *,
    label_column: str = "emotion",
    seed: int = 0,
    allow_fewer: bool = False,
) -> list[int]:
    """Rows with ``per_class`` examples of every class, e.g. ABHINAYA's checkpoint-selection set
    (326 per class of MSP-Podcast's Development set). Every class of a ClassLabel counts, also an
    absent one; unlabelled rows (-1) are never chosen. A class with fewer rows is an error unless
    ``allow_fewer``, which takes all of them."""
    labels = _values(dataset, label_column)
    feature = dataset.features.get(label_column) if hasattr(dataset, "features") else None
    names = getattr(feature, "names", None)
    rows_of: dict[Hashable, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        if label is not None and label != -1:
            rows_of[label].append(i)
    classes = list(range(len(names))) if names else sorted(rows_of, key=str)
    short = {c: len(rows_of[c]) for c in classes if len(rows_of[c]) < per_class}
    if short and not allow_fewer:
        listed = ", ".join(f"{names[c] if names else c} ({n})" for c, n in short.items())
        raise ValueError(
            f"balanced_subset needs {per_class} rows of every class; these have fewer: {listed}. "
            "Lower per_class, or pass allow_fewer=True to take all rows of those classes."
        )
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c in classes:
        rows = list(rows_of[c])
        rng.shuffle(rows)
        chosen += rows[:per_class]
    return sorted(chosen)


def leave_one_group_out(groups: Sequence[Hashable]) -> dict[Hashable, tuple[list[int], list[int]]]:
    """``{group: (rows of the other groups, rows of this group)}``, groups in sorted order
    (e.g. IEMOCAP's sessions: :func:`datasets_scripts.iemocap.leave_one_session_out`)."""
    groups = list(groups)
    _check_n_splits(2, len(set(groups)), "groups")
    return {
        g: ([i for i, x in enumerate(groups) if x != g], [i for i, x in enumerate(groups) if x == g])
        for g in sorted(set(groups), key=str)
    }


def split_speakers(
    speaker_groups: Mapping[str, Hashable], fractions: Mapping[str, float], seed: int = 0
) -> dict[str, str]:
    """``{speaker: split}`` with whole speakers per split, balanced across the groups (e.g. genders).

    Every split but the largest gets ``round(fraction * speakers)`` speakers (at least one when its
    fraction is positive); the largest gets the rest. Speakers are shuffled within their group and
    interleaved group by group before the splits are cut, smallest split first."""
    if any(f < 0 for f in fractions.values()) or not math.isclose(sum(fractions.values()), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    speakers = sorted(speaker_groups)
    wanted = [s for s, f in fractions.items() if f > 0]
    largest = max(wanted, key=lambda s: fractions[s])
    counts = {s: max(1, math.floor(fractions[s] * len(speakers) + 0.5)) for s in wanted if s != largest}
    counts[largest] = len(speakers) - sum(counts.values())
    if counts[largest] < 1:
        raise ValueError(f"{len(speakers)} speakers cannot fill the splits {dict(fractions)}; each needs one")
    rng = np.random.default_rng(seed)
    by_group: dict[Hashable, list[str]] = defaultdict(list)
    for speaker in speakers:
        by_group[speaker_groups[speaker]].append(speaker)
    queues = []
    for group in sorted(by_group, key=str):
        members = by_group[group]
        rng.shuffle(members)
        queues.append(members)
    interleaved = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    assignment, start = {}, 0
    for split in sorted(wanted, key=lambda s: (counts[s], s)):  # small held-out splits first: best balanced
        for speaker in interleaved[start : start + counts[split]]:
            assignment[speaker] = split
        start += counts[split]
    return assignment


def check_folds(dataset, folds: Folds, *, speaker_column: str | None = "speaker_id") -> None:
    """Raise ``ValueError`` unless every fold's train and test rows are disjoint and in range, the
    test folds cover every row exactly once, and (with ``speaker_column``) no speaker is on both sides."""
    n = len(dataset)
    tested = []
    for k, (train, test) in enumerate(folds):
        outside = [i for i in (*train, *test) if not 0 <= i < n]
        if outside:
            raise ValueError(f"fold {k}: rows {outside[:5]} are outside the dataset ({n} rows)")
        both = set(train) & set(test)
        if both:
            raise ValueError(
                f"fold {k}: {len(both)} rows are in both train and test, e.g. {sorted(both)[:5]}"
            )
        if speaker_column is not None:
            try:
                check_speaker_independent(
                    {"train": train, "test": test}, dataset=dataset, speaker_column=speaker_column
                )
            except ValueError as err:
                raise ValueError(f"fold {k}: {err}") from None
        tested += test
    if sorted(tested) != list(range(n)):
        counts = np.bincount(np.asarray(tested, dtype=int), minlength=n) if tested else np.zeros(n, int)
        raise ValueError(
            f"the test folds must cover every row exactly once: {int((counts == 0).sum())} rows are in no "
            f"test fold, {int((counts > 1).sum())} in several"
        )


__all__ = [
    "Folds",
    "balanced_subset",
    "check_folds",
    "check_speaker_independent",
    "leave_one_group_out",
    "speaker_kfold",
    "split_speakers",
    "stratified_holdout",
    "stratified_kfold",
]
