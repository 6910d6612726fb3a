"""The dataset objects every loader returns.

Each has ``info()``: a JSON-ready dict of counts (``gcl-jax data info NAME`` prints it). Edge counts
follow PyG: an undirected edge is stored, and counted, in both directions.
"""

from __future__ import annotations

import dataclasses

import jraph
import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G


@dataclasses.dataclass(frozen=True, eq=False)
class NodeDataset:
    """One graph for node classification.

    ``graph.nodes`` holds the float32 features ``[N, F]``; ``labels`` are int64 in ``0..num_classes-1``;
    ``splits`` maps ``"train"/"val"/"test"`` to node-index arrays, empty when the dataset has no
    standard split (Amazon, Coauthor: use :mod:`gcl_jax.data.splits`).
    """

    name: str
    graph: jraph.GraphsTuple
    labels: np.ndarray
    num_classes: int
    splits: dict[str, np.ndarray]

    def info(self) -> dict:
        return {
            "name": self.name,
            "num_nodes": G.num_nodes(self.graph),
            "num_edges": int(np.sum(self.graph.n_edge)),
            "num_features": int(np.shape(self.graph.nodes)[1]),
            "num_classes": self.num_classes,
            **{f"num_{key}": int(len(idx)) for key, idx in self.splits.items()},
        }


@dataclasses.dataclass(frozen=True, eq=False)
class GraphDataset:
    """Many small graphs for graph classification; ``labels[i]`` is the class of ``graphs[i]``."""

    name: str
    graphs: list[jraph.GraphsTuple]
    labels: np.ndarray
    num_classes: int

    def info(self) -> dict:
        return {
            "name": self.name,
            "num_graphs": len(self.graphs),
            "num_nodes": int(sum(int(np.sum(g.n_node)) for g in self.graphs)),
            "num_edges": int(sum(int(np.sum(g.n_edge)) for g in self.graphs)),
            "num_features": int(np.shape(self.graphs[0].nodes)[1]) if self.graphs else 0,
            "num_classes": self.num_classes,
        }


@dataclasses.dataclass(frozen=True, eq=False)
class HeteroDataset:
    """A heterogeneous graph in the HeCo / MEOW layout; node types are the files' one-letter codes.

    - ``target``: the labelled node type (``"p"`` paper, ``"a"`` author, ``"m"`` movie).
    - ``num_nodes``: nodes per type.
    - ``features``: float32 CSR per type. Types without features in the files get the identity
      matrix (one-hot ids), as HeCo does; ``featureless`` lists them.
    - ``relations``: typed edge lists ``[E, 2]`` from the ``xy.txt`` files (column 0 type ``x``).
    - ``metapaths``: target x target CSR adjacencies (``"pap"``, ...), values as stored (HeCo bool
      -> 1.0, MEOW path counts).
    - ``neighbors``: CSR incidence ``[N_target, N_type]`` per neighbour key; HeCo's per-node lists
      (``nei_a.npy``) and MEOW's matrices (``nei_a.npz``) both end up here.
    - ``splits``: ``{20: {"train", "val", "test"}, 40: ..., 60: ...}`` (labelled nodes per class).
    - ``pos``: HeCo's positive-pair matrix (target x target CSR), or ``None`` (MEOW).
    """

    name: str
    target: str
    num_nodes: dict[str, int]
    features: dict[str, sp.csr_matrix]
    featureless: tuple[str, ...]
    relations: dict[str, np.ndarray]
    metapaths: dict[str, sp.csr_matrix]
    neighbors: dict[str, sp.csr_matrix]
    labels: np.ndarray
    num_classes: int
    splits: dict[int, dict[str, np.ndarray]]
    pos: sp.csr_matrix | None

    def metapath_graph(self, metapath: str) -> jraph.GraphsTuple:
        """The homogeneous target-type graph of one meta-path, target features as dense ``nodes``."""
        features = self.features[self.target].toarray().astype(np.float32)
        return G.from_scipy(self.metapaths[metapath], features)

    def info(self) -> dict:
        return {
            "name": self.name,
            "target": self.target,
            "num_nodes": int(self.num_nodes[self.target]),
            "num_nodes_by_type": {key: int(n) for key, n in self.num_nodes.items()},
            "num_edges": int(sum(2 * len(pairs) for pairs in self.relations.values())),
            "num_edges_by_relation": {key: int(len(pairs)) for key, pairs in self.relations.items()},
            "metapath_nnz": {key: int(m.nnz) for key, m in self.metapaths.items()},
            "num_features": int(self.features[self.target].shape[1]),
            "num_classes": self.num_classes,
            "num_train": {str(k): int(len(s["train"])) for k, s in self.splits.items()},
        }


@dataclasses.dataclass(frozen=True, eq=False)
class RecDataset:
    """User-item implicit feedback in the LightGCL / AdaGCL layout.

    ``train``/``val``/``test`` are binary CSR ``[num_users, num_items]``. ``graph`` is the bipartite
    train graph with users ``0..U-1`` and items ``U..U+I-1``, both directions stored, no features
    (``nodes`` is None: recommenders learn embeddings).
    """

    name: str
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    num_users: int
    num_items: int
    graph: jraph.GraphsTuple

    def info(self) -> dict:
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_nodes": self.num_users + self.num_items,
            "num_edges": int(np.sum(self.graph.n_edge)),
            "num_features": 0,
            "num_classes": None,
            "num_interactions": {"train": int(self.train.nnz), "val": int(self.val.nnz), "test": int(self.test.nnz)},
        }
