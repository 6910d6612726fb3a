"""Jensen-Shannon mutual-information estimators (DGI, InfoGraph, MVGRL).

The JSD estimator (Nowozin et al. 2016; Hjelm et al. 2019, Deep InfoMax) of a
critic ``T``: ``I_JSD = E_P[-softplus(-T)] - E_Q[softplus(T)]``; the loss is
``-I_JSD``.  These are O(N) (corrupted negatives) or O(N G) with G graphs in
the batch, so they have no blockwise mode; under ``axis_name`` the means are
psum-ed and equal the single-device result.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax.parallel import as_valid, global_mean, psum


def jsd(pos_scores, neg_scores, *, pos_valid=None, neg_valid=None, axis_name=None):
    r"""JSD loss from critic scores of positive and negative pairs::

        L = mean_pos softplus(-T_pos) + mean_neg softplus(T_neg)

    DGI (Velickovic et al., ICLR 2019): ``T_pos = D(h_i, s)`` for the real
    nodes and ``T_neg = D(h~_i, s)`` for the corrupted ones (this equals DGI's
    binary cross-entropy); MVGRL (Hassani & Khasahmadi, ICML 2020) sums it over
    both view pairings.  ``*_valid`` mask padding entries.
    """
    pos = jnp.asarray(pos_scores, jnp.float32)
    neg = jnp.asarray(neg_scores, jnp.float32)
    pos_valid = as_valid(pos_valid, pos.shape[0])
    neg_valid = as_valid(neg_valid, neg.shape[0])
    return (global_mean(jax.nn.softplus(-pos), pos_valid, axis_name)
            + global_mean(jax.nn.softplus(neg), neg_valid, axis_name))


def local_global_jsd(local, global_, graph_index, *, valid=None, axis_name=None):
    r"""InfoGraph local-global JSD (Sun et al., ICLR 2020) over all node x graph
    pairs: with ``T_ig = <h_i, g_j>``, positives the pairs where node ``i``
    belongs to graph ``j`` (``graph_index[i] == j``)::

        L = (1/N) sum_i softplus(-T_{i, g(i)})
            + (1/(N (G - 1))) sum_i sum_{j != g(i)} softplus(T_ij)

    ``local``: ``(N, d)`` node embeddings (sharded under ``axis_name``);
    ``global_``: ``(G, d)`` graph embeddings (replicated); O(N G) memory.
    """
    s = jnp.dot(local, global_.T, preferred_element_type=jnp.float32)
    g = global_.shape[0]
    pos = jnp.asarray(graph_index)[:, None] == jnp.arange(g)[None, :]
    valid = as_valid(valid, local.shape[0])[:, None]
    n = psum(jnp.sum(valid.astype(jnp.float32)), axis_name)
    pos_term = psum(jnp.sum(jnp.where(pos & valid, jax.nn.softplus(-s), 0.0)), axis_name) / n
    neg_term = psum(jnp.sum(jnp.where(~pos & valid, jax.nn.softplus(s), 0.0)), axis_name)
    return pos_term + neg_term / (n * max(g - 1, 1))
