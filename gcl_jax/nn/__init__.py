"""Graph encoders (flax.linen) over ``jraph.GraphsTuple``: layers, the stacked builder, readouts,
and certified bounds of a two-layer GCN under edge dropping (``bounds``, POT)."""

from gcl_jax.nn import bounds
from gcl_jax.nn.encoder import LAYERS, GraphEncoder
from gcl_jax.nn.layers import (
    ACTIVATIONS,
    MLP,
    NORMS,
    Activation,
    GATConv,
    GCNConv,
    GINConv,
    Norm,
    SAGEConv,
    ShortcutMLP,
)
from gcl_jax.nn.ops import cast_floating, edge_sum, pairwise_tanh_sum, propagate, segment_reduce, segment_softmax
from gcl_jax.nn.readout import READOUTS, AttentionReadout, readout

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "MLP",
    "NORMS",
    "READOUTS",
    "Activation",
    "AttentionReadout",
    "GATConv",
    "GCNConv",
    "GINConv",
    "GraphEncoder",
    "Norm",
    "SAGEConv",
    "ShortcutMLP",
    "bounds",
    "cast_floating",
    "edge_sum",
    "pairwise_tanh_sum",
    "propagate",
    "readout",
    "segment_reduce",
    "segment_softmax",
]
