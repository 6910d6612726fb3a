"""LightGCL (Cai, Huang, Xia, Ren, ICLR 2023, "LightGCL: Simple Yet Effective Graph Contrastive
Learning for Recommendation").

The main view is LightGCN's propagation (:mod:`gcl_jax.methods.lightgcn`: the same embeddings,
normalized bipartite graph, BPR triples sampled in jit). The augmented view replaces the normalized
interaction matrix ``R = D_u^-1/2 R D_i^-1/2`` by its rank-``q`` truncated SVD ``U_q S_q V_q^T``,
computed once on the host (``scipy.sparse.linalg.svds``) and never formed densely: layer ``l`` of
the SVD view is ``g_u = U_q S_q (V_q^T e_items^{l-1})`` and ``g_i = V_q S_q (U_q^T e_users^{l-1})``
from the *main* view's previous layer, and the view's final embedding combines
``[e^0, g^1, ..., g^L]`` as the main view combines its layers (summed, as in the official code).

The contrast is InfoNCE between the two views' final embeddings as the official model.py scores
it: anchor the SVD-view embedding of a user, positive the same user's main-view embedding, negatives
every user's main-view embedding, logits raw dot products over ``tau`` (the paper writes a
similarity ``s``; the code uses no normalization, and with cosine the shared layer-0 term lets the
contrast drown BPR: recall fell to chance level in our runs); the same over items. The anchors
(``contrast_anchors``) are the step's BPR users and positive and negative items, duplicates counted,
as the official code anchors on ``uids`` and ``iids`` (``"batch"``, the default), or every user and
item once (``"all"``). It runs through ``losses.info_nce`` (:func:`dot_product_info_nce`; batch
anchors become per-node anchor weights), blockwise with ``block_size`` > 0, so the users x users and
items x items matrices never exist. The official code clamps the positive logit to [-5, 5], which
``info_nce`` cannot express; we leave it out. ``contrast_sample`` > 0 (with ``"all"`` only)
contrasts that many users and that many items drawn per step without replacement instead of all of
them (a CPU budget option; 0 = all). Loss: ``BPR + lambda_1 (L_users + L_items) + lambda_2 sum |theta|^2``.

Defaults are the official parser.py (github.com/HKUDS/LightGCL): d = 64, 2 layers, q = 5,
tau = 0.2, lambda_1 = 0.2, lambda_2 = 1e-7, lr 0.001, 4096 interactions per step, no edge dropout,
Xavier-uniform initialization. ``epochs`` counts optimizer steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from gcl_jax import graph as G
from gcl_jax import losses
from gcl_jax.methods.lightgcn import COMBINERS, build_recommender, interaction_batch
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 1600,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "checkpoint_every": 500,
    "model": {
        "dim": 64,
        "layers": 2,
        "layer_combine": "sum",
        "init": "xavier",
        "batch_size": 4096,
        "reg": 0.0,
        "sampler": "interactions",
        "svd_rank": 5,
        "tau": 0.2,
        "lambda_contrast": 0.2,
        "lambda_l2": 1e-7,
        "contrast_anchors": "batch",
        "contrast_sample": 0,
        "block_size": 1024,
    },
    "eval": {"protocol": "ranking", "k": 20},
}


def normalized_interactions(graph, num_users: int) -> sp.csr_matrix:
    """The ``[users, items]`` block of the normalized bipartite adjacency: ``D_u^-1/2 R D_i^-1/2``."""
    return G.to_scipy(jax.device_get(graph)).tocsr()[:num_users, num_users:]


def svd_factors(matrix: sp.spmatrix, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-``rank`` truncated SVD ``(U [users, q], s [q], V [items, q])`` of ``matrix`` (deterministic)."""
    if not 0 < rank < min(matrix.shape):
        raise ValueError(f"model.svd_rank: expected 0 < q < {min(matrix.shape)}, got {rank}")
    u, s, vt = svds(matrix.astype(np.float64), k=rank, random_state=0)
    return u.astype(np.float32), s.astype(np.float32), vt.T.astype(np.float32)


def dataset_batch(dataset, config: dict) -> dict:
    """LightGCN's interaction batch plus the SVD factors of the normalized interaction matrix."""
    batch = interaction_batch(dataset)
    u, s, v = svd_factors(normalized_interactions(batch["graph"], dataset.num_users), int(config["model"]["svd_rank"]))
    return {**batch, "svd_u": jnp.asarray(u), "svd_s": jnp.asarray(s), "svd_v": jnp.asarray(v)}


