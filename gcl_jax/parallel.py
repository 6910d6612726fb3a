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

Graph-level methods use the same :class:`Partitioned` layout: a batch of ``B`` graphs is cut into
``D`` consecutive sub-batches (``runner.EpochBatches``), and every sub-batch keeps the one-device
batch's *graph slots* (:func:`in_slots`): graph ``p`` of the batch sits in slot ``p`` on whichever
device holds it, the other slots empty. Per-graph randomness keyed by slot (``augment.graph_keys``,
``augment.graph_uniforms``) then draws the same numbers on 1 and ``D`` devices; :func:`owned_graphs`
gives a device its block of graph rows and :func:`all_graphs` every device's graph rows; batch norm
takes its statistics over all devices' nodes by the encoders' ``norm_axis_name``
(:class:`gcl_jax.nn.layers.Norm`).

Reductions over the mesh axis (:func:`psum`, :func:`global_mean`, :func:`count_valid`,
:func:`global_ids`, with :func:`as_valid` for the optional row mask) are what the losses, layers
and methods use to turn this device's rows into global sums, means and indices; each one is the
plain local computation when ``axis_name`` is ``None`` (one device, no ``shard_map``).

Multi-host: every process runs the same program after :func:`initialize_distributed`; the mesh then
spans the devices of all processes, and :func:`global_arrays` turns each process's identical copy of a
value into one global array, which is what a jitted step over such a mesh takes as input.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from gcl_jax import graph as G

DATA_AXIS = "data"
REPLICATED = PartitionSpec()

# (command-line flag, environment variable) of each setting of a multi-process run, in argument order
DISTRIBUTED_SETTINGS = (
    ("--coordinator", "GCL_JAX_COORDINATOR"),
    ("--num-processes", "GCL_JAX_NUM_PROCESSES"),
    ("--process-id", "GCL_JAX_PROCESS_ID"),
)


def distributed_settings(coordinator=None, num_processes=None, process_id=None, environ=os.environ):
    """``(coordinator, num_processes, process_id)`` from the arguments, else ``environ``; ``None``
    when none of the three is set anywhere (a managed cluster, which JAX detects by itself).

    Checked here, before JAX starts, so a partial or malformed setting fails at once with a
    ``ValueError`` naming the flag and variable instead of hanging at the coordinator.
    """
    values = [
        value if value is not None else environ.get(var)
        for value, (_, var) in zip((coordinator, num_processes, process_id), DISTRIBUTED_SETTINGS)
    ]
    missing = [f"{flag} ({var})" for value, (flag, var) in zip(values, DISTRIBUTED_SETTINGS) if value is None]
    if len(missing) == len(DISTRIBUTED_SETTINGS):
        return None
    if missing:
        raise ValueError(
            f"distributed: missing {', '.join(missing)}; give all of --coordinator, --num-processes and "
            "--process-id (or their GCL_JAX_* variables), or none of them on a managed cluster (--distributed)"
        )
    address = str(values[0])
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"distributed: --coordinator (GCL_JAX_COORDINATOR) expects HOST:PORT, got {address!r}")
    num, index = (_as_int(value, *setting) for value, setting in zip(values[1:], DISTRIBUTED_SETTINGS[1:]))
    if not 0 <= index < num:
        raise ValueError(f"distributed: --process-id {index} is not in 0..{num - 1} (--num-processes {num})")
    return address, num, index


