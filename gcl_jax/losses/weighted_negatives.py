"""InfoNCE with a weight on every negative, and prototypical contrast against cluster centroids.

MEOW (Yu et al., SDM 2023) weighs node ``j`` as a negative of node ``i`` by the number of k-means
clusterings (of several granularities) that put them in different clusters, so likely false
negatives (same cluster everywhere) drop out of the denominator; AdaMEOW (TKDE 2024) learns the
weights instead. Both feed :func:`weighted_info_nce`. MEOW's prototypical term
(:func:`prototypical_nce`) contrasts each node with the centroids of one clustering, each centroid
with its own temperature (:func:`prototype_concentration`, after Li et al., ICLR 2021, PCL).

Dense ``N x N`` (MEOW's graphs have a few thousand target nodes); pure functions of arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._common import l2_normalize


def weighted_info_nce(anchor, candidates, weights, *, temperature=0.5):
    r"""InfoNCE of ``anchor`` against ``candidates`` (same ``N`` nodes, row ``i`` the positive pair)
    with a non-negative weight per candidate.

    With ``s_ij = cos(anchor_i, candidates_j) / tau``::

        loss = mean_i [ -s_ii + log sum_j W_ij exp(s_ij) ]

    The positive counts in the denominator only through ``W_ii`` (MEOW's cluster weights set it
    to 0, AdaMEOW's learned weights keep it). Every row of ``weights`` needs a positive entry.
    """
    s = l2_normalize(anchor) @ l2_normalize(candidates).T / temperature
    log_denominator = jax.nn.logsumexp(s, axis=1, b=weights)
    return jnp.mean(log_denominator - jnp.diagonal(s))


def cluster_negative_weights(assignments):
    """``W_ij`` = how many of the ``K`` clusterings (``assignments`` ``[K, N]`` int) put ``i`` and ``j``
    in different clusters; ``[N, N]`` float32, zero on the diagonal (MEOW's negative weights)."""
    assignments = jnp.asarray(assignments)
    same = jnp.sum(assignments[:, :, None] == assignments[:, None, :], axis=0)
    return (assignments.shape[0] - same).astype(jnp.float32)


def prototype_concentration(z, centroids, assignment, *, temperature, smoothing=5.0, clip=(10.0, 90.0)):
    r"""Per-cluster temperatures ``phi`` ``[K]`` (PCL's concentration):

        phi_k = mean_{i in k} ||z_i - c_k|| / log(n_k + smoothing)

    Clusters with fewer than two members take the largest ``phi``; the values are clipped to the
    ``clip`` percentiles and scaled so that their mean is ``temperature``. ``smoothing`` is PCL's
    ``alpha`` (10 there, 5 in MEOW's code).
    """
    k = centroids.shape[0]
    distance = jnp.linalg.norm(z - centroids[assignment], axis=1)
    total = jax.ops.segment_sum(distance, assignment, num_segments=k)
    size = jax.ops.segment_sum(jnp.ones_like(distance), assignment, num_segments=k)
    phi = total / jnp.maximum(size, 1.0) / jnp.log(size + smoothing)
    phi = jnp.where(size > 1, phi, jnp.max(jnp.where(size > 1, phi, 0.0)))
    phi = jnp.clip(phi, jnp.percentile(phi, clip[0]), jnp.percentile(phi, clip[1]))
    return temperature * phi / jnp.mean(phi)


def prototypical_nce(z, centroids, assignment, concentration):
    r"""Each node against all ``K`` centroids of one clustering, its own cluster the positive::

        loss = mean_i -log( exp(z_i . c_{a_i} / phi_{a_i}) / sum_k exp(z_i . c_k / phi_k) )

    with ``z`` and the centroids L2-normalized and ``phi`` = ``concentration`` ``[K]``.
    """
    logits = l2_normalize(z) @ l2_normalize(centroids).T / concentration
    positive = jnp.take_along_axis(logits, assignment[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)
