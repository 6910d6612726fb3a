"""Adaptive augmentation probabilities (GCA, Zhu et al. 2021), computed once on the host.

Important edges and features (by node centrality) are dropped less often:
``p_e = min((s_max - s_e) / (s_max - mean s) * p, p_tau)`` with ``s_e = log(phi(receiver) + offset)``
for edges and ``s_f = log(sum_i |x_if| phi(i) + offset)`` for features (``x`` binarized first when it
is 0/1), ``p_tau = 0.7``. ``offset = 1`` is the official GCA code's ``log(w + 1)``
(github.com/CRIPAC-DIG/GCA, pGRACE/functional.py); ``offset = 0`` (the default) is the paper's
``log w``, which gCooL's official code keeps (github.com/lblaoke/gCooL, src/functional.py). PageRank
enters scaled to mean 1, the scale of the official (unnormalized) PageRank vector, so that an
offset acts as it does there (without one the scale cancels in the normalization).
The results feed the jit-able ``drop_edges`` / ``mask_features`` as ``p``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg

from gcl_jax import graph as G

CENTRALITIES = ("degree", "pagerank", "eigenvector")


def _symmetric_adjacency(graph: G.GraphsTuple) -> sp.csr_matrix:
    """Unweighted undirected adjacency of the present edges (GCA uses ``to_undirected``)."""
    a = G.to_scipy(graph)
    a = ((a + a.T) != 0).astype(np.float64)
    return sp.csr_matrix(a)


def node_centrality(graph: G.GraphsTuple, centrality: str = "degree", damping: float = 0.85) -> np.ndarray:
    """Per-node centrality ``[N]``: degree (undirected), PageRank (damping 0.85) or eigenvector."""
    if centrality == "degree":
        return np.asarray(_symmetric_adjacency(graph).sum(axis=0)).ravel()
    if centrality == "pagerank":
        a = G.to_scipy(graph).astype(np.float64)
        n = a.shape[0]
        out_degree = np.asarray(a.sum(axis=1)).ravel()
        transition = sp.diags(np.where(out_degree > 0, 1.0 / np.maximum(out_degree, 1e-12), 0.0)) @ a
        rank = np.full(n, 1.0 / n)
        for _ in range(1000):
            dangling = rank[out_degree == 0].sum() / n
            nxt = (1.0 - damping) / n + damping * (transition.T @ rank + dangling)
            if np.abs(nxt - rank).sum() < 1e-10:
                return nxt
            rank = nxt
        return rank
    if centrality == "eigenvector":
        a = _symmetric_adjacency(graph)
        if a.shape[0] < 3:
            vector = np.linalg.eigh(a.toarray())[1][:, -1]
        else:
            vector = scipy.sparse.linalg.eigsh(a + sp.identity(a.shape[0]), k=1, which="LA")[1][:, 0]
        vector = np.abs(vector)
        return np.where(vector > 1e-8, vector, 1e-8)
    raise ValueError(f"centrality: expected one of {CENTRALITIES}, got {centrality!r}")


def _score_scale(phi: np.ndarray, centrality: str) -> np.ndarray:
    """Centrality on the official code's scale: PageRank with mean 1 (ours sums to 1)."""
    return phi * phi.shape[0] if centrality == "pagerank" else phi


def _log_scores(weights: np.ndarray, offset: float) -> np.ndarray:
    """GCA's scores ``log(w + offset)``, floored so that zero weights stay finite."""
    return np.log(np.maximum(weights + offset, 1e-12))


def _drop_probabilities(scores: np.ndarray, p: float, p_tau: float) -> np.ndarray:
    """GCA's normalization of log-centrality scores into capped drop probabilities."""
    top = scores.max()
    spread = top - scores.mean()
    weights = (top - scores) / spread if spread > 0 else np.ones_like(scores)
    return np.minimum(weights * p, p_tau).astype(np.float32)


def gca_edge_weights(
    graph: G.GraphsTuple, centrality: str = "degree", p: float = 0.3, p_tau: float = 0.7, *, offset: float = 0.0
) -> np.ndarray:
    """Per-edge drop probabilities ``[E]`` (GCA eq. 3) with scores ``log(phi + offset)``; masked edges get 0."""
    phi = _score_scale(node_centrality(graph, centrality), centrality)
    receivers = np.asarray(graph.receivers)
    scores = _log_scores(phi[receivers], offset)
    present = np.asarray(G.edge_mask(graph))
    probs = np.zeros(receivers.shape[0], np.float32)
    if present.any():
        probs[present] = _drop_probabilities(scores[present], p, p_tau)
    return probs


def gca_feature_weights(
    graph: G.GraphsTuple, centrality: str = "degree", p: float = 0.3, p_tau: float = 0.7, *, offset: float = 0.0
) -> np.ndarray:
    """Per-feature-column drop probabilities ``[F]`` (GCA eq. 5) with scores ``log(w + offset)``."""
    phi = _score_scale(node_centrality(graph, centrality), centrality)
    x = np.abs(np.asarray(graph.nodes, dtype=np.float64))
    if np.isin(x, (0.0, 1.0)).all():
        x = (x != 0).astype(np.float64)
    scores = _log_scores(x.T @ phi, offset)
    return _drop_probabilities(scores, p, p_tau)
