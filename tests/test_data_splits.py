"""Random, per-class and stratified k-fold splits: sizes, disjointness, determinism, stratification."""

import numpy as np
import pytest

from gcl_jax.data import splits


def assert_partition(parts, n):
    joined = np.concatenate(list(parts.values()))
    assert len(joined) == len(np.unique(joined)), "parts overlap"
    assert set(joined) <= set(range(n))


def test_random_split_sizes_and_determinism():
    parts = splits.random_split(1001, 0.1, 0.1, seed=3)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [100, 100, 801]
    assert_partition(parts, 1001)
    assert len(np.concatenate(list(parts.values()))) == 1001
    again = splits.random_split(1001, 0.1, 0.1, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = splits.random_split(1001, 0.1, 0.1, seed=4)
    assert not np.array_equal(parts["train"], other["train"])


def test_grace_split_is_10_90():
    parts = splits.grace_split(2708, seed=0)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (270, 0, 2438)


def test_random_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to <= 1"):
        splits.random_split(10, 0.8, 0.5)


def test_stratified_kfold():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    folds = splits.stratified_kfold(labels, folds=10, seed=0)
    assert len(folds) == 10
    tests = np.concatenate([f["test"] for f in folds])
    assert sorted(tests) == list(range(100))  # every item tested exactly once
    for fold in folds:
        assert_partition(fold, 100)
        assert np.bincount(labels[fold["test"]], minlength=3).tolist() == [6, 3, 1]
    same = splits.stratified_kfold(labels, folds=10, seed=0)
    assert all(np.array_equal(a["test"], b["test"]) for a, b in zip(folds, same))


def test_per_class_split():
    labels = np.repeat(np.arange(4), 400)
    parts = splits.per_class_split(labels, 20, num_val=500, num_test=1000, seed=1)
    assert np.bincount(labels[parts["train"]]).tolist() == [20] * 4
    assert (len(parts["val"]), len(parts["test"])) == (500, 1000)
    assert_partition(parts, 1600)
