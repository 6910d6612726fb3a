"""Blockwise (tiled) row reductions over a rows x columns similarity matrix.

This module is the single tiling mechanism used by every N x N loss.  A loss
describes what it needs from the logits ``s_ij = <r_i, c_j> + o_i`` as a tuple
of :class:`Head` objects; each head reduces one masked, element-wise function
``v_ij = value(s_ij)`` over the columns of every row:

* ``'lse'``: ``out_i = log sum_j m_ij exp(v_ij)``   (streaming log-sum-exp),
* ``'sum'``: ``out_i = sum_j m_ij v_ij``            (streaming sum),
* ``'max'``: ``out_i = max_j m_ij v_ij``            (forward only, e.g. mining).

The matrix is never materialised: rows and columns are cut into tiles of
``block x block``; a ``lax.scan`` over row tiles runs an inner ``lax.scan`` over
column tiles.  The backward pass (:func:`tile_backward`) recomputes each tile
from the saved per-row outputs, so the memory is O(N d + block^2).

All statistics accumulate in float32; the tile matmuls take the inputs' dtype
(e.g. bfloat16) with a float32 accumulator.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

NEG_INF = -jnp.inf


@dataclasses.dataclass(frozen=True)
class Head:
    """One row reduction.

    ``value(s, r, c)`` and ``mask(s, r, c)`` are element-wise in the float32
    logits tile ``s`` (shape ``(br, bc)``); ``r``/``c`` are dicts of row/column
    metadata broadcast to ``(br, 1)``/``(1, bc)``.  Row and column validity
    (``r['valid'] & c['valid']``) is always and-ed into the mask.
    """

    kind: str  # 'lse' | 'sum' | 'max'
    value: Callable
    mask: Callable


def identity_value(s, r, c):
    return s


def ones_value(s, r, c):
    return jnp.ones_like(s)


_INIT = {"lse": NEG_INF, "sum": 0.0, "max": NEG_INF}
MERGE = {"lse": jnp.logaddexp, "sum": jnp.add, "max": jnp.maximum}


def _reduce(kind, v, m):
    """Reduce one tile along the columns (axis 1) with mask ``m``."""
    if kind == "sum":
        return jnp.sum(jnp.where(m, v, 0.0), axis=1)
    vmax = jnp.max(jnp.where(m, v, NEG_INF), axis=1)
    if kind == "max":
        return vmax
    shift = lax.stop_gradient(jnp.where(jnp.isfinite(vmax), vmax, 0.0))
    total = jnp.sum(jnp.exp(jnp.where(m, v - shift[:, None], NEG_INF)), axis=1)
    return jnp.where(total > 0, shift + jnp.log(jnp.where(total > 0, total, 1.0)), NEG_INF)


# ----------------------------------------------------------------------------
# padding and tiling
# ----------------------------------------------------------------------------


def _pad_rows(x, n_pad, fill=0):
    if n_pad == 0:
        return x
    pad = [(0, n_pad)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, constant_values=fill)


def to_tiles(tree, block):
    """Pad a pytree of ``(n, ...)`` arrays to a multiple of ``block`` and reshape
    to ``(n_tiles, block, ...)``.  Padding gets ``valid=False`` (the key
    ``'valid'`` is padded with False, everything else with zeros)."""

    def one(path, x):
        n = x.shape[0]
        n_pad = (-n) % block
        is_valid = any(getattr(p, "key", None) == "valid" for p in path)
        x = _pad_rows(x, n_pad, False if is_valid else 0)
        return x.reshape((x.shape[0] // block, block) + x.shape[1:])

    return jax.tree_util.tree_map_with_path(one, tree)


def from_tiles(x, n):
    return x.reshape((-1,) + x.shape[2:])[:n]


def _block_of(block, n):
    return n if block is None else max(1, min(block, n))


def _logits(rt, ct):
    """Float32 logits tile ``s_ij = <r_i, c_j> + o_i``."""
    s = lax.dot_general(rt["x"], ct["x"], (((1,), (1,)), ((), ())),
                        preferred_element_type=jnp.float32)
    return s + rt["off"][:, None]


def _views(rt, ct):
    r = {k: v[:, None] for k, v in rt["meta"].items()}
    c = {k: v[None, :] for k, v in ct["meta"].items()}
    return r, c


def _mask(h, s, r, c):
    return h.mask(s, r, c) & r["valid"] & c["valid"]


def _scan_tiles(tile_fn, rows, cols, block, row_init, col_init):
    """The tiling loop: outer scan over row tiles, inner scan over column tiles.

    ``tile_fn(rt, ct, row_acc) -> (row_acc, col_contribution)``;
    ``row_init(ref, block)`` makes the per-row-tile accumulator and ``col_init``
    is a per-column prototype (or None).  Returns the
    per-row accumulators (un-tiled, length n_rows) and the column accumulator
    (summed over row tiles, un-tiled, length n_cols).
    """
    n_r, n_c = rows["x"].shape[0], cols["x"].shape[0]
    br, bc = _block_of(block, n_r), _block_of(block, n_c)
    rows_t, cols_t = to_tiles(rows, br), to_tiles(cols, bc)
    # ``full_like(ref, ...)`` gives fresh carries the ``shard_map`` varying-axes
    # type of the inputs, as ``lax.scan`` requires.
    ref = rows["x"][0, 0] + cols["x"][0, 0]
    col_acc0 = jax.tree_util.tree_map(
        lambda a: jnp.full_like(ref, 0, a.dtype, (cols_t["x"].shape[0], bc) + a.shape),
        col_init)

    n_ct = cols_t["x"].shape[0]

    def outer(col_acc, rt):
        def inner(carry, xs):
            row_acc, col_acc = carry
            ct, j = xs
            row_acc, contrib = tile_fn(rt, ct, row_acc)
            # accumulate in place: no per-row-tile copy of the column gradient
            col_acc = jax.tree_util.tree_map(lambda a, c: a.at[j].add(c), col_acc, contrib)
            return (row_acc, col_acc), None

        (row_acc, col_acc), _ = lax.scan(
            inner, (row_init(ref, br), col_acc), (cols_t, jnp.arange(n_ct)))
        return col_acc, row_acc

    col_acc, row_acc = lax.scan(outer, col_acc0, rows_t)
    row_out = jax.tree_util.tree_map(lambda a: from_tiles(a, n_r), row_acc)
    col_out = jax.tree_util.tree_map(lambda a: from_tiles(a, n_c), col_acc)
    return row_out, col_out


# ----------------------------------------------------------------------------
# forward and backward over one (local) block of rows x columns
# ----------------------------------------------------------------------------


def dense_reduce(heads, rows, cols):
    """Dense reference: every head on the full logits matrix, plain autodiff."""
    s = _logits(rows, cols)
    r, c = _views(rows, cols)
    return tuple(_reduce(h.kind, h.value(s, r, c), _mask(h, s, r, c)) for h in heads)


def tile_forward(heads, rows, cols, block):
    """Per-row reductions of every head over all columns in ``cols``.

    ``rows = {'x': (n, d), 'off': (n,), 'meta': {...}}``,
    ``cols = {'x': (m, d), 'meta': {...}}``.  Returns a tuple of ``(n,)``
    float32 arrays (``-inf`` for an empty lse/max)."""

    def tile_fn(rt, ct, acc):
        s = _logits(rt, ct)
        r, c = _views(rt, ct)
        new = tuple(MERGE[h.kind](a, _reduce(h.kind, h.value(s, r, c), _mask(h, s, r, c)))
                    for h, a in zip(heads, acc))
        return new, None

    def row_init(ref, br):
        return tuple(jnp.full_like(ref, _INIT[h.kind], jnp.float32, (br,)) for h in heads)

    out, _ = _scan_tiles(tile_fn, rows, cols, block, row_init, None)
    return out


def tile_backward(heads, rows, cols, outs, grads, block):
    """Recompute the tiles and return ``(d_x_rows, d_off, d_x_cols)`` in float32.

    For head h the derivative of ``out_i`` w.r.t. ``s_ij`` is
    ``m_ij exp(v_ij - out_i) v'_ij`` (lse) or ``m_ij v'_ij`` (sum); with
    ``W_ij = sum_h g_hi dout_hi/ds_ij``: ``d r_i = sum_j W_ij c_j``,
    ``d c_j = sum_i W_ij r_i``, ``d o_i = sum_j W_ij``.
    """
    if any(h.kind == "max" for h in heads):
        raise ValueError("'max' heads are forward-only")
    rows = dict(rows, outs=tuple(outs), grads=tuple(grads))
    d = rows["x"].shape[1]

    def tile_fn(rt, ct, acc):
        s = _logits(rt, ct)
        r, c = _views(rt, ct)
        w = jnp.zeros_like(s)
        for h, out, g in zip(heads, rt["outs"], rt["grads"]):
            m = _mask(h, s, r, c)
            v, dv = jax.jvp(lambda t: h.value(t, r, c), (s,), (jnp.ones_like(s),))
            if h.kind == "lse":
                safe = jnp.where(jnp.isfinite(out), out, 0.0)[:, None]
                dv = jnp.exp(jnp.where(m, v - safe, NEG_INF)) * dv
            w = w + g[:, None] * jnp.where(m, dv, 0.0)
        wx = w.astype(rt["x"].dtype)
        d_r = jnp.dot(wx, ct["x"], preferred_element_type=jnp.float32)
        d_c = lax.dot_general(wx, rt["x"], (((0,), (0,)), ((), ())),
                              preferred_element_type=jnp.float32)
        d_rows, d_off = acc
        return (d_rows + d_r, d_off + jnp.sum(w, axis=1)), d_c

    def row_init(ref, br):
        return (jnp.full_like(ref, 0, jnp.float32, (br, d)),
                jnp.full_like(ref, 0, jnp.float32, (br,)))

    col_init = jnp.zeros((d,), jnp.float32)
    (d_rows, d_off), d_cols = _scan_tiles(tile_fn, rows, cols, block, row_init, col_init)
    return d_rows, d_off, d_cols
