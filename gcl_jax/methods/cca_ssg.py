"""CCA-SSG (Zhang et al., NeurIPS 2021, "From Canonical Correlation Analysis to Self-supervised
Graph Neural Networks").

Two views drawn with the same rates (edge dropping, feature-column masking); a shared GCN encoder
(``layers - 1`` ReLU layers of width ``hidden``, then a linear one of width ``out``; one layer is
just the linear GCN), no projector. The loss is ``losses.cca_ssg`` on the two outputs, which
standardizes every feature over the nodes (mean 0, unbiased std 1, scaled by 1/sqrt(N)) and adds
``lambda`` times the two views' decorrelation terms ``||I - Z^T Z||_F^2``.

``lambd`` is the official code's trade-off (README commands, ``--lambd``). That code's invariance
term is ``-trace(Z_A^T Z_B)``, and ``||Z_A - Z_B||_F^2 = 2 (N - 1) / N * d - 2 trace(Z_A^T Z_B)``
for standardized views, so the shared loss is called with ``lambda_ = 2 * lambd``: it then equals
twice the reference objective plus a constant (same minimizer; Adam is invariant to the scale).
Embeddings: the encoder's output on the whole graph. Defaults are the official Cora command
(github.com/hengruizhang98/CCA-SSG, README.md; main.py for the flags it leaves at their defaults).

Sharded (``--devices N``): every device encodes the whole graph and keeps its own rows; the loss
psums the per-feature statistics.
"""

from __future__ import annotations

import jax

from gcl_jax import augment, losses, parallel
from gcl_jax.nn import GraphEncoder
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: rows split across devices, batch statistics psum-ed

DEFAULTS = {
    "epochs": 50,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "normalize_features": True,
    "checkpoint_every": 10,
    "model": {
        "hidden": 512,
        "out": 512,
        "layers": 2,
        "activation": "relu",
        "drop_edge": 0.4,
        "drop_feature": 0.1,
        "lambd": 1e-3,
    },
    "eval": {"protocol": "planetoid"},
}


def encoder_widths(hidden: int, out: int, layers: int) -> tuple[int, ...]:
    return (hidden,) * (layers - 1) + (out,)


def build(model: dict, sample) -> Method:
    widths = encoder_widths(model["hidden"], model["out"], model["layers"])
    encoder = GraphEncoder("gcn", widths, activation=model["activation"], activate_last=False)
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def view(key, graph):
        return augment.drop_edges_mask_features(key, graph, model["drop_edge"], model["drop_feature"])

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        return {"encoder": encoder.init(key, graph, train=False)}, {}

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        k_a, k_b = jax.random.split(key)
        h_a = encoder.apply(params["encoder"], view(k_a, graph), train=True)
        h_b = encoder.apply(params["encoder"], view(k_b, graph), train=True)
        (h_a, valid), (h_b, _) = (parallel.owned_rows(h, owned, axis_name) for h in (h_a, h_b))
        value = losses.cca_ssg(h_a, h_b, lambda_=2.0 * model["lambd"], valid=valid, axis_name=axis_name)
        return value, (state, {})

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(jax.jit(init), loss, embed)
