"""Stochastic augmentations with static shapes: ``(key, graph, ...) -> graph`` or ``(graph, keep)``.

Dropped edges get weight 0 (never removed from the arrays); dropped nodes get zero features and
their incident edges masked, and the node keep-mask is returned so readouts and losses can
exclude them. ``padded=True`` says the last graph is jraph padding: padding nodes are never
dropped, shuffled, walked on or connected. Decisions taken once per graph (GRACE's column mask, a
walk's start) use a key per graph (``graph_keys``), so every graph of a batch is augmented
independently by one call. ``per_graph=True`` keys the node / edge drops by graph slot and
position too (:func:`graph_uniforms`): a graph's draws then do not depend on the rest of its
batch, which data-parallel graph-level training needs (``parallel.in_slots``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import graph as G


def graph_keys(key: jax.Array, graph: G.GraphsTuple) -> jax.Array:
    """One key per graph ``[G]``: ``fold_in(key, graph_index)``."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(graph.n_node.shape[0]))


def graph_uniforms(key: jax.Array, counts: jax.Array, total: int) -> jax.Array:
    """One uniform draw per row of a graph-contiguous array (``counts = n_node``: nodes;
    ``n_edge``: edges), keyed by the row's graph slot and its position inside that graph, so a
    graph's draws do not depend on the other graphs of its batch."""
    slot = jnp.repeat(jnp.arange(counts.shape[0]), counts, total_repeat_length=total)
    position = jnp.arange(total) - (jnp.cumsum(counts) - counts)[slot]
    draw = lambda s, p: jax.random.uniform(jax.random.fold_in(jax.random.fold_in(key, s), p))
    return jax.vmap(draw)(slot, position)


def node_offsets(graph: G.GraphsTuple) -> jax.Array:
    """Index of every graph's first node ``[G]``."""
    return jnp.cumsum(graph.n_node) - graph.n_node


def keep_nodes(graph: G.GraphsTuple, keep: jax.Array) -> G.GraphsTuple:
    """Zero the features of nodes where ``keep`` is False and mask their incident edges."""
    nodes = jnp.where(keep[:, None], graph.nodes, 0).astype(graph.nodes.dtype)
    edges_keep = keep[graph.senders] & keep[graph.receivers]
    return G.mask_edges(graph, edges_keep)._replace(nodes=nodes)


def identity(key: jax.Array, graph: G.GraphsTuple) -> G.GraphsTuple:
    """No augmentation (a branch for ``random_choice``)."""
    del key
    return graph


def drop_edges(key: jax.Array, graph: G.GraphsTuple, p, *, per_graph: bool = False) -> G.GraphsTuple:
    """Mask each edge with probability ``p`` (a scalar, or ``[E]`` per-edge probabilities as from
    ``gca_edge_weights``). Directions of an undirected edge are dropped independently (GRACE)."""
    n = graph.senders.shape[0]
    drawn = graph_uniforms(key, graph.n_edge, n) if per_graph else jax.random.uniform(key, (n,))
    return G.mask_edges(graph, drawn >= p)


def drop_edges_mask_features(key: jax.Array, graph: G.GraphsTuple, edge_p, feature_p, *, padded: bool = False):
    """GRACE's view, used by every method that augments this way: ``drop_edges`` with ``edge_p``,
    then ``mask_features`` with ``feature_p``, each with its own half of ``key``."""
    k_edge, k_feat = jax.random.split(key)
    return mask_features(k_feat, drop_edges(k_edge, graph, edge_p), feature_p, padded=padded)


def add_edges(key: jax.Array, graph: G.GraphsTuple, num_new: int, *, padded: bool = False) -> G.GraphsTuple:
    """Append ``num_new`` (static) edges of weight 1 between random real nodes of the same graph.

    The sender is uniform over real nodes, the receiver uniform over the sender's graph, so a
    padding node never receives a new edge. ``n_edge`` grows accordingly.
    """
    if num_new == 0:
        return graph
    k_send, k_recv = jax.random.split(key)
    real = G.real_node_mask(graph, padded)
    num_real = jnp.sum(real)  # real nodes come first: padding is the trailing graph
    senders = jax.random.randint(k_send, (num_new,), 0, jnp.maximum(num_real, 1))
    owner = G.node_graph_ids(graph)[senders]
    offset = node_offsets(graph)[owner]
    receivers = offset + jax.random.randint(k_recv, (num_new,), 0, graph.n_node[owner])
    counts = jax.ops.segment_sum(jnp.ones(num_new, graph.n_edge.dtype), owner, num_segments=graph.n_edge.shape[0])
    weights = jnp.ones(num_new, jnp.float32)
    return G.append_edges(graph, senders, receivers.astype(jnp.int32), weights, counts)


def _zero_features(graph: G.GraphsTuple, drop: jax.Array, padded: bool, scale: float = 1.0) -> G.GraphsTuple:
    """Zero feature entries where ``drop`` ([N, F] or broadcastable) on real nodes only."""
    real = G.real_node_mask(graph, padded)[:, None]
    drop = drop & real
    kept = jnp.where(real, graph.nodes * scale, graph.nodes)
    return graph._replace(nodes=jnp.where(drop, 0, kept).astype(graph.nodes.dtype))


