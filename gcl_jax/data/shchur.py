"""Shchur et al. (2018) ``.npz`` graphs: Amazon Computers/Photo, Coauthor CS/Physics.

The archive stores CSR triples ``adj_{data,indices,indptr,shape}`` and ``attr_{...}`` (or a dense
``attr_matrix``) plus a 1-D ``labels`` array; name arrays are pickled objects and are not read.
As in PyG's ``Amazon``/``Coauthor`` the adjacency loses self-loops and is symmetrised
(Photo: 143663 stored entries -> 238162 edges; Computers: 287209 -> 491722). There is no standard
split: ``splits`` is empty (see :mod:`gcl_jax.data.splits`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.build import dense_labels, undirected_adjacency
from gcl_jax.data.datasets import NodeDataset
from gcl_jax.data.safeio import DatasetError, open_npz


def _csr(arrays: dict, prefix: str, path: Path) -> sp.csr_matrix:
    keys = [f"{prefix}_{part}" for part in ("data", "indices", "indptr", "shape")]
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing arrays {', '.join(missing)}")
    data, indices, indptr, shape = (arrays[key] for key in keys)
    try:
        return sp.csr_matrix((data, indices, indptr), shape=tuple(int(v) for v in shape))
    except ValueError as error:
        raise DatasetError(f"{path}: inconsistent {prefix} CSR arrays ({error})") from None


def _features(arrays: dict, path: Path) -> np.ndarray:
    if "attr_matrix" in arrays:
        return np.asarray(arrays["attr_matrix"], np.float32)
    return _csr(arrays, "attr", path).toarray().astype(np.float32)


def load(path: Path, name: str) -> NodeDataset:
    """Load one Shchur ``.npz`` file as a :class:`NodeDataset` (no split)."""
    arrays = open_npz(path)
    adjacency = _csr(arrays, "adj", path).tocoo()
    features = _features(arrays, path)
    if "labels" not in arrays or arrays["labels"].ndim != 1:
        raise DatasetError(f"{path}: expected a 1-D 'labels' array")
    labels, num_classes = dense_labels(arrays["labels"])
    n = adjacency.shape[0]
    if features.shape[0] != n or labels.shape[0] != n:
        raise DatasetError(f"{path}: {n} nodes but {features.shape[0]} feature rows and {labels.shape[0]} labels")
    graph = G.from_scipy(undirected_adjacency(adjacency.row, adjacency.col, n), features)
    return NodeDataset(name, graph, labels, num_classes, {})
