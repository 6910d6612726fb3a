"""The stacked encoder builder: one module covering the encoders of the common GCL papers."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcl_jax import graph as G
from gcl_jax.nn.layers import Activation, GATConv, GCNConv, GINConv, Norm, SAGEConv, glorot

LAYERS = ("gcn", "gat", "gin", "sage", "mlp")


class GraphEncoder(nn.Module):
    """Stack of graph layers, each block ``dropout -> layer -> norm -> activation [-> + skip]``.

    - ``layer``: ``gcn`` | ``gat`` | ``gin`` | ``sage`` | ``mlp`` (graph-free baseline).
    - ``widths``: output width of every layer. For ``gat`` with ``gat_concat`` each of the
      ``heads`` gets ``width // heads`` features; otherwise heads are averaged.
    - ``activation``: ``relu`` | ``prelu`` | ``elu`` | ``rrelu`` | ... (see ``layers.ACTIVATIONS``);
      ``activate_last=False`` leaves the last layer linear (e.g. GraphMAE's decoder).
    - ``norm``: ``batch`` (masked: only ``node_mask`` rows make statistics) | ``layer`` | ``none``;
      ``norm_after_activation`` gives GraphCL / InfoGraph's ``BN(ReLU(GIN(x)))`` order;
      ``norm_axis_name`` (inside ``shard_map``) takes training-mode batch statistics over the rows
      of all devices on that mesh axis (graph-level data parallelism, see ``layers.Norm``).
    - ``dropout``: on each layer's input (Kipf & Welling, GAT); rng stream ``"dropout"``.
    - ``gat_initializer``: the GAT layers' initialization (``layers.GAT_INITS``);
      ``gin_initializer``: the GIN layers' MLPs' (``layers.DENSE_INITS``).
    - ``residual``: add the block input (projected by a bias-free Dense when widths differ).
    - ``concat_layers``: return all layers' outputs concatenated (InfoGraph, GraphCL).

    Call ``encoder.apply(vars, graph, train=..., node_mask=...)``. ``node_mask`` marks the rows
    batch norm may use (``graph.node_mask(g)`` for a padded graph, possibly ANDed with a
    node-dropping mask); ``None`` counts every node. Padding nodes are isolated, so they never
    influence real nodes' outputs. ``edge_features [E, D]`` reach GAT layers only.
    """

    layer: str = "gcn"
    widths: Sequence[int] = (512,)
    activation: str = "relu"
    norm: str = "none"
    dropout: float = 0.0
    residual: bool = False
    concat_layers: bool = False
    activate_last: bool = True
    norm_after_activation: bool = False
    heads: int = 1
    gat_concat: bool = True
    attention_dropout: float = 0.0
    gat_initializer: str = "glorot"
    gin_initializer: str = "glorot"
    learn_eps: bool = False
    norm_axis_name: str | None = None

    def _make_layer(self, width: int, index: int) -> nn.Module:
        name = f"{self.layer}_{index}"
        if self.layer == "gcn":
            return GCNConv(width, name=name)
        if self.layer == "gat":
            if self.gat_concat and width % self.heads:
                raise ValueError(f"widths: {width} is not divisible by heads={self.heads}")
            per_head = width // self.heads if self.gat_concat else width
            return GATConv(per_head, self.heads, self.gat_concat, attention_dropout=self.attention_dropout,
                           initializer=self.gat_initializer, name=name)
        if self.layer == "gin":
            return GINConv(width, learn_eps=self.learn_eps, norm_axis_name=self.norm_axis_name,
                           initializer=self.gin_initializer, name=name)
        if self.layer == "sage":
            return SAGEConv(width, name=name)
        if self.layer == "mlp":
            return nn.Dense(width, kernel_init=glorot, name=name)
        raise ValueError(f"layer: expected one of {LAYERS}, got {self.layer!r}")

    def _apply_layer(self, layer, graph, h, train, node_mask, edge_features):
        if self.layer == "mlp":
            return layer(h)
        if self.layer == "gat":
            return layer(graph, h, train=train, edge_features=edge_features)
        if self.layer == "gin":
            return layer(graph, h, train=train, node_mask=node_mask)
        return layer(graph, h, train=train)

    @nn.compact
    def __call__(
        self,
        graph: G.GraphsTuple,
        *,
        train: bool,
        node_mask: jax.Array | None = None,
        edge_features: jax.Array | None = None,
    ) -> jax.Array:
        if edge_features is not None and self.layer != "gat":
            raise ValueError(f"edge_features: only the 'gat' layer uses them, not {self.layer!r}")
        h = jnp.asarray(graph.nodes)
        outputs = []
        last = len(self.widths) - 1
        for i, width in enumerate(self.widths):
            skip = h
            if self.dropout:
                h = nn.Dropout(self.dropout)(h, deterministic=not train)
            h = self._apply_layer(self._make_layer(width, i), graph, h, train, node_mask, edge_features)
            if i < last or self.activate_last:
                norm = Norm(self.norm, self.norm_axis_name, name=f"norm_{i}")
                act = Activation(self.activation, name=f"act_{i}")
                if self.norm_after_activation:
                    h = norm(act(h, train=train), train=train, node_mask=node_mask)
                else:
                    h = act(norm(h, train=train, node_mask=node_mask), train=train)
            if self.residual:
                if skip.shape[-1] != h.shape[-1]:
                    skip = nn.Dense(h.shape[-1], use_bias=False, kernel_init=glorot, name=f"skip_{i}")(skip)
                h = h + skip
            outputs.append(h)
        return jnp.concatenate(outputs, axis=-1) if self.concat_layers else h
