"""Graph-clustering losses of Kulatilleke et al.: influence-weighted contrast (SCGC, SCGC*), its
meta-node approximation (PamC), and the DEC self-training head both use.

Positives are the edges of a weighted graph ``(senders, receivers, weights)``: the influence
matrix of SCGC (powers, or sums of powers, of the row-normalized adjacency with self-loops). Node
``i``'s positive mass is ``sum_{e: sender = i} w_e exp(tau * cos(z_i, z_receiver))``, where a
self-pair counts with cosine 0 (the papers zero the diagonal of the similarity matrix), so every
node with a self-loop has a positive. ``tau`` multiplies the cosine, as in the official code (it
is an inverse temperature there).

* :func:`influence_contrastive` (SCGC's Influence Augmented Contrastive loss): negatives are all
  nodes, ``mean_i [log sum_j exp(tau cos_ij) - log positive_i]`` with ``cos_ii = 0``. Dense, or
  blockwise with ``block_size`` (no N x N buffer).
* :func:`meta_node_contrastive` (PamC): the N x N negatives are replaced by the K x K cosines of
  the clusters' meta-nodes (sums of the embeddings of each hard cluster), so the loss costs
  O(E + N K + K^2): ``- mean_i log positive_i + mean_k log sum_l exp(tau cos(m_k, m_l))``,
  ``cos(m_k, m_k) = 0``. Empty clusters have no meta-node and are left out.
* :func:`student_t_assignments`, :func:`dec_target`, :func:`dec_kl`: DEC's soft assignments
  (Student-t kernel around the cluster centres), its sharpened target and ``KL(P || Q)`` averaged
  over nodes, with the target held fixed (no gradient), as SDCN / SCGC / PamC train it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ._common import l2_normalize
from ._ring import reduce_rows
from ._tiling import Head


def _edge_cosines(u, senders, receivers, edge_block=None):
    """Cosine of every edge's endpoints (rows of the unit-norm ``u``); 0 on self-loops. With
    ``edge_block`` the edges go in chunks, rematerialized in the backward pass, so no (E, d) buffer."""
    if edge_block is None:
        cos = jnp.sum(u[senders] * u[receivers], axis=-1)
    else:
        pad = -senders.shape[0] % edge_block
        chunks = [jnp.pad(ends, (0, pad)).reshape(-1, edge_block) for ends in (senders, receivers)]
        chunk = jax.checkpoint(lambda ends: jnp.sum(u[ends[0]] * u[ends[1]], axis=-1))
        cos = jax.lax.map(chunk, chunks).reshape(-1)[: senders.shape[0]]
    return jnp.where(senders == receivers, 0.0, cos)


def _segment_logsumexp(values, segments, num_segments):
    """``log sum exp`` of ``values`` per segment (``-inf`` for an empty one), stable."""
    peak = jax.ops.segment_max(values, segments, num_segments=num_segments)
    peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0.0))
    total = jax.ops.segment_sum(jnp.exp(values - peak[segments]), segments, num_segments=num_segments)
    return jnp.log(total) + peak


def influence_positives(z, senders, receivers, weights, *, tau=1.0, edge_block=None):
    """``(N,)`` log positive mass ``log sum_{e: sender = i} w_e exp(tau cos(z_i, z_receiver))``;
    ``edge_block`` bounds the memory of the edge gathers (chunks of that many edges)."""
    u = l2_normalize(z.astype(jnp.float32))
    logits = tau * _edge_cosines(u, senders, receivers, edge_block) + jnp.log(jnp.asarray(weights, jnp.float32))
    return _segment_logsumexp(logits, senders, z.shape[0])


def _self_at_zero(s, r, c):
    return jnp.where(r["id"] == c["id"], 0.0, s)


def _every_column(s, r, c):
    return jnp.ones(s.shape, bool)


def influence_partition(z, *, tau=1.0, block_size=None):
    """``(N,)`` ``log sum_j exp(tau cos(z_i, z_j))`` over every node, the node itself at cosine 0;
    ``block_size`` streams it in tiles without an N x N buffer."""
    n = z.shape[0]
    meta = ({"id": jnp.arange(n, dtype=jnp.int32), "valid": jnp.ones((n,), bool)},)
    head = Head("lse", _self_at_zero, _every_column)
    (stats,) = reduce_rows((head,), (z,), meta, pairs=((0, 0),), scale=(jnp.full((n,), tau, jnp.float32),),
                           block=block_size)
    return stats[0]


def influence_contrastive(z, senders, receivers, weights, *, tau=1.0, block_size=None, edge_block=None):
    """SCGC's (Influence Augmented) contrastive loss: influence-weighted positives over all nodes."""
    positives = influence_positives(z, senders, receivers, weights, tau=tau, edge_block=edge_block)
    return jnp.mean(influence_partition(z, tau=tau, block_size=block_size) - positives)


def meta_nodes(z, assignments, num_clusters):
    """``(K, d)`` sums of the embeddings of each cluster and the ``(K,)`` mask of non-empty ones."""
    sums = jax.ops.segment_sum(z.astype(jnp.float32), assignments, num_segments=num_clusters)
    counts = jax.ops.segment_sum(jnp.ones(z.shape[:1], jnp.float32), assignments, num_segments=num_clusters)
    return sums, counts > 0


def meta_node_contrastive(z, assignments, num_clusters, senders, receivers, weights, *, tau=1.0, edge_block=None):
    """PamC's loss: influence-weighted positives over the edges, negatives between the meta-nodes of
    the hard clusters ``assignments`` (``(N,)`` ints in ``0..num_clusters-1``); never N x N. With
    ``edge_block`` its memory is O(E + N d + K^2) (else the edge gathers take O(E d))."""
    positives = influence_positives(z, senders, receivers, weights, tau=tau, edge_block=edge_block)
    sums, present = meta_nodes(z, assignments, num_clusters)
    u = l2_normalize(sums)
    logits = jnp.where(jnp.eye(num_clusters, dtype=bool), 0.0, tau * (u @ u.T))
    negatives = jax.nn.logsumexp(jnp.where(present[None, :], logits, -jnp.inf), axis=1)
    negative_mean = jnp.sum(jnp.where(present, negatives, 0.0)) / jnp.sum(present)
    return negative_mean - jnp.mean(positives)


def student_t_assignments(z, centers, *, dof=1.0):
    """DEC's soft assignments ``q_ik`` proportional to ``(1 + |z_i - mu_k|^2 / dof)^(-(dof + 1) / 2)``."""
    distances = jnp.sum((z[:, None, :] - centers[None, :, :]) ** 2, axis=-1)
    kernel = (1.0 + distances / dof) ** (-(dof + 1.0) / 2.0)
    return kernel / jnp.sum(kernel, axis=1, keepdims=True)


def dec_target(q):
    """DEC's target ``p_ik`` proportional to ``q_ik^2 / sum_i q_ik``: sharper, balanced by cluster size."""
    weight = q**2 / jnp.sum(q, axis=0)
    return weight / jnp.sum(weight, axis=1, keepdims=True)


def dec_kl(q):
    """``KL(P || Q)`` per node (sum over clusters, mean over nodes) with ``P = dec_target(Q)`` fixed."""
    p = jax.lax.stop_gradient(dec_target(q))
    return jnp.sum(p * (jnp.log(p) - jnp.log(q))) / q.shape[0]
