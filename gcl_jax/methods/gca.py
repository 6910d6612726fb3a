"""GCA (Zhu et al., WWW 2021, "Graph Contrastive Learning with Adaptive Augmentation").

GRACE with adaptive augmentation: each edge and each feature column gets its own drop
probability, lower for the important ones by node centrality (``centrality``: degree, pagerank or
eigenvector; GCA-DE / -PR / -EV; scored ``log(centrality + score_offset)``, 1 as in the official
code), capped at ``p_tau`` = 0.7 and averaging the view's nominal rate.
The probabilities are computed once on the host in ``build`` from the sample graph
(``augment.gca_edge_weights`` / ``gca_feature_weights``) and fed to the jit-able ``drop_edges`` /
``mask_features``. The rest is GRACE: a shared GCN encoder (``layers - 1`` layers of width
``2 * hidden``, then ``hidden``, activation after every layer), a two-layer ELU projection head,
``losses.info_nce`` with inter- and intra-view negatives (``block_size`` > 0 runs it blockwise).

Feature weights use the features' nonzero pattern (``feature_weights = "binary"``, the official
``feature_drop_weights`` used for every dataset but WikiCS) or their absolute values (``"dense"``).
Defaults are the official param/amazon_computers.json with train.py's defaults for the keys it
does not set (github.com/CRIPAC-DIG/GCA).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gcl_jax import augment
from gcl_jax.methods import grace
from gcl_jax.methods.grace import build_with_drop_rates
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # GRACE's model: rows and negatives split across devices

DEFAULTS = {
    "epochs": 2000,
    "lr": 0.01,
    "weight_decay": 1e-5,
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        **grace.DEFAULTS["model"],  # the same model keys (block_size, pot_kappa, compute_dtype, ...)
        "activation": "rrelu",
        "drop_edge": [0.6, 0.3],
        "drop_feature": [0.2, 0.3],
        "tau": 0.2,
        "centrality": "degree",
        "p_tau": 0.7,
        "feature_weights": "binary",
        "score_offset": 1.0,  # log(centrality + 1), the official pGRACE/functional.py's scores
    },
    "eval": {"protocol": "random"},
}


def drop_probabilities(model: dict, graph) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-view ``[E]`` edge and ``[F]`` feature drop probabilities (host side, numpy)."""
    centrality, p_tau = model["centrality"], model["p_tau"]
    offset = float(model.get("score_offset", 0.0))  # gCooL builds on this without the key: its code's log(c)
    if model["feature_weights"] == "binary":
        features = graph._replace(nodes=(np.asarray(graph.nodes) != 0).astype(np.float32))
    elif model["feature_weights"] == "dense":
        features = graph
    else:
        raise ValueError(f"model.feature_weights: expected 'binary' or 'dense', got {model['feature_weights']!r}")
    edges = [augment.gca_edge_weights(graph, centrality, p=p, p_tau=p_tau, offset=offset) for p in model["drop_edge"]]
    feats = [augment.gca_feature_weights(features, centrality, p=p, p_tau=p_tau, offset=offset)
             for p in model["drop_feature"]]
    return edges, feats


def build(model: dict, sample) -> Method:
    """GRACE's model with the adaptive per-edge / per-feature drop probabilities of ``sample``."""
    edge_p, feat_p = drop_probabilities(model, sample)
    return build_with_drop_rates(model, [jnp.asarray(p) for p in edge_p], [jnp.asarray(p) for p in feat_p])
