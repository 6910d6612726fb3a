"""Row reductions with a custom VJP, on one device or around a device ring.

:func:`reduce_rows` is the single entry point used by every N x N loss.  It
computes, for each local row ``i``, the reductions of :mod:`._tiling` over *all*
columns: the local ones and, under ``axis_name``, those of every other device.

* ``collective='ring'`` (Inf-CL / ring attention, Liu et al. 2023; Cheng et
  al. 2024): the column shard travels around the mesh axis with ``P - 1``
  ``lax.ppermute`` steps; partial results merge with ``logaddexp``/``+``/
  ``max``.  The backward pass travels the same way, carrying with each column
  shard the gradient accumulated for it, and one last step sends that gradient
  home.  Per-device memory stays O(N d / P + block^2).
* ``collective='all_gather'``: the columns are all-gathered once and autodiff
  transposes the gather into a reduce-scatter; O(N d) memory per device.

Either way the backward recomputes tiles from the saved per-row outputs.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from ._tiling import MERGE, Head, dense_reduce, tile_backward, tile_forward


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static configuration of one reduction."""

    heads: tuple[Head, ...]
    block: int | None = None
    axis_name: str | None = None
    collective: str = "ring"


def _merge(heads, a, b):
    return tuple(MERGE[h.kind](x, y) for h, x, y in zip(heads, a, b))


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


def _forward(spec, xr, off, rmeta, xc, cmeta):
    rows = {"x": xr, "off": off, "meta": rmeta}
    cols = {"x": xc, "meta": cmeta}
    out = tile_forward(spec.heads, rows, cols, spec.block)
    if spec.axis_name is None:
        return out

    def step(carry, _):
        out, cols = carry
        cols = _shift(cols, spec.axis_name)
        part = tile_forward(spec.heads, rows, cols, spec.block)
        return (_merge(spec.heads, out, part), cols), None

    steps = lax.axis_size(spec.axis_name) - 1
    (out, _), _ = lax.scan(step, (out, cols), None, length=steps)
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _reduce(spec, xr, off, rmeta, xc, cmeta):
    return _forward(spec, xr, off, rmeta, xc, cmeta)


def _reduce_fwd(spec, xr, off, rmeta, xc, cmeta):
    out = _forward(spec, xr, off, rmeta, xc, cmeta)
    return out, (xr, off, rmeta, xc, cmeta, out)


def _reduce_bwd(spec, res, grads):
    xr, off, rmeta, xc, cmeta, out = res
    rows = {"x": xr, "off": off, "meta": rmeta}
    cols = {"x": xc, "meta": cmeta}
    d_r, d_o, d_c = tile_backward(spec.heads, rows, cols, out, grads, spec.block)
    if spec.axis_name is not None:
        def step(carry, _):
            d_r, d_o, cols, d_c = carry
            cols, d_c = _shift((cols, d_c), spec.axis_name)
            a, b, c = tile_backward(spec.heads, rows, cols, out, grads, spec.block)
            return (d_r + a, d_o + b, cols, d_c + c), None

        steps = lax.axis_size(spec.axis_name) - 1
        (d_r, d_o, _, d_c), _ = lax.scan(step, (d_r, d_o, cols, d_c), None, length=steps)
        d_c = _shift(d_c, spec.axis_name)  # the column gradient goes home
    return d_r.astype(xr.dtype), d_o.astype(off.dtype), None, d_c.astype(xc.dtype), None


_reduce.defvjp(_reduce_fwd, _reduce_bwd)


def reduce_rows(heads, rows, off, rmeta, cols, cmeta, *, block=None, axis_name=None,
                collective="ring"):
    """Per-row reductions ``heads`` of ``s_ij = <rows_i, cols_j> + off_i`` over
    all columns (all devices' columns under ``axis_name``).

    ``block=None`` and ``axis_name=None`` give the dense reference (the full
    matrix, plain autodiff).  Otherwise the blockwise/ring custom VJP is used.
    Differentiable w.r.t. ``rows``, ``off`` and ``cols`` (metadata is not).
    Forward-only heads (``'max'``) are evaluated without a VJP.
    """
    if collective not in ("ring", "all_gather"):
        raise ValueError(f"collective must be 'ring' or 'all_gather', got {collective!r}")
    heads = tuple(heads)
    if axis_name is not None:
        # Replicated inputs (e.g. a shared bias) become per-device values here;
        # autodiff transposes this into the psum their gradient needs.
        rows, off, rmeta, cols, cmeta = _varying((rows, off, rmeta, cols, cmeta), axis_name)
    if axis_name is not None and collective == "all_gather":
        gather = functools.partial(lax.all_gather, axis_name=axis_name, tiled=True)
        cols, cmeta = jax.tree_util.tree_map(gather, (cols, cmeta))
        axis_name = None
    if block is None and axis_name is None:
        return dense_reduce(heads, {"x": rows, "off": off, "meta": rmeta},
                            {"x": cols, "meta": cmeta})
    spec = Spec(heads, block, axis_name, collective)
    if any(h.kind == "max" for h in heads):
        args = jax.tree_util.tree_map(lax.stop_gradient, (rows, off, rmeta, cols, cmeta))
        return _forward(spec, *args)
    return _reduce(spec, rows, off, rmeta, cols, cmeta)
