"""GRACE (Zhu et al. 2020, "Deep Graph Contrastive Representation Learning", arXiv:2006.04131).

Two views by edge dropping and feature-column masking; a shared GCN encoder and a two-layer
ELU projection head; InfoNCE with inter- and intra-view negatives, both directions averaged
(``losses.info_nce`` with its defaults). Embeddings for evaluation are the encoder outputs.
Defaults are the official config.yaml's Cora entry (github.com/CRIPAC-DIG/GRACE).
"""

from __future__ import annotations

import jax

from gcl_jax import augment, losses, parallel
from gcl_jax.nn import MLP, GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: rows and negatives split across devices
PARTITIONED = True  # accepts cluster mini-batches: see DEFAULTS["partition"]

DEFAULTS = {
    "epochs": 200,
    "lr": 5e-4,
    "weight_decay": 1e-5,
    "normalize_features": True,
    "checkpoint_every": 50,
    "model": {
        "hidden": 128,
        "proj_hidden": 128,
        "layers": 2,
        "activation": "relu",
        "drop_edge": [0.2, 0.4],
        "drop_feature": [0.3, 0.4],
        "tau": 0.4,
        "block_size": 0,
    },
    "eval": {"protocol": "planetoid"},
    "partition": {"parts": 0, "halo": 0},  # parts > 0: cluster mini-batches (gcl_jax.partition)
}


def encoder_widths(hidden: int, layers: int) -> tuple[int, ...]:
    """GRACE's encoder: ``layers - 1`` GCN layers of width ``2 * hidden``, then one of ``hidden``."""
    return (2 * hidden,) * (layers - 1) + (hidden,)


def build(model: dict, sample) -> Method:
    """GRACE with uniform drop rates ``model["drop_edge"]`` / ``model["drop_feature"]`` per view."""
    return build_with_drop_rates(model, model["drop_edge"], model["drop_feature"])


def build_with_drop_rates(model: dict, edge_p, feature_p) -> Method:
    """The GRACE model with per-view drop rates: scalars (GRACE) or per-edge ``[E]`` and per-feature
    ``[F]`` probabilities (GCA's adaptive augmentation)."""
    encoder = GraphEncoder("gcn", encoder_widths(model["hidden"], model["layers"]), activation=model["activation"])
    projector = MLP((model["proj_hidden"], model["hidden"]), activation="elu")
    block_size = model["block_size"] or None
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def view(key, graph, index):
        k_edge, k_feat = jax.random.split(key)
        dropped = augment.drop_edges(k_edge, graph, edge_p[index])
        return augment.mask_features(k_feat, dropped, feature_p[index])

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        k_enc, k_proj = jax.random.split(key)
        enc_vars = encoder.init(k_enc, graph, train=False)
        h = encoder.apply(enc_vars, graph, train=False)
        return {"encoder": enc_vars, "projector": projector.init(k_proj, h)}, {}

    def project(params, key, batch, index):
        graph, owned = parallel.local_graph(batch)
        k_view, k_act = jax.random.split(key)  # k_act: RReLU's random slopes (GCA's Amazon configs)
        h = encoder.apply(params["encoder"], view(k_view, graph, index), train=True, rngs={"dropout": k_act})
        return parallel.owned_rows(projector.apply(params["projector"], h), owned, axis_name)

    def loss(params, state, key, batch):
        (z1, valid), (z2, _) = (project(params, k, batch, i) for i, k in enumerate(jax.random.split(key, 2)))
        value = losses.info_nce(z1, z2, temperature=model["tau"], block_size=block_size, axis_name=axis_name, valid=valid)
        return value, (state, {})

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(init, loss, embed)
