"""Certified bounds of a two-layer GCN under edge dropping: POT's node compactness.

POT (Yu et al., NeurIPS 2023, "Provable Training for Graph Contrastive Learning",
github.com/VoidHaruhi/POT-GCL) asks how well node ``i`` of one view follows the contrastive
principle in the *worst* augmentation: its compactness is the minimum, over every graph the
augmentation can produce, of ``f_i = h_i . w_i`` with ``h_i`` the encoder output of node ``i`` and
``w_i = z_i - mean_{j != i} z_j`` built from the other view's L2-normalized embeddings ``z``
(similarity to the positive minus mean similarity to the negatives).

The augmentation set: every graph obtained by dropping at most ``q_i`` of node ``i``'s incoming
edges, ``q_i = min(max(d_i - 1, 0), round(expected drops at i))`` (at most the drop rate's expected
count, always keeping one neighbour: the official ``pot_loss`` budget). Edges count by presence
(unit weights, as GRACE's input graphs).

The bound, for the encoder ``h = act(A act(A X W1 + b1) W2 + b2)`` with the GCN-normalized
``A = D^-1/2 (A~ + I) D^-1/2``:

1. entry-wise bounds of ``A`` over the set (degrees can only fall, by at most ``q``);
2. interval bounds of the layer-1 pre-activations, of the hidden layer (the activation is
   applied to the interval exactly) and of the layer-2 pre-activations;
3. a linear relaxation of the output activation (ReLU / leaky / PReLU: chord and a line through
   the origin, CROWN-style) chosen per output by the sign of ``w``;
4. back-substitution through the second layer's weights ``W2``: per edge ``j -> i`` the term
   ``A_ij h_j . (W2 Lambda_i)`` is bounded over the hidden interval of ``j`` and the entry
   interval of ``A_ij``, then summed.

Unlike the official code (which evaluates the relaxed network at the sampled view, with the hidden
layer taken from the clean graph), the result is a lower bound of the compactness over the whole
set, which the soundness tests check by enumerating the set.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gcl_jax import graph as G
from gcl_jax.nn.layers import Activation


class Interval(NamedTuple):
    """Element-wise ``lower <= value <= upper``."""

    lower: jax.Array
    upper: jax.Array


class Line(NamedTuple):
    """The line ``slope * z + intercept`` (element-wise)."""

    slope: jax.Array
    intercept: jax.Array


def leaky(z: jax.Array, slope) -> jax.Array:
    """``z`` where positive, ``slope * z`` elsewhere: ReLU (0), leaky ReLU, PReLU (learned slope)."""
    return jnp.where(z >= 0, z, slope * z)


def activation_slopes(variables, activation: str, layers: int = 2) -> tuple:
    """The negative-side slope of each layer's activation in a ``GraphEncoder`` (``variables`` from
    its ``init``). RReLU gets its evaluation-mode mean slope: the bound is of the frozen encoder."""
    if activation == "relu":
        return (0.0,) * layers
    if activation == "leaky_relu":
        return (0.01,) * layers  # flax.linen.leaky_relu's default
    if activation == "rrelu":
        return ((Activation.lower + Activation.upper) / 2.0,) * layers  # its default range's mean
    if activation == "prelu":
        return tuple(variables["params"][f"act_{i}"]["PReLU_0"]["negative_slope"] for i in range(layers))
    raise ValueError(f"activation: POT bounds need relu, leaky_relu, rrelu or prelu, got {activation!r}")


def gcn_weights(variables, layers: int = 2) -> tuple:
    """``((W1, b1), (W2, b2), ...)`` of a GCN ``GraphEncoder``'s ``variables``."""
    params = variables["params"]
    return tuple((params[f"gcn_{i}"]["Dense_0"]["kernel"], params[f"gcn_{i}"]["bias"]) for i in range(layers))


