"""gCooL (Li, Jing, Tong, WWW 2022, "Graph Communal Contrastive Learning", arXiv:2110.14863).

GCA's model and adaptive augmentation (two views with per-edge / per-feature drop probabilities
from node centrality, a two-layer GCN encoder with an activation after each layer, a two-layer ELU
projection head) trained with an inter-view InfoNCE (no intra-view negatives) plus two community
terms over ``K`` learnable community centres:

- soft assignments ``R = softmax(u C^T / tau)`` of the projected, normalized embeddings ``u`` (taken
  through ``stop_gradient``) to the normalized centres ``C`` (``losses.community_assignments``);
- DeCA, dense community aggregation on each view's own (augmented) edges, which trains the centres
  (``losses.dense_community_aggregation``, weight ``lam`` on the inter-community density);
- ReSC, each node against the other view's community centroids under hard assignments
  ``argmax R``, negatives reweighted by ``exp(-gamma ||c_p - c_k||^2)``
  (``losses.reweighted_cross_contrast``).

At epoch ``t`` the loss is ``InfoNCE + alpha_t (beta_t DeCA + (1 - beta_t) ReSC)`` with
``beta_t = exp(-t / stride)`` (DeCA first, then ReSC) and ``alpha_t = max(0, 1 - t / (alpha_rate
stride))``: the community terms fade out and the rest of training is the InfoNCE alone
(:func:`community_weights`). The epoch is kept in ``state`` (set from the optimizer step by
``update_state``), so a resumed run continues the schedule. Embeddings for evaluation are the
encoder outputs.

Choices of the official code (github.com/lblaoke/gCooL, src/model.py and main.py) kept here: the
InfoNCE term is the one direction view 1 -> view 2 (its ``(loss12 + loss21) / 2`` uses ``s21 = s12``,
so both halves are equal; ``symmetric = true`` averages both directions instead); main.py builds the
model with its default cosine similarity, whose ReSC does not reweight (``gamma = 0`` reproduces
that); an empty community's centroid is zero. Defaults are the official param/amazon_photo.json.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from gcl_jax import augment, losses
from gcl_jax.methods import gca, grace
from gcl_jax.nn import GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 2900,
    "lr": 0.1,
    "weight_decay": 1e-5,
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        "encoder_hidden": 256,  # first GCN layer's width (official "hidden_layer")
        "hidden": 128,  # second GCN layer's width = embedding and projection output width ("num_hidden")
        "proj_hidden": 128,
        "activation": "relu",
        "drop_edge": [0.4, 0.4],
        "drop_feature": [0.1, 0.1],
        "centrality": "pagerank",
        "p_tau": 0.7,
        "feature_weights": "binary",
        "tau": 0.3,
        "head_init": "torch",  # torch.nn.Linear's default, as the official (GCA-based) projection head
        "communities": 8,
        "lam": 0.1,  # DeCA's weight on the inter-community density ("lamda")
        "gamma": 0.0,  # ReSC's reweighting: 0 = unit weights (the official cosine-similarity runs)
        "stride": 500,
        "alpha_rate": 0.2,
        "symmetric": False,  # InfoNCE from view 1 only, as the official code computes it
        "block_size": 0,
    },
    "eval": {"protocol": "random"},
}


def community_weights(epoch, stride: float, alpha_rate: float) -> tuple[jax.Array, jax.Array]:
    """The ``(DeCA, ReSC)`` weights at ``epoch``: ``alpha (beta, 1 - beta)`` with ``beta =
    exp(-epoch / stride)`` and ``alpha = max(0, 1 - epoch / (alpha_rate stride))``."""
    epoch = jnp.asarray(epoch, jnp.float32)
    alpha = jnp.maximum(0.0, 1.0 - epoch / (alpha_rate * stride))
    beta = jnp.exp(-epoch / stride)
    return alpha * beta, alpha * (1.0 - beta)


def _check(model: dict) -> None:
    """Reject settings the schedule or the community terms cannot use, naming the field."""
    if int(model["communities"]) < 2:
        raise ValueError(f"model.communities: expected at least 2 communities, got {model['communities']}")
    for field in ("stride", "alpha_rate", "tau"):
        if not float(model[field]) > 0:
            raise ValueError(f"model.{field}: expected a positive number, got {model[field]}")
    if float(model["gamma"]) < 0:
        raise ValueError(f"model.gamma: expected a non-negative reweighting scale, got {model['gamma']}")


def build(model: dict, sample) -> Method:
    """gCooL with GCA's adaptive drop probabilities computed from ``sample`` (host side, once)."""
    _check(model)
    edge_p, feat_p = gca.drop_probabilities(model, sample)
    views = [
        augment.compose(
            functools.partial(augment.drop_edges, p=jnp.asarray(e)),
            functools.partial(augment.mask_features, p=jnp.asarray(f)),
        )
        for e, f in zip(edge_p, feat_p)
    ]
    encoder = GraphEncoder("gcn", (model["encoder_hidden"], model["hidden"]), activation=model["activation"])
    projector = grace.projection_head(model)
    communities, tau = int(model["communities"]), float(model["tau"])
    block_size = losses.tile_size(model["block_size"])

    def init(key, graph):
        k_enc, k_proj, k_centre = jax.random.split(key, 3)
        enc_vars = encoder.init(k_enc, graph, train=False)
        h = encoder.apply(enc_vars, graph, train=False)
        params = {
            "encoder": enc_vars,
            "projector": projector.init(k_proj, h),
            "centers": jax.random.normal(k_centre, (communities, model["hidden"])),  # torch.randn in the official code
        }
        return params, {"epoch": jnp.zeros((), jnp.int32)}

    def project(params, key, graph, index):
        k_view, k_act = jax.random.split(key)  # k_act: RReLU's random slopes (the Computers config)
        view = views[index](k_view, graph)
        h = encoder.apply(params["encoder"], view, train=True, rngs={"dropout": k_act})
        return projector.apply(params["projector"], h), view

    def loss(params, state, key, graph):
        (z1, g1), (z2, g2) = (project(params, k, graph, i) for i, k in enumerate(jax.random.split(key, 2)))
        node = losses.info_nce(
            z1, z2, temperature=tau, intra_view=False, symmetric=model["symmetric"], block_size=block_size
        )
        r1, r2 = (
            losses.community_assignments(jax.lax.stop_gradient(z), params["centers"], temperature=tau) for z in (z1, z2)
        )
        deca = sum(
            losses.dense_community_aggregation(r, g.senders, g.receivers, edge_weights=g.edges, lam=model["lam"])
            for r, g in ((r1, g1), (r2, g2))
        ) / 2.0
        labels1, labels2 = jnp.argmax(r1, axis=1), jnp.argmax(r2, axis=1)
        resc = losses.reweighted_cross_contrast(
            z1, z2, labels1, labels2, communities, temperature=tau, gamma=model["gamma"]
        )
        w_deca, w_resc = community_weights(state["epoch"], model["stride"], model["alpha_rate"])
        value = node + w_deca * deca + w_resc * resc
        return value, (state, {"info_nce": node, "deca": deca, "resc": resc})

    def update_state(params, state, step):
        return {"epoch": jnp.asarray(step + 1, jnp.int32)}

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(init, loss, embed, update_state)
