"""InfoNCE-family losses over all negatives: InfoNCE/NT-Xent (GRACE), CLIP,
SigLIP, debiased (DCL) and hard-negative (HCL) InfoNCE.

Every function here shares the N x N keywords:

* ``block_size=None`` -> dense reference (the full similarity matrix, plain
  autodiff); ``block_size=int`` -> blockwise streaming reductions with a custom
  VJP that recomputes tiles, O(N d + block^2) memory.
* ``axis_name=None`` -> one device; a mesh-axis name -> called inside
  ``jax.shard_map`` with rows sharded along that axis; negatives travel around
  the axis (``collective='ring'``) or are all-gathered
  (``collective='all_gather'``).  The global loss is returned on every device.
* ``valid``: optional ``(N,)`` boolean row mask (local shard under
  ``axis_name``); invalid rows are neither anchors nor negatives.

Embeddings are L2-normalised (cosine similarity) in float32 and fed to the
similarity matmuls in their own dtype (bfloat16 accepted); reductions are in
float32.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from gcl_jax.parallel import as_valid, count_valid, global_ids, global_mean

from ._common import l2_normalize, per_row
from ._ring import reduce_rows
from ._tiling import Head, identity_value, ones_value

# ----------------------------------------------------------------------------
# the two-view set and its masks
# ----------------------------------------------------------------------------


def _not_self(s, r, c):
    return (r["id"] != c["id"]) | (r["view"] != c["view"])


def _other_view(s, r, c):
    return r["view"] != c["view"]


def _other_node(s, r, c):
    return r["id"] != c["id"]


def _other_view_other_node(s, r, c):
    return (r["view"] != c["view"]) & (r["id"] != c["id"])


def _all_pairs(s, r, c):
    return jnp.ones(s.shape, bool)


def _and_same_label(s, r, c, base):
    return base(s, r, c) & (r["label"] == c["label"])


def _scaled_value(s, r, c, a):
    return a * s


def _team_up_value(s, r, c):
    """The logit with both nodes' bonuses added (CSGCL's team-up)."""
    return s + r["bonus"] + c["bonus"]


def _candidates(intra_view):
    """Denominator set: every column but the anchor itself (intra-view on) or
    the other view only (intra-view off)."""
    return _not_self if intra_view else _other_view


def _negatives(intra_view):
    """Negatives in the strict sense: the candidates minus the positive partner."""
    return _other_node if intra_view else _other_view_other_node


def _inverse_temperature(temperature, valid, n):
    """``1 / tau`` per anchor; padding rows get tau = 1 (no inf/NaN from them)."""
    t = jnp.asarray(temperature, jnp.float32)
    if t.ndim == 0:
        return 1.0 / t
    return 1.0 / jnp.where(as_valid(valid, n), per_row(t, n), 1.0)


def _partner(s, r, c):
    """The positive pair: the same node in the other view."""
    return (r["id"] == c["id"]) & (r["view"] != c["view"])


def _two_views(z1, z2, valid, labels, axis_name, bonus=None):
    """The views ``(z1, z2)`` and their metadata: ``id`` (global node index),
    ``view`` (0/1), ``valid`` and optionally ``label`` and ``bonus`` (a
    per-node logit bonus, a constant: no gradient flows to it)."""
    n = z1.shape[0]
    base = {"id": global_ids(n, axis_name), "valid": as_valid(valid, n)}
    if labels is not None:
        base["label"] = jnp.asarray(labels, jnp.int32)
    if bonus is not None:
        base["bonus"] = jax.lax.stop_gradient(per_row(bonus, n))
    meta = tuple(dict(base, view=jnp.full((n,), v, jnp.int32)) for v in (0, 1))
    return (z1, z2), meta


def _anchor_views(symmetric):
    return (0, 1) if symmetric else (0,)


def _pairs(intra_view, symmetric):
    """View blocks: every anchor view against both views (intra-view
    negatives) or against the other view only."""
    return tuple((a, b) for a in _anchor_views(symmetric)
                 for b in ((0, 1) if intra_view else (1 - a,)))


def _per_anchor(stats, head, symmetric):
    """Head ``head``'s output for the anchors: ``(N,)`` or ``(2N,)``."""
    return jnp.concatenate([stats[a][head] for a in _anchor_views(symmetric)])


def _dense_positive_mean(z1, z2, scale, pos_mask, meta, cand, symmetric):
    """Mean logit over an explicit node x node positive mask (dense path only)."""
    n = z1.shape[0]
    u = jnp.concatenate([l2_normalize(z1), l2_normalize(z2)]).astype(jnp.float32)
    k = len(_anchor_views(symmetric))
    rows = u[: k * n] * jnp.tile(per_row(scale, n), k)[:, None]
    cmeta = {key: jnp.concatenate([m[key] for m in meta]) for key in meta[0]}
    r = {key: v[: k * n, None] for key, v in cmeta.items()}
    c = {key: v[None, :] for key, v in cmeta.items()}
    m = jnp.tile(jnp.asarray(pos_mask, bool), (k, 2)) & cand(None, r, c) & c["valid"]
    s = jnp.dot(rows, u.T)
    return jnp.sum(jnp.where(m, s, 0.0), axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1)


