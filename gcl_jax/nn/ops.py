"""Message-passing primitives shared by every layer and readout.

Each aggregation multiplies messages by ``graph.edge_weights`` (or uses them as a presence mask),
so masked edges and the padding edges of ``graph.pad`` never carry a message.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import graph as G


def _broadcast_rows(weights: jax.Array, like: jax.Array) -> jax.Array:
    """Reshape a per-row vector ``[R]`` to broadcast against ``like`` of shape ``[R, ...]``."""
    return weights.reshape(weights.shape + (1,) * (like.ndim - 1))


def propagate(graph: G.GraphsTuple, x: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Weighted sum aggregation: ``out[r] = sum_e w_e x[s_e]`` over edges ``s_e -> r``.

    ``weights`` defaults to ``graph.edge_weights(graph)``; ``x`` may have trailing axes (heads).
    """
    if weights is None:
        weights = G.edge_weights(graph)
    messages = x[graph.senders] * _broadcast_rows(weights, x).astype(x.dtype)
    return jax.ops.segment_sum(messages, graph.receivers, num_segments=x.shape[0])


def segment_softmax(
    logits: jax.Array, segment_ids: jax.Array, num_segments: int, mask: jax.Array | None = None
) -> jax.Array:
    """Softmax of ``logits [R, ...]`` within each segment; rows where ``mask`` is False get 0.

    Used for GAT attention (segments = receivers) and the attention readout (segments = graphs).
    Empty segments produce no NaN, and masked rows get zero gradient.
    """
    if mask is None:
        mask = jnp.ones(logits.shape[0], bool)
    mask = _broadcast_rows(mask, logits)
    shifted = jnp.where(mask, logits, -jnp.inf)
    peak = jax.ops.segment_max(shifted, segment_ids, num_segments=num_segments)
    peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0.0))
    exp = jnp.exp(jnp.where(mask, logits - peak[segment_ids], -jnp.inf))
    total = jax.ops.segment_sum(exp, segment_ids, num_segments=num_segments)
    return exp / jnp.where(total > 0, total, 1.0)[segment_ids]


def segment_reduce(
    x: jax.Array, segment_ids: jax.Array, num_segments: int, kind: str, mask: jax.Array | None = None
) -> jax.Array:
    """Masked ``sum`` / ``mean`` / ``max`` of rows per segment; empty segments give 0."""
    if mask is None:
        mask = jnp.ones(x.shape[0], bool)
    rows = _broadcast_rows(mask, x)
    if kind == "max":
        peak = jax.ops.segment_max(jnp.where(rows, x, -jnp.inf), segment_ids, num_segments=num_segments)
        return jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jax.ops.segment_sum(jnp.where(rows, x, 0.0), segment_ids, num_segments=num_segments)
    if kind == "sum":
        return total
    if kind == "mean":
        count = jax.ops.segment_sum(mask.astype(x.dtype), segment_ids, num_segments=num_segments)
        return total / _broadcast_rows(jnp.maximum(count, 1.0), total)
    raise ValueError(f"kind: expected 'sum', 'mean' or 'max', got {kind!r}")


def cast_floating(tree, dtype):
    """Every floating-point leaf of ``tree`` cast to ``dtype`` (integer leaves, e.g. edge indices,
    untouched). Mixed precision: applying a module to bf16 parameters and inputs runs it in bf16
    (flax computes in the inputs' dtype) while the f32 master parameters get f32 gradients."""
    dtype = jnp.dtype(dtype)
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)
