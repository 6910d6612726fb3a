"""SCGC / SCGC* (Kulatilleke, Portmann, Chandra 2022, "SCGC: Self-Supervised Contrastive Graph
Clustering", arXiv:2204.12656; github.com/gayanku/SCGC).

No message passing: an MLP encoder (SDCN's autoencoder's encoder, ``features -> 500 -> 500 -> 2000
-> 10``, ReLU, linear output) sees only the node features; the graph enters through the loss.
Positives of node ``i`` are its neighbours in the influence matrix, powers of the row-normalized
adjacency with self-loops ``A_hat = D^-1 (A + I)``: ``A_hat^r`` (SCGC) or ``A_hat + ... + A_hat^r``
(SCGC*, ``influence = true``: the Influence Augmented Contrastive loss), each weighted by its entry;
negatives are all nodes (:func:`gcl_jax.losses.influence_contrastive`). A DEC head (Student-t soft
assignments around ``clusters`` trainable centres, KL to the sharpened target) is trained jointly:
``loss = beta * KL(P || Q) + alpha * contrast (+ reconstruction * MSE(decoder(z), x) for SCGC)``,
one full-graph Adam step per epoch.

Initialization, as in the official code, starts from SDCN's pretrained autoencoder and puts the
centres at k-means (20 restarts) of its embeddings. The pretrained weights are not shipped, so
``init`` trains the autoencoder itself with SDCN's ``data/pretrain.py`` recipe (MSE, Adam 1e-3,
batches of 256, 30 epochs; here the last partial batch of each shuffled epoch is dropped) and runs
sklearn's k-means through ``jax.pure_callback``. The whole init is one jitted program.

The batch (``dataset_batch``) holds the raw features (SDCN's data files are unnormalized) and the
influence matrix as weighted edges, computed once on the host with scipy. Embeddings for
evaluation are ``z``; the papers instead read clusters off ``argmax Q`` (see the configs).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp
from sklearn.cluster import KMeans

from gcl_jax import graph as G
from gcl_jax import losses
from gcl_jax.nn import MLP
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 200,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "checkpoint_every": 50,
    "model": {
        "clusters": 0,  # required: the number of clusters (classes) of the dataset
        "hidden": [500, 500, 2000],
        "embedding": 10,
        "order": 1,
        "influence": True,
        "tau": 0.25,
        "alpha": 1.0,
        "beta": 0.1,
        "reconstruction": 0.0,
        "block_size": 0,
        "pretrain_epochs": 30,
        "pretrain_lr": 1e-3,
        "pretrain_batch": 256,
        "kmeans_restarts": 20,
    },
    "eval": {"protocol": "clustering"},
}


def influence_matrix(adjacency: sp.spmatrix, order: int, cumulative: bool) -> sp.csr_matrix:
    """``A_hat^order`` or ``sum_{k=1..order} A_hat^k`` with ``A_hat = D^-1 (A + I)`` (host side)."""
    if order < 1:
        raise ValueError(f"model.order: expected a power >= 1, got {order}")
    a_hat = G.row_stochastic(adjacency + sp.identity(adjacency.shape[0], format="csr"))
    power = total = a_hat
    for _ in range(order - 1):
        power = power @ a_hat
        total = total + power if cumulative else power
    return sp.csr_matrix(total)


def dataset_batch(dataset, cfg: dict) -> dict:
    """Raw features ``x`` and the influence matrix as ``senders``/``receivers``/``weights`` edges."""
    model = cfg["model"]
    influence = influence_matrix(G.to_scipy(dataset.graph), int(model["order"]), bool(model["influence"])).tocoo()
    return {
        "x": jnp.asarray(np.asarray(dataset.graph.nodes, np.float32)),
        "senders": jnp.asarray(influence.row, jnp.int32),
        "receivers": jnp.asarray(influence.col, jnp.int32),
        "weights": jnp.asarray(influence.data, jnp.float32),
    }


def _kmeans_centres(z, seed, clusters: int, restarts: int) -> np.ndarray:
    fit = KMeans(clusters, n_init=restarts, random_state=int(seed)).fit(np.asarray(z, np.float64))
    return fit.cluster_centers_.astype(np.float32)


def build_with_contrast(model: dict, contrast: Callable) -> Method:
    """The SCGC model with a contrastive term ``contrast(z, q, batch) -> scalar`` (SCGC's or PamC's)."""
    clusters = int(model["clusters"])
    if clusters < 2:
        raise ValueError(f"model.clusters: set the number of clusters (>= 2) in the config, got {clusters}")
    encoder = MLP((*model["hidden"], model["embedding"]))
    decoder_widths = tuple(reversed(model["hidden"]))

    def decode(params, z, width):
        return MLP((*decoder_widths, width)).apply(params["decoder"], z)

    def pretrain(key, params, x):
        """SDCN's autoencoder pretraining: shuffled mini-batches, MSE reconstruction, Adam."""
        size = min(int(model["pretrain_batch"]), x.shape[0])
        steps = x.shape[0] // size
        optimizer = optax.adam(model["pretrain_lr"])

        def mse(p, rows):
            return jnp.mean((decode(p, encoder.apply(p["encoder"], rows), x.shape[1]) - rows) ** 2)

        def step(carry, index):
            p, opt_state = carry
            updates, opt_state = optimizer.update(jax.grad(mse)(p, x[index]), opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), None

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, x.shape[0])[: steps * size].reshape(steps, size)
            return jax.lax.scan(step, carry, order)[0], None

        keys = jax.random.split(key, int(model["pretrain_epochs"]))
        (params, _), _ = jax.lax.scan(epoch, (params, optimizer.init(params)), keys)
        return params

    def init(key, batch):
        k_enc, k_dec, k_pre, k_means = jax.random.split(key, 4)
        x = batch["x"]
        params = {"encoder": encoder.init(k_enc, x), "decoder": MLP((*decoder_widths, x.shape[1])).init(k_dec, jnp.zeros((1, model["embedding"])))}
        params = pretrain(k_pre, params, x)
        seed = jax.random.randint(k_means, (), 0, 2**31 - 1)
        shape = jax.ShapeDtypeStruct((clusters, model["embedding"]), jnp.float32)
        centres = jax.pure_callback(
            lambda z, s: _kmeans_centres(z, s, clusters, int(model["kmeans_restarts"])),
            shape, encoder.apply(params["encoder"], x), seed,
        )
        return {**params, "centres": centres}, {}

    def loss(params, state, key, batch):
        z = encoder.apply(params["encoder"], batch["x"])
        q = losses.student_t_assignments(z, params["centres"])
        kl = losses.dec_kl(q)
        contrastive = contrast(z, q, batch)
        total = model["beta"] * kl + model["alpha"] * contrastive
        metrics = {"kl": kl, "contrastive": contrastive}
        if model["reconstruction"]:
            metrics["reconstruction"] = jnp.mean((decode(params, z, batch["x"].shape[1]) - batch["x"]) ** 2)
            total = total + model["reconstruction"] * metrics["reconstruction"]
        return total, (state, metrics)

    def embed(params, state, batch):
        return encoder.apply(params["encoder"], batch["x"])

    return Method(init, loss, embed)


def build(model: dict, sample) -> Method:
    """SCGC (``influence = false``, ``reconstruction = 1``) or SCGC* (``influence = true``, no decoder term)."""
    block_size = losses.tile_size(model["block_size"])

    def contrast(z, q, batch):
        return losses.influence_contrastive(z, batch["senders"], batch["receivers"], batch["weights"],
                                            tau=model["tau"], block_size=block_size)

    return build_with_contrast(model, contrast)
