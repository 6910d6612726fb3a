"""Community-aware objectives of gCooL (Li, Jing, Tong, WWW 2022, "Graph Communal Contrastive
Learning", arXiv:2110.14863): soft community assignments from learnable centres, the Dense Community
Aggregation (DeCA) objective and the Reweighted Self-supervised Cross-contrast (ReSC).

Everything here is O(N K + E K) for ``K`` communities: the adjacency enters through its edge list,
never as an N x N matrix.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ._common import l2_normalize


def community_assignments(h, centers, *, temperature):
    """Soft assignments ``R = softmax(u C^T / tau)`` row-wise, ``(N, K)``: ``u`` the unit-normalized
    embeddings, ``C`` the unit-normalized community centres ``(K, d)``. gCooL feeds ``h`` through
    ``stop_gradient``, so that DeCA trains the centres and not the encoder."""
    return jax.nn.softmax(l2_normalize(h) @ l2_normalize(centers).T / temperature, axis=1)


def dense_community_aggregation(assignments, senders, receivers, *, edge_weights=None, lam=1.0):
    r"""DeCA: make communities dense inside and sparse between them.

    With ``A`` the adjacency of the edge list (weights ``edge_weights``, default 1; a zero weight
    is a dropped edge) and ``F = R^T A R`` (``R`` = ``assignments``, ``(N, K)``)::

        DeCA(R) = lam * (sum(F) - tr(F)) / (N (N - 1))  -  tr(F) / N  +  ||R||_F^2 / (2 N)

    ``tr(F)`` is the edge mass kept inside communities, ``sum(F) - tr(F)`` the mass between them;
    the last term is largest for one-hot rows and smallest for uniform ones, a counterweight to the
    density terms' pull towards hard assignments. It equals the official gCooL ``DeCA`` written with
    a dense ``A`` (github.com/lblaoke/gCooL, src/model.py), computed here from the edges.
    """
    n = assignments.shape[0]
    weights = jnp.ones(senders.shape, jnp.float32) if edge_weights is None else edge_weights
    r_s, r_r = assignments[senders], assignments[receivers]
    intra = jnp.sum(weights * jnp.sum(r_s * r_r, axis=1))
    total = jnp.sum(weights * jnp.sum(r_s, axis=1) * jnp.sum(r_r, axis=1))
    return lam * (total - intra) / (n * (n - 1)) - intra / n + jnp.sum(assignments**2) / (2 * n)


def community_centroids(h, labels, num_communities):
    """``(K, d)`` mean of the rows of ``h`` in each hard community ``labels`` (ints ``(N,)``); an
    empty community's centroid is the zero vector."""
    onehot = jax.nn.one_hot(labels, num_communities, dtype=jnp.float32)
    counts = jnp.sum(onehot, axis=0)
    return (onehot.T @ h.astype(jnp.float32)) / jnp.maximum(counts, 1.0)[:, None]


def _node_to_communities(u, centroids, labels, temperature, gamma):
    """Per node: ``-s_pos + log(exp s_pos + sum_{k != pos} w_{pos,k} exp s_k)`` with
    ``s_k = <u, c_k> / tau``, ``pos`` = the node's community and ``w_{kl} = exp(-gamma ||c_k - c_l||^2)``."""
    logits = u @ centroids.T / temperature
    gaps = jnp.sum((centroids[:, None, :] - centroids[None, :, :]) ** 2, axis=-1)
    log_weights = -gamma * gaps[labels]  # 0 at the node's own community (zero gap)
    positive = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jax.nn.logsumexp(logits + log_weights, axis=1) - positive


def reweighted_cross_contrast(h1, h2, labels1, labels2, num_communities, *, temperature, gamma=0.0):
    r"""ReSC: each node of one view against the community centroids of the other view.

    ``u`` are the unit-normalized ``h``; ``c^{(v)}_k`` the mean of view ``v``'s ``u`` over its hard
    community ``k`` (``labels`` = argmax of the soft assignments), held fixed (no gradient). Node
    ``i`` of view 1 takes its own community ``p = labels2[i]`` in view 2 as the positive and the other
    centroids of view 2 as negatives, each reweighted by ``w_pk = exp(-gamma ||c_p - c_k||^2)`` (close
    communities push less)::

        l_i = -s_ip + log( exp s_ip + sum_{k != p} w_pk exp s_ik ),   s_ik = <u1_i, c2_k> / tau

    and symmetrically from view 2; the loss is the mean over nodes of both directions. ``gamma = 0``
    gives unit weights (what the official code computes with its default cosine similarity).
    An empty community's centroid is zero and stays a negative of similarity 0, as in
    github.com/lblaoke/gCooL, src/model.py.
    """
    u1, u2 = l2_normalize(h1.astype(jnp.float32)), l2_normalize(h2.astype(jnp.float32))
    c1, c2 = (
        jax.lax.stop_gradient(community_centroids(u, lab, num_communities)) for u, lab in ((u1, labels1), (u2, labels2))
    )
    forward = _node_to_communities(u1, c2, labels2, temperature, gamma)
    backward = _node_to_communities(u2, c1, labels1, temperature, gamma)
    return jnp.mean((forward + backward) / 2.0)
