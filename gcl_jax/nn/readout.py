"""Graph-level readouts: node embeddings ``[N, D]`` -> graph embeddings ``[G, D]``.

Padding nodes and graphs are ignored: a graph with no counted node (the padding graph) gets a
zero row. ``padded`` (default True: graph batches are padded for static shapes) says whether the
last graph is jraph padding; ``node_mask`` further restricts the counted nodes (e.g. the keep-mask
returned by node dropping).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from gcl_jax import graph as G
from gcl_jax.nn.ops import segment_reduce, segment_softmax

READOUTS = ("sum", "mean", "max")


def _counted(graph, padded, node_mask):
    mask = G.real_node_mask(graph, padded)
    return mask if node_mask is None else mask & node_mask


def readout(
    graph: G.GraphsTuple, h: jax.Array, kind: str = "sum", *, padded: bool = True, node_mask: jax.Array | None = None
) -> jax.Array:
    """Parameter-free ``sum`` | ``mean`` | ``max`` readout per graph (see the module doc)."""
    if kind not in READOUTS:
        hint = " (use the AttentionReadout module)" if kind == "attention" else ""
        raise ValueError(f"kind: expected one of {READOUTS}, got {kind!r}{hint}")
    ids = G.node_graph_ids(graph)
    return segment_reduce(h, ids, graph.n_node.shape[0], kind, _counted(graph, padded, node_mask))


class AttentionReadout(nn.Module):
    """Gated attention readout (Li et al. 2016, "global attention"): ``sum_i softmax_i(w . h_i) h_i``,
    the softmax taken over each graph's counted nodes."""

    @nn.compact
    def __call__(
        self, graph: G.GraphsTuple, h: jax.Array, *, padded: bool = True, node_mask: jax.Array | None = None
    ) -> jax.Array:
        ids = G.node_graph_ids(graph)
        n_graph = graph.n_node.shape[0]
        gate = nn.Dense(1, name="gate")(h)[:, 0]
        alpha = segment_softmax(gate, ids, n_graph, _counted(graph, padded, node_mask))
        return jax.ops.segment_sum(alpha[:, None] * h, ids, num_segments=n_graph)
