"""GraphMAE node masking (Hou et al. 2022) and re-masking.

The [MASK] token is an argument, not state: the method holds it as a learnable parameter and
passes it in, so gradients reach it through the masked features.

:func:`mask_nodes` masks one graph (or a one-device batch) with draws over its whole node array
(node-level GraphMAE). :func:`mask_nodes_by_slot` and :func:`dropout_by_slot` key every draw by
graph slot and node position (:func:`gcl_jax.augment.graph_uniforms`) and take ranks over all
devices, so a batch of graphs split over devices is masked as on one device (graph-level GraphMAE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from gcl_jax import graph as G
from gcl_jax import parallel
from gcl_jax.augment.basic import graph_uniforms


def mask_nodes(
    key: jax.Array,
    graph: G.GraphsTuple,
    token: jax.Array,
    rate: float = 0.5,
    replace_rate: float = 0.0,
    *,
    padded: bool = False,
):
    """Mask ``floor(rate * num_real)`` random real nodes; returns ``(graph, mask [N])``.

    Of the masked nodes, a ``replace_rate`` fraction get the features of random real nodes
    (GraphMAE's noise), the others get ``token [F]`` (their features replaced). ``mask`` covers
    both, the nodes whose reconstruction the loss scores.
    """
    k_mask, k_split, k_source = jax.random.split(key, 3)
    n = G.num_nodes(graph)
    real = G.real_node_mask(graph, padded)
    num_real = jnp.sum(real)
    num_mask = jnp.floor(rate * num_real).astype(jnp.int32)
    num_noise = jnp.floor(replace_rate * num_mask).astype(jnp.int32)
    rank = _random_rank(k_mask, real)
    mask = rank < num_mask
    noise = mask & (_random_rank(k_split, mask) < num_noise)
    source = jax.random.randint(k_source, (n,), 0, jnp.maximum(num_real, 1))  # real nodes come first
    x = graph.nodes
    masked = jnp.where(noise[:, None], x[source], jnp.where(mask[:, None], token.astype(x.dtype), x))
    return graph._replace(nodes=masked), mask


def _random_rank(key: jax.Array, eligible: jax.Array) -> jax.Array:
    """A uniformly random rank ``0..k-1`` for each of the ``k`` eligible rows; others rank last."""
    score = jnp.where(eligible, jax.random.uniform(key, eligible.shape), 2.0)
    return jnp.argsort(jnp.argsort(score))


def remask(h: jax.Array, mask: jax.Array, token: jax.Array | None = None) -> jax.Array:
    """GraphMAE re-masking: replace the masked nodes' hidden states by ``token`` (default 0)
    before the decoder, so it must reconstruct them from their neighbours."""
    fill = jnp.zeros((), h.dtype) if token is None else token.astype(h.dtype)
    return jnp.where(mask[:, None], fill, h)


# ----------------------------------------------------------------------------- keyed by graph slot


def _gathered(x: jax.Array, axis_name: str | None) -> jax.Array:
    """All devices' ``x`` rows, device after device (so real nodes in the whole batch's order);
    ``x`` itself without ``axis_name``."""
    return x if axis_name is None else lax.all_gather(x, axis_name, tiled=True)


def pick_lowest(draws: jax.Array, eligible: jax.Array, count: jax.Array, axis_name: str | None = None) -> jax.Array:
    """True on the ``count`` eligible rows of all devices with the lowest ``draws`` (ties broken by
    the whole batch's node order): a uniformly random subset of exactly ``count`` rows. Under
    ``axis_name`` every argument is this device's block of rows and so is the result."""
    score = _gathered(jnp.where(eligible, draws, 2.0), axis_name)
    rank = jnp.argsort(jnp.argsort(score, stable=True))
    return parallel.local_rows(rank, axis_name)[0] < count  # this device's block of the gathered rows


def mask_nodes_by_slot(key, graph, token, rate: float, replace_rate: float, *, axis_name: str | None = None):
    """GraphMAE's masking of a padded batch of graphs (or a device's sub-batch of it in
    :func:`gcl_jax.parallel.in_slots` layout), keyed by graph slot and node position:
    ``floor(rate * N)`` of the ``N`` real nodes of all devices get ``token``, of them
    ``floor(replace_rate * masked)`` the features of uniformly drawn real nodes of the batch
    instead. Returns ``(graph, mask [N_local])``.

    Same counts as :func:`mask_nodes`, other draws: :func:`mask_nodes` draws one array of
    uniforms for the whole (one-device) graph, so its choice depends on the batch's layout; here
    every draw comes from :func:`gcl_jax.augment.graph_uniforms` and ranks are taken over all
    devices' draws, so 1 and ``D`` devices mask the same nodes (GraphMAE for graph classification).
    """
    k_mask, k_noise, k_source = jax.random.split(key, 3)
    n = graph.nodes.shape[0]
    real = G.real_node_mask(graph, True)
    draw = lambda k: graph_uniforms(k, graph.n_node, n)
    num_real = parallel.psum(jnp.sum(real), axis_name)
    num_mask = jnp.floor(rate * num_real).astype(jnp.int32)
    mask = pick_lowest(draw(k_mask), real, num_mask, axis_name)
    noise = pick_lowest(draw(k_noise), mask, jnp.floor(replace_rate * num_mask).astype(jnp.int32), axis_name)
    every_real = _gathered(real, axis_name)
    real_rows = jnp.argsort(~every_real, stable=True)  # the batch's real nodes first, in order
    source = real_rows[jnp.minimum(jnp.floor(draw(k_source) * num_real).astype(jnp.int32), num_real - 1)]
    x = graph.nodes
    replaced = _gathered(x, axis_name)[source]
    masked = jnp.where(noise[:, None], replaced, jnp.where(mask[:, None], token.astype(x.dtype), x))
    return graph._replace(nodes=masked), mask


def dropout_by_slot(key: jax.Array, graph: G.GraphsTuple, x: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout of node features ``x [N, F]`` with draws keyed by feature, graph slot and
    node position (:func:`gcl_jax.augment.graph_uniforms`): a node's mask does not depend on its
    batch's layout, so a batch split over devices drops what the whole batch on one device does."""
    keys = jax.random.split(key, x.shape[-1])
    draws = jax.vmap(lambda k: graph_uniforms(k, graph.n_node, x.shape[0]))(keys).T
    return jnp.where(draws >= rate, x / (1.0 - rate), 0.0).astype(x.dtype)
