"""Small helpers shared by the loss families: row normalisation and per-row parameters.

Conventions used by every loss in :mod:`gcl_jax.losses`:

* ``valid``: optional boolean ``(N,)`` row mask.  Rows with ``valid=False``
  (e.g. the padding a caller adds so that N divides the device count) are
  neither anchors nor negatives and do not count in any mean or batch
  statistic.  Under ``axis_name`` pass the local shard of the mask.
* ``axis_name``: the function is called inside ``jax.shard_map`` with rows
  sharded along that mesh axis; the result is the global loss, identical on
  every device.  The reductions over that axis (``psum``, ``global_mean``,
  ``count_valid``, ``global_ids``, ``as_valid``) live in :mod:`gcl_jax.parallel`.
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


def per_row(x, n):
    """Broadcast a scalar or ``(n,)`` parameter to a float32 ``(n,)`` vector."""
    return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,))