def drop_budget(graph: G.GraphsTuple, rate) -> jax.Array:
    """Per-node budget ``q_i`` ([N] float): how many incoming edges the augmentation may drop.

    ``rate`` is the view's drop probability, a scalar or per-edge ``[E]`` (GCA); the expected number
    of drops at ``i`` is rounded, capped so that one neighbour always stays (official ``pot_loss``).
    """
    n = G.num_nodes(graph)
    present = G.edge_mask(graph).astype(jnp.float32)
    degree = jax.ops.segment_sum(present, graph.receivers, num_segments=n)
    expected = jax.ops.segment_sum(present * jnp.broadcast_to(rate, present.shape), graph.receivers, num_segments=n)
    return jnp.minimum(jnp.maximum(degree - 1.0, 0.0), jnp.round(expected))


def adjacency_bounds(graph: G.GraphsTuple, budget: jax.Array) -> tuple[jax.Array, jax.Array, Interval]:
    """Senders, receivers and entry bounds of the GCN-normalized adjacency over the augmentation set.

    The edge list is the graph's, then one self-loop per node. An edge ``j -> i`` lies in
    ``[0 or 1/sqrt(d_i d_j), 1/sqrt((d_i - q_i)(d_j - q_j))]`` (degrees with the self-loop; 0 when
    ``q_i > 0`` lets it be dropped); a self-loop in ``[1/d_i, 1/(d_i - q_i)]``.
    """
    n = G.num_nodes(graph)
    senders, receivers = jnp.asarray(graph.senders), jnp.asarray(graph.receivers)
    present = G.edge_mask(graph).astype(jnp.float32)
    degree = jax.ops.segment_sum(present, receivers, num_segments=n) + 1.0
    full, least = jax.lax.rsqrt(degree), jax.lax.rsqrt(degree - budget)
    droppable = budget[receivers] > 0
    edge_lower = jnp.where(droppable, 0.0, present * full[senders] * full[receivers])
    edge_upper = present * least[senders] * least[receivers]
    loops = jnp.arange(n, dtype=senders.dtype)
    bounds = Interval(jnp.concatenate([edge_lower, full**2]), jnp.concatenate([edge_upper, least**2]))
    return jnp.concatenate([senders, loops]), jnp.concatenate([receivers, loops]), bounds


def aggregate(senders, receivers, adjacency: Interval, values: Interval) -> Interval:
    """Bounds of ``sum_j A_ij v_j`` for ``A_ij`` in ``adjacency`` (non-negative) and ``v_j`` in ``values``."""
    n = values.lower.shape[0]
    low, high = adjacency.lower[:, None], adjacency.upper[:, None]
    v_low, v_high = values.lower[senders], values.upper[senders]
    lower = jnp.minimum(low * v_low, high * v_low)
    upper = jnp.maximum(low * v_high, high * v_high)
    return Interval(jax.ops.segment_sum(lower, receivers, num_segments=n), jax.ops.segment_sum(upper, receivers, num_segments=n))


def linear(values: Interval, kernel: jax.Array, bias: jax.Array | None = None) -> Interval:
    """Bounds of ``v @ kernel (+ bias)`` for ``v`` in ``values`` (centre and radius)."""
    centre = (values.lower + values.upper) / 2 @ kernel
    radius = (values.upper - values.lower) / 2 @ jnp.abs(kernel)
    shift = 0.0 if bias is None else bias
    return Interval(centre - radius + shift, centre + radius + shift)


def activation_interval(values: Interval, slope) -> Interval:
    """Exact bounds of ``leaky(z, slope)`` over ``z`` in ``values`` (its minimum is 0 when a negative
    slope makes it non-monotone and the interval holds 0)."""
    at_lower, at_upper = leaky(values.lower, slope), leaky(values.upper, slope)
    straddles = (values.lower < 0) & (values.upper > 0)
    dip = jnp.where(straddles & (jnp.asarray(slope) < 0), 0.0, jnp.inf)
    return Interval(jnp.minimum(jnp.minimum(at_lower, at_upper), dip), jnp.maximum(at_lower, at_upper))


