"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the raw ``ind.<name>.*`` files.

Format (Yang et al. 2016, kimiyoung/planetoid): Python-2 pickles of ``x``/``tx``/``allx`` (scipy CSR
features of the labelled train, test and all non-test nodes), ``y``/``ty``/``ally`` (one-hot numpy
labels), ``graph`` (dict node -> neighbour list) and the text file ``test.index``.

Processing follows PyG's ``Planetoid`` (and Kipf's GCN loader):
- features = ``allx`` then ``tx``, with test rows moved to the ids in ``test.index``;
- CiteSeer lists 15 test ids with no features (isolated nodes): ``tx``/``ty`` are extended with zero
  rows for the missing ids, giving 3327 nodes; their label is class 0, as in PyG, and they are not
  in the test split;
- edges: self-loops removed, duplicates merged, symmetrised. This is where PyG's 9104 CiteSeer edges
  come from: the graph dict has 9228 distinct directed entries, 124 of them self-loops
  (PubMed: 88651 - 3 = 88648; Cora has none: 10556);
- public split: train = the first ``len(y)`` nodes, val = the next 500, test = ``test.index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.build import undirected_adjacency
from gcl_jax.data.datasets import NodeDataset
from gcl_jax.data.safeio import DatasetError, load_pickle, read_lines_as_ints

EXTENSIONS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
NUM_VAL = 500


def files(prefix: str) -> tuple[str, ...]:
    """The eight raw files of Planetoid dataset ``prefix`` (``cora``, ``citeseer``, ``pubmed``)."""
    return tuple(f"ind.{prefix}.{ext}" for ext in EXTENSIONS)


def _read(folder: Path, prefix: str, ext: str):
    path = folder / f"ind.{prefix}.{ext}"
    if ext == "test.index":
        return read_lines_as_ints(path)
    if ext == "graph":
        return load_pickle(path, dict, encoding="latin1")
    expect = sp.spmatrix if ext in ("x", "tx", "allx") else np.ndarray
    return load_pickle(path, expect, encoding="latin1")


def _fill_missing_test_rows(tx, ty, test_index: np.ndarray):
    """Extend ``tx``/``ty`` with zero rows for test ids that have no data (CiteSeer's isolated nodes)."""
    low, high = int(test_index.min()), int(test_index.max())
    span = high - low + 1
    if span == tx.shape[0]:
        return tx, ty
    rows = np.sort(test_index) - low
    tx_full = sp.lil_matrix((span, tx.shape[1]), dtype=tx.dtype)
    tx_full[rows, :] = tx
    ty_full = np.zeros((span, ty.shape[1]), ty.dtype)
    ty_full[rows, :] = ty
    return tx_full.tocsr(), ty_full


def _edges_from_dict(adjacency: dict, num_nodes: int, source: str) -> sp.csr_matrix:
    rows = np.concatenate([np.full(len(v), k, np.int64) for k, v in adjacency.items()] or [np.zeros(0, np.int64)])
    cols = np.concatenate([np.asarray(v, np.int64).reshape(-1) for v in adjacency.values()] or [np.zeros(0, np.int64)])
    if rows.size and max(rows.max(), cols.max()) >= num_nodes:
        raise DatasetError(f"{source}: node id {max(rows.max(), cols.max())} is out of range for {num_nodes} nodes")
    return undirected_adjacency(rows, cols, num_nodes)


def load(folder: Path, prefix: str, name: str) -> NodeDataset:
    """Load ``ind.<prefix>.*`` from ``folder`` as a :class:`NodeDataset` with the public split."""
    raw = {ext: _read(folder, prefix, ext) for ext in EXTENSIONS}
    for a, b in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if raw[a].shape[0] != raw[b].shape[0]:
            raise DatasetError(f"{folder / f'ind.{prefix}.{a}'}: {raw[a].shape[0]} rows but ind.{prefix}.{b} has {raw[b].shape[0]}")
    test_index = raw["test.index"]
    if test_index.size != raw["tx"].shape[0]:
        raise DatasetError(f"{folder / f'ind.{prefix}.test.index'}: {test_index.size} ids for {raw['tx'].shape[0]} test rows")
    tx, ty = _fill_missing_test_rows(raw["tx"], raw["ty"], test_index)
    features = sp.vstack([raw["allx"], tx]).tocsr()
    onehot = np.vstack([raw["ally"], ty])
    order = np.arange(features.shape[0])
    order[test_index] = np.sort(test_index)
    features, onehot = features[order], onehot[order]
    num_nodes = features.shape[0]
    adjacency = _edges_from_dict(raw["graph"], num_nodes, str(folder / f"ind.{prefix}.graph"))
    num_train = raw["y"].shape[0]
    splits = {
        "train": np.arange(num_train),
        "val": np.arange(num_train, num_train + NUM_VAL),
        "test": np.sort(test_index),
    }
    graph = G.from_scipy(adjacency, features.toarray().astype(np.float32))
    return NodeDataset(name, graph, onehot.argmax(1).astype(np.int64), int(onehot.shape[1]), splits)
