"""Graph Barlow Twins (Bielak et al., Knowledge-Based Systems 2022, "Graph Barlow Twins: A
self-supervised representation learning framework for graphs", arXiv:2106.02466).

Two views drawn with the same rates: edge dropping (``drop_edge``) and feature-column masking
(``drop_feature``). A shared two-layer GCN encoder, ``GCN(2d) -> batch norm -> PReLU -> GCN(d)``
(the last layer linear), no projector; ``losses.barlow_twins`` on the two views' embeddings
(per-feature standardization over the nodes, ``lambda = 1 / d`` unless ``lambda_`` > 0).
Optimizer (from the config): AdamW, linear warm-up then cosine decay. Embeddings: the encoder in
evaluation mode (batch-norm running statistics, kept in ``state``). Sharded (``--devices N``):
every device encodes the whole graph (so batch norm sees every node) and keeps its own rows; the
loss psums the per-feature statistics and the cross-correlation.
Defaults are the official Amazon-CS entry of experiments/configs/train_transductive.yaml
(github.com/pbielak/graph-barlow-twins) with gssl/transductive_model.py's fixed settings.
"""

from __future__ import annotations

import jax

from gcl_jax import augment, losses, parallel
from gcl_jax.nn import GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: rows split across devices, batch statistics psum-ed

DEFAULTS = {
    "epochs": 4000,
    "lr": 5e-4,
    "weight_decay": 1e-5,
    "decoupled_weight_decay": True,
    "schedule": "cosine",
    "warmup_steps": 400,
    "normalize_features": True,
    "checkpoint_every": 500,
    "model": {
        "emb_dim": 128,
        "layers": 2,
        "norm": "batch",
        "activation": "prelu",
        "drop_edge": 0.4,
        "drop_feature": 0.1,
        "lambda_": 0.0,
    },
    "eval": {"protocol": "random"},
}


def build(model: dict, sample) -> Method:
    d = model["emb_dim"]
    widths = (2 * d,) * (model["layers"] - 1) + (d,)
    encoder = GraphEncoder("gcn", widths, activation=model["activation"], norm=model["norm"], activate_last=False)
    lambda_ = model["lambda_"] or None  # 0 -> 1 / d (G-BT)
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def view(key, graph):
        return augment.drop_edges_mask_features(key, graph, model["drop_edge"], model["drop_feature"])

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        variables = encoder.init(key, graph, train=False)
        return {"encoder": variables["params"]}, {"batch_stats": variables.get("batch_stats", {})}

    def encode(params, stats, graph):
        if not stats:
            return encoder.apply({"params": params}, graph, train=True), stats
        h, updated = encoder.apply({"params": params, "batch_stats": stats}, graph, train=True, mutable=["batch_stats"])
        return h, updated["batch_stats"]

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        k_a, k_b = jax.random.split(key)
        z_a, stats = encode(params["encoder"], state["batch_stats"], view(k_a, graph))
        z_b, stats = encode(params["encoder"], stats, view(k_b, graph))
        (z_a, valid), (z_b, _) = (parallel.owned_rows(z, owned, axis_name) for z in (z_a, z_b))
        value = losses.barlow_twins(z_a, z_b, lambda_=lambda_, valid=valid, axis_name=axis_name)
        return value, ({"batch_stats": stats}, {})

    def embed(params, state, graph):
        variables = {"params": params["encoder"], **({"batch_stats": state["batch_stats"]} if state["batch_stats"] else {})}
        return encoder.apply(variables, graph, train=False)

    return Method(jax.jit(init), loss, embed)