def _as_int(value, flag: str, var: str) -> int:
    """``value`` as an int, or a ``ValueError`` naming the flag and its variable."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"distributed: {flag} ({var}) expects an integer, got {value!r}") from None


def initialize_distributed(coordinator=None, num_processes=None, process_id=None) -> None:
    """Join a multi-process run; call before any JAX computation, in every process.

    Uses the explicit arguments, else ``GCL_JAX_COORDINATOR`` / ``GCL_JAX_NUM_PROCESSES`` /
    ``GCL_JAX_PROCESS_ID``, else JAX's own cluster detection (TPU pods, SLURM, Open MPI). CPU
    processes exchange collectives over gloo (TCP), unless ``JAX_CPU_COLLECTIVES_IMPLEMENTATION``
    picks another implementation.
    """
    settings = distributed_settings(coordinator, num_processes, process_id)
    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(*(settings or ()))


def make_mesh(num_devices: int, axis_name: str = DATA_AXIS) -> jax.sharding.Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (all processes' devices on multi-host)."""
    available = jax.devices()
    if num_devices < 1 or num_devices > len(available):
        raise ValueError(
            f"devices: asked for {num_devices}, the run has {len(available)} ({available[0].platform}, "
            f"{jax.process_count()} process(es)); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    devices = available[:num_devices]
    idle = sorted({d.process_index for d in available} - {d.process_index for d in devices})
    if idle:
        raise ValueError(
            f"devices: the first {num_devices} of {len(available)} devices leave process(es) {idle} without one; "
            f"every process must take part (e.g. --devices {len(available)})"
        )
    return jax.make_mesh((num_devices,), (axis_name,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def global_arrays(tree, mesh: jax.sharding.Mesh, spec: PartitionSpec = REPLICATED):
    """``tree``'s arrays as global arrays laid out by ``spec`` over ``mesh`` (default: replicated).

    Every process passes the full value (the same on all of them) and contributes the parts its own
    devices hold; ``jax.device_put`` cannot do this for a mesh that spans other processes' devices.
    Leaves already laid out so are returned as they are, so a batch reused every step moves once.
    """
    sharding = NamedSharding(mesh, spec)

    def put(x):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        return jax.make_array_from_process_local_data(sharding, x, np.shape(x))

    return jax.tree_util.tree_map(put, tree)


# ----------------------------------------------------------------------------- reductions over the mesh axis


def psum(x, axis_name):
    """``x`` summed over the devices of ``axis_name``; ``x`` itself when ``axis_name`` is ``None``."""
    return x if axis_name is None else lax.psum(x, axis_name)


def as_valid(valid, n):
    """The boolean row mask ``valid``, or all ``n`` rows valid when it is ``None``."""
    return jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)


def global_ids(n, axis_name):
    """Global row index of each local row (rows are sharded contiguously)."""
    ids = jnp.arange(n, dtype=jnp.int32)
    if axis_name is None:
        return ids
    return ids + lax.axis_index(axis_name).astype(jnp.int32) * n


def global_mean(values, valid, axis_name, weights=None):
    """Mean of ``values`` (float32) over the valid rows of all devices; with ``weights`` (one
    non-negative number per row) the weighted mean ``sum w v / sum w`` over the valid rows."""
    values = values.astype(jnp.float32)
    if weights is not None:
        weights = jnp.where(valid, jnp.asarray(weights, jnp.float32), 0.0)
        total = psum(jnp.sum(jnp.where(valid, weights * values, 0.0)), axis_name)  # padding may hold inf
        return total / jnp.maximum(psum(jnp.sum(weights), axis_name), 1e-12)
    valid = jnp.broadcast_to(valid.reshape(valid.shape + (1,) * (values.ndim - valid.ndim)),
                             values.shape)
    total = psum(jnp.sum(jnp.where(valid, values, 0.0)), axis_name)
    return total / jnp.maximum(count_valid(valid, axis_name), 1.0)


def count_valid(valid, axis_name):
    """Number of valid rows on all devices, as a float32 scalar."""
    return psum(jnp.sum(valid.astype(jnp.float32)), axis_name)


# ----------------------------------------------------------------------------- row sharding


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

    ``graph``: padded subgraphs, every leaf ``[D, ...]``; ``owned``: bool, True on the rows a
    device contributes to the loss: node-level ``[D, n_node]`` (its part's nodes, not the halo or
    padding), graph-level ``[D, n_graph]`` (the graph slots it holds, see :func:`in_slots`).
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


# ----------------------------------------------------------------------------- graph-level batches


def in_slots(batch: jraph.GraphsTuple, first: int, slots: int) -> jraph.GraphsTuple:
    """A padded batch of ``k`` graphs (host, numpy) moved to graph slots ``first .. first + k - 1``
    of ``slots + 1``: the other slots empty, the last one holding the padding nodes and edges.

    Only ``n_node`` / ``n_edge`` change (nodes and edges stay where they are), so a device's
    sub-batch shows graph ``p`` of the whole batch in slot ``p``, as the one-device batch does.
    """
    n_node, n_edge = np.asarray(batch.n_node), np.asarray(batch.n_edge)
    trailing_empty = len(n_node) - 1 - np.flatnonzero(n_node)[-1]  # jraph's empty padding graphs
    k = len(n_node) - 1 - trailing_empty
    if first + k > slots:
        raise ValueError(f"in_slots: {k} graphs from slot {first} do not fit {slots} slots")

    def spread(counts):
        out = np.zeros(slots + 1, counts.dtype)
        out[first:first + k], out[slots] = counts[:k], counts[k:].sum()
        return out

    return batch._replace(n_node=spread(n_node), n_edge=spread(n_edge))


def with_edges(graph: jraph.GraphsTuple, n_edge: int) -> jraph.GraphsTuple:
    """A padded batch in :func:`in_slots` layout (host, numpy) grown to ``n_edge`` edges: weight-0
    self-loops on the first padding node, counted in the last (padding) slot, so sub-batches whose
    host-side preparation chose different edge budgets stack."""
    extra = n_edge - graph.senders.shape[0]
    if extra <= 0:
        return graph
    pad_node = np.full(extra, np.sum(graph.n_node[:-1]), graph.senders.dtype)
    counts = np.asarray(graph.n_edge).copy()
    counts[-1] += extra
    edges = np.concatenate([graph.edges, np.zeros((extra,) + graph.edges.shape[1:], graph.edges.dtype)])
    return graph._replace(senders=np.concatenate([graph.senders, pad_node]),
                          receivers=np.concatenate([graph.receivers, pad_node]), edges=edges, n_edge=counts)


def _graph_block(n_slots: int, axis_name: str | None):
    """``(start, size)`` of this device's block of the ``n_slots - 1`` real graph slots."""
    if axis_name is None:
        return 0, n_slots - 1
    size = (n_slots - 1) // lax.axis_size(axis_name)
    return lax.axis_index(axis_name) * size, size


def owned_graphs(y: jax.Array, graph: jraph.GraphsTuple, owned: jax.Array | None, axis_name: str | None):
    """This device's graph rows of ``y [n_graph, ...]`` and their validity: with a plain batch
    (``owned is None``) all rows and the real-graph mask; with a :class:`Partitioned` one the
    device's block of slots (the rows the other devices hold are theirs to contribute)."""
    if owned is None:
        return y, G.graph_mask(graph)
    start, size = _graph_block(y.shape[0], axis_name)
    return lax.dynamic_slice_in_dim(y, start, size), lax.dynamic_slice_in_dim(owned, start, size)


def all_graphs(y: jax.Array, graph: jraph.GraphsTuple, owned: jax.Array | None, axis_name: str | None):
    """Every device's graph rows ``[n_graph, ...]`` (the batch's, in slot order), rows of padding
    and empty slots zero: each device zeroes the slots it does not hold and a ``psum`` adds them up
    (a plain batch, ``owned is None``, is whole on every device: no ``psum``)."""
    valid = G.graph_mask(graph) if owned is None else owned
    mine = jnp.where(valid.reshape(valid.shape + (1,) * (y.ndim - 1)), y, 0.0)
    return mine if owned is None else psum(mine, axis_name)