def _info_nce(z1, z2, scale, *, intra_view, symmetric, labels, pos_mask, valid,
              block_size, axis_name, collective, team_up=None, anchor_weights=None):
    views, meta = _two_views(z1, z2, valid, labels, axis_name, team_up)
    value = identity_value if team_up is None else _team_up_value
    cand = _candidates(intra_view)
    kw = dict(pairs=_pairs(intra_view, symmetric), scale=(scale, scale), block=block_size,
              axis_name=axis_name, collective=collective)
    if pos_mask is not None:
        if block_size is not None or axis_name is not None or labels is not None:
            raise ValueError("pos_mask (an explicit N x N mask) is dense-only; use labels "
                             "for blockwise/sharded supervised contrast")
        if team_up is not None:
            raise ValueError("team_up: not supported with pos_mask; use labels or the partner positives")
        stats = reduce_rows((Head("lse", identity_value, cand),), views, meta, **kw)
        pos = _dense_positive_mean(z1, z2, scale, pos_mask, meta, cand, symmetric)
    elif labels is not None:
        same = functools.partial(_and_same_label, base=cand)
        heads = (Head("lse", value, cand), Head("sum", value, same), Head("sum", ones_value, same))
        stats = reduce_rows(heads, views, meta, **kw)
        pos = (_per_anchor(stats, 1, symmetric)
               / jnp.maximum(_per_anchor(stats, 2, symmetric), 1.0))
    else:
        heads = (Head("lse", value, cand), Head("sum", value, _partner))
        stats = reduce_rows(heads, views, meta, **kw)
        pos = _per_anchor(stats, 1, symmetric)
    lse = _per_anchor(stats, 0, symmetric)
    valid = jnp.concatenate([meta[a]["valid"] for a in _anchor_views(symmetric)])
    if anchor_weights is not None:
        anchor_weights = jnp.tile(per_row(anchor_weights, z1.shape[0]), len(_anchor_views(symmetric)))
    return global_mean(lse - pos, valid, axis_name, anchor_weights)


def info_nce(z1, z2, *, temperature=0.5, intra_view=True, symmetric=True, labels=None,
             pos_mask=None, valid=None, block_size=None, axis_name=None,
             collective="ring", team_up=None, anchor_weights=None):
    r"""InfoNCE over two views with all in-batch negatives (GRACE / GCA form).

    With ``u = z / ||z||`` and ``s(a, b) = <a, b> / tau_a`` (``tau_a`` is the
    anchor's temperature), the loss of anchor ``u1_i`` is::

        l(u1_i) = -s(u1_i, u2_i) + log( sum_j exp s(u1_i, u2_j)
                                        + sum_{j != i} exp s(u1_i, u1_j) )

    (the second sum only with ``intra_view=True``; an anchor is never its own
    negative).  ``symmetric=True`` averages over the anchors of both views,
    ``(1 / 2N) sum_i [l(u1_i) + l(u2_i)]`` (Zhu et al., "Deep Graph Contrastive
    Representation Learning", GRACE, 2020, eq. 1-2; Zhu et al. 2021, GCA);
    ``symmetric=False`` gives ``(1 / N) sum_i l(u1_i)`` (van den Oord et al.
    2018, CPC).

    ``temperature`` is a scalar or a per-node ``(N,)`` array (temperature
    individualisation, Qiu et al., ICML 2023: anchor ``i`` of either view uses
    ``tau_i``; gradients flow to it).

    Supervised / multi-positive contrast (Khosla et al. 2020, SupCon
    ``L_out``): with ``labels`` (int ``(N,)``), the positives ``P(i)`` of an
    anchor are all candidates with its label (the partner included) and
    ``l_i = -(1/|P(i)|) sum_{p in P(i)} s_ip + log sum_{a in A(i)} exp s_ia``
    where ``A(i)`` is the candidate set above.  ``pos_mask`` (bool ``(N, N)``,
    node i ~ node j, applied to every view pair; dense path only) gives an
    arbitrary positive set in the same formula.

    Team-up (Chen et al., IJCAI 2023, CSGCL): ``team_up`` (float ``(N,)``, the
    local shard under ``axis_name``) is a per-node bonus ``b`` added to every
    pair's logit, ``s(a_i, b_j) + b_i + b_j``, positives and negatives alike;
    CSGCL's ``(cos + gamma (S_i + S_j)) / tau`` is ``team_up = gamma * S / tau``.
    The bonus is a constant (no gradient flows to it); not with ``pos_mask``.

    ``anchor_weights`` (float ``(N,)``, non-negative, the local shard under
    ``axis_name``) weighs each node's anchor terms (in both views with
    ``symmetric``): the loss becomes ``sum_i w_i l_i / sum_i w_i``, while every
    node stays a candidate whatever its weight.  With ``w_i`` the number of
    times node ``i`` appears in a mini-batch this is InfoNCE over the batch's
    anchors (duplicates counted) against all nodes, as LightGCL anchors its
    contrast.

    Returns the mean over valid anchors (global under ``axis_name``).
    """
    return _info_nce(z1, z2, _inverse_temperature(temperature, valid, z1.shape[0]),
                     intra_view=intra_view, symmetric=symmetric, labels=labels,
                     pos_mask=pos_mask, valid=valid, block_size=block_size,
                     axis_name=axis_name, collective=collective, team_up=team_up,
                     anchor_weights=anchor_weights)


