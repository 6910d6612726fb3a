"""DCCF (Ren, Xia, Zhao, Yin, Huang, Xia, SIGIR 2023, "Disentangled Contrastive Collaborative
Filtering"), as its official code computes it (github.com/HKUDS/DCCF, model.py).

Users and items are free embeddings (one ``[users + items, d]`` table, users first) over the
bipartite training graph of :mod:`gcl_jax.methods.lightgcn` (same batch, BPR triples and loss). Each
of the ``layers`` layers maps ``E`` to ``E + Z + R + Z' + R'`` with four views of ``E``:

- ``Z = D^-1/2 A D^-1/2 E``: LightGCN's graph propagation (local collaborative view);
- ``R``: intent-aware aggregation over ``K`` global intent prototypes, ``softmax(E_u C_u) C_u^T`` for
  users and ``softmax(E_i C_i) C_i^T`` for items (``C`` a learned ``[d, K]`` matrix per side);
- ``Z'`` and ``R'``: ``E`` propagated over learned masks of the interaction graph (adaptive
  augmentation): edge ``(h, t)`` weighs ``alpha = (cos(v_h, v_t) + 1) / 2`` with ``v`` the layer's
  ``Z`` (for ``Z'``) or ``R`` (for ``R'``), divided by the sum of ``alpha`` over ``h``'s edges.

The final embedding is the sum of the layers ``E^0 + ... + E^L``. Training is LightGCN's
recommender (``lightgcn.build_recommender``, with DCCF's layers as its propagation hook): BPR on the
final embeddings plus ``emb_reg`` times the summed squared norms of the triples' layer-0 embeddings
(the official code sums, not averages; LightGCN's ``reg`` with ``reg = 2 * batch_size * emb_reg``).
DCCF adds ``intent_reg (|C_u|^2 + |C_i|^2)`` and ``lambda_contrast`` times, summed over layers,
InfoNCE between ``Z`` (anchors) and each of ``R``, ``Z'``, ``R'``, for users and for items: cosine
similarity over ``tau``, negatives the other view's rows, computed over the distinct users and
distinct positive items of the step's BPR triples (the official ``torch.unique``; here a
static-shape ``valid`` mask over the sorted ids) with ``losses.info_nce`` (blockwise when
``block_size`` > 0). ``contrast_sample`` > 0 takes those rows from the first ``contrast_sample``
triples only (a CPU budget option; the triples are random, so this is a random subset).

Defaults are the official utility/parser.py: d = 32, 2 layers, K = 128 intents, lr 0.001,
emb_reg 2.5e-5, cen_reg (``intent_reg``) 5e-3, ssl_reg (``lambda_contrast``) 0.1, temperature 1,
10240 triples per step and 40 steps per epoch (100 epochs = 4000 steps); Xavier-normal
initialization; triples drawn as utility/load_data.py draws them (``sampler = "users"``: a user
uniformly, then one of their items). ``epochs`` counts optimizer steps. On LastFM the official
ssl_reg 0.1 lets the contrast swamp BPR and ranking stays at item-popularity level; the packaged
configs use 0.01, chosen on validation (configs/dccf/lastfm.toml).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import graph as G
from gcl_jax import losses
from gcl_jax.methods import lightgcn
from gcl_jax.nn import propagate
from gcl_jax.train import Method

LEVEL = "node"

#: The runner's hook: LightGCN's interaction batch (normalized graph, training pairs, sizes).
dataset_batch = lightgcn.dataset_batch

DEFAULTS = {
    "epochs": 4000,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "checkpoint_every": 500,
    "model": {
        "dim": 32,
        "layers": 2,
        "intents": 128,
        "batch_size": 10240,
        "emb_reg": 2.5e-5,
        "intent_reg": 5e-3,
        "lambda_contrast": 0.1,
        "tau": 1.0,
        "contrast_sample": 0,
        "block_size": 1024,
        "sampler": "users",
    },
    "eval": {"protocol": "ranking", "k": 20},
}

def intent_aware(x: jax.Array, prototypes: jax.Array) -> jax.Array:
    """Each row re-expressed over the ``[d, K]`` intent prototypes: ``softmax(x C) C^T``."""
    return jax.nn.softmax(x @ prototypes, axis=-1) @ prototypes.T


def intent_view(params: dict, x: jax.Array, num_users: int) -> jax.Array:
    """The intent-aware view of ``x``: users over the user intents, items over the item intents."""
    return jnp.concatenate([
        intent_aware(x[:num_users], params["user_intents"]),
        intent_aware(x[num_users:], params["item_intents"]),
    ])


def adaptive_mask(graph, v: jax.Array) -> jax.Array:
    """Per-edge weights of the learned interaction mask: ``alpha_e = (cos(v_s, v_r) + 1) / 2``, each
    divided by the sum of ``alpha`` over the edges into the same receiver (rows of the mask sum to 1)."""
    unit = v / jnp.maximum(jnp.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    alpha = (jnp.sum(unit[graph.senders] * unit[graph.receivers], axis=1) + 1.0) / 2.0
    alpha = jnp.where(G.edge_mask(graph), alpha, 0.0)  # a masked (absent) edge carries nothing
    total = jax.ops.segment_sum(alpha, graph.receivers, num_segments=v.shape[0])
    return alpha / jnp.where(total > 0, total, 1.0)[graph.receivers]


def dccf_layer(params: dict, graph, x: jax.Array, num_users: int) -> tuple[jax.Array, tuple]:
    """One DCCF layer: the next embeddings and the four views ``(Z, R, Z', R')`` of ``x``."""
    local = propagate(graph, x)
    intents = intent_view(params, x, num_users)
    local_masked = propagate(graph, x, adaptive_mask(graph, local))
    intent_masked = propagate(graph, x, adaptive_mask(graph, intents))
    views = (local, intents, local_masked, intent_masked)
    return x + sum(views), views


def dccf_layers(params: dict, graph, layers: int, num_users: int) -> tuple[list[jax.Array], list[tuple]]:
    """``[E^0, ..., E^L]`` and each layer's views."""
    out, views = [params["embedding"]], []
    for _ in range(layers):
        x, layer_views = dccf_layer(params, graph, out[-1], num_users)
        out.append(x)
        views.append(layer_views)
    return out, views


