"""Community-strength augmentation probabilities (CSGCL, Chen et al., IJCAI 2023), computed once on the host.

Communities come from Louvain (networkx ``louvain_communities``, seeded) on the undirected,
unweighted graph. A community's strength is its modularity contribution
``S_c = e_c / m - (d_c / 2m)^2`` (``e_c`` edges inside ``c``, ``d_c`` the degree sum of its nodes,
``m`` edges in all), so the strengths sum to the partition's modularity; a node carries its
community's strength. Two augmentations turn strengths into drop probabilities that feed the
jit-able static-shape ``drop_edges`` / ``mask_features``:

* Communal Edge Dropping (CED): an intra-community edge scores ``S_c``, an inter-community edge
  ``-(S_a + S_b)``; scores are min-max normalized to ``w``, the keep probability is
  ``clip(w / mean(w) * (1 - p), 1 - threshold, 1)``: edges inside strong communities survive.
* Communal Attribute Voting (CAV): attribute ``f`` scores ``sum_i |x_if| S_i`` (the vote of the
  nodes carrying it); with ``s = log score``, ``w = (max s - s) / (max s - min s)`` and the drop
  probability is ``clip(w / mean(w) * p, 0, p_max)``: attributes of strong communities survive.
  Attributes that no node carries (score 0, or net-negative) are never dropped.

Formulas follow the official code (github.com/HanChen-HUST/CSGCL, src/functional.py:
``community_strength``, ``get_edge_weight`` + ``ced``, ``cav``).
"""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G

_COMMUNITIES: dict[tuple[str, int], np.ndarray] = {}


def _undirected_adjacency(graph: G.GraphsTuple) -> sp.csr_matrix:
    """0/1 symmetric adjacency of the present edges, self-loops kept (PyG ``to_networkx(to_undirected=True)``)."""
    a = G.to_scipy(graph)
    return sp.csr_matrix(((a + a.T) != 0).astype(np.float64))


def _fingerprint(adjacency: sp.csr_matrix) -> str:
    """A digest of the graph's structure, the cache key of its communities."""
    digest = hashlib.sha1(np.asarray(adjacency.shape, np.int64).tobytes())
    for part in (adjacency.indptr, adjacency.indices):
        digest.update(np.ascontiguousarray(part, np.int64).tobytes())
    return digest.hexdigest()


def detect_communities(graph: G.GraphsTuple, seed: int = 0) -> np.ndarray:
    """Louvain community id per node ``[N]`` (ids ordered by each community's smallest node),
    cached in memory per (graph structure, seed): a run builds its method more than once."""
    adjacency = _undirected_adjacency(graph)
    key = (_fingerprint(adjacency), int(seed))
    if key not in _COMMUNITIES:
        communities = nx.community.louvain_communities(nx.from_scipy_sparse_array(adjacency), seed=int(seed))
        labels = np.empty(adjacency.shape[0], np.int64)
        for index, members in enumerate(sorted(communities, key=min)):
            labels[list(members)] = index
        _COMMUNITIES[key] = labels
    return _COMMUNITIES[key]


def community_strength(graph: G.GraphsTuple, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength per community ``[C]`` and per node ``[N]`` (its community's): the modularity
    contribution ``e_c / m - (d_c / 2m)^2`` on the undirected graph (a self-loop is one edge and
    adds 2 to its node's degree, networkx's convention)."""
    adjacency = sp.coo_matrix(_undirected_adjacency(graph))
    labels = np.asarray(labels)
    count = int(labels.max()) + 1
    loops = adjacency.row == adjacency.col
    edges = (adjacency.nnz - loops.sum()) / 2 + loops.sum()
    if edges == 0:
        raise ValueError("community_strength: the graph has no edges, so no community structure")
    degree = np.bincount(adjacency.row, minlength=adjacency.shape[0]) + np.bincount(adjacency.row[loops], minlength=adjacency.shape[0])
    inside = labels[adjacency.row] == labels[adjacency.col]
    halves = np.where(loops, 2.0, 1.0)[inside]  # each off-diagonal edge appears twice, a loop once
    internal = np.bincount(labels[adjacency.row[inside]], weights=halves, minlength=count) / 2
    degree_sum = np.bincount(labels, weights=degree, minlength=count)
    per_community = internal / edges - (degree_sum / (2 * edges)) ** 2
    return per_community, per_community[labels].astype(np.float32)


def communal_edge_weights(
    graph: G.GraphsTuple, labels: np.ndarray, strength: np.ndarray, p: float, threshold: float = 1.0
) -> np.ndarray:
    """CED drop probabilities ``[E]`` for nominal rate ``p`` (``strength`` per community);
    ``threshold`` caps them (keep >= 1 - threshold). Masked edges get 0."""
    labels, strength = np.asarray(labels), np.asarray(strength, np.float64)
    present = np.asarray(G.edge_mask(graph))
    a, b = labels[np.asarray(graph.senders)[present]], labels[np.asarray(graph.receivers)[present]]
    scores = np.where(a == b, strength[a], -(strength[a] + strength[b]))
    spread = scores.max() - scores.min() if scores.size else 0.0
    weights = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    keep = np.clip(weights / weights.mean() * (1.0 - p), 1.0 - threshold, 1.0) if scores.size else scores
    probs = np.zeros(present.shape[0], np.float32)
    probs[present] = 1.0 - keep
    return probs


def communal_attribute_weights(features, node_strength: np.ndarray, p: float, p_max: float = 1.0) -> np.ndarray:
    """CAV drop probabilities ``[F]`` for nominal rate ``p``, capped at ``p_max``, from node
    features ``[N, F]`` and per-node strengths ``[N]``."""
    scores = np.abs(np.asarray(features, np.float64)).T @ np.asarray(node_strength, np.float64)
    voted = scores > 0
    if not voted.any():
        return np.zeros(scores.shape, np.float32)
    logs = np.log(np.where(voted, scores, scores[voted].max()))  # unvoted attributes score the max: kept
    spread = logs.max() - logs.min()
    if spread == 0:
        return np.full(scores.shape, min(p, p_max), np.float32)
    weights = (logs.max() - logs) / spread
    return np.clip(weights / weights.mean() * p, 0.0, p_max).astype(np.float32)
