"""RankMe (Garrido et al., ICML 2023): the effective rank of an embedding matrix, needing no labels.

``RankMe(Z) = exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps`` over the singular
values ``sigma`` of ``Z [N, D]``; the paper uses ``eps = 1e-7`` in float32. Higher means the
embeddings spread over more directions; the paper uses it to pick checkpoints/hyperparameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def rankme(z, eps: float = 1e-7) -> jax.Array:
    """Effective rank of ``z [N, D]`` (a float scalar in ``[1, min(N, D)]``, up to ``eps``); jit-able."""
    sigma = jnp.linalg.svd(jnp.asarray(z, jnp.float32), compute_uv=False)
    p = sigma / jnp.maximum(jnp.sum(sigma), jnp.finfo(jnp.float32).tiny) + eps
    return jnp.exp(-jnp.sum(p * jnp.log(p)))