def svd_propagate(batch: dict, x: jax.Array, num_users: int) -> jax.Array:
    """One propagation over the rank-q view, ``[U S V^T x_items ; V S U^T x_users]``, in O((U + I) q d)."""
    u, s, v = batch["svd_u"], batch["svd_s"], batch["svd_v"]
    users = (u * s) @ (v.T @ x[num_users:])
    items = (v * s) @ (u.T @ x[:num_users])
    return jnp.concatenate([users, items])


def dot_product_info_nce(anchors: jax.Array, candidates: jax.Array, tau: float, block_size: int | None,
                         anchor_weights: jax.Array | None = None) -> jax.Array:
    """``mean_i [log sum_j exp(<a_i, c_j> / tau) - <a_i, c_i> / tau]``: InfoNCE on raw dot products,
    as LightGCL's code scores its views, through the cosine-based ``losses.info_nce`` (a mean
    weighted by ``anchor_weights`` when given).

    Every candidate gets one extra coordinate ``sqrt(r^2 - |c_j|^2)`` (``r`` just above the largest
    norm, held constant) and every anchor a 0 there, so all candidates have norm ``r`` and the dot
    products are unchanged; the anchor's temperature ``tau / (|a_i| r)`` then turns
    ``cos(a_i, c_j)`` back into ``<a_i, c_j> / tau`` exactly (gradients included).
    """
    norms = jnp.linalg.norm(candidates, axis=1)
    radius = jax.lax.stop_gradient(1.01 * jnp.max(norms) + 1e-6)
    lifted = jnp.concatenate([candidates, jnp.sqrt(radius**2 - norms**2)[:, None]], axis=1)
    padded = jnp.concatenate([anchors, jnp.zeros_like(anchors[:, :1])], axis=1)
    temperature = tau / (jnp.maximum(jnp.linalg.norm(anchors, axis=1), 1e-12) * radius)
    return losses.info_nce(padded, lifted, temperature=temperature, intra_view=False, symmetric=False,
                           block_size=block_size, anchor_weights=anchor_weights)


#: Which SVD-view rows anchor the contrast: the step's BPR users / items (official) or every row once.
CONTRAST_ANCHORS = ("batch", "all")


def contrast(key, main: jax.Array, augmented: jax.Array, model: dict, anchors: jax.Array | None = None) -> jax.Array:
    """LightGCL's InfoNCE against all main-view rows: anchored on the rows listed in ``anchors``
    (duplicates counted) or, without them, on all (or ``contrast_sample``) rows."""
    if anchors is not None:
        weights = jnp.zeros(main.shape[0], jnp.float32).at[anchors].add(1.0)
        return dot_product_info_nce(augmented, main, model["tau"], losses.tile_size(model["block_size"]), weights)
    size = model["contrast_sample"]
    if 0 < size < main.shape[0]:
        rows = jax.random.choice(key, main.shape[0], (size,), replace=False)
        main, augmented = main[rows], augmented[rows]
    return dot_product_info_nce(augmented, main, model["tau"], losses.tile_size(model["block_size"]))


def check_contrast_options(model: dict) -> None:
    """Reject an unknown ``contrast_anchors``, or row sampling combined with batch anchors."""
    if model["contrast_anchors"] not in CONTRAST_ANCHORS:
        raise ValueError(f"model.contrast_anchors: expected one of {', '.join(CONTRAST_ANCHORS)}, "
                         f"got {model['contrast_anchors']!r}")
    if model["contrast_anchors"] == "batch" and model["contrast_sample"]:
        raise ValueError("model.contrast_sample: row sampling needs contrast_anchors = \"all\" "
                         "(batch anchors always contrast against every row)")


def build(model: dict, sample: dict) -> Method:
    """LightGCN + BPR with LightGCL's SVD-view contrast and L2 on all parameters."""
    num_users = int(sample["sizes"][0])
    check_contrast_options(model)
    by_batch = model["contrast_anchors"] == "batch"

    def contrast_loss(params, key, forward, batch):
        combine, layers = COMBINERS[model["layer_combine"]], forward.layers  # combine: checked by build_recommender
        main = combine(layers)
        augmented = combine([layers[0]] + [svd_propagate(batch, x, num_users) for x in layers[:-1]])
        k_users, k_items = jax.random.split(key)
        batch_users, positive_items, negative_items = forward.triples
        user_anchors = batch_users if by_batch else None
        item_anchors = jnp.concatenate([positive_items, negative_items]) if by_batch else None
        users = contrast(k_users, main[:num_users], augmented[:num_users], model, user_anchors)
        items = contrast(k_items, main[num_users:], augmented[num_users:], model, item_anchors)
        l2 = sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))
        value = model["lambda_contrast"] * (users + items) + model["lambda_l2"] * l2
        return value, {"contrast_users": users, "contrast_items": items}

    return build_recommender(model, sample, contrast_loss)