def distinct_rows(ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``ids`` sorted, with a mask of each value's first occurrence: ``torch.unique`` at a static shape."""
    ordered = jnp.sort(ids)
    return ordered, jnp.concatenate([jnp.ones(1, bool), ordered[1:] != ordered[:-1]])


def view_contrast(views: tuple, rows: jax.Array, valid: jax.Array, model: dict) -> jax.Array:
    """Sum over the intent, masked-local and masked-intent views of InfoNCE with the local view ``Z``
    as anchors, on ``rows`` (``valid`` marks the distinct ones)."""
    anchors, *others = (v[rows] for v in views)
    return sum(
        losses.info_nce(anchors, other, temperature=model["tau"], intra_view=False, symmetric=False,
                        valid=valid, block_size=losses.tile_size(model["block_size"]))
        for other in others
    )


def check(model: dict) -> None:
    """Reject config values the model cannot use, naming the field."""
    for field in ("dim", "layers", "intents", "batch_size"):
        if int(model[field]) < 1:
            raise ValueError(f"model.{field}: expected a positive integer, got {model[field]!r}")
    if not 0 <= int(model["contrast_sample"]) <= int(model["batch_size"]):
        raise ValueError(f"model.contrast_sample: expected 0 (all triples) to batch_size {model['batch_size']}, got {model['contrast_sample']!r}")
    if not model["tau"] > 0:
        raise ValueError(f"model.tau: expected a positive temperature, got {model['tau']!r}")


def recommender_config(model: dict) -> dict:
    """LightGCN's recommender settings for DCCF: Xavier-normal tables, layers summed, and the summed
    ``emb_reg * sum |e0|^2`` written as LightGCN's ``reg * sum |e0|^2 / (2 * batch_size)``."""
    return {**model, "init": "xavier_normal", "layer_combine": "sum", "reg": 2 * model["batch_size"] * model["emb_reg"]}


def build(model: dict, sample: dict) -> Method:
    """DCCF: LightGCN's recommender (BPR + L2) with DCCF's layers, intent prototypes and contrast."""
    check(model)
    num_users = int(sample["sizes"][0])
    contrasted = int(model["contrast_sample"]) or int(model["batch_size"])

    def intent_prototypes(key):
        k_user, k_item = jax.random.split(key)
        shape = (model["dim"], model["intents"])
        return {"user_intents": lightgcn.XAVIER_NORMAL(k_user, shape), "item_intents": lightgcn.XAVIER_NORMAL(k_item, shape)}

    def propagation(params, batch):
        return dccf_layers(params, batch["graph"], model["layers"], num_users)

    def contrast_and_intent_l2(params, key, forward, batch):
        users, positives, _ = forward.triples
        user_rows, user_valid = distinct_rows(users[:contrasted])
        item_rows, item_valid = distinct_rows(num_users + positives[:contrasted])
        contrast = sum(
            view_contrast(views, user_rows, user_valid, model) + view_contrast(views, item_rows, item_valid, model)
            for views in forward.aux
        )
        intent = jnp.sum(params["user_intents"] ** 2) + jnp.sum(params["item_intents"] ** 2)
        value = model["intent_reg"] * intent + model["lambda_contrast"] * contrast
        return value, {"contrast": contrast, "intent_l2": intent}

    return lightgcn.build_recommender(recommender_config(model), sample, contrast_and_intent_l2, propagation, intent_prototypes)
