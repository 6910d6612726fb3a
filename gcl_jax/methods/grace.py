"""GRACE (Zhu et al. 2020, "Deep Graph Contrastive Representation Learning", arXiv:2006.04131).

Two views by edge dropping and feature-column masking; a shared GCN encoder and a two-layer
ELU projection head; InfoNCE with inter- and intra-view negatives, both directions averaged
(``losses.info_nce`` with its defaults). Embeddings for evaluation are the encoder outputs.
Defaults are the official config.yaml's Cora entry (github.com/CRIPAC-DIG/GRACE).

``model.block_size`` is ``"auto"`` by default: 256-tiles on a CPU, 4096 on an accelerator
(:func:`gcl_jax.losses.tile_size`). The blockwise InfoNCE forms the inter-view similarity block
once and the symmetric intra-view ones by halves, where the dense path (``block_size = 0``, the
reference) differentiates four N x N blocks; same loss up to summation order, and its forward and
backward pass take 2.1x less time on Cora on one core (``benchmarks/profile_step.py``).

``model.pot_kappa`` > 0 switches on POT (Yu et al., NeurIPS 2023, "Provable Training for Graph
Contrastive Learning"; github.com/VoidHaruhi/POT-GCL): the loss becomes
``(1 - kappa) * InfoNCE + kappa * POT`` (the official GRACE/train.py mix), POT being the BCE (target
1) of each node's certified compactness lower bound under its view's edge-drop budget
(:mod:`gcl_jax.nn.bounds`), averaged over both views. It needs the two-layer GCN encoder and the
whole graph on one device. Off (0) by default; GCA, built on :func:`build_with_drop_rates`, takes
the same key.

``model.compute_dtype = "bfloat16"`` is mixed precision: parameters stay float32 (and so do the
optimizer's updates), the encoder and head run on bf16 copies of them and of the view, and
``info_nce`` takes the bf16 embeddings with float32 accumulation. The activations kept for the
backward pass and the loss's travelling columns shrink: a sharded GRACE step on 1M nodes over 8
devices needs 1.81 GiB per device instead of 2.18 (``benchmarks/scale.py --compute-dtype bfloat16``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import augment, losses, parallel
from gcl_jax.nn import MLP, GraphEncoder, bounds, cast_floating
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
        "head_init": "torch",  # torch.nn.Linear's default init, as the official GRACE/GCA projection heads
        "block_size": "auto",  # blockwise InfoNCE: the same loss by tiles; 256 on a CPU, 4096 on an accelerator
        "pot_kappa": 0.0,  # > 0: POT's compactness regularizer mixed in with this weight
        "compute_dtype": "float32",  # "bfloat16": encoder, head and loss inputs in bf16 (f32 parameters)
    },
    "eval": {"protocol": "planetoid"},
    "partition": {"parts": 0, "halo": 0},  # parts > 0: cluster mini-batches (gcl_jax.partition)
}


def encoder_widths(hidden: int, layers: int) -> tuple[int, ...]:
    """GRACE's encoder: ``layers - 1`` GCN layers of width ``2 * hidden``, then one of ``hidden``."""
    return (2 * hidden,) * (layers - 1) + (hidden,)


def pot_loss(encoder_vars, activation: str, graph, budgets, embeddings) -> jax.Array:
    """POT's regularizer: BCE-with-logits against target 1 of every node's compactness lower bound,
    averaged over nodes and views. View ``k``'s bound ranges over its own drop ``budgets[k]`` and
    scores against the other view's encoder outputs ``embeddings[1 - k]``; ``graph`` is un-augmented."""
    weights, slopes = bounds.gcn_weights(encoder_vars), bounds.activation_slopes(encoder_vars, activation)
    terms = []
    for budget, other in zip(budgets, embeddings[::-1]):
        edges = bounds.adjacency_bounds(graph, budget)
        lower = bounds.compactness_lower_bound(edges, graph.nodes, weights, slopes, bounds.compactness_weights(other))
        terms.append(jnp.mean(jax.nn.softplus(-lower)))
    return sum(terms) / len(terms)


