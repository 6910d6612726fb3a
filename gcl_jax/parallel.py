"""Device meshes and the row-sharding helper the trainer and methods share.

Data parallelism in gcl-jax: the train step runs inside ``jax.shard_map`` over a 1-D mesh axis
(``"data"``). Parameters and the optimizer state are replicated; a node-level method computes its
encoder on the (replicated) graph, then keeps only this device's rows of the embeddings with
:func:`local_rows` and calls a loss with ``axis_name``, so the negatives travel between devices
and every device returns the same global loss. Gradients of that global loss with respect to the
replicated parameters are summed across devices by ``shard_map``'s transpose rules.

For graphs too large to encode whole on every device, a batch can instead be
:class:`Partitioned`: each device encodes its own subgraph (built on the host by
:mod:`gcl_jax.partition`) and owns the rows its ``owned`` mask marks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jraph
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


class Partitioned(NamedTuple):
    """One subgraph per device, stacked along a leading device axis (shard it with ``P(axis)``).

    ``graph``: padded subgraphs, every leaf ``[D, ...]``; ``owned``: ``[D, n_node]`` bool, True on
    the rows a device contributes to the loss (its part's nodes, not the halo or padding).
    """

    graph: jraph.GraphsTuple
    owned: jax.Array


def local_graph(batch) -> tuple[jraph.GraphsTuple, jax.Array | None]:
    """The graph this device encodes and the mask of rows it owns (``None``: the graph is
    replicated and :func:`local_rows` picks the rows). Inside ``shard_map`` a :class:`Partitioned`
    batch arrives with a device axis of length 1, removed here."""
    if not isinstance(batch, Partitioned):
        return batch, None
    return jax.tree_util.tree_map(lambda leaf: leaf[0], batch.graph), batch.owned[0]


def owned_rows(x: jax.Array, owned: jax.Array | None, axis_name: str | None):
    """This device's rows of the embeddings ``x`` and their validity, for either batch layout."""
    return local_rows(x, axis_name) if owned is None else (x, owned)
