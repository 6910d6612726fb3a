"""Metric-learning losses: triplet margin and Multi-Similarity."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gcl_jax.parallel import as_valid, global_ids, global_mean

from ._ring import reduce_rows
from ._tiling import Head


def _safe_norm(x):
    sq = jnp.sum(jnp.square(x.astype(jnp.float32)), axis=-1)
    return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def triplet_margin(anchor, positive, negative, *, margin=1.0, valid=None, axis_name=None):
    r"""Triplet margin loss (Schroff et al. 2015; Weinberger & Saul 2009)::

        L = (1/N) sum_i max(0, ||a_i - p_i||_2 - ||a_i - n_i||_2 + margin)

    with given (e.g. corrupted / sampled) negatives; O(N d).
    """
    d_ap = _safe_norm(anchor - positive)
    d_an = _safe_norm(anchor - negative)
    return global_mean(jax.nn.relu(d_ap - d_an + margin),
                       as_valid(valid, anchor.shape[0]), axis_name)


def _pos(s, r, c):
    return (r["label"] == c["label"]) & (r["id"] != c["id"])


def _neg(s, r, c):
    return r["label"] != c["label"]


def _mined_pos(s, r, c, margin):
    return _pos(s, r, c) & (s - margin < r["max_neg"])


def _mined_neg(s, r, c, margin):
    return _neg(s, r, c) & (s + margin > r["min_pos"])


def _scaled(s, r, c, a):
    return a * s


def multi_similarity(z, labels, *, alpha=2.0, beta=50.0, base=0.5, margin=0.1, valid=None,
                     block_size=None, axis_name=None, collective="ring"):
    r"""Multi-Similarity loss with pair mining (Wang et al., CVPR 2019, eq. 9-12).

    ``S_ij = cos(z_i, z_j)``; positives ``P_i`` (same label, ``j != i``) and
    negatives ``N_i`` (other labels) are mined::

        N~_i = {j in N_i : S_ij + margin > min_{k in P_i} S_ik}
        P~_i = {j in P_i : S_ij - margin < max_{k in N_i} S_ik}
        l_i  = (1/alpha) log(1 + sum_{P~_i} exp(-alpha (S_ij - base)))
             + (1/beta)  log(1 + sum_{N~_i} exp( beta (S_ij - base)))

    An anchor with an empty mined set contributes 0 (as the reference code);
    ``L = (1/N) sum_i l_i``.  Mining is a forward-only max pass, then one
    streaming log-sum-exp pass (blockwise / ring like every N x N loss).
    """
    n = z.shape[0]
    valid = as_valid(valid, n)
    meta = {"id": global_ids(n, axis_name), "label": jnp.asarray(labels, jnp.int32),
            "valid": valid}
    kw = dict(pairs=((0, 0),), block=block_size, axis_name=axis_name, collective=collective)
    mining = (Head("max", functools.partial(_scaled, a=-1.0), _pos),
              Head("max", functools.partial(_scaled, a=1.0), _neg))
    ((neg_min_pos, max_neg),) = reduce_rows(mining, (z,), (meta,), **kw)
    meta = dict(meta, min_pos=jax.lax.stop_gradient(-neg_min_pos),
                max_neg=jax.lax.stop_gradient(max_neg))
    heads = (Head("lse", functools.partial(_scaled, a=-alpha),
                  functools.partial(_mined_pos, margin=margin)),
             Head("lse", functools.partial(_scaled, a=beta),
                  functools.partial(_mined_neg, margin=margin)))
    ((lse_p, lse_n),) = reduce_rows(heads, (z,), (meta,), **kw)
    active = jnp.isfinite(lse_p) & jnp.isfinite(lse_n)
    loss = (jax.nn.softplus(lse_p + alpha * base) / alpha
            + jax.nn.softplus(lse_n - beta * base) / beta)
    return global_mean(jnp.where(active, loss, 0.0), valid, axis_name)