def projection_head(model: dict) -> MLP:
    """GRACE's projection head ``Linear -> ELU -> Linear`` (widths ``proj_hidden``, ``hidden``),
    initialized as ``model["head_init"]`` says (:func:`gcl_jax.nn.dense_init`)."""
    return MLP((model["proj_hidden"], model["hidden"]), activation="elu", initializer=model["head_init"])


def build(model: dict, sample) -> Method:
    """GRACE with uniform drop rates ``model["drop_edge"]`` / ``model["drop_feature"]`` per view."""
    return build_with_drop_rates(model, model["drop_edge"], model["drop_feature"])


def build_with_drop_rates(model: dict, edge_p, feature_p, schedule=None) -> Method:
    """The GRACE model with per-view drop rates: scalars (GRACE) or per-edge ``[E]`` and per-feature
    ``[F]`` probabilities (GCA's adaptive augmentation). ``schedule(epoch) -> (keywords, metrics)``
    adds epoch-dependent ``info_nce`` keywords (CSGCL's team-up bonus); the method then counts
    epochs (from 1) in its state, so a resumed run continues the schedule."""
    encoder = GraphEncoder("gcn", encoder_widths(model["hidden"], model["layers"]), activation=model["activation"])
    projector = projection_head(model)
    block_size = losses.tile_size(model["block_size"])
    axis_name = model.get("axis_name")  # set by the runner for multi-device training
    kappa = float(model.get("pot_kappa", 0.0))
    compute_dtype = model.get("compute_dtype", "float32")
    if compute_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"model.compute_dtype: expected 'float32' or 'bfloat16', got {compute_dtype!r}")
    if not 0.0 <= kappa <= 1.0:
        raise ValueError(f"model.pot_kappa: expected a weight in [0, 1], got {kappa}")
    if kappa and (axis_name is not None or model["layers"] != 2):
        raise ValueError("model.pot_kappa: POT bounds a two-layer GCN on one device (model.layers = 2, no --devices)")

    def view(key, graph, index):
        return augment.drop_edges_mask_features(key, graph, edge_p[index], feature_p[index])

    def init(key, batch):
        graph, _ = parallel.local_graph(batch)
        k_enc, k_proj = jax.random.split(key)
        enc_vars = encoder.init(k_enc, graph, train=False)
        h = encoder.apply(enc_vars, graph, train=False)
        state = {"epoch": jnp.zeros((), jnp.int32)} if schedule else {}
        return {"encoder": enc_vars, "projector": projector.init(k_proj, h)}, state

    def encode(params, key, graph, index):
        k_view, k_act = jax.random.split(key)  # k_act: RReLU's random slopes (GCA's Amazon configs)
        enc_vars, graph = cast_floating((params["encoder"], view(k_view, graph, index)), compute_dtype)
        return encoder.apply(enc_vars, graph, train=True, rngs={"dropout": k_act})

    def loss(params, state, key, batch):
        graph, owned = parallel.local_graph(batch)
        h1, h2 = (encode(params, k, graph, i) for i, k in enumerate(jax.random.split(key, 2)))
        proj_vars = cast_floating(params["projector"], compute_dtype)
        (z1, valid), (z2, _) = (parallel.owned_rows(projector.apply(proj_vars, h), owned, axis_name) for h in (h1, h2))
        if schedule:
            state = {"epoch": state["epoch"] + 1}
        options, metrics = schedule(state["epoch"]) if schedule else ({}, {})
        value = losses.info_nce(z1, z2, temperature=model["tau"], block_size=block_size, axis_name=axis_name, valid=valid,
                                **options)
        if not kappa:
            return value, (state, metrics)
        if owned is not None:
            raise ValueError("model.pot_kappa: POT needs the whole graph; remove the [partition] table")
        budgets = [bounds.drop_budget(graph, p) for p in edge_p]
        regularizer = pot_loss(params["encoder"], model["activation"], graph, budgets, (h1, h2))
        return (1.0 - kappa) * value + kappa * regularizer, (state, {**metrics, "info_nce": value, "pot": regularizer})

    def embed(params, state, graph):
        return encoder.apply(params["encoder"], graph, train=False)

    return Method(init, loss, embed)