def mask_features(key: jax.Array, graph: G.GraphsTuple, p, *, padded: bool = False) -> G.GraphsTuple:
    """Zero each feature column with probability ``p`` (scalar or ``[F]``), the same columns for all
    nodes of a graph (GRACE; GCA with per-column ``p`` from ``gca_feature_weights``)."""
    num_features = graph.nodes.shape[-1]
    drop = jax.vmap(lambda k: jax.random.uniform(k, (num_features,)) < p)(graph_keys(key, graph))
    return _zero_features(graph, drop[G.node_graph_ids(graph)], padded)


def dropout_features(
    key: jax.Array, graph: G.GraphsTuple, p: float, *, rescale: bool = False, padded: bool = False
) -> G.GraphsTuple:
    """Zero each feature entry independently with probability ``p`` (the drop probability).

    ``rescale`` divides survivors by ``1 - p`` (inverted dropout); off by default, as augmentation.
    """
    drop = jax.random.uniform(key, graph.nodes.shape) < p
    return _zero_features(graph, drop, padded, 1.0 / (1.0 - p) if rescale else 1.0)


def drop_nodes(key: jax.Array, graph: G.GraphsTuple, p: float, *, padded: bool = False, per_graph: bool = False):
    """Drop each real node with probability ``p`` (GraphCL). Returns ``(graph, keep [N])``."""
    n = G.num_nodes(graph)
    drawn = graph_uniforms(key, graph.n_node, n) if per_graph else jax.random.uniform(key, (n,))
    keep = (drawn >= p) | ~G.real_node_mask(graph, padded)
    return keep_nodes(graph, keep), keep


def _walk_table(graph: G.GraphsTuple):
    """Present edges grouped by sender: ``(receivers_sorted, first_edge [N], out_degree [N])``."""
    n = G.num_nodes(graph)
    present = G.edge_mask(graph)
    order = jnp.lexsort((~present, graph.senders))  # by sender, present edges first
    out_degree = jax.ops.segment_sum(present.astype(jnp.int32), graph.senders, num_segments=n)
    all_degree = jax.ops.segment_sum(jnp.ones_like(graph.senders), graph.senders, num_segments=n)
    first_edge = jnp.cumsum(all_degree) - all_degree
    return graph.receivers[order], first_edge, out_degree


def subgraph_random_walk(
    key: jax.Array, graph: G.GraphsTuple, walk_length: int, *, walks_per_graph: int = 1, padded: bool = False
):
    """Keep the nodes visited by random walks (static ``walk_length`` steps, ``walks_per_graph``
    walks from uniform random starts in each graph; GraphCL's subgraph view, PyGCL's RWSampling)
    and mask the rest. A walk at a node without out-edges stays there. Returns ``(graph, keep)``.
    """
    n = G.num_nodes(graph)
    real = G.real_node_mask(graph, padded)
    receivers_sorted, first_edge, out_degree = _walk_table(graph)
    n_graph = graph.n_node.shape[0]
    draws = jax.vmap(lambda k: jax.random.uniform(k, (walk_length + 1, walks_per_graph)))(graph_keys(key, graph))
    draws = jnp.transpose(draws, (1, 0, 2)).reshape(walk_length + 1, n_graph * walks_per_graph)  # [L+1, walks]
    graph_of_walk = jnp.repeat(jnp.arange(n_graph), walks_per_graph)
    size = graph.n_node[graph_of_walk]
    start = node_offsets(graph)[graph_of_walk] + jnp.minimum((draws[0] * size).astype(jnp.int32), size - 1)
    start = jnp.clip(start, 0, n - 1)
    active = (size > 0) & real[start]

    def step(current, u):
        degree = out_degree[current]
        pick = first_edge[current] + jnp.minimum((u * degree).astype(jnp.int32), jnp.maximum(degree - 1, 0))
        nxt = jnp.where(degree > 0, receivers_sorted[jnp.clip(pick, 0, receivers_sorted.shape[0] - 1)], current)
        return nxt, nxt

    _, visited = jax.lax.scan(step, start, draws[1:])
    visited = jnp.concatenate([start[None], visited]).reshape(-1)
    hits = jax.ops.segment_sum(jnp.tile(active, walk_length + 1).astype(jnp.int32), visited, num_segments=n)
    keep = (hits > 0) | ~real
    return keep_nodes(graph, keep), keep


def shuffle_nodes(key: jax.Array, graph: G.GraphsTuple, *, padded: bool = False) -> G.GraphsTuple:
    """Permute feature rows among the real nodes of each graph (DGI's corruption); padding rows
    and the edges stay in place."""
    n = G.num_nodes(graph)
    real = G.real_node_mask(graph, padded)
    score = jnp.where(real, jax.random.uniform(key, (n,)), 2.0 + jnp.arange(n) / n)
    permutation = jnp.lexsort((score, G.node_graph_ids(graph)))
    return graph._replace(nodes=graph.nodes[permutation])
