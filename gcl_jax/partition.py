"""Cluster mini-batches: train node-level methods on graphs larger than one device.

The host cuts the graph into ``K`` equal parts along communities found by label propagation
(neighbours land in the same part far more often than under a random cut, in O(E log E) numpy,
with no METIS dependency; see :func:`partition_nodes`). Each part becomes a subgraph: its
*owned* nodes, plus the nodes within ``halo`` hops of them, with every edge among those nodes, as
in Cluster-GCN (Chiang et al. 2019) when ``halo=0``. All parts are padded to one static budget,
so a single compiled step serves every batch.

A step takes one part per device, stacked along a leading device axis
(:class:`gcl_jax.parallel.Partitioned`). Each device encodes its subgraph and contributes the
rows of its owned nodes to the loss; with a mesh the loss's negatives are every device's owned
rows (the sharded ring), so a step contrasts ``devices x part size`` nodes against each other.

With ``halo >= layers + 1`` an encoder's outputs on owned nodes equal its full-graph outputs
(degrees of the outermost nodes then count every edge they use), which the tests check.
"""

from __future__ import annotations

import jax
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from gcl_jax import graph as G
from gcl_jax.parallel import Partitioned


def label_propagation(adjacency: sp.csr_matrix, rounds: int = 10, seed: int = 0) -> np.ndarray:
    """Community label per node by label propagation (Raghavan et al. 2007), vectorized over edges.

    Each round, a random half of the nodes adopt the label most common among their neighbours
    (ties broken at random); updating half at a time avoids the oscillation of fully synchronous
    updates. O(E log E) per round with numpy sorts.
    """
    n = adjacency.shape[0]
    coo = adjacency.tocoo()
    receivers, senders = coo.row.astype(np.int64), coo.col.astype(np.int64)
    labels = np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        pairs, counts = np.unique(receivers * n + labels[senders], return_counts=True)
        node, label = pairs // n, pairs % n
        best = np.lexsort((-(counts + 0.5 * rng.random(counts.size)), node))  # per node, most votes first
        first = best[np.r_[True, node[best][1:] != node[best][:-1]]]
        update = rng.random(first.size) < 0.5
        labels[node[first][update]] = label[first][update]
    return labels


def partition_nodes(adjacency: sp.csr_matrix, num_parts: int) -> list[np.ndarray]:
    """``num_parts`` disjoint node sets of near-equal size that together cover every node.

    Nodes are ordered by label-propagation community, and within a community by reverse
    Cuthill-McKee rank (neighbours close together), then cut into contiguous chunks: small
    communities share a part, large ones are split along their bandwidth-reducing order.
    """
    n = adjacency.shape[0]
    if not 1 <= num_parts <= n:
        raise ValueError(f"partition.parts: expected 1..{n} (the node count), got {num_parts}")
    adjacency = sp.csr_matrix(adjacency)
    rank = np.empty(n, np.int64)
    rank[reverse_cuthill_mckee(adjacency, symmetric_mode=True)] = np.arange(n)
    order = np.lexsort((rank, label_propagation(adjacency)))
    return np.array_split(order, num_parts)


def with_halo(adjacency: sp.csr_matrix, owned: np.ndarray, hops: int) -> np.ndarray:
    """``owned`` followed by the nodes within ``hops`` hops of it (each listed once, owned first)."""
    seen = np.zeros(adjacency.shape[0], bool)
    seen[owned] = True
    frontier, extra = owned, []
    for _ in range(hops):
        neighbours = np.unique(adjacency[frontier].indices)
        frontier = neighbours[~seen[neighbours]]
        seen[frontier] = True
        extra.append(frontier)
    return np.concatenate([owned, *extra]).astype(np.int64)


def subgraph(graph: G.GraphsTuple, adjacency: sp.csr_matrix, nodes: np.ndarray) -> G.GraphsTuple:
    """The induced subgraph on ``nodes`` (in that order), features and edge weights carried over."""
    sub = adjacency[nodes][:, nodes].tocoo()
    features = np.asarray(graph.nodes)[nodes]
    return G.from_edge_index(np.stack([sub.col, sub.row]), len(nodes), features, sub.data.astype(np.float32))


def incoming_adjacency(graph: G.GraphsTuple) -> sp.csr_matrix:
    """``A[receiver, sender] = weight`` (the transpose of :func:`gcl_jax.graph.to_scipy`): a CSR
    row lists a node's incoming edges, which is what the halo search and subgraphs read."""
    return G.to_scipy(graph).T.tocsr()


class ClusterBatches:
    """``batch_fn`` for cluster mini-batch training: step ``t`` gets ``devices`` parts, stacked.

    Parts are visited in a fresh seeded order every epoch (``num_parts // devices`` steps);
    ``num_parts`` must be a multiple of ``devices``. ``graph`` is the full graph on the host, kept
    for evaluation (:attr:`graph`).
    """

    def __init__(self, graph: G.GraphsTuple, num_parts: int, devices: int = 1, halo: int = 0, seed: int = 0):
        if num_parts % devices:
            raise ValueError(f"partition.parts: {num_parts} parts do not split evenly over {devices} devices")
        self.graph, self.devices, self.seed = graph, devices, seed
        adjacency = incoming_adjacency(graph)
        owned = partition_nodes(adjacency, num_parts)
        parts = [with_halo(adjacency, nodes, halo) for nodes in owned]
        subgraphs = [subgraph(graph, adjacency, nodes) for nodes in parts]
        n_node, n_edge, _ = G.budget(subgraphs, 1)
        self.parts = stack_graphs([G.pad(s, n_node, n_edge) for s in subgraphs])
        self.owned = np.stack([np.arange(n_node) < len(nodes) for nodes in owned])
        self.nodes = parts  # global ids of each part's rows (owned first), for mapping embeddings back
        self.steps_per_epoch = num_parts // devices

    def __call__(self, step: int) -> Partitioned:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.owned))
        chosen = order[index * self.devices:(index + 1) * self.devices]
        return Partitioned(jax.tree_util.tree_map(lambda leaf: leaf[chosen], self.parts), self.owned[chosen])


def stack_graphs(graphs: list[G.GraphsTuple]) -> G.GraphsTuple:
    """Same-shape graphs stacked leaf by leaf along a new leading axis (numpy, on the host)."""
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *graphs)
