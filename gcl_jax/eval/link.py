"""Link prediction on held-out edges: a seeded edge split with sampled non-edges, and AUC/AP scoring.

The split follows GAE (Kipf & Welling 2016): 5% of the undirected edges for validation, 10% for
test, each with as many sampled non-edges; both directions of a held-out edge leave the training
graph together. Scores are dot products (or cosines) of the two endpoint embeddings; AUC and AP are
sklearn's (a sigmoid would not change either, both depend only on the ranking).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def _pair_keys(u, v, num_nodes: int) -> np.ndarray:
    """One int64 key per unordered pair: ``min * N + max``."""
    lo, hi = np.minimum(u, v).astype(np.int64), np.maximum(u, v).astype(np.int64)
    return lo * num_nodes + hi


def _keys_to_pairs(keys, num_nodes: int) -> np.ndarray:
    return np.stack([keys // num_nodes, keys % num_nodes]).astype(np.int64)


def undirected_pairs(edge_index, num_nodes: int) -> np.ndarray:
    """The distinct undirected non-self-loop edges of ``edge_index [2, E]`` as ``[2, M]`` with row 0 < row 1."""
    s, r = np.asarray(edge_index, np.int64)
    keep = s != r
    return _keys_to_pairs(np.unique(_pair_keys(s[keep], r[keep], num_nodes)), num_nodes)


def sample_non_edges(edge_index, num_nodes: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct unordered node pairs ``[2, count]`` (u < v, u != v) that are not edges."""
    positive = np.unique(_pair_keys(*np.asarray(edge_index, np.int64), num_nodes))
    available = num_nodes * (num_nodes - 1) // 2 - np.count_nonzero(positive // num_nodes != positive % num_nodes)
    if count > available:
        raise ValueError(f"asked for {count} non-edges but the graph has only {available}")
    found = np.empty(0, np.int64)
    while found.size < count:  # rejection sampling; dense graphs just take more rounds
        draw = max(2 * (count - found.size), 1024)
        u, v = rng.integers(0, num_nodes, draw), rng.integers(0, num_nodes, draw)
        keys = _pair_keys(u[u != v], v[u != v], num_nodes)
        keys = keys[~np.isin(keys, positive) & ~np.isin(keys, found)]
        _, first = np.unique(keys, return_index=True)
        found = np.concatenate([found, keys[np.sort(first)]])
    return _keys_to_pairs(found[:count], num_nodes)


def split_edges(edge_index, num_nodes: int, *, val: float = 0.05, test: float = 0.1, seed: int = 0
                ) -> dict[str, np.ndarray]:
    """Hold out ``val``/``test`` fractions of the undirected edges, plus as many non-edges each.

    Returns int64 arrays: ``train_edge_index [2, 2 * M_train]`` (the training graph, both
    directions), ``train_pos``, ``val_pos``, ``val_neg``, ``test_pos``, ``test_neg`` (``[2, m]``,
    row 0 < row 1). Negatives are non-edges of the full graph, distinct, and disjoint between val
    and test. Self-loops and duplicate edges in the input are ignored.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"need val, test >= 0 with val + test < 1, got val={val}, test={test}")
    rng = np.random.default_rng(seed)
    pairs = undirected_pairs(edge_index, num_nodes)
    pairs = pairs[:, rng.permutation(pairs.shape[1])]
    n_test, n_val = int(test * pairs.shape[1]), int(val * pairs.shape[1])
    test_pos, val_pos, train_pos = np.split(pairs, [n_test, n_test + n_val], axis=1)
    neg = sample_non_edges(pairs, num_nodes, n_val + n_test, rng)
    return {
        "train_edge_index": np.concatenate([train_pos, train_pos[::-1]], axis=1),
        "train_pos": train_pos,
        "val_pos": val_pos,
        "val_neg": neg[:, :n_val],
        "test_pos": test_pos,
        "test_neg": neg[:, n_val:],
    }


def pair_scores(z, pairs, score: str = "dot") -> np.ndarray:
    """Score ``[m]`` of each pair in ``pairs [2, m]``: ``"dot"`` product or ``"cosine"`` of the embeddings."""
    z = np.asarray(z, np.float64)
    if score == "cosine":
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    elif score != "dot":
        raise ValueError(f"score must be 'dot' or 'cosine', got {score!r}")
    pairs = np.asarray(pairs, np.int64)
    return np.sum(z[pairs[0]] * z[pairs[1]], axis=1)


def link_scores(z, pos, neg, score: str = "dot") -> dict[str, float]:
    """``{"auc", "ap"}`` of ranking the positive pairs ``pos`` above the negative pairs ``neg``."""
    s = np.concatenate([pair_scores(z, pos, score), pair_scores(z, neg, score)])
    t = np.concatenate([np.ones(np.shape(pos)[1]), np.zeros(np.shape(neg)[1])])
    return {"auc": float(roc_auc_score(t, s)), "ap": float(average_precision_score(t, s))}
