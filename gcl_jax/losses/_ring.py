"""Row reductions with a custom VJP, on one device or around a device ring.

:func:`reduce_rows` is the single entry point used by every N x N loss.  It
computes, for each local row ``i``, the reductions of :mod:`._tiling` over *all*
columns: the local ones and, under ``axis_name``, those of every other device.

* ``collective='ring'`` (Inf-CL / ring attention, Liu et al. 2023; Cheng et
  al. 2024): the local pass (symmetry used) is followed by ``P - 1`` steps in
  which the column shard travels one device along the mesh axis
  (``lax.ppermute``); partial results merge with ``logaddexp``/``+``/``max``.
  The backward pass travels the same way, carrying with each column shard the
  gradient accumulated for it, and one last step sends that gradient home.
  Per-device memory stays O(N d / P + block^2).
* ``collective='all_gather'``: the columns are all-gathered once, one remote
  pass runs over them, and the column gradient is reduce-scattered home; O(N d)
  memory per device.

Either way the backward recomputes tiles from the saved per-row outputs and
the whole loss gradient (rows, columns, normalisation) is formed inside the
custom VJP, so no ``(n, d)`` temporary is materialised on one device.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from ._tiling import (Head, backward_pass, dense_reduce, forward_pass, init_grads,
                      init_stats, local_blocks, make_side, normalize_backward, remote_blocks)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static configuration of one reduction."""

    heads: tuple[Head, ...]
    pairs: tuple[tuple[int, int], ...]
    block: int | None = None
    axis_name: str | None = None
    collective: str = "ring"


def _shift(tree, axis_name):
    """Send every device's ``tree`` to the next device along ``axis_name``."""
    p = lax.axis_size(axis_name)
    perm = [(i, (i + 1) % p) for i in range(p)]
    return jax.tree_util.tree_map(lambda a: lax.ppermute(a, axis_name, perm), tree)


def _varying(tree, axis_name):
    """Type every leaf as varying over ``axis_name`` (a no-op on values): scan
    carries that go through ``ppermute`` must start varying, and constant
    metadata (e.g. view ids) would otherwise be device-invariant."""
    on_every_device = lax.axis_index(axis_name) >= 0
    return jax.tree_util.tree_map(lambda a: jnp.where(on_every_device, a, a), tree)


def _columns(side):
    """The part of a side that travels as columns."""
    return {k: side[k] for k in ("x", "inv", "meta")}


def _gather(side, axis_name):
    return jax.tree_util.tree_map(
        functools.partial(lax.all_gather, axis_name=axis_name, tiled=True), _columns(side))


def _steps(spec):
    return lax.axis_size(spec.axis_name) - 1


def _forward(spec, xs, scale, off, meta):
    rows = make_side(xs, meta, scale=scale, off=off)
    stats = init_stats(spec.heads, rows)
    remote = remote_blocks(spec.pairs)
    if spec.axis_name is not None and spec.collective == "all_gather":
        cols = _gather(rows, spec.axis_name)
        return forward_pass(spec.heads, remote, rows, cols, stats, spec.block)
    stats = forward_pass(spec.heads, local_blocks(spec.pairs), rows, rows, stats, spec.block)
    if spec.axis_name is None:
        return stats

    def step(carry, _):
        stats, cols = carry
        cols = _shift(cols, spec.axis_name)
        return (forward_pass(spec.heads, remote, rows, cols, stats, spec.block), cols), None

    (stats, _), _ = lax.scan(step, (stats, _columns(rows)), None, length=_steps(spec))
    return stats


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _reduce(spec, xs, scale, off, meta):
    return _forward(spec, xs, scale, off, meta)


def _reduce_fwd(spec, xs, scale, off, meta):
    stats = _forward(spec, xs, scale, off, meta)
    return stats, (xs, scale, off, meta, stats)


