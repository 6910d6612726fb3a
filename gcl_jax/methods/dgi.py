"""DGI (Velickovic et al. 2019, "Deep Graph Infomax", ICLR; arXiv:1809.10341).

A one-layer GCN encoder (PReLU) embeds the graph and a corrupted copy whose feature rows are
shuffled among the nodes (``augment.shuffle_nodes``; the edges stay). The summary is
``sigmoid(mean_i h_i)`` per graph; a bilinear discriminator ``D(h, s) = h^T W s + b`` scores
real nodes against the summary (positives) and corrupted nodes against it (negatives).

Loss: the official code's ``BCEWithLogitsLoss`` over the ``2N`` logits ``[pos, neg]`` with labels
``[1, 0]``, i.e. ``(1/2N) (sum softplus(-pos) + sum softplus(neg))``. ``losses.jsd`` returns
``mean softplus(-pos) + mean softplus(neg)``, exactly twice that (equal counts), so the loss is
``0.5 * losses.jsd``: the same value the official script prints (not merely the same up to a
constant). The loss is O(N), there is no N x N term, hence no ``block_size``.

Sharded (``--devices N``): every device encodes the whole graph and its corruption, keeps its own
rows (``parallel.owned_rows``), and the summary is the mean over all devices' rows (psum of sums
and counts, :func:`global_summary`), so each device's scores and the loss equal the one-device ones.

Embeddings: the encoder outputs on the clean graph. Defaults: the official execute.py
(github.com/PetarV-/DGI): 512 units, PReLU, lr 0.001, no weight decay, no dropout, row-normalized
features; its early stopping is the runner's ``patience`` (20 on the training loss, best-loss weights
restored), on in the Cora config; the others train a fixed epoch count (see each config).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.parallel import as_valid, global_mean, psum
from gcl_jax.nn import GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: rows, summary and loss reduced across devices

DEFAULTS = {
    "epochs": 300,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        "hidden": 512,
        "layers": 1,
        "activation": "prelu",
        "dropout": 0.0,
    },
    "eval": {"protocol": "planetoid"},
}


def bilinear_init(key, shape, dtype=jnp.float32):
    """torch ``xavier_uniform_`` on ``nn.Bilinear(d, d, 1)``'s ``[1, d, d]`` weight (DGI's init):
    fan_in = d * d, fan_out = d, bound ``sqrt(6 / (d^2 + d))``."""
    d = shape[0]
    bound = (6.0 / (d * d + d)) ** 0.5
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class Bilinear(nn.Module):
    """DGI's discriminator ``D(h_i, s_i) = h_i^T W s_i + b``: ``h [N, D]``, ``s [N, D]`` -> ``[N]``."""

    @nn.compact
    def __call__(self, h: jax.Array, s: jax.Array) -> jax.Array:
        d = h.shape[-1]
        w = self.param("kernel", bilinear_init, (d, d))
        b = self.param("bias", nn.initializers.zeros, ())
        return jnp.einsum("nd,de,ne->n", h, w, s) + b


def summary(graph: G.GraphsTuple, h: jax.Array) -> jax.Array:
    """``sigmoid(mean of h)`` per graph, broadcast back to every node ``[N, D]``."""
    return global_summary(h, G.node_graph_ids(graph), graph.n_node.shape[0])


def global_summary(h: jax.Array, graph_ids: jax.Array, num_graphs: int, *, valid=None, axis_name=None) -> jax.Array:
    """``sigmoid(mean of h)`` per graph over the ``valid`` rows of every device on ``axis_name``
    (per-graph sums and counts psum-ed), broadcast back to this device's rows ``[n, D]``.

    ``graph_ids [n]``: the graph of each local row; rows of all devices together make the graphs."""
    valid = as_valid(valid, h.shape[0])
    sums = psum(jax.ops.segment_sum(jnp.where(valid[:, None], h, 0.0), graph_ids, num_segments=num_graphs), axis_name)
    counts = psum(jax.ops.segment_sum(valid.astype(h.dtype), graph_ids, num_segments=num_graphs), axis_name)
    return jax.nn.sigmoid(sums / jnp.maximum(counts, 1.0)[:, None])[graph_ids]


def build(model: dict, sample) -> Method:
    encoder = GraphEncoder(
        "gcn", (model["hidden"],) * model["layers"], activation=model["activation"], dropout=model["dropout"]
    )
    discriminator = Bilinear()
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        k_enc, k_disc = jax.random.split(key)
        enc_vars = encoder.init(k_enc, graph, train=False)
        h = encoder.apply(enc_vars, graph, train=False)
        return {"encoder": enc_vars, "discriminator": discriminator.init(k_disc, h, h)}, {}

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        k_shuffle, k_drop1, k_drop2 = jax.random.split(key, 3)
        corrupted = augment.shuffle_nodes(k_shuffle, graph)
        h = encoder.apply(params["encoder"], graph, train=True, rngs={"dropout": k_drop1})
        h_neg = encoder.apply(params["encoder"], corrupted, train=True, rngs={"dropout": k_drop2})
        (h, valid), (h_neg, _), (ids, _) = (
            parallel.owned_rows(x, owned, axis_name) for x in (h, h_neg, G.node_graph_ids(graph))
        )
        valid = as_valid(valid, h.shape[0])
        s = global_summary(h, ids, graph.n_node.shape[0], valid=valid, axis_name=axis_name)
        pos = discriminator.apply(params["discriminator"], h, s)
        neg = discriminator.apply(params["discriminator"], h_neg, s)
        # == BCEWithLogits over [pos, neg] vs [1, 0]
        value = 0.5 * losses.jsd(pos, neg, pos_valid=valid, neg_valid=valid, axis_name=axis_name)
        metrics = {"pos_score": global_mean(pos, valid, axis_name), "neg_score": global_mean(neg, valid, axis_name)}
        return value, (state, metrics)

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(init, loss, embed)