def nt_xent(z1, z2, *, temperature=0.5, valid=None, block_size=None, axis_name=None,
            collective="ring"):
    r"""NT-Xent (Chen et al. 2020, SimCLR): normalised-temperature cross entropy
    over the ``2N`` views, each anchor against the other ``2N - 1``; identical to
    ``info_nce(z1, z2, temperature=t)`` (intra-view negatives, both directions)::

        L = (1/2N) sum_k -log( exp(sim(k, k+)/t) / sum_{a != k} exp(sim(k, a)/t) )
    """
    return info_nce(z1, z2, temperature=temperature, valid=valid, block_size=block_size,
                    axis_name=axis_name, collective=collective)


def clip(z1, z2, logit_scale=math.log(1 / 0.07), *, valid=None, block_size=None,
         axis_name=None, collective="ring"):
    r"""CLIP symmetric cross entropy (Radford et al. 2021) with a learnable
    temperature: with ``L_ij = exp(logit_scale) <u1_i, u2_j>``::

        L = (1/2N) sum_i [ -log softmax_j(L_ij)[i] - log softmax_j(L_ji)[i] ]

    i.e. InfoNCE with inter-view negatives only, both directions, and
    ``temperature = exp(-logit_scale)``.  Differentiable in ``logit_scale``
    (a scalar; replicate it under ``shard_map``).
    """
    scale = jnp.exp(jnp.asarray(logit_scale, jnp.float32))
    return _info_nce(z1, z2, scale, intra_view=False, symmetric=True, labels=None,
                     pos_mask=None, valid=valid, block_size=block_size,
                     axis_name=axis_name, collective=collective)


def _siglip_value(s, r, c):
    sign = jnp.where(r["id"] == c["id"], 1.0, -1.0)
    return jax.nn.softplus(-sign * s)


def siglip(z1, z2, logit_scale=math.log(10.0), bias=-10.0, *, valid=None, block_size=None,
           axis_name=None, collective="ring"):
    r"""Pairwise sigmoid loss (Zhai et al. 2023, SigLIP), learnable temperature
    ``t = exp(logit_scale)`` and bias ``b``::

        L = -(1/N) sum_i sum_j log sigmoid( y_ij (t <u1_i, u2_j> + b) ),
        y_ij = +1 if i == j else -1,

    with ``-log sigmoid(x) = softplus(-x)``.  Paper initialisation:
    ``logit_scale = log 10``, ``b = -10``.  Differentiable in both.
    """
    n = z1.shape[0]
    valid = as_valid(valid, n)
    meta = {"id": global_ids(n, axis_name), "valid": valid}
    t = jnp.exp(jnp.asarray(logit_scale, jnp.float32))
    stats = reduce_rows((Head("sum", _siglip_value, _all_pairs),), (z1, z2), (meta, meta),
                        pairs=((0, 1),), scale=(t, t), off=(bias, bias), block=block_size,
                        axis_name=axis_name, collective=collective)
    per_anchor = stats[0][0]
    return global_mean(per_anchor, valid, axis_name)


# ----------------------------------------------------------------------------
# debiased and hard-negative InfoNCE
# ----------------------------------------------------------------------------


