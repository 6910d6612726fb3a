"""Graph layer: build, validate, transform, pad and batch `jraph.GraphsTuple`s.

Conventions used across gcl-jax:

- ``nodes`` holds the node feature matrix ``[N, F]``; ``edges`` is ``None`` (unweighted) or a
  per-edge weight vector ``[E]``. A weight of exactly 0 marks an edge as absent, so edges can be
  dropped inside ``jit`` without changing array shapes. Every aggregation in gcl-jax multiplies
  messages by ``edge_weights(graph)``, so masked edges and jraph's padding edges (weight 0 after
  ``pad``) contribute nothing.
- ``senders[e] -> receivers[e]``; an undirected edge is stored in both directions and counted
  twice, as PyG does.
- The transforms below keep the number of edges static: they append or mask, never shrink.
  ``drop_masked_edges`` compacts on the host when a loader wants the physical edge list.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import scipy.sparse as sp

GraphsTuple = jraph.GraphsTuple


# ----------------------------------------------------------------------------- construction


def from_edge_index(
    edge_index,
    num_nodes: int | None = None,
    node_features=None,
    edge_weights=None,
) -> GraphsTuple:
    """A single graph from a ``[2, E]`` array of (sender, receiver) rows.

    ``num_nodes`` defaults to the feature row count, else to ``max index + 1``.
    The result is checked with :func:`validate`.
    """
    edge_index = np.asarray(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index: expected shape [2, E], got {list(edge_index.shape)}")
    if num_nodes is None:
        if node_features is not None:
            num_nodes = int(np.shape(node_features)[0])
        else:
            num_nodes = int(edge_index.max()) + 1 if edge_index.size else 0
    graph = GraphsTuple(
        nodes=None if node_features is None else np.asarray(node_features),
        edges=None if edge_weights is None else np.asarray(edge_weights, dtype=np.float32),
        senders=edge_index[0],
        receivers=edge_index[1],
        n_node=np.array([num_nodes], dtype=np.int32),
        n_edge=np.array([edge_index.shape[1]], dtype=np.int32),
        globals=None,
    )
    validate(graph)
    return graph._replace(senders=edge_index[0].astype(np.int32), receivers=edge_index[1].astype(np.int32))


def from_scipy(adjacency, node_features=None, weighted: bool = False) -> GraphsTuple:
    """A single graph from a square scipy sparse adjacency (row = sender, column = receiver).

    Duplicate entries are summed (scipy's coalescing); ``weighted=False`` drops the values.
    """
    if not sp.issparse(adjacency):
        raise TypeError(f"adjacency: expected a scipy sparse matrix, got {type(adjacency).__name__}")
    if adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency: expected a square matrix, got shape {adjacency.shape}")
    coo = sp.coo_matrix(adjacency)
    coo.sum_duplicates()
    keep = coo.data != 0
    edge_index = np.stack([coo.row[keep], coo.col[keep]])
    weights = coo.data[keep] if weighted else None
    return from_edge_index(edge_index, adjacency.shape[0], node_features, weights)


def from_networkx(nx_graph, feature_key: str | None = None, weight_key: str | None = None) -> GraphsTuple:
    """A single graph from a networkx graph; nodes are numbered in ``nx_graph.nodes`` order.

    An undirected networkx graph yields both directions of every edge.
    """
    index = {node: i for i, node in enumerate(nx_graph.nodes)}
    pairs = [(index[u], index[v], d) for u, v, d in nx_graph.edges(data=True)]
    if not nx_graph.is_directed():
        pairs += [(v, u, d) for u, v, d in pairs if u != v]
    edge_index = np.array([[u for u, _, _ in pairs], [v for _, v, _ in pairs]], dtype=np.int64).reshape(2, -1)
    weights = None
    if weight_key is not None:
        weights = np.array([d.get(weight_key, 1.0) for _, _, d in pairs], dtype=np.float32)
    features = None
    if feature_key is not None:
        features = np.stack([np.asarray(nx_graph.nodes[node][feature_key]) for node in nx_graph.nodes])
    return from_edge_index(edge_index, len(index), features, weights)


def to_scipy(graph: GraphsTuple) -> sp.csr_matrix:
    """The (weighted) adjacency of all nodes as CSR; masked edges are left out, duplicates summed."""
    weights = np.asarray(edge_weights(graph))
    keep = weights != 0
    n = int(np.sum(graph.n_node))
    return sp.csr_matrix(
        (weights[keep], (np.asarray(graph.senders)[keep], np.asarray(graph.receivers)[keep])), shape=(n, n)
    )


def to_networkx(graph: GraphsTuple):
    """A ``networkx.DiGraph`` with node attribute ``x`` (features) and edge attribute ``weight``."""
    import networkx as nx

    out = nx.DiGraph()
    n = int(np.sum(graph.n_node))
    features = None if graph.nodes is None else np.asarray(graph.nodes)
    for i in range(n):
        out.add_node(i, **({} if features is None else {"x": features[i]}))
    weights = np.asarray(edge_weights(graph))
    for s, r, w in zip(np.asarray(graph.senders), np.asarray(graph.receivers), weights):
        if w != 0:
            out.add_edge(int(s), int(r), weight=float(w))
    return out


# ----------------------------------------------------------------------------- validation


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def validate(graph: GraphsTuple) -> GraphsTuple:
    """Check a graph on the host; raise ``ValueError`` naming the field and the first bad index.

    Returns the graph unchanged, so it can be used inline.
    """
    n_node = np.asarray(graph.n_node)
    n_edge = np.asarray(graph.n_edge)
    for name, counts in (("n_node", n_node), ("n_edge", n_edge)):
        if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"{name}: expected a 1-D integer array, got {counts.dtype} shape {list(counts.shape)}")
        if np.any(counts < 0):
            raise ValueError(f"{name}[{_first_bad(counts < 0)}] is negative ({counts[counts < 0][0]})")
    if n_node.shape != n_edge.shape:
        raise ValueError(f"n_node and n_edge: lengths differ ({n_node.shape[0]} vs {n_edge.shape[0]})")
    num_nodes, num_edges = int(n_node.sum()), int(n_edge.sum())
    for name in ("senders", "receivers"):
        idx = np.asarray(getattr(graph, name))
        if idx.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array, got shape {list(idx.shape)}")
        if not np.issubdtype(idx.dtype, np.integer):
            if idx.size and np.issubdtype(idx.dtype, np.floating):
                bad = ~np.isfinite(idx) | (idx != np.round(idx))
                where = f" (first non-integer at index {_first_bad(bad)})" if bad.any() else ""
            else:
                where = ""
            raise ValueError(f"{name}: indices must have an integer dtype, got {idx.dtype}{where}")
        if idx.shape[0] != num_edges:
            raise ValueError(f"{name}: length {idx.shape[0]} does not match sum(n_edge) = {num_edges}")
        bad = (idx < 0) | (idx >= num_nodes)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{name}[{i}] = {idx[i]} is out of range for {num_nodes} nodes")
    if graph.edges is not None:
        weights = np.asarray(graph.edges)
        if weights.shape[:1] != (num_edges,):
            raise ValueError(f"edges: {weights.shape[0] if weights.ndim else 0} rows do not match sum(n_edge) = {num_edges}")
        if not np.all(np.isfinite(weights)):
            raise ValueError(f"edges[{_first_bad(~np.isfinite(weights).reshape(num_edges, -1).all(1))}] is not finite")
    if graph.nodes is not None:
        features = np.asarray(graph.nodes)
        if features.ndim == 0 or features.shape[0] != num_nodes:
            rows = features.shape[0] if features.ndim else 0
            raise ValueError(f"nodes: {rows} feature rows do not match sum(n_node) = {num_nodes}")
        if np.issubdtype(features.dtype, np.inexact):
            finite = np.isfinite(features).reshape(num_nodes, -1).all(1)
            if not finite.all():
                raise ValueError(f"nodes[{_first_bad(~finite)}] has a non-finite feature")
    return graph


# ----------------------------------------------------------------------------- jit-friendly transforms


def edge_weights(graph: GraphsTuple) -> jax.Array:
    """Per-edge weights ``[E]``: the stored weights, or ones for an unweighted graph."""
    if graph.edges is None:
        return jnp.ones(graph.senders.shape[0], jnp.float32)
    return jnp.asarray(graph.edges)


def edge_mask(graph: GraphsTuple) -> jax.Array:
    """Boolean ``[E]``: which edges are present (weight != 0)."""
    return edge_weights(graph) != 0


def mask_edges(graph: GraphsTuple, keep) -> GraphsTuple:
    """Zero the weight of every edge where ``keep`` is False (static shapes)."""
    return graph._replace(edges=jnp.where(keep, edge_weights(graph), 0.0))


def node_graph_ids(graph: GraphsTuple) -> jax.Array:
    """Graph index of every node ``[N]`` (jit-safe: the total is static)."""
    n_graph = graph.n_node.shape[0]
    return jnp.repeat(jnp.arange(n_graph), graph.n_node, total_repeat_length=num_nodes(graph))


def num_nodes(graph: GraphsTuple) -> int:
    """Total node count as a static Python int: the feature rows, else ``sum(n_node)`` (not under jit)."""
    if graph.nodes is not None:
        return jax.tree_util.tree_leaves(graph.nodes)[0].shape[0]
    return int(np.sum(graph.n_node))


def _sort_edges_by_graph(graph: GraphsTuple) -> GraphsTuple:
    """Stable-sort edges by the graph their receiver belongs to, so each graph's edges stay contiguous."""
    order = jnp.argsort(node_graph_ids(graph)[graph.receivers], stable=True)
    return graph._replace(
        senders=graph.senders[order],
        receivers=graph.receivers[order],
        edges=None if graph.edges is None else graph.edges[order],
    )


def append_edges(graph: GraphsTuple, senders, receivers, weights, per_graph_counts) -> GraphsTuple:
    """Append edges (``per_graph_counts[g]`` of them belong to graph ``g``), keeping each graph's
    edges contiguous and ``n_edge`` consistent. Batched graphs get their edges re-sorted by graph."""
    appended = graph._replace(
        senders=jnp.concatenate([graph.senders, senders]),
        receivers=jnp.concatenate([graph.receivers, receivers]),
        edges=jnp.concatenate([edge_weights(graph), weights]),
        n_edge=graph.n_edge + per_graph_counts,
    )
    if graph.n_node.shape[0] == 1:
        return appended
    return _sort_edges_by_graph(appended)


def add_self_loops(graph: GraphsTuple, weight: float = 1.0) -> GraphsTuple:
    """Append one self-loop per node with the given weight (``E + N`` edges afterwards)."""
    n = num_nodes(graph)
    loops = jnp.arange(n, dtype=jnp.int32)
    return append_edges(graph, loops, loops, jnp.full((n,), weight, jnp.float32), graph.n_node)


def remove_self_loops(graph: GraphsTuple) -> GraphsTuple:
    """Mask every edge whose sender equals its receiver."""
    return mask_edges(graph, graph.senders != graph.receivers)


def coalesce(graph: GraphsTuple, reduce: str = "sum") -> GraphsTuple:
    """Merge duplicate (sender, receiver) pairs into their first occurrence; mask the rest.

    The first occurrence keeps the ``reduce`` ("sum" or "max") of the duplicates' weights; for an
    unweighted graph the result has weight 1 on kept edges and 0 on duplicates. Already-masked
    edges never count as duplicates.
    """
    if reduce not in ("sum", "max"):
        raise ValueError(f"reduce: expected 'sum' or 'max', got {reduce!r}")
    weights = edge_weights(graph)
    present = weights != 0
    num_edges = weights.shape[0]
    order = jnp.lexsort((graph.senders, graph.receivers, ~present))  # present first, then by pair
    s, r, p = graph.senders[order], graph.receivers[order], present[order]
    new_group = jnp.concatenate([jnp.array([True]), (s[1:] != s[:-1]) | (r[1:] != r[:-1]) | ~p[1:]])
    group = jnp.cumsum(new_group) - 1
    combine = jax.ops.segment_sum if reduce == "sum" else jax.ops.segment_max
    if graph.edges is None:
        merged = jnp.ones(num_edges, jnp.float32)
    else:
        merged = combine(weights[order], group, num_segments=num_edges)[group]
    kept_sorted = jnp.where(new_group & p, merged, 0.0)
    kept = jnp.zeros(num_edges, jnp.float32).at[order].set(kept_sorted)
    return graph._replace(edges=kept)


def undirected(graph: GraphsTuple) -> GraphsTuple:
    """Add the reverse of every edge and merge duplicates (weights combined by max)."""
    weights = edge_weights(graph)
    doubled = append_edges(graph, graph.receivers, graph.senders, weights, graph.n_edge)
    return coalesce(doubled, reduce="max")


def degrees(graph: GraphsTuple, direction: str = "in") -> jax.Array:
    """Weighted in- or out-degree ``[N]`` (masked edges count 0)."""
    if direction not in ("in", "out"):
        raise ValueError(f"direction: expected 'in' or 'out', got {direction!r}")
    index = graph.receivers if direction == "in" else graph.senders
    return jax.ops.segment_sum(edge_weights(graph), index, num_segments=num_nodes(graph))


def gcn_normalize(graph: GraphsTuple, self_loops: bool = True) -> GraphsTuple:
    """Symmetric GCN normalization (Kipf & Welling 2017): weights ``w_ij / sqrt(d_i d_j)``.

    With ``self_loops`` a unit self-loop is appended per node first, giving
    ``D^-1/2 (A + I) D^-1/2``; degrees are weighted in-degrees. Zero-degree nodes get weight 0.
    """
    if self_loops:
        graph = add_self_loops(graph)
    deg = degrees(graph, "in")
    inv_sqrt = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
    weights = edge_weights(graph) * inv_sqrt[graph.senders] * inv_sqrt[graph.receivers]
    return graph._replace(edges=weights)


def normalize_features(graph: GraphsTuple) -> GraphsTuple:
    """Scale each feature row to sum 1 (PyG's ``NormalizeFeatures``); all-zero rows stay zero."""
    nodes = jnp.asarray(graph.nodes)
    sums = jnp.sum(nodes, axis=-1, keepdims=True)
    return graph._replace(nodes=jnp.where(sums == 0, 0.0, nodes / jnp.where(sums == 0, 1.0, sums)))


def row_stochastic(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Host-side: a scipy matrix's rows scaled to sum 1 (``D^-1 M``, float64); all-zero rows stay zero.
    The sparse twin of :func:`normalize_features`, also a random-walk transition matrix."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    sums = np.asarray(m.sum(axis=1)).reshape(-1)
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    return sp.csr_matrix(sp.diags(scale) @ m)


def drop_masked_edges(graph: GraphsTuple, keep_weights: bool = True) -> GraphsTuple:
    """Host-side: physically remove masked edges and fix ``n_edge`` (the one shape-changing op)."""
    weights = np.asarray(edge_weights(graph))
    keep = weights != 0
    counts = np.asarray(graph.n_edge)
    edge_graph = np.repeat(np.arange(counts.shape[0]), counts)
    return graph._replace(
        senders=np.asarray(graph.senders)[keep],
        receivers=np.asarray(graph.receivers)[keep],
        edges=weights[keep] if keep_weights else None,
        n_edge=np.bincount(edge_graph[keep], minlength=counts.shape[0]).astype(np.int32),
    )


# ----------------------------------------------------------------------------- padding and batching


def pad(graph: GraphsTuple, n_node: int, n_edge: int, n_graph: int | None = None) -> GraphsTuple:
    """Pad to static budgets with one (or more) padding graphs (``jraph.pad_with_graphs``).

    Budgets count the padding: ``n_node`` must exceed the real node count by at least one and
    ``n_graph`` the real graph count by at least one. Padding edges get weight 0.
    """
    real_graphs = int(np.shape(graph.n_node)[0])
    n_graph = real_graphs + 1 if n_graph is None else n_graph
    real_nodes, real_edges = int(np.sum(graph.n_node)), int(np.sum(graph.n_edge))
    if n_node <= real_nodes or n_edge < real_edges or n_graph <= real_graphs:
        raise ValueError(
            f"pad: budgets (nodes {n_node}, edges {n_edge}, graphs {n_graph}) must exceed the graph "
            f"({real_nodes} nodes, {real_edges} edges, {real_graphs} graphs) by one node and one graph"
        )
    return jraph.pad_with_graphs(_with_unit_weights(graph), n_node, n_edge, n_graph)


def unpad(graph: GraphsTuple) -> GraphsTuple:
    """Remove trailing padding graphs (host-side inverse of :func:`pad`)."""
    return jraph.unpad_with_graphs(graph)


def _jnp_counts(graph: GraphsTuple) -> GraphsTuple:
    """jraph's masks index ``n_node`` with a traced value; a numpy ``n_node`` closed over by jit fails."""
    return graph._replace(n_node=jnp.asarray(graph.n_node), n_edge=jnp.asarray(graph.n_edge))


def node_mask(graph: GraphsTuple) -> jax.Array:
    """Boolean ``[N]``: True for real nodes, False for nodes of the trailing padding graph."""
    return jraph.get_node_padding_mask(_jnp_counts(graph))


def graph_mask(graph: GraphsTuple) -> jax.Array:
    """Boolean ``[G]``: True for real graphs, False for the trailing padding graph."""
    return jraph.get_graph_padding_mask(_jnp_counts(graph))


def real_node_mask(graph: GraphsTuple, padded: bool) -> jax.Array:
    """Boolean ``[N]`` of real nodes. ``padded`` (static) says whether the last graph is padding:
    an unpadded batch looks the same as a padded one, so the caller must say which it has."""
    return node_mask(graph) if padded else jnp.ones(num_nodes(graph), bool)


def edge_graph_ids(graph: GraphsTuple) -> jax.Array:
    """Graph index of every edge ``[E]`` (the graph of its receiver)."""
    return node_graph_ids(graph)[graph.receivers]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def bucket(value: int, multiple: int = 64) -> int:
    """The smallest size on the ladder ``multiple * 2**(k/2)`` (rounded up to ``multiple``) that
    holds ``value``: powers of two and their midpoints, so batches padded to it waste about a fifth
    on average while only a few shapes ever compile."""
    size, k = multiple, 0
    while size < value:
        k += 1
        size = _round_up(math.ceil(multiple * 2 ** (k / 2)), multiple)
    return size


def budget(graphs: Sequence[GraphsTuple], graphs_per_batch: int, multiple: int = 64) -> tuple[int, int, int]:
    """Padding budgets ``(n_node, n_edge, n_graph)`` that fit any ``graphs_per_batch`` of ``graphs``.

    Uses the largest graphs (a safe upper bound), plus one padding node, rounded up to ``multiple``.
    """
    sizes_n = np.sort([int(np.sum(g.n_node)) for g in graphs])[::-1]
    sizes_e = np.sort([int(np.sum(g.n_edge)) for g in graphs])[::-1]
    n_node = _round_up(int(sizes_n[:graphs_per_batch].sum()) + 1, multiple)
    n_edge = _round_up(max(int(sizes_e[:graphs_per_batch].sum()), 1), multiple)
    return n_node, n_edge, graphs_per_batch + 1


def _with_unit_weights(graph: GraphsTuple) -> GraphsTuple:
    """Store explicit unit weights so padding (weight 0) can be told apart from real edges."""
    if graph.edges is not None:
        return graph
    return graph._replace(edges=np.ones(int(np.sum(graph.n_edge)), np.float32))


def batch(graphs: Sequence[GraphsTuple]) -> GraphsTuple:
    """Concatenate graphs into one ``GraphsTuple`` with offset indices (``jraph.batch_np``)."""
    return jraph.batch_np([_with_unit_weights(g) for g in graphs])


def padded_batches(
    graphs: Iterable[GraphsTuple], n_node: int, n_edge: int, n_graph: int
) -> Iterator[GraphsTuple]:
    """Greedily pack graphs, in order, into padded batches of exactly the given budgets.

    Every yielded batch has the same shapes, so one compiled function serves them all
    (``jraph.dynamically_batch``). A graph that cannot fit an empty batch raises ``ValueError``
    naming its position.
    """

    def checked():
        for position, graph in enumerate(graphs):
            nodes, edges = int(np.sum(graph.n_node)), int(np.sum(graph.n_edge))
            if nodes + 1 > n_node or edges > n_edge:
                raise ValueError(
                    f"graph {position} ({nodes} nodes, {edges} edges) does not fit the budget "
                    f"({n_node} nodes incl. one padding node, {n_edge} edges)"
                )
            yield _with_unit_weights(graph)

    if n_graph < 2:
        raise ValueError(f"n_graph: a padded batch needs room for one padding graph, got {n_graph}")
    return jraph.dynamically_batch(checked(), n_node, n_edge, n_graph)
