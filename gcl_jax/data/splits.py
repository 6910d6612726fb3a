"""Reusable node/graph splits for evaluators: seeded random ratios and stratified k-fold.

All functions return int64 index arrays and are deterministic given ``seed``.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold


def random_split(num_items: int, train: float = 0.1, val: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """Shuffle ``0..num_items-1`` and cut ``train``/``val`` fractions; the rest is test.

    ``random_split(n, 0.1, 0.1)`` is the common 10/10/80 split; ``random_split(n, 0.1, 0.0)`` is
    GRACE's 10/90 (train/test, empty val). Sizes are ``floor(fraction * n)``.
    """
    if train < 0 or val < 0 or train + val > 1:
        raise ValueError(f"split fractions must be >= 0 and sum to <= 1, got train={train}, val={val}")
    order = np.random.default_rng(seed).permutation(num_items)
    n_train, n_val = int(train * num_items), int(val * num_items)
    return {
        "train": np.sort(order[:n_train]),
        "val": np.sort(order[n_train:n_train + n_val]),
        "test": np.sort(order[n_train + n_val:]),
    }


def grace_split(num_items: int, seed: int = 0) -> dict[str, np.ndarray]:
    """GRACE's evaluation split: 10% train, 90% test, no validation."""
    return random_split(num_items, 0.1, 0.0, seed)


def stratified_kfold(labels, folds: int = 10, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``folds`` stratified train/test splits (sklearn ``StratifiedKFold``, shuffled with ``seed``).

    The standard protocol for graph classification (InfoGraph, GraphCL: 10-fold SVM accuracy).
    """
    labels = np.asarray(labels)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        {"train": train.astype(np.int64), "test": test.astype(np.int64)}
        for train, test in splitter.split(np.zeros(labels.shape[0]), labels)
    ]


def per_class_split(labels, per_class: int, num_val: int = 500, num_test: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """``per_class`` random training nodes from every class, then ``num_val``/``num_test`` from the rest.

    Planetoid-style "public-like" random split (e.g. 20 per class / 500 / 1000).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)
    ])
    rest = rng.permutation(np.setdiff1d(np.arange(labels.shape[0]), train))
    return {
        "train": np.sort(train).astype(np.int64),
        "val": np.sort(rest[:num_val]).astype(np.int64),
        "test": np.sort(rest[num_val:num_val + num_test]).astype(np.int64),
    }