def _debiased_from_stats(pos, log_neg, num_neg, tau_plus, scale):
    """Per-anchor ``-log(e^pos / (e^pos + Ng))`` with

    ``Ng = max((exp(log_neg) - tau_plus * M * e^pos) / (1 - tau_plus), M e^{-1/t})``,

    evaluated in the log domain (finite for any logits)."""
    log_m = jnp.log(jnp.maximum(num_neg, 1.0))
    log_neg = jnp.where(jnp.isfinite(log_neg), log_neg, 0.0)  # rows without negatives
    if tau_plus > 0:
        # inner <= 0 (-> floor) as soon as the exponent is >= 0: clip it there so
        # that no inf enters the backward pass.
        inner = 1.0 - jnp.exp(jnp.minimum(math.log(tau_plus) + log_m + pos - log_neg, 1.0))
    else:
        inner = jnp.ones_like(pos)
    ok = inner > 0
    log_ng = jnp.where(ok, log_neg + jnp.log(jnp.where(ok, inner, 1.0)) - math.log1p(-tau_plus),
                       -jnp.inf)
    log_ng = jnp.maximum(log_ng, log_m - scale)
    return jnp.logaddexp(pos, log_ng) - pos


def _debiased(z1, z2, *, temperature, tau_plus, beta, intra_view, symmetric, valid,
              block_size, axis_name, collective):
    if not 0.0 <= tau_plus < 1.0:
        raise ValueError("tau_plus must be in [0, 1)")
    n = z1.shape[0]
    scale = _inverse_temperature(temperature, valid, n)
    views, meta = _two_views(z1, z2, valid, None, axis_name)
    neg = _negatives(intra_view)
    kw = dict(pairs=_pairs(intra_view, symmetric), scale=(scale, scale), block=block_size,
              axis_name=axis_name, collective=collective)
    views_per_anchor = 2 if intra_view else 1
    num_neg = views_per_anchor * count_valid(as_valid(valid, n), axis_name) - views_per_anchor
    positive = Head("sum", identity_value, _partner)
    if beta == 0:
        stats = reduce_rows((Head("lse", identity_value, neg), positive), views, meta, **kw)
        log_neg = _per_anchor(stats, 0, symmetric)
    else:
        heads = (Head("lse", functools.partial(_scaled_value, a=1.0 + beta), neg),
                 Head("lse", functools.partial(_scaled_value, a=float(beta)), neg), positive)
        stats = reduce_rows(heads, views, meta, **kw)
        log_neg = (_per_anchor(stats, 0, symmetric) - _per_anchor(stats, 1, symmetric)
                   + jnp.log(jnp.maximum(num_neg, 1.0)))
    pos = _per_anchor(stats, -1, symmetric)
    k = len(_anchor_views(symmetric))
    loss = _debiased_from_stats(pos, log_neg, num_neg, tau_plus, jnp.tile(per_row(scale, n), k))
    valid = jnp.concatenate([meta[a]["valid"] for a in _anchor_views(symmetric)])
    return global_mean(loss, valid, axis_name)


def debiased_info_nce(z1, z2, *, temperature=0.5, tau_plus=0.1, intra_view=True,
                      symmetric=True, valid=None, block_size=None, axis_name=None,
                      collective="ring"):
    r"""Debiased contrastive loss (Chuang et al., NeurIPS 2020, DCL, eq. 6).

    With ``s = cos / t``, the positive ``e^{s+}`` and the ``M`` negatives of an
    anchor (every candidate but itself and its partner: ``M = 2N - 2``, or
    ``N - 1`` with ``intra_view=False``)::

        Ng = max( (sum_neg e^{s_j} - tau_plus * M * e^{s+}) / (1 - tau_plus),
                  M e^{-1/t} )
        l  = -log( e^{s+} / (e^{s+} + Ng) )      (>= 0)

    ``tau_plus = 0`` recovers InfoNCE restricted to strict negatives.  Averaged
    over the valid anchors of both views (``symmetric=True``), as in GRACE.
    """
    return _debiased(z1, z2, temperature=temperature, tau_plus=tau_plus, beta=0.0,
                     intra_view=intra_view, symmetric=symmetric, valid=valid,
                     block_size=block_size, axis_name=axis_name, collective=collective)


def hard_info_nce(z1, z2, *, temperature=0.5, tau_plus=0.1, beta=1.0, intra_view=True,
                  symmetric=True, valid=None, block_size=None, axis_name=None,
                  collective="ring"):
    r"""Hard-negative contrastive loss (Robinson et al., ICLR 2021, HCL).

    Negatives are importance-weighted by ``e^{beta s_j}``; with the notation of
    :func:`debiased_info_nce`::

        reweight = sum_neg e^{(1 + beta) s_j} / ( (1/M) sum_neg e^{beta s_j} )
        Ng = max( (reweight - tau_plus * M * e^{s+}) / (1 - tau_plus), M e^{-1/t} )
        l  = -log( e^{s+} / (e^{s+} + Ng) )      (>= 0)

    ``beta = 0`` recovers DCL.
    """
    return _debiased(z1, z2, temperature=temperature, tau_plus=tau_plus, beta=beta,
                     intra_view=intra_view, symmetric=symmetric, valid=valid,
                     block_size=block_size, axis_name=axis_name, collective=collective)
