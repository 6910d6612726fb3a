"""Heterogeneous graphs in the HeCo layout (ACM, DBLP, AMiner, Freebase) and MEOW's variant (ACM, IMDB, DBLP).

A folder holds ``labels.npy`` (target nodes), typed edge lists ``xy.txt`` (column 0 of type ``x``),
meta-path adjacencies ``<path>.npz``, neighbour files (HeCo: ``nei_<t>.npy`` object arrays of
per-node id arrays, read through the restricted unpickler; MEOW: ``nei_<path>.npz`` incidence
matrices), ``<t>_feat.npz`` features where the dataset has them, ``pos.npz`` (HeCo only) and
``{train,val,test}_{20,40,60}.npy``.

Quirks handled: DBLP's ``t_feat.npz`` is really a ``.npy`` (sniffed by magic bytes); AMiner and
Freebase (and the non-target types elsewhere without a ``_feat`` file) have no features, so they
get identity features (one-hot node ids), as HeCo does with ``sp.eye``; MEOW IMDB labels are 1..3
and are mapped to 0..2. Features are kept as stored (HeCo row-normalises at training time).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.build import binary, dense_labels, undirected_adjacency
from gcl_jax.data.datasets import HeteroDataset, NodeDataset
from gcl_jax.data.safeio import DatasetError, load_array, load_sparse, read_table

SHOTS = (20, 40, 60)
PARTS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class HeteroSpec:
    """Which files a folder holds; every name is a string of one-letter node-type codes."""

    target: str
    relations: tuple[str, ...]
    metapaths: tuple[str, ...]
    neighbors: tuple[str, ...]
    neighbor_ext: str  # "npy" (HeCo per-node lists) or "npz" (MEOW incidence matrices)
    features: tuple[str, ...]
    pos: bool

    def files(self) -> tuple[str, ...]:
        """Every file the loader reads, in a stable order."""
        return (
            "labels.npy",
            *(f"{r}.txt" for r in self.relations),
            *(f"{m}.npz" for m in self.metapaths),
            *(f"nei_{n}.{self.neighbor_ext}" for n in self.neighbors),
            *(f"{t}_feat.npz" for t in self.features),
            *(("pos.npz",) if self.pos else ()),
            *(f"{part}_{k}.npy" for k in SHOTS for part in PARTS),
        )


HECO = {
    "acm": HeteroSpec("p", ("pa", "ps"), ("pap", "psp"), ("a", "s"), "npy", ("p", "a"), True),
    "dblp": HeteroSpec("a", ("pa", "pc", "pt"), ("apa", "apcpa", "aptpa"), ("p",), "npy", ("a", "p", "t"), True),
    "aminer": HeteroSpec("p", ("pa", "pr"), ("pap", "prp"), ("a", "r"), "npy", (), True),
    "freebase": HeteroSpec("m", ("ma", "md", "mw"), ("mam", "mdm", "mwm"), ("a", "d", "w"), "npy", (), True),
}
MEOW = {
    "acm": HeteroSpec("p", ("pa", "ps"), ("pap", "psp"), ("a", "s"), "npz", ("p", "a"), False),
    "imdb": HeteroSpec("m", ("ma", "md", "mk"), ("mam", "mdm", "mkm"), ("a", "d", "k"), "npz", ("m",), False),
    "dblp": HeteroSpec(
        "a", ("pa", "pc", "pt"), ("apa", "apcpa", "aptpa"), ("ap", "apc", "apcp", "apt", "aptp"), "npz", ("a", "p", "t"), False
    ),
}


def _features(path: Path) -> sp.csr_matrix:
    """A ``_feat.npz``: a scipy sparse archive, or (DBLP terms) a dense ``.npy`` under that name."""
    with open(path, "rb") as stream:
        is_npy = stream.read(6) == b"\x93NUMPY"
    matrix = sp.csr_matrix(load_array(path)) if is_npy else load_sparse(path)
    return matrix.astype(np.float32)


def _node_counts(spec: HeteroSpec, num_targets: int, relations: dict, features: dict) -> dict[str, int]:
    """Nodes per type: label count for the target, else the largest id seen or feature row count."""
    counts = {spec.target: num_targets}
    for relation, pairs in relations.items():
        for column, kind in enumerate(relation):
            seen = int(pairs[:, column].max()) + 1 if len(pairs) else 0
            counts[kind] = max(counts.get(kind, 0), seen)
    for kind, matrix in features.items():
        counts[kind] = max(counts.get(kind, 0), matrix.shape[0])
    return counts


def _lists_to_incidence(lists: np.ndarray, shape: tuple[int, int], path: Path) -> sp.csr_matrix:
    """HeCo ``nei_<t>.npy`` (one id array per target node, or an int matrix) as a CSR incidence."""
    rows_of = [np.asarray(v, np.int64).reshape(-1) for v in lists]
    if len(rows_of) != shape[0]:
        raise DatasetError(f"{path}: {len(rows_of)} neighbour lists for {shape[0]} target nodes")
    cols = np.concatenate(rows_of) if rows_of else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= shape[1]):
        raise DatasetError(f"{path}: neighbour id {cols.max()} is outside 0..{shape[1] - 1}")
    rows = np.repeat(np.arange(shape[0]), [len(v) for v in rows_of])
    return binary(sp.coo_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=shape))


def _neighbors(folder: Path, spec: HeteroSpec, counts: dict) -> dict[str, sp.csr_matrix]:
    out = {}
    for key in spec.neighbors:
        path = folder / f"nei_{key}.{spec.neighbor_ext}"
        shape = (counts[spec.target], counts[key[-1]])
        if spec.neighbor_ext == "npy":
            out[key] = _lists_to_incidence(load_array(path), shape, path)
        else:
            matrix = binary(load_sparse(path))
            if matrix.shape != shape:
                raise DatasetError(f"{path}: shape {matrix.shape}, expected {shape}")
            out[key] = matrix
    return out


def _checked_square(path: Path, n: int) -> sp.csr_matrix:
    matrix = load_sparse(path).astype(np.float32)
    if matrix.shape != (n, n):
        raise DatasetError(f"{path}: shape {matrix.shape}, expected ({n}, {n})")
    return matrix


def _splits(folder: Path, n: int) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for k in SHOTS:
        out[k] = {}
        for part in PARTS:
            path = folder / f"{part}_{k}.npy"
            idx = load_array(path).astype(np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DatasetError(f"{path}: node id {idx.max()} is outside 0..{n - 1}")
            out[k][part] = idx
    return out


def load(folder: Path, spec: HeteroSpec, name: str) -> HeteroDataset:
    """Load a HeCo- or MEOW-layout folder described by ``spec``."""
    labels, num_classes = dense_labels(load_array(folder / "labels.npy"))
    n = labels.shape[0]
    relations = {r: read_table(folder / f"{r}.txt", 2, np.int64) for r in spec.relations}
    stored = {t: _features(folder / f"{t}_feat.npz") for t in spec.features}
    counts = _node_counts(spec, n, relations, stored)
    featureless = tuple(t for t in counts if t not in stored)
    features = {t: stored.get(t, sp.identity(counts[t], np.float32, format="csr")) for t in counts}
    for t, matrix in stored.items():
        if matrix.shape[0] != counts[t]:
            raise DatasetError(f"{folder / f'{t}_feat.npz'}: {matrix.shape[0]} rows for {counts[t]} '{t}' nodes")
    return HeteroDataset(
        name=name,
        target=spec.target,
        num_nodes=counts,
        features=features,
        featureless=featureless,
        relations=relations,
        metapaths={m: _checked_square(folder / f"{m}.npz", n) for m in spec.metapaths},
        neighbors=_neighbors(folder, spec, counts),
        labels=labels,
        num_classes=num_classes,
        splits=_splits(folder, n),
        pos=_checked_square(folder / "pos.npz", n) if spec.pos else None,
    )


def metapath_files(target: str, metapath: str) -> tuple[str, ...]:
    """The three files :func:`load_metapath_graph` reads: labels, target features, one meta-path."""
    return ("labels.npy", f"{target}_feat.npz", f"{metapath}.npz")


def load_metapath_graph(folder: Path, target: str, metapath: str, name: str) -> NodeDataset:
    """A homogeneous :class:`NodeDataset` of the target nodes: their features, labels and the graph
    of one meta-path (e.g. DBLP's author-paper-author co-author graph), binary, symmetric, without
    self-loops. No split: the HeCo splits are few-shot ones for the heterogeneous methods."""
    labels, num_classes = dense_labels(load_array(folder / "labels.npy"))
    n = labels.shape[0]
    features = _features(folder / f"{target}_feat.npz")
    if features.shape[0] != n:
        raise DatasetError(f"{folder / f'{target}_feat.npz'}: {features.shape[0]} rows for {n} labelled nodes")
    pairs = _checked_square(folder / f"{metapath}.npz", n).tocoo()
    adjacency = undirected_adjacency(pairs.row, pairs.col, n)
    graph = G.from_scipy(adjacency, features.toarray().astype(np.float32))
    return NodeDataset(name=name, graph=graph, labels=labels, num_classes=num_classes, splits={})
