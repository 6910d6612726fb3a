"""Small helpers shared by the loss families: normalisation, ids, global means.

Conventions used by every loss in :mod:`gcl_jax.losses`:

* ``valid``: optional boolean ``(N,)`` row mask.  Rows with ``valid=False``
  (e.g. the padding a caller adds so that N divides the device count) are
  neither anchors nor negatives and do not count in any mean or batch
  statistic.  Under ``axis_name`` pass the local shard of the mask.
* ``axis_name``: the function is called inside ``jax.shard_map`` with rows
  sharded along that mesh axis; the result is the global loss, identical on
  every device.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def l2_normalize(x, eps=1e-12):
    """``x / max(||x||, eps)`` row-wise, computed in float32, returned in x's dtype.

    Zero rows map to zero (finite gradient)."""
    xf = x.astype(jnp.float32)
    sq = jnp.sum(xf * xf, axis=-1, keepdims=True)
    return (xf * lax.rsqrt(jnp.maximum(sq, eps * eps))).astype(x.dtype)


def as_valid(valid, n):
    return jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)


def global_ids(n, axis_name):
    """Global row index of each local row (rows are sharded contiguously)."""
    ids = jnp.arange(n, dtype=jnp.int32)
    if axis_name is None:
        return ids
    return ids + lax.axis_index(axis_name).astype(jnp.int32) * n


def psum(x, axis_name):
    return x if axis_name is None else lax.psum(x, axis_name)


def global_mean(values, valid, axis_name):
    """Mean of ``values`` (float32) over the valid rows of all devices."""
    values = values.astype(jnp.float32)
    valid = jnp.broadcast_to(valid.reshape(valid.shape + (1,) * (values.ndim - valid.ndim)),
                             values.shape)
    total = psum(jnp.sum(jnp.where(valid, values, 0.0)), axis_name)
    count = psum(jnp.sum(valid.astype(jnp.float32)), axis_name)
    return total / jnp.maximum(count, 1.0)


def count_valid(valid, axis_name):
    return psum(jnp.sum(valid.astype(jnp.float32)), axis_name)


def per_row(x, n):
    """Broadcast a scalar or ``(n,)`` parameter to a float32 ``(n,)`` vector."""
    return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,))
