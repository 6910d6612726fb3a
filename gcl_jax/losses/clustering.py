"""SwAV swapped prototype prediction with Sinkhorn-Knopp codes.

O(N K) with K prototypes; under ``axis_name`` the Sinkhorn normalisation over
the batch is a cross-device (psum/pmax) log-sum-exp, so codes and loss equal the
single-device result.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from gcl_jax.parallel import as_valid, count_valid, global_mean

from ._common import l2_normalize


def _batch_logsumexp(x, axis_name):
    """log-sum-exp over axis 0 and over all devices (``-inf`` entries ignored)."""
    m = jnp.max(x, axis=0)
    if axis_name is not None:
        m = lax.pmax(m, axis_name)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    total = jnp.sum(jnp.exp(x - m), axis=0)
    if axis_name is not None:
        total = lax.psum(total, axis_name)
    return m + jnp.log(total)


def sinkhorn(scores, *, epsilon=0.05, num_iters=3, valid=None, axis_name=None):
    r"""Sinkhorn-Knopp codes (Cuturi 2013; Caron et al., NeurIPS 2020, SwAV).

    Finds ``Q = Diag(u) exp(scores / epsilon) Diag(v)`` with equal prototype
    marginals (each of the K prototypes gets ``1/K`` of the mass) and each of the
    B samples ``1/B``, by alternating normalisations (log domain); returns
    ``B * Q``, whose rows (one per sample) sum to 1.  No gradient.
    """
    valid = as_valid(valid, scores.shape[0])[:, None]
    k = scores.shape[1]
    b = count_valid(valid, axis_name)
    log_q = lax.stop_gradient(scores).astype(jnp.float32) / epsilon
    for _ in range(num_iters):
        col = _batch_logsumexp(jnp.where(valid, log_q, -jnp.inf), axis_name)
        log_q = log_q - col - math.log(k)
        log_q = log_q - jax.nn.logsumexp(log_q, axis=1, keepdims=True) - jnp.log(b)
    return jnp.where(valid, jnp.exp(log_q + jnp.log(b)), 0.0)


def swav(z1, z2, prototypes, *, temperature=0.1, epsilon=0.05, sinkhorn_iters=3,
         valid=None, axis_name=None):
    r"""SwAV swapped prediction (Caron et al., NeurIPS 2020, eq. 1-3).

    With unit-norm embeddings ``u`` and prototypes ``c`` (normalised here),
    scores ``S = u c^T``, codes ``q = sinkhorn(S)`` (no gradient) and
    ``p = softmax(S / temperature)``::

        L = (1/2N) sum_i [ -sum_k q1_ik log p2_ik - sum_k q2_ik log p1_ik ]

    ``prototypes``: ``(K, d)``, replicated under ``axis_name``.
    """
    valid = as_valid(valid, z1.shape[0])
    c = l2_normalize(prototypes)

    def scores(z):
        return jnp.dot(l2_normalize(z), c.T, preferred_element_type=jnp.float32)

    s1, s2 = scores(z1), scores(z2)
    kw = dict(epsilon=epsilon, num_iters=sinkhorn_iters, valid=valid, axis_name=axis_name)
    q1, q2 = sinkhorn(s1, **kw), sinkhorn(s2, **kw)
    lp1 = jax.nn.log_softmax(s1 / temperature, axis=1)
    lp2 = jax.nn.log_softmax(s2 / temperature, axis=1)
    per_row = -0.5 * (jnp.sum(q1 * lp2, axis=1) + jnp.sum(q2 * lp1, axis=1))
    return global_mean(per_row, valid, axis_name)
