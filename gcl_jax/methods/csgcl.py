"""CSGCL (Chen et al., IJCAI 2023, "CSGCL: Community-Strength-Enhanced Graph Contrastive Learning").

GRACE's model (a shared GCN encoder, a two-layer ELU projection head, InfoNCE with inter- and
intra-view negatives) with community strength everywhere: Louvain communities of the training
graph and their strengths (modularity contributions) are computed once on the host in ``build``
(:mod:`gcl_jax.augment.communal`), and

* the two views drop edges by Communal Edge Dropping and feature columns by Communal Attribute
  Voting (per-edge / per-column probabilities fed to ``drop_edges`` / ``mask_features``);
* the loss is the team-up InfoNCE: each pair's cosine gains ``gamma_t (S_i + S_j)`` before the
  temperature (``losses.info_nce(team_up=gamma_t * S / tau)``), ``S`` the nodes' community
  strengths, with ``gamma_t = clip((t - team_up_start) / team_up_ramp, 0, team_up_max)`` at epoch
  ``t`` (1-based; counted in the method state): plain InfoNCE until ``team_up_start``.

Embeddings for evaluation are the encoder outputs. Defaults are the official train.py's
``default_param`` (github.com/HanChen-HUST/CSGCL): ``start_ep`` 500, ``beta`` (gamma's maximum) 1, the
ramp of 100 epochs per unit of gamma in src/model.py ``_team_up``, ``drop_edge_thresh`` and
``drop_feature_thresh`` 1. The official code detects communities with Leiden (cdlib); this one uses
networkx's Louvain (seeded by ``community_seed``), the other modularity optimizer the official code offers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax import augment, parallel
from gcl_jax.methods import grace
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # the whole graph on every device, the loss's rows and negatives split across them

DEFAULTS = {
    "epochs": 3000,
    "lr": 0.01,
    "weight_decay": 1e-5,
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        **grace.DEFAULTS["model"],  # GRACE's model keys (layers, tau, head_init, block_size, ...)
        "hidden": 256,
        "proj_hidden": 32,
        "activation": "prelu",
        "drop_edge": [0.3, 0.4],
        "drop_feature": [0.1, 0.0],
        "edge_threshold": 1.0,  # CED: edges are kept with probability at least 1 - edge_threshold
        "feature_threshold": 1.0,  # CAV: attribute drop probabilities are capped here
        "team_up_start": 500,  # epoch t0 after which gamma grows
        "team_up_ramp": 100,  # epochs per unit of gamma
        "team_up_max": 1.0,  # gamma's ceiling; 0 gives plain InfoNCE on the communal views
        "community_seed": 0,  # Louvain's seed
    },
    "eval": {"protocol": "random"},
}


def team_up_gamma(epoch, start: float, ramp: float, maximum: float) -> jax.Array:
    """The team-up weight at ``epoch`` (1-based): 0 until ``start``, then rising by 1 every
    ``ramp`` epochs up to ``maximum``."""
    return jnp.clip((jnp.asarray(epoch, jnp.float32) - start) / ramp, 0.0, maximum)


def communal_views(model: dict, sample):
    """Per-node community strengths ``[N]`` and the views' CED ``[E]`` and CAV ``[F]`` drop
    probabilities, from the Louvain communities of ``sample`` (host side)."""
    labels = augment.detect_communities(sample, model["community_seed"])
    per_community, strength = augment.community_strength(sample, labels)
    edge_p = [augment.communal_edge_weights(sample, labels, per_community, p, model["edge_threshold"]) for p in model["drop_edge"]]
    feature_p = [augment.communal_attribute_weights(sample.nodes, strength, p, model["feature_threshold"]) for p in model["drop_feature"]]
    return strength, edge_p, feature_p


def build(model: dict, sample) -> Method:
    """CSGCL on the training graph ``sample``: GRACE's parameters, communal views, team-up loss."""
    if model["team_up_ramp"] <= 0:
        raise ValueError(f"model.team_up_ramp: expected a positive number of epochs, got {model['team_up_ramp']}")
    strength, edge_p, feature_p = communal_views(model, sample)
    edge_p, feature_p = [jnp.asarray(p) for p in edge_p], [jnp.asarray(p) for p in feature_p]
    strength = jnp.asarray(strength)
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def schedule(epoch):
        gamma = team_up_gamma(epoch, model["team_up_start"], model["team_up_ramp"], model["team_up_max"])
        bonus, _ = parallel.local_rows(gamma * strength / model["tau"], axis_name)
        return {"team_up": bonus}, {"gamma": gamma}

    return grace.build_with_drop_rates(model, edge_p, feature_p, schedule)