def _reduce_bwd(spec, res, cotangents):
    xs, scale, off, meta, stats = res
    rows = make_side(xs, meta, scale=scale, off=off, outs=stats, grads=cotangents)
    grads = init_grads(rows)
    remote = remote_blocks(spec.pairs)
    home = None
    if spec.axis_name is not None and spec.collective == "all_gather":
        cols = _gather(rows, spec.axis_name)
        col_du = tuple(jnp.zeros_like(x, jnp.float32) for x in cols["x"])
        grads, col_du = backward_pass(spec.heads, remote, rows, cols, grads, col_du, spec.block)
        home = tuple(lax.psum_scatter(g, spec.axis_name, tiled=True) for g in col_du)
    else:
        grads, _ = backward_pass(spec.heads, local_blocks(spec.pairs), rows, rows, grads, None,
                                 spec.block)
    if spec.axis_name is not None and spec.collective == "ring":
        def step(carry, _):
            grads, cols, col_du = carry
            cols, col_du = _shift((cols, col_du), spec.axis_name)
            grads, col_du = backward_pass(spec.heads, remote, rows, cols, grads, col_du,
                                          spec.block)
            return (grads, cols, col_du), None

        col_du = tuple(jnp.zeros_like(g) for g in grads["du"])
        (grads, _, col_du), _ = lax.scan(step, (grads, _columns(rows), col_du), None,
                                         length=_steps(spec))
        home = _shift(col_du, spec.axis_name)  # the column gradients go home
    dxs = normalize_backward(xs, grads["du"], home, spec.block)
    return (tuple(d.astype(x.dtype) for d, x in zip(dxs, xs)),
            tuple(g.astype(s.dtype) for g, s in zip(grads["scale"], scale)),
            tuple(g.astype(o.dtype) for g, o in zip(grads["off"], off)), None)


_reduce.defvjp(_reduce_fwd, _reduce_bwd)


def reduce_rows(heads, views, meta, *, pairs, scale=None, off=None, block=None, axis_name=None,
                collective="ring"):
    """Per-row reductions ``heads`` of ``s_ij = scale_i cos(x_ai, x_bj) + off_i``.

    ``views``: tuple of raw ``(n, d)`` embeddings (normalised on the fly);
    ``meta``: one dict of ``(n,)`` metadata per view (``'valid'`` required);
    ``pairs``: static ``(a, b)`` view pairs: the rows of view ``a`` are reduced
    over the columns of every ``b`` paired with it (all devices' columns under
    ``axis_name``); ``scale``/``off``: one ``(n,)`` float32 array per view
    (default 1 / 0).  Returns one tuple of head outputs (``(n,)`` float32) per
    view (identity values for views that are never rows).

    ``block=None`` and ``axis_name=None`` give the dense reference (the full
    matrix, plain autodiff).  Otherwise the blockwise/ring custom VJP is used.
    Differentiable w.r.t. ``views``, ``scale`` and ``off`` (metadata is not).
    Forward-only heads (``'max'``) are evaluated without a VJP.
    """
    if collective not in ("ring", "all_gather"):
        raise ValueError(f"collective must be 'ring' or 'all_gather', got {collective!r}")
    heads, views, meta = tuple(heads), tuple(views), tuple(meta)
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    n = views[0].shape[0]
    per_view = lambda v, fill: tuple(  # noqa: E731
        jnp.broadcast_to(jnp.asarray(fill if v is None else v[k], jnp.float32), (n,))
        for k in range(len(views)))
    scale, off = per_view(scale, 1.0), per_view(off, 0.0)
    if axis_name is not None:
        # Replicated inputs (e.g. a shared bias) become per-device values here;
        # autodiff transposes this into the psum their gradient needs.
        views, scale, off, meta = _varying((views, scale, off, meta), axis_name)
    if block is None and axis_name is None:
        return dense_reduce(heads, pairs, make_side(views, meta, scale=scale, off=off))
    spec = Spec(heads, pairs, block, axis_name, collective)
    if any(h.kind == "max" for h in heads):
        args = jax.tree_util.tree_map(lax.stop_gradient, (views, scale, off, meta))
        return _forward(spec, *args)
    return _reduce(spec, views, scale, off, meta)

