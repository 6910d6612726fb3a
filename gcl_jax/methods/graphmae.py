"""GraphMAE (Hou et al. 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders", KDD 2022).

Node-level masked feature reconstruction: a random ``mask_rate`` of the nodes get a learnable
[MASK] token as features (a ``replace_rate`` share of them the features of random nodes
instead); a GAT encoder embeds the masked graph; a bias-free linear map, then *re-masking* (the
masked nodes' hidden states set to 0) feed a one-layer GAT decoder that reconstructs the input
features; the loss is the scaled cosine error on the masked nodes only. Embeddings for evaluation
are the encoder outputs of the unmasked graph. Defaults: the official configs.yml entry "cora"
(github.com/THUDM/GraphMAE), initialized as its PyTorch code (``torch_init``). On Cora (seeds 0-2)
that lifts our probe from 83.07 +- 0.05 (PyG's Glorot) to 83.37 +- 0.17, and GraphMAE's own probe
to 84.0 (83.1 with Glorot, seed 0; paper 84.2): ``experiments/RESULTS.md``.

Sharded (``--devices N``): every device masks (same key) and encodes the whole graph, then scores
only its own rows; the error's mean over the masked nodes is psum-ed
(``losses.scaled_cosine_error`` with ``axis_name``).
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.nn import GraphEncoder
from gcl_jax.nn.layers import dense_init
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: masked rows split across devices, error mean psum-ed

DEFAULTS = {
    "epochs": 1500,
    "lr": 1e-3,
    "weight_decay": 2e-4,
    "schedule": "cosine",
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        "hidden": 512,
        "heads": 4,
        "layers": 2,
        "activation": "prelu",
        "in_drop": 0.2,
        "attn_drop": 0.1,
        "mask_rate": 0.5,
        "replace_rate": 0.05,
        "alpha": 3.0,
        "torch_init": True,
    },
    "eval": {"protocol": "planetoid"},
}


def masked_reconstruction(
    key: jax.Array,
    graph: G.GraphsTuple,
    token: jax.Array,
    encode: Callable,
    to_decoder: Callable,
    decode: Callable,
    *,
    mask_rate: float,
    replace_rate: float,
    alpha: float,
    padded: bool = False,
    owned: jax.Array | None = None,
    axis_name: str | None = None,
    mask_nodes: Callable | None = None,
):
    """GraphMAE's objective, shared by the node- and graph-level variants.

    ``encode(graph, key)``, ``decode(graph, key)`` and ``to_decoder(h)`` are the method's networks
    (closures over their parameters); ``mask_nodes(key, graph, token, mask_rate, replace_rate) ->
    (masked graph, mask)`` picks the nodes (default ``augment.mask_nodes`` over ``graph``'s real
    nodes). Returns ``(loss, (reconstruction [N, F], mask [N]))``.
    With ``axis_name`` (inside ``shard_map``) the error is scored on this device's rows only and
    averaged over all devices: its block of a replicated graph's rows, or the rows ``owned`` marks
    when the device's graph is its own (``parallel.owned_rows``).
    """
    mask_nodes = mask_nodes or functools.partial(augment.mask_nodes, padded=padded)
    k_mask, k_enc, k_dec = jax.random.split(key, 3)
    masked, mask = mask_nodes(k_mask, graph, token, mask_rate, replace_rate)
    hidden = augment.remask(to_decoder(encode(masked, k_enc)), mask)
    recon = decode(graph._replace(nodes=hidden), k_dec)
    (x, valid), (x_rec, _), (scored, _) = (parallel.owned_rows(a, owned, axis_name) for a in (graph.nodes, recon, mask))
    scored = scored if valid is None else scored & valid
    loss = losses.scaled_cosine_error(x, x_rec, alpha=alpha, valid=scored, axis_name=axis_name)
    return loss, (recon, mask)


def networks(model: dict, in_dim: int):
    """``(encoder, to_decoder, decoder)``: GraphMAE's GAT encoder (``hidden`` split over ``heads``,
    heads concatenated, activation after every layer), the bias-free ``encoder_to_decoder`` map,
    and the one-layer, one-head GAT decoder back to ``in_dim`` features (no activation; the
    official ``num_out_heads`` default 1). ``torch_init`` initializes them as the official PyTorch
    code does: GAT weights and attention vectors xavier-normal with gain sqrt(2) (its gat.py), the
    map as ``torch.nn.Linear``; otherwise PyG's GATConv initialization and flax's Dense."""
    gat = dict(activation=model["activation"], dropout=model["in_drop"], attention_dropout=model["attn_drop"],
               gat_initializer="xavier_normal_relu" if model["torch_init"] else "glorot")
    encoder = GraphEncoder("gat", (model["hidden"],) * model["layers"], heads=model["heads"], **gat)
    decoder = GraphEncoder("gat", (in_dim,), heads=1, activate_last=False, **gat)
    return encoder, encoder_to_decoder(model), decoder


def encoder_to_decoder(model: dict) -> nn.Dense:
    """The bias-free map from encoder to decoder hidden states, initialized as ``torch.nn.Linear``
    with ``torch_init`` (the official code), else as flax's Dense."""
    init = dense_init("torch", model["hidden"]) if model["torch_init"] else {}
    return nn.Dense(model["hidden"], use_bias=False, **init)


def build(model: dict, sample) -> Method:
    in_dim = sample.nodes.shape[-1]
    encoder, to_decoder, decoder = networks(model, in_dim)
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        k_enc, k_map, k_dec = jax.random.split(key, 3)
        enc_vars = encoder.init(k_enc, graph, train=False)
        h = encoder.apply(enc_vars, graph, train=False)
        params = {
            "encoder": enc_vars,
            "to_decoder": to_decoder.init(k_map, h),
            "decoder": decoder.init(k_dec, graph._replace(nodes=h), train=False),
            "mask_token": jnp.zeros((in_dim,), jnp.float32),  # torch.zeros(1, in_dim) in the official code
        }
        return params, {}

    def reconstruct(params, key, graph, owned=None):
        return masked_reconstruction(
            key, graph, params["mask_token"],
            lambda g, k: encoder.apply(params["encoder"], g, train=True, rngs={"dropout": k}),
            lambda h: to_decoder.apply(params["to_decoder"], h),
            lambda g, k: decoder.apply(params["decoder"], g, train=True, rngs={"dropout": k}),
            mask_rate=model["mask_rate"], replace_rate=model["replace_rate"], alpha=model["alpha"],
            owned=owned, axis_name=axis_name,
        )

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        value, (_, mask) = reconstruct(params, key, graph, owned)
        return value, (state, {"masked": jnp.sum(mask)})

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(init, loss, embed)
