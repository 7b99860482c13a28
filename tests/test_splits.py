"""Split functions, property-tested over random imbalanced corpora and several seeds:
disjoint, covering, stratified, speaker-independent, deterministic."""

import math
from collections import Counter

import datasets
import numpy as np
import pytest
from serhub.datasets_scripts import splits

LABELS = ["neutral", "happy", "sad", "angry", "fear"]
SEEDS = [0, 1, 2, 3, 4, 5]


def random_corpus(seed: int, n_speakers: int = 23, unlabelled: int = 0) -> datasets.Dataset:
    """Speakers with very different amounts of speech; classes imbalanced like natural corpora."""
    rng = np.random.default_rng(seed)
    speakers, emotions = [], []
    for s in range(n_speakers):
        count = int(rng.integers(3, 40))
        speakers += [f"spk{s:02d}"] * count
        emotions += rng.choice(len(LABELS), size=count, p=[0.4, 0.25, 0.15, 0.12, 0.08]).tolist()
    emotions[:unlabelled] = [-1] * unlabelled
    features = datasets.Features(
        {"speaker_id": datasets.Value("string"), "emotion": datasets.ClassLabel(names=LABELS)}
    )
    return datasets.Dataset.from_dict({"speaker_id": speakers, "emotion": emotions}, features=features)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 5])
def test_speaker_kfold_is_disjoint_covering_and_speaker_independent(seed, k):
    ds = random_corpus(seed)
    folds = splits.speaker_kfold(ds, n_splits=k, seed=seed)
    assert len(folds) == k
    splits.check_folds(ds, folds)  # disjoint, covering, no speaker on both sides
    for train, test in folds:
        assert sorted(train + test) == list(range(len(ds)))
    sizes = [len(test) for _, test in folds]
    largest_speaker = max(Counter(ds["speaker_id"]).values())
    assert max(sizes) - min(sizes) <= largest_speaker  # greedy balancing
    assert folds == splits.speaker_kfold(ds, n_splits=k, seed=seed)  # deterministic


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [3, 5, 10])
def test_stratified_kfold_keeps_class_proportions(seed, k):
    ds = random_corpus(seed)
    folds = splits.stratified_kfold(ds, n_splits=k, seed=seed)
    splits.check_folds(ds, folds, speaker_column=None)  # disjoint and covering
    totals = Counter(ds["emotion"])
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    labels = np.asarray(ds["emotion"])
    for _, test in folds:
        per_class = Counter(labels[test].tolist())
        for label, total in totals.items():
            assert abs(per_class[label] - total / k) < 1  # floor or ceil of the class' share
            share, overall = per_class[label] / len(test), total / len(ds)
            assert abs(share - overall) <= (1 + overall) / len(test)  # the proportion, within rounding
    assert folds == splits.stratified_kfold(ds, n_splits=k, seed=seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_stratified_holdout(seed):
    ds = random_corpus(seed)
    rest, held = splits.stratified_holdout(ds, 0.2, seed=seed)
    assert not set(rest) & set(held) and sorted(rest + held) == list(range(len(ds)))
    labels = np.asarray(ds["emotion"])
    for label, total in Counter(labels.tolist()).items():
        assert abs((labels[held] == label).sum() - 0.2 * total) <= 0.5
    assert splits.stratified_holdout(list(ds["emotion"]), 0.2, seed=seed)[1] == held  # a plain list works too


@pytest.mark.parametrize("seed", SEEDS)
def test_balanced_subset_has_exactly_per_class_of_every_class(seed):
    ds = random_corpus(seed, n_speakers=40, unlabelled=5)
    per_class = min(Counter(e for e in ds["emotion"] if e >= 0).values())
    chosen = splits.balanced_subset(ds, per_class=per_class, seed=seed)
    assert len(set(chosen)) == len(chosen) == per_class * len(LABELS)
    assert Counter(ds.select(chosen)["emotion"]) == dict.fromkeys(range(len(LABELS)), per_class)  # no -1
    assert chosen != splits.balanced_subset(ds, per_class=per_class, seed=seed + 100) or per_class == 0


def test_balanced_subset_names_short_classes():
    ds = random_corpus(0)
    counts = Counter(ds["emotion"])
    with pytest.raises(ValueError, match=r"326 rows of every class; these have fewer: neutral \(\d+\).*fear"):
        splits.balanced_subset(ds)  # ABHINAYA's 326 per class
    everything = splits.balanced_subset(ds, allow_fewer=True)
    assert Counter(ds.select(everything)["emotion"]) == counts


@pytest.mark.parametrize("seed", SEEDS)
def test_split_speakers_balances_groups(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 100))
    genders = {f"spk{i:03d}": ("female", "male")[int(rng.integers(2))] for i in range(n)}
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    assignment = splits.split_speakers(genders, fractions, seed=seed)
    assert set(assignment) == set(genders)
    counts = Counter(assignment.values())
    for split in ("validation", "test"):
        assert counts[split] == max(1, math.floor(0.1 * n + 0.5))
        held = Counter(genders[s] for s, v in assignment.items() if v == split)
        if min(Counter(genders.values()).values()) >= 2 * counts[split]:
            assert abs(held["female"] - held["male"]) <= 1
    assert assignment == splits.split_speakers(genders, fractions, seed=seed)


def test_leave_one_group_out():
    folds = splits.leave_one_group_out([1, 2, 1, 3, 2])
    assert folds == {1: ([1, 3, 4], [0, 2]), 2: ([0, 2, 3], [1, 4]), 3: ([0, 1, 2, 4], [3])}


def test_leakage_checks_fail_loudly():
    ds = random_corpus(0)
    folds = splits.stratified_kfold(ds, n_splits=4)  # ignores speakers: they leak
    with pytest.raises(
        ValueError, match=r"fold 0: splits are not speaker-independent; speakers in two splits: spk"
    ):
        splits.check_folds(ds, folds)
    rows_of_spk00 = [i for i, s in enumerate(ds["speaker_id"]) if s == "spk00"]
    with pytest.raises(ValueError, match=r"speakers in two splits: spk00 \(train, test\)"):
        splits.check_speaker_independent({"train": rows_of_spk00[:1], "test": rows_of_spk00[1:]}, dataset=ds)
    dd = datasets.DatasetDict({"train": ds.select(rows_of_spk00[:1]), "validation": ds.select(rows_of_spk00)})
    with pytest.raises(ValueError, match="spk00"):
        splits.check_speaker_independent(dd)
    renamed = ds.rename_column("speaker_id", "actor")
    with pytest.raises(ValueError, match="spk00"):
        splits.check_speaker_independent({"a": [0], "b": [1]}, dataset=renamed, speaker_column="actor")
    train, test = folds[0]
    with pytest.raises(ValueError, match="in both train and test"):
        splits.check_folds(ds, [(train + test[:1], test)], speaker_column=None)
    with pytest.raises(ValueError, match="cover every row exactly once"):
        splits.check_folds(ds, folds[:2], speaker_column=None)


def test_bad_arguments_are_explained():
    ds = random_corpus(0, n_speakers=3)
    with pytest.raises(ValueError, match="cannot make 5 folds from 3 speakers"):
        splits.speaker_kfold(ds, n_splits=5)
    with pytest.raises(ValueError, match="no 'actor' column"):
        splits.speaker_kfold(ds, speaker_column="actor")
    with pytest.raises(ValueError, match="sum to 1"):
        splits.split_speakers({"a": "f", "b": "m"}, {"train": 0.5, "test": 0.2})
