"""GraphMAE node masking (Hou et al. 2022) and re-masking.

The [MASK] token is an argument, not state: the method holds it as a learnable parameter and
passes it in, so gradients reach it through the masked features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import graph as G


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