def relaxation(values: Interval, slope) -> tuple[Line, Line]:
    """Lines ``lower(z) <= leaky(z, slope) <= upper(z)`` on ``[values.lower, values.upper]``.

    One line is the chord between the interval's ends, the other passes through the origin with
    slope 1 or ``slope`` (whichever side of 0 is wider, CROWN's adaptive choice); the activation is
    convex for ``slope <= 1`` (chord above) and concave otherwise (chord below). On an interval
    that does not cross 0 both lines are the activation itself.
    """
    low, high = values.lower, values.upper
    slope = jnp.asarray(slope, low.dtype)
    origin_slope = jnp.where(low >= 0, 1.0, jnp.where(high <= 0, slope, jnp.where(high >= -low, 1.0, slope)))
    width = high - low
    wide = width > 0
    chord_slope = jnp.where(wide, (leaky(high, slope) - leaky(low, slope)) / jnp.where(wide, width, 1.0), origin_slope)
    chord = Line(chord_slope, leaky(low, slope) - chord_slope * low)
    origin = Line(origin_slope, jnp.zeros_like(low))
    convex = slope <= 1
    pick = lambda first, second: Line(*(jnp.where(convex, a, b) for a, b in zip(first, second)))
    return pick(origin, chord), pick(chord, origin)


def compactness_weights(other: jax.Array) -> jax.Array:
    """``w_i = z_i - mean_{j != i} z_j`` with ``z`` the other view's rows, L2-normalized."""
    z = other / jnp.maximum(jnp.linalg.norm(other, axis=-1, keepdims=True), 1e-12)
    n = z.shape[0]
    return z - (jnp.sum(z, axis=0) - z) / (n - 1)


def compactness(embeddings: jax.Array, weights: jax.Array) -> jax.Array:
    """The compactness score ``f_i = h_i . w_i`` of one graph's encoder outputs ``h`` ([N])."""
    return jnp.sum(embeddings * weights, axis=-1)


def gcn_bounds(edges, features: jax.Array, weights, slopes) -> tuple[Interval, ...]:
    """Interval bounds over the augmentation set of a two-layer GCN's layer-1 pre-activations,
    hidden layer and layer-2 pre-activations; ``edges`` from :func:`adjacency_bounds`,
    ``weights = ((W1, b1), (W2, b2))``."""
    senders, receivers, adjacency = edges
    (w1, b1), (w2, b2) = weights
    projected = features @ w1
    first = aggregate(senders, receivers, adjacency, Interval(projected, projected))
    first = Interval(first.lower + b1, first.upper + b1)
    hidden = activation_interval(first, slopes[0])
    second = aggregate(senders, receivers, adjacency, linear(hidden, w2))
    return first, hidden, Interval(second.lower + b2, second.upper + b2)


def compactness_lower_bound(edges, features: jax.Array, weights, slopes, direction: jax.Array) -> jax.Array:
    """Per-node lower bound ([N]) of ``min over the augmentation set of h_i . direction_i``.

    ``edges`` is :func:`adjacency_bounds` of the un-augmented graph and its :func:`drop_budget`,
    ``weights`` and ``slopes`` the encoder's (:func:`gcn_weights`, :func:`activation_slopes`),
    ``direction`` the rows ``w_i`` of :func:`compactness_weights`.
    """
    senders, receivers, adjacency = edges
    _, hidden, second = gcn_bounds(edges, features, weights, slopes)
    (_, _), (w2, b2) = weights
    below, above = relaxation(second, slopes[1])
    positive = direction >= 0
    coefficient = direction * jnp.where(positive, below.slope, above.slope)  # [N, d2]
    offset = jnp.sum(direction * jnp.where(positive, below.intercept, above.intercept), -1) + coefficient @ b2
    through = coefficient @ w2.T  # [N, d1]: the second layer's weights back-substituted
    per_edge = through[receivers]
    least = jnp.sum(jnp.minimum(per_edge * hidden.lower[senders], per_edge * hidden.upper[senders]), -1)
    term = jnp.minimum(adjacency.lower * least, adjacency.upper * least)
    return jax.ops.segment_sum(term, receivers, num_segments=features.shape[0]) + offset
