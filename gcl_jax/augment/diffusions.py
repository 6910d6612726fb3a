"""Graph diffusion views (MVGRL, Hassani & Khasahmadi 2020), computed once on the host.

``S_ppr = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`` (alpha = 0.2) and
``S_heat = exp(t (T - I))`` with ``T = (A + I) D^-1`` (t = 5), then sparsified to a weighted
graph, keeping per receiver its ``topk`` strongest senders, or every entry >= ``eps``
(``eps="auto"``: MVGRL's rule, the threshold in {1e-5, ..., 1e-2} whose average degree is closest
to the input graph's). Edge ``s -> r`` gets weight ``S[s, r]``, so aggregation computes ``S^T X``.

Small graphs use a dense inverse / ``expm``; larger ones a sparse power iteration (PPR) or a
truncated Taylor series (heat) over blocks of columns. Results are cached in memory by a content
hash of the adjacency and the settings, and as ``.npz`` in ``cache_dir`` when given.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.safeio import atomic_write

_MEMORY_CACHE: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
AUTO_EPSILONS = (1e-5, 1e-4, 1e-3, 1e-2)


def _transition(adjacency: sp.csr_matrix, kind: str) -> sp.csr_matrix:
    """``D^-1/2 (A+I) D^-1/2`` for PPR, ``(A+I) D^-1`` (column-stochastic) for heat."""
    a = (adjacency + sp.identity(adjacency.shape[0], format="csr")).tocsr()
    degree = np.asarray(a.sum(axis=1)).ravel()
    if kind == "ppr":
        inv_sqrt = sp.diags(1.0 / np.sqrt(degree))
        return (inv_sqrt @ a @ inv_sqrt).tocsr()
    return (a @ sp.diags(1.0 / degree)).tocsr()


def _dense_diffusion(transition: sp.csr_matrix, kind: str, alpha: float, t: float) -> np.ndarray:
    eye = np.eye(transition.shape[0])
    if kind == "ppr":
        return alpha * scipy.linalg.inv(eye - (1.0 - alpha) * transition.toarray())
    return scipy.linalg.expm(t * (transition.toarray() - eye))


def _block_diffusion(transition: sp.csr_matrix, cols: np.ndarray, kind: str, alpha: float, t: float, tol: float):
    """Columns ``cols`` of the diffusion matrix by power iteration (PPR) or Taylor series (heat)."""
    n = transition.shape[0]
    basis = np.zeros((n, cols.shape[0]))
    basis[cols, np.arange(cols.shape[0])] = 1.0
    if kind == "ppr":
        current = alpha * basis
        for _ in range(1000):
            nxt = alpha * basis + (1.0 - alpha) * (transition @ current)
            if np.abs(nxt - current).max() < tol:
                return nxt
            current = nxt
        return current
    term, total, k = basis, basis.copy(), 0
    while np.abs(term).max() > tol and k < 1000:
        k += 1
        term = (t / k) * (transition @ term)
        total += term
    return np.exp(-t) * total


def _sparsify(block: np.ndarray, cols: np.ndarray, topk: int | None, eps: float | None):
    """Sender, receiver and weight arrays kept from a block of columns (receivers = ``cols``)."""
    if topk is not None:
        k = min(topk, block.shape[0])
        rows = np.argpartition(-block, k - 1, axis=0)[:k]
        values = np.take_along_axis(block, rows, axis=0)
        receivers = np.broadcast_to(cols, rows.shape)
        keep = values > 0
        return rows[keep], receivers[keep], values[keep]
    rows, which = np.nonzero(block >= eps)
    return rows, cols[which], block[rows, which]


def _auto_eps(matrix: np.ndarray, avg_degree: float) -> float:
    """MVGRL's threshold: the candidate whose kept average degree is closest to the input's."""
    n = matrix.shape[0]
    kept = [np.count_nonzero(matrix >= e) / n for e in AUTO_EPSILONS]
    return AUTO_EPSILONS[int(np.argmin(np.abs(avg_degree - np.asarray(kept))))]


def _diffuse(adjacency, kind, alpha, t, topk, eps, dense_limit, block_size, tol):
    n = adjacency.shape[0]
    transition = _transition(adjacency, kind)
    if n <= dense_limit:
        matrix = _dense_diffusion(transition, kind, alpha, t)
        if eps == "auto":
            eps = _auto_eps(matrix, adjacency.nnz / max(n, 1))
        return _sparsify(matrix, np.arange(n), topk, eps)
    if eps == "auto":
        raise ValueError(f"eps='auto' needs the dense path (graph has {n} > dense_limit={dense_limit} nodes)")
    parts = [
        _sparsify(_block_diffusion(transition, cols, kind, alpha, t, tol), cols, topk, eps)
        for cols in np.array_split(np.arange(n), max(1, -(-n // block_size)))
    ]
    return tuple(np.concatenate(p) for p in zip(*parts))


def _content_hash(graph: G.GraphsTuple, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for array in (graph.n_node, graph.senders, graph.receivers, G.edge_weights(graph)):
        digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    return digest.hexdigest()[:32]


def diffusion(
    graph: G.GraphsTuple,
    kind: str = "ppr",
    *,
    alpha: float = 0.2,
    t: float = 5.0,
    topk: int | None = None,
    eps: float | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    dense_limit: int = 4096,
    block_size: int = 512,
    tol: float = 1e-7,
) -> G.GraphsTuple:
    """The ``kind`` (``"ppr"`` or ``"heat"``) diffusion of an unpadded graph as a new weighted
    graph with the same node features (see the module doc). Give exactly one of ``topk``/``eps``.

    A batch of several graphs is diffused graph by graph (the matrix is block-diagonal), keeping
    ``n_edge`` per graph. Pad the result afterwards, not before.
    """
    if kind not in ("ppr", "heat"):
        raise ValueError(f"kind: expected 'ppr' or 'heat', got {kind!r}")
    if (topk is None) == (eps is None):
        raise ValueError("diffusion: give exactly one of topk (per receiver) or eps (threshold)")
    settings = dict(kind=kind, alpha=alpha if kind == "ppr" else None, t=t if kind == "heat" else None,
                    topk=topk, eps=eps, dense_limit=dense_limit, tol=tol)
    name = _content_hash(graph, settings)
    path = None if cache_dir is None else Path(cache_dir) / f"diffusion-{name}.npz"
    if name not in _MEMORY_CACHE and path is not None and path.exists():
        with np.load(path) as stored:
            _MEMORY_CACHE[name] = (stored["senders"], stored["receivers"], stored["weights"])
    if name not in _MEMORY_CACHE:
        _MEMORY_CACHE[name] = _compute(graph, kind, alpha, t, topk, eps, dense_limit, block_size, tol)
        if path is not None:
            arrays = dict(zip(("senders", "receivers", "weights"), _MEMORY_CACHE[name]))
            atomic_write(path, lambda handle: np.savez(handle, **arrays))
    senders, receivers, weights = _MEMORY_CACHE[name]
    counts = np.bincount(np.repeat(np.arange(len(graph.n_node)), np.asarray(graph.n_node))[receivers],
                         minlength=len(graph.n_node)).astype(np.int32)
    out = graph._replace(senders=senders, receivers=receivers, edges=weights, n_edge=counts)
    return G.validate(out)


def _compute(graph, kind, alpha, t, topk, eps, dense_limit, block_size, tol):
    """Diffuse each graph of a batch separately and concatenate with node offsets."""
    adjacency = G.to_scipy(graph)
    sizes = np.asarray(graph.n_node)
    parts = []
    for start, size in zip(np.cumsum(sizes) - sizes, sizes):
        block = adjacency[start : start + size, start : start + size]
        s, r, w = _diffuse(block, kind, alpha, t, topk, eps, dense_limit, block_size, tol)
        order = np.lexsort((s, r))  # grouped by receiver, then sender
        parts.append((s[order] + start, r[order] + start, w[order]))
    senders, receivers, weights = (np.concatenate(p) for p in zip(*parts))
    return senders.astype(np.int32), receivers.astype(np.int32), weights.astype(np.float32)


def clear_cache() -> None:
    """Forget the in-memory diffusion cache (the disk cache is left alone)."""
    _MEMORY_CACHE.clear()


def ppr(graph: G.GraphsTuple, alpha: float = 0.2, **kwargs) -> G.GraphsTuple:
    """Personalized-PageRank diffusion view (MVGRL: alpha = 0.2); see :func:`diffusion`."""
    return diffusion(graph, "ppr", alpha=alpha, **kwargs)


def heat(graph: G.GraphsTuple, t: float = 5.0, **kwargs) -> G.GraphsTuple:
    """Heat-kernel diffusion view (MVGRL: t = 5); see :func:`diffusion`."""
    return diffusion(graph, "heat", t=t, **kwargs)
