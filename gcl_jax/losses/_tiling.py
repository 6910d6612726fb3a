"""Blockwise (tiled) row reductions over the cosine-similarity matrix of a set
of views.

This module is the single tiling mechanism used by every N x N loss.  The
operands are ``V`` *views* ``x_v`` of shape ``(n, d)`` (raw, un-normalised
embeddings, e.g. ``(z1, z2)``); the logit of a row ``i`` of view ``a`` against a
column ``j`` of view ``b`` is

    s_ij = scale_i * cos(x_ai, x_bj) + off_i,     cos = <x_ai, x_bj> / (|x_ai| |x_bj|),

and a static tuple ``pairs`` of ``(a, b)`` says which view blocks exist (GRACE:
all four; CLIP: ``(0, 1), (1, 0)``; SigLIP: ``(0, 1)``).  A loss describes what
it needs from the logits as a tuple of :class:`Head` objects; each head reduces
one masked, element-wise function ``v_ij = value(s_ij)`` over the columns of
every row:

* ``'lse'``: ``out_i = log sum_j m_ij exp(v_ij)``   (streaming log-sum-exp),
* ``'sum'``: ``out_i = sum_j m_ij v_ij``            (streaming sum),
* ``'max'``: ``out_i = max_j m_ij v_ij``            (forward only, e.g. mining).

Memory.  The matrix is never materialised and neither is any ``(n, d)``
temporary: the normalisation is applied to each ``(block, block)`` tile of raw
dot products through the per-row inverse norms (``n`` floats); the statistics
are ``(n,)`` buffers updated in place; the backward pass (:func:`backward_pass`)
accumulates ``dL/du`` (u = x / |x|) for rows *and* columns into one float32
buffer per view (the loop carry, updated in place with dynamic-update-slice)
and :func:`normalize_backward` turns it into ``dL/dx`` tile by tile in place.
Ragged ``n`` is handled without padding copies: the last tile starts at
``n - block`` and its rows already covered by the previous tile are masked
(``fresh``).

Symmetry.  ``cos`` is symmetric, so when both ``(a, b)`` and ``(b, a)`` are
blocks (and the columns are the rows' own views, i.e. not a remote shard) only
one of the two tiles ``(I, J)``/``(J, I)`` is computed: its cosine tile serves
both orientations (``mirror``).  GRACE then costs 2 instead of 4 N x N x d
products per pass.

All statistics accumulate in float32; the tile matmuls take the inputs' dtype
(e.g. bfloat16) with a float32 accumulator.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NEG_INF = -jnp.inf
EPS = 1e-12  # as in ``_common.l2_normalize``
#: tile side of ``block_size = "auto"`` on a CPU and on an accelerator (see :func:`tile_size`)
AUTO_BLOCK = {"cpu": 256, "accelerator": 4096}


def tile_size(setting) -> int | None:
    """A method config's ``block_size`` as the losses take it: ``0`` -> ``None`` (dense), a
    positive int -> that tile side, ``"auto"`` -> the side that suits the default backend.

    Small tiles fit a CPU's caches (GRACE on Cora, one core: 256 runs fwd+bwd 2.1x faster than
    dense). An accelerator runs the tile loop one small kernel after another, so small tiles
    leave it waiting: on an H100, InfoNCE fwd+bwd at N = 16384, d = 256 took 268 ms with
    256-tiles, 17.6 ms with 4096-tiles and 19.2 ms dense (``benchmarks/losses.py``).
    """
    if setting == "auto":
        return AUTO_BLOCK["cpu" if jax.default_backend() == "cpu" else "accelerator"]
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"model.block_size: expected 0 (dense), a positive tile side or 'auto', got {setting!r}")
    return setting or None


@dataclasses.dataclass(frozen=True)
class Head:
    """One row reduction.

    ``value(s, r, c)`` and ``mask(s, r, c)`` are element-wise in the float32
    logits tile ``s``; ``r``/``c`` are dicts of the anchors' (rows') and the
    columns' metadata, broadcast against the tile (``(br, 1)``/``(1, bc)``, or
    transposed when a tile is read in its mirrored orientation).  Anchor and
    column validity (``r['valid'] & c['valid']``) is always and-ed into the mask.
    """

    kind: str  # 'lse' | 'sum' | 'max'
    value: Callable
    mask: Callable


def identity_value(s, r, c):
    return s


def ones_value(s, r, c):
    return jnp.ones_like(s)


INIT = {"lse": NEG_INF, "sum": 0.0, "max": NEG_INF}
MERGE = {"lse": jnp.logaddexp, "sum": jnp.add, "max": jnp.maximum}


def _reduce(kind, v, m, axis=1):
    """Reduce one tile along ``axis`` (the columns of its anchors) with mask ``m``."""
    if kind == "sum":
        return jnp.sum(jnp.where(m, v, 0.0), axis=axis)
    vmax = jnp.max(jnp.where(m, v, NEG_INF), axis=axis)
    if kind == "max":
        return vmax
    shift = lax.stop_gradient(jnp.where(jnp.isfinite(vmax), vmax, 0.0))
    total = jnp.sum(jnp.exp(jnp.where(m, v - _along(shift, axis), NEG_INF)), axis=axis)
    return jnp.where(total > 0, shift + jnp.log(jnp.where(total > 0, total, 1.0)), NEG_INF)


# ----------------------------------------------------------------------------
# sides, tiles and the logits of one tile
# ----------------------------------------------------------------------------


def inverse_norm(x):
    """``1 / max(|x_i|, EPS)`` per row, float32.  (A batched dot rather than
    ``sum(x.astype(f32) ** 2)``: XLA would share that float32 copy of a bf16
    ``x`` with the tiles' slices and keep it whole.)"""
    sq = jnp.einsum("nd,nd->n", x, x, preferred_element_type=jnp.float32)
    return lax.rsqrt(jnp.maximum(sq, EPS * EPS))


def make_side(xs, meta, **per_row):
    """The operand of a pass: a dict of per-view tuples, ``x`` (raw ``(n, d)``),
    ``inv`` (inverse norms), ``meta`` (dicts of ``(n,)`` metadata, ``'valid'``
    included) and any further per-row leaves (``scale``, ``off``, ``outs``...)."""
    side = {"x": tuple(xs), "inv": tuple(inverse_norm(x) for x in xs), "meta": tuple(meta)}
    side.update({k: tuple(v) for k, v in per_row.items()})
    return side


@dataclasses.dataclass(frozen=True)
class Tiling:
    """``count`` tiles of ``size`` rows over ``n`` rows; the last tile is
    clamped to end at ``n`` and its rows that the previous tile owns are not
    ``fresh``."""

    n: int
    size: int

    @classmethod
    def of(cls, n, block):
        return cls(n, n if block is None else max(1, min(block, n)))

    @property
    def count(self):
        return -(-self.n // self.size)

    def start(self, t):
        return jnp.minimum(t * self.size, self.n - self.size)

    def fresh(self, t):
        return self.start(t) + jnp.arange(self.size) >= t * self.size


def take(side, v, tiling, t):
    """Tile ``t`` of view ``v`` of ``side``: every per-row leaf sliced, and
    ``meta['valid']`` restricted to the fresh rows."""
    start = tiling.start(t)
    tile = jax.tree_util.tree_map(
        lambda a: lax.dynamic_slice_in_dim(a, start, tiling.size, 0),
        {k: vals[v] for k, vals in side.items()})
    tile["meta"] = dict(tile["meta"], valid=tile["meta"]["valid"] & tiling.fresh(t))
    return tile


def add_at(bufs, v, start, values, merges=None):
    """``bufs[v][start:start + size] = merge(old, values)`` leaf by leaf, in
    place (``merges``: one binary op per leaf, default ``+``)."""
    leaves, tree = jax.tree_util.tree_flatten(bufs[v])
    vals = jax.tree_util.tree_leaves(values)
    merges = merges or (jnp.add,) * len(leaves)
    new = []
    for buf, val, merge in zip(leaves, vals, merges):
        old = lax.dynamic_slice_in_dim(buf, start, val.shape[0], 0)
        new.append(lax.dynamic_update_slice_in_dim(buf, merge(old, val).astype(buf.dtype),
                                                   start, 0))
    return bufs[:v] + (jax.tree_util.tree_unflatten(tree, new),) + bufs[v + 1:]


def cosine(rt, ct):
    """Float32 cosine tile ``<x_i, x_j> inv_i inv_j`` of a row and a column tile."""
    dot = lax.dot_general(rt["x"], ct["x"], (((1,), (1,)), ((), ())),
                          preferred_element_type=jnp.float32)
    return dot * rt["inv"][:, None] * ct["inv"][None, :]


def _along(vec, axis):
    """Broadcast a per-anchor vector against a tile reduced along ``axis``."""
    return vec[:, None] if axis == 1 else vec[None, :]


# A tile is read in one of two orientations: ``axis=1``: the anchors are the
# row tile ``at`` (tile rows), reduced over the column tile ``ot``; ``axis=0``
# (mirror): the anchors are the *column* tile, reduced over the rows, i.e. the
# transposed block without transposing anything.


def logits(cos, at, axis=1):
    """``s = scale_anchor * cos + off_anchor`` in the tile's layout."""
    return _along(at["scale"], axis) * cos + _along(at["off"], axis)


def _views(at, ot, axis):
    r = {k: _along(v, axis) for k, v in at["meta"].items()}
    c = {k: _along(v, 1 - axis) for k, v in ot["meta"].items()}
    return r, c


def _mask(h, s, r, c):
    return h.mask(s, r, c) & r["valid"] & c["valid"]


def tile_stats(heads, s, at, ot, axis=1):
    """Every head reduced over the other tile, per anchor of ``at``."""
    r, c = _views(at, ot, axis)
    return tuple(_reduce(h.kind, h.value(s, r, c), _mask(h, s, r, c), axis) for h in heads)


def tile_weights(heads, s, at, ot, axis=1):
    """``W = sum_h g_h d out_h / d s`` on one logits tile (anchors of ``at``),
    from the saved outputs ``at['outs']`` and their cotangents ``at['grads']``:
    the derivative is ``m exp(v - out) v'`` (lse) or ``m v'`` (sum)."""
    r, c = _views(at, ot, axis)
    w = jnp.zeros_like(s)
    for h, out, g in zip(heads, at["outs"], at["grads"]):
        m = _mask(h, s, r, c)
        v, dv = jax.jvp(lambda t: h.value(t, r, c), (s,), (jnp.ones_like(s),))
        if h.kind == "lse":
            safe = _along(jnp.where(jnp.isfinite(out), out, 0.0), axis)
            dv = jnp.exp(jnp.where(m, v - safe, NEG_INF)) * dv
        w = w + _along(g, axis) * jnp.where(m, dv, 0.0)
    return w


# ----------------------------------------------------------------------------
# which tiles a pass visits
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """Rows of view ``a`` x columns of view ``b``.  ``mirror``: each visited
    tile also serves the transposed block ``(b, a)``; ``triangle`` (``a == b``):
    only tiles ``I <= J`` are visited, and the diagonal ones are not mirrored."""

    a: int
    b: int
    mirror: bool = False
    triangle: bool = False

    def schedule(self, n_row_tiles, n_col_tiles):
        ij = [(i, j) for i in range(n_row_tiles)
              for j in (range(i, n_col_tiles) if self.triangle else range(n_col_tiles))]
        return jnp.asarray(np.array(ij, np.int32).reshape(-1, 2))


def local_blocks(pairs):
    """Blocks of a pass whose columns are the rows' own views (symmetry used)."""
    blocks = []
    for a, b in pairs:
        if (b, a) not in pairs:
            blocks.append(Block(a, b))
        elif a <= b:
            blocks.append(Block(a, b, mirror=True, triangle=a == b))
    return tuple(blocks)


def remote_blocks(pairs):
    """Blocks of a pass against another device's columns (no symmetry)."""
    return tuple(Block(a, b) for a, b in pairs)


def _visits(block, rows, cols, tr, tc, body, carry):
    """``carry = body(i, j, rt, ct, rt_mirror, carry)`` for every tile ``(i, j)`` of ``block``,
    in a ``fori_loop``.  ``rt_mirror`` is the row tile as the *column* tile of
    the mirrored orientation (validity off on the diagonal of a triangle), or
    None without mirror."""
    sched = block.schedule(tr.count, tc.count)

    def step(k, carry):
        i, j = sched[k, 0], sched[k, 1]
        rt, ct = take(rows, block.a, tr, i), take(cols, block.b, tc, j)
        rt_m = None
        if block.mirror:
            on = (i != j) if block.triangle else True
            rt_m = dict(rt, meta=dict(rt["meta"], valid=rt["meta"]["valid"] & on))
        return body(i, j, rt, ct, rt_m, carry)

    return lax.fori_loop(0, sched.shape[0], step, carry)


# ----------------------------------------------------------------------------
# forward and backward passes over one (local) set of rows x columns
# ----------------------------------------------------------------------------


def init_stats(heads, side):
    """Identity statistics, one ``(n,)`` float32 buffer per view and head."""
    return tuple(tuple(jnp.full_like(inv, INIT[h.kind]) for h in heads) for inv in side["inv"])


def forward_pass(heads, blocks, rows, cols, stats, block):
    """Merge into ``stats`` (of the row views) the head reductions of every
    tile of ``blocks``.  With mirrored blocks ``cols`` must be ``rows``."""
    tr = Tiling.of(rows["x"][0].shape[0], block)
    tc = Tiling.of(cols["x"][0].shape[0], block)
    merges = tuple(MERGE[h.kind] for h in heads)
    for blk in blocks:
        def body(i, j, rt, ct, rt_m, stats, blk=blk):
            cos = cosine(rt, ct)
            part = tile_stats(heads, logits(cos, rt), rt, ct)
            stats = add_at(stats, blk.a, tr.start(i), part, merges)
            if rt_m is not None:
                part = tile_stats(heads, logits(cos, ct, 0), ct, rt_m, 0)
                stats = add_at(stats, blk.b, tc.start(j), part, merges)
            return stats

        stats = _visits(blk, rows, cols, tr, tc, body, stats)
    return stats


def init_grads(side):
    """Zero ``dL/du`` (float32, per view) and ``dL/dscale``, ``dL/doff``."""
    return {"du": tuple(jnp.zeros_like(x, jnp.float32) for x in side["x"]),
            "scale": tuple(jnp.zeros_like(r) for r in side["inv"]),
            "off": tuple(jnp.zeros_like(r) for r in side["inv"])}


def backward_pass(heads, blocks, rows, cols, grads, col_du, block):
    """Accumulate the gradients of every tile of ``blocks``.

    ``rows`` carries ``scale``, ``off``, ``outs`` (saved statistics) and
    ``grads`` (their cotangents).  With ``W = tile_weights`` and
    ``G_ij = dL/dcos_ij = W_ij scale_i (+ W^mirror_ji scale_j)``::

        dL/du_i += sum_j G_ij u_j,   dL/du_j += sum_i G_ij u_i,
        dL/dscale_i += sum_j W_ij cos_ij,   dL/doff_i += sum_j W_ij.

    Column gradients go into ``grads['du']`` when ``col_du`` is None (the
    columns are the rows' own views), else into ``col_du``.  Returns
    ``(grads, col_du)``.
    """
    tr = Tiling.of(rows["x"][0].shape[0], block)
    tc = Tiling.of(cols["x"][0].shape[0], block)
    for blk in blocks:
        def body(i, j, rt, ct, rt_m, carry, blk=blk):
            grads, col_du = carry
            ri, cj = tr.start(i), tc.start(j)
            cos = cosine(rt, ct)
            w = tile_weights(heads, logits(cos, rt), rt, ct)
            grads = dict(grads, scale=add_at(grads["scale"], blk.a, ri, jnp.sum(w * cos, axis=1)),
                         off=add_at(grads["off"], blk.a, ri, jnp.sum(w, axis=1)))
            g = w * rt["scale"][:, None]
            if rt_m is not None:
                w_m = tile_weights(heads, logits(cos, ct, 0), ct, rt_m, 0)
                grads = dict(grads,
                             scale=add_at(grads["scale"], blk.b, cj, jnp.sum(w_m * cos, axis=0)),
                             off=add_at(grads["off"], blk.b, cj, jnp.sum(w_m, axis=0)))
                g = g + w_m * ct["scale"][None, :]
            dt = rt["x"].dtype
            d_r = jnp.dot((g * ct["inv"][None, :]).astype(dt), ct["x"],
                          preferred_element_type=jnp.float32)
            d_c = lax.dot_general((g * rt["inv"][:, None]).astype(dt), rt["x"],
                                  (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
            grads = dict(grads, du=add_at(grads["du"], blk.a, ri, d_r))
            if col_du is None:
                grads = dict(grads, du=add_at(grads["du"], blk.b, cj, d_c))
            else:
                col_du = add_at(col_du, blk.b, cj, d_c)
            return grads, col_du

        grads, col_du = _visits(blk, rows, cols, tr, tc, body, (grads, col_du))
    return grads, col_du


def normalize_backward(xs, du, home, block):
    """``dL/dx = inv (dL/du - u <u, dL/du>)`` (the VJP of ``x / max(|x|, EPS)``;
    no radial part where ``|x| < EPS``), tile by tile, in place in ``du``.
    ``home`` (optional, per view) is added to ``du`` first (the column
    gradients computed on other devices)."""
    out = []
    for v, (x, g) in enumerate(zip(xs, du)):
        t = Tiling.of(x.shape[0], block)

        def step(k, g, v=v, x=x, t=t):
            start, fresh = t.start(k), t.fresh(k)[:, None]
            sl = lambda a: lax.dynamic_slice_in_dim(a, start, t.size, 0)  # noqa: E731
            old = sl(g)
            gu = old if home is None else old + sl(home[v])
            xt = sl(x).astype(jnp.float32)
            sq = jnp.sum(xt * xt, axis=1, keepdims=True)
            inv = lax.rsqrt(jnp.maximum(sq, EPS * EPS))
            radial = jnp.where(sq >= EPS * EPS, jnp.sum(xt * gu, axis=1, keepdims=True) * inv, 0.0)
            dx = inv * (gu - xt * inv * radial)
            return lax.dynamic_update_slice_in_dim(g, jnp.where(fresh, dx, old), start, 0)

        out.append(lax.fori_loop(0, t.count, step, g))
    return tuple(out)


# ----------------------------------------------------------------------------
# dense reference
# ----------------------------------------------------------------------------


def dense_reduce(heads, pairs, side):
    """Dense reference, plain autodiff: per anchor view ``a``, one logits
    matrix against the normalised columns of all its paired views."""
    units = tuple((x.astype(jnp.float32) * inv[:, None]).astype(x.dtype)
                  for x, inv in zip(side["x"], side["inv"]))
    stats = init_stats(heads, side)
    for a in sorted({a for a, _ in pairs}):
        bs = [b for a2, b in pairs if a2 == a]
        cols = jnp.concatenate([units[b] for b in bs])
        dot = jnp.dot(units[a], cols.T, preferred_element_type=jnp.float32)
        at = {k: vals[a] for k, vals in side.items()}
        ot = {"meta": {k: jnp.concatenate([side["meta"][b][k] for b in bs])
                       for k in side["meta"][a]}}
        stats = stats[:a] + (tile_stats(heads, logits(dot, at), at, ot),) + stats[a + 1:]
    return stats
