"""TU Dortmund graph-classification datasets from the raw ``<NAME>_*.txt`` files.

Files (1-based ids, one entry per line): ``_A`` ("i, j" edges over all graphs), ``_graph_indicator``
(graph id of each node), ``_graph_labels``; optional ``_node_labels`` and ``_node_attributes``.
Edge labels/attributes are not read.

Processing (PyG ``TUDataset`` conventions):
- edges: self-loops removed, duplicates merged (IMDB-BINARY lists every edge twice), symmetrised;
- node features: ``_node_attributes`` (if any) followed by one-hot ``_node_labels`` (label minus its
  minimum, width max+1), i.e. PyG with ``use_node_attr=True`` (PROTEINS: 1 + 3 = 4 features);
- datasets with neither (IMDB, COLLAB, REDDIT) get one-hot degree features of width
  ``max degree + 1`` over the whole dataset, PyG's ``OneHotDegree`` choice;
- graph labels mapped to ``0..C-1`` in sorted order (MUTAG -1/1 -> 0/1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.build import dense_labels, one_hot, undirected_adjacency
from gcl_jax.data.datasets import GraphDataset
from gcl_jax.data.safeio import DatasetError, read_lines_as_ints, read_table

REQUIRED = ("A", "graph_indicator", "graph_labels")


def files(prefix: str) -> tuple[str, ...]:
    """The files every TU dataset must have."""
    return tuple(f"{prefix}_{part}.txt" for part in REQUIRED)


def _graph_ids(path: Path) -> np.ndarray:
    """0-based graph id per node; TU stores each graph's nodes contiguously, graphs in order."""
    ids = read_lines_as_ints(path) - 1
    if ids.size == 0:
        raise DatasetError(f"{path}: no nodes")
    steps = np.diff(ids)
    if ids[0] != 0 or np.any((steps != 0) & (steps != 1)):
        bad = 0 if ids[0] != 0 else int(np.flatnonzero((steps != 0) & (steps != 1))[0]) + 1
        raise DatasetError(f"{path} line {bad + 1}: graph ids must start at 1 and increase by at most 1")
    return ids


def _edges(path: Path, num_nodes: int) -> np.ndarray:
    pairs = read_table(path, 2, np.int64, delimiter=",") - 1
    bad = (pairs < 0) | (pairs >= num_nodes)
    if bad.any():
        line = int(np.flatnonzero(bad.any(1))[0])
        raise DatasetError(f"{path} line {line + 1}: node id {pairs[line][bad[line]][0] + 1} is outside 1..{num_nodes}")
    return pairs


def _node_features(folder: Path, prefix: str, adjacency: sp.csr_matrix) -> np.ndarray:
    """Attributes + one-hot node labels, or one-hot degree when the dataset has neither."""
    num_nodes = adjacency.shape[0]
    parts = []
    attributes = folder / f"{prefix}_node_attributes.txt"
    if attributes.exists():
        with open(attributes) as stream:
            width = len(stream.readline().split(","))
        parts.append((attributes, read_table(attributes, width, np.float32, delimiter=",")))
    labels = folder / f"{prefix}_node_labels.txt"
    if labels.exists():
        values = read_lines_as_ints(labels)
        parts.append((labels, one_hot(values - values.min())))
    if not parts:
        return one_hot(np.diff(adjacency.indptr))
    for path, part in parts:
        if part.shape[0] != num_nodes:
            raise DatasetError(f"{path}: {part.shape[0]} lines for {num_nodes} nodes")
    return np.concatenate([part for _, part in parts], axis=1).astype(np.float32)


def _split_graphs(adjacency: sp.csr_matrix, ids: np.ndarray, features: np.ndarray, source: str):
    """Cut the block-diagonal adjacency into one GraphsTuple per graph (nodes are contiguous)."""
    starts = np.searchsorted(ids, np.arange(ids[-1] + 2))
    cols_graph = ids[adjacency.indices]
    rows_graph = np.repeat(ids, np.diff(adjacency.indptr))
    if np.any(cols_graph != rows_graph):
        raise DatasetError(f"{source}: an edge joins two different graphs")
    graphs = []
    for start, stop in zip(starts[:-1], starts[1:]):
        lo, hi = adjacency.indptr[start], adjacency.indptr[stop]
        senders = np.repeat(np.arange(stop - start), np.diff(adjacency.indptr[start:stop + 1]))
        receivers = adjacency.indices[lo:hi] - start
        graphs.append(G.from_edge_index(np.stack([senders, receivers]), stop - start, features[start:stop]))
    return graphs


def load(folder: Path, prefix: str, name: str) -> GraphDataset:
    """Load TU dataset ``prefix`` (e.g. ``MUTAG``) from ``folder``."""
    ids = _graph_ids(folder / f"{prefix}_graph_indicator.txt")
    pairs = _edges(folder / f"{prefix}_A.txt", ids.size)
    adjacency = undirected_adjacency(pairs[:, 0], pairs[:, 1], ids.size)
    label_path = folder / f"{prefix}_graph_labels.txt"
    labels, num_classes = dense_labels(read_lines_as_ints(label_path))
    if labels.size != ids[-1] + 1:
        raise DatasetError(f"{label_path}: {labels.size} labels for {ids[-1] + 1} graphs")
    features = _node_features(folder, prefix, adjacency)
    graphs = _split_graphs(adjacency, ids, features, str(folder / f"{prefix}_A.txt"))
    return GraphDataset(name, graphs, labels, num_classes)


def with_degree_features(dataset: GraphDataset) -> GraphDataset:
    """``dataset`` with every node's one-hot degree (width: the dataset's max degree + 1) appended to
    its features: MVGRL's graph/dataset.py feature construction for TU data without node attributes
    (node-label one-hot, then degree one-hot); degree = number of neighbours."""
    degrees = [np.bincount(np.asarray(g.receivers), minlength=int(np.sum(g.n_node))) for g in dataset.graphs]
    width = max(int(d.max(initial=0)) for d in degrees) + 1
    graphs = [
        g._replace(nodes=np.concatenate([np.asarray(g.nodes, np.float32), one_hot(d, width)], axis=1))
        for g, d in zip(dataset.graphs, degrees)
    ]
    return GraphDataset(dataset.name, graphs, dataset.labels, dataset.num_classes)
