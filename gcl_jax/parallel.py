"""Device meshes and the row-sharding helper the trainer and methods share.

Data parallelism in gcl-jax: the train step runs inside ``jax.shard_map`` over a 1-D mesh axis
(``"data"``). Parameters and the optimizer state are replicated; a node-level method computes its
encoder on the (replicated) graph, then keeps only this device's rows of the embeddings with
:func:`local_rows` and calls a loss with ``axis_name``, so the negatives travel between devices
and every device returns the same global loss. Gradients of that global loss with respect to the
replicated parameters are summed across devices by ``shard_map``'s transpose rules.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

DATA_AXIS = "data"


def make_mesh(num_devices: int, axis_name: str = DATA_AXIS) -> jax.sharding.Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all processes' devices on multi-host)."""
    available = jax.devices()
    if num_devices < 1 or num_devices > len(available):
        raise ValueError(
            f"devices: asked for {num_devices}, this process sees {len(available)} "
            f"({available[0].platform}); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    return jax.make_mesh((num_devices,), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,), devices=available[:num_devices])


def local_rows(x: jax.Array, axis_name: str | None):
    """This device's contiguous block of rows of a replicated ``[N, ...]`` array, and its validity.

    Rows are padded to a multiple of the axis size; the returned ``valid`` mask ``[N / P]`` is False
    on padding rows, so losses can exclude them. Outside a mesh (``axis_name=None``) returns
    ``(x, None)``.
    """
    if axis_name is None:
        return x, None
    size, index = lax.axis_size(axis_name), lax.axis_index(axis_name)
    n = x.shape[0]
    per_device = -(-n // size)
    padded = jnp.pad(x, [(0, per_device * size - n)] + [(0, 0)] * (x.ndim - 1))
    rows = index * per_device + jnp.arange(per_device)
    return lax.dynamic_slice_in_dim(padded, index * per_device, per_device), rows < n
