"""LightGCN (He et al., SIGIR 2020, "LightGCN: Simplifying and Powering Graph Convolution Network
for Recommendation") trained with BPR: the recommendation baseline, and the mechanism LightGCL
builds on.

Users and items are free embeddings ``E0`` (one ``[users + items, d]`` table, users first),
propagated ``layers`` times over the symmetric-normalized bipartite training graph
``D^-1/2 A D^-1/2`` without self-loops or weights (``graph.gcn_normalize`` + ``nn.propagate``); the
final embedding combines the layers, their mean (LightGCN's ``alpha_k = 1 / (K + 1)``) or their sum
(LightGCL's code). Each step draws ``batch_size`` BPR triples inside jit from the step key: training
interactions ``(u, i)`` uniformly, and for each a negative item uniformly among the items ``u`` has
no training interaction with (redrawn until none is a positive). The loss is BPR,
``-log sigmoid(e_u . e_i - e_u . e_j)`` averaged over the triples, plus LightGCN's L2 term
``reg * (|e0_u|^2 + |e0_i|^2 + |e0_j|^2) / (2 * batch_size)`` on the triples' layer-0 embeddings.

``epochs`` counts optimizer steps (the runner's step count for methods with a ``dataset_batch``).
Defaults are the LightGCN paper's (d = 64, 3 layers, lr 0.001, L2 1e-4, N(0, 0.1) init) with its
official code's batch of 2048 triples (github.com/gusye1234/LightGCN-PyTorch, parse.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gcl_jax import graph as G
from gcl_jax.nn import propagate
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 2000,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "checkpoint_every": 500,
    "model": {
        "dim": 64,
        "layers": 3,
        "layer_combine": "mean",
        "init": "normal",
        "batch_size": 2048,
        "reg": 1e-4,
    },
    "eval": {"protocol": "ranking", "k": 20},
}

INITIALIZERS = {
    "normal": lambda key, rows, dim: 0.1 * jax.random.normal(key, (rows, dim)),  # LightGCN's code
    "xavier": lambda key, rows, dim: jax.nn.initializers.xavier_uniform()(key, (rows, dim)),  # LightGCL's
}


def interaction_batch(dataset) -> dict:
    """The training data as jit-able arrays: the normalized bipartite ``graph``, the training
    ``pairs`` ``[nnz, 2]`` (user, item) and their sorted keys ``user * items + item`` (membership
    tests for negative sampling), plus ``sizes`` ``[users, items]`` read on the host by ``build``."""
    users, items = dataset.num_users, dataset.num_items
    if users * items >= np.iinfo(np.int32).max:
        raise ValueError(f"{dataset.name}: {users} users x {items} items overflows the int32 interaction keys")
    train = dataset.train.tocoo()
    full = np.flatnonzero(np.diff(dataset.train.tocsr().indptr) >= items)
    if len(full):
        raise ValueError(f"{dataset.name}: user {full[0]} interacted with every item; no negative exists")
    pairs = np.stack([train.row, train.col], axis=1).astype(np.int32)
    return {
        "graph": G.gcn_normalize(jax.device_put(dataset.graph), self_loops=False),
        "pairs": jnp.asarray(pairs),
        "keys": jnp.asarray(np.sort(pairs[:, 0] * items + pairs[:, 1])),
        "sizes": np.array([users, items], np.int32),
    }


def dataset_batch(dataset, config: dict) -> dict:
    """The batch every step trains on (the runner's hook for user-item data)."""
    return interaction_batch(dataset)


def is_training_pair(keys: jax.Array, users: jax.Array, items: jax.Array, num_items: int) -> jax.Array:
    """Whether each ``(users[b], items[b])`` is a training interaction (binary search in ``keys``)."""
    query = users * num_items + items
    found = jnp.minimum(jnp.searchsorted(keys, query), keys.shape[0] - 1)
    return keys[found] == query


def sample_triples(key, batch: dict, size: int, num_items: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``size`` BPR triples ``(user, positive item, negative item)``: training interactions drawn
    uniformly, negatives uniform over each user's non-interacted items (rejection sampling)."""
    k_pair, k_neg = jax.random.split(key)
    pairs = batch["pairs"][jax.random.randint(k_pair, (size,), 0, batch["pairs"].shape[0])]
    users, positives = pairs[:, 0], pairs[:, 1]

    def redraw(state):
        k, negatives = state
        k, sub = jax.random.split(k)
        fresh = jax.random.randint(sub, (size,), 0, num_items)
        return k, jnp.where(is_training_pair(batch["keys"], users, negatives, num_items), fresh, negatives)

    def any_positive(state):
        return jnp.any(is_training_pair(batch["keys"], users, state[1], num_items))

    k_first, k_loop = jax.random.split(k_neg)
    _, negatives = jax.lax.while_loop(any_positive, redraw, (k_loop, jax.random.randint(k_first, (size,), 0, num_items)))
    return users, positives, negatives


def propagation_layers(graph, x: jax.Array, layers: int) -> list[jax.Array]:
    """``[x, A x, A^2 x, ...]``: the embeddings after 0..``layers`` propagations over ``graph``."""
    out = [x]
    for _ in range(layers):
        out.append(propagate(graph, out[-1]))
    return out


#: How the propagation layers make the final embeddings: their mean (LightGCN's ``alpha_k = 1 / (K + 1)``)
#: or their sum (LightGCL's code).
COMBINERS = {"mean": lambda layers: sum(layers) / len(layers), "sum": lambda layers: sum(layers)}


def bpr_loss(user: jax.Array, positive: jax.Array, negative: jax.Array) -> jax.Array:
    """Mean of ``-log sigmoid(<u, i> - <u, j>)`` over the triples (Rendle et al. 2009)."""
    return jnp.mean(jax.nn.softplus(-(jnp.sum(user * positive, -1) - jnp.sum(user * negative, -1))))


def build_recommender(model: dict, sample: dict, extra_loss=None) -> Method:
    """The LightGCN model and BPR loss; ``extra_loss(params, key, layers, batch) -> (value, metrics)``
    adds a method's own term (LightGCL's contrast) computed from the propagation ``layers``."""
    num_users, num_items = (int(n) for n in sample["sizes"])
    if model["init"] not in INITIALIZERS:
        raise ValueError(f"model.init: expected one of {', '.join(INITIALIZERS)}, got {model['init']!r}")
    if model["layer_combine"] not in COMBINERS:
        raise ValueError(f"model.layer_combine: expected one of {', '.join(COMBINERS)}, got {model['layer_combine']!r}")
    init_table, combine = INITIALIZERS[model["init"]], COMBINERS[model["layer_combine"]]

    def init(key, batch):
        k_user, k_item = jax.random.split(key)
        tables = [init_table(k_user, num_users, model["dim"]), init_table(k_item, num_items, model["dim"])]
        return {"embedding": jnp.concatenate(tables)}, {}

    def layers_of(params, batch):
        return propagation_layers(batch["graph"], params["embedding"], model["layers"])

    def loss(params, state, key, batch):
        k_triples, k_extra = jax.random.split(key)
        layers = layers_of(params, batch)
        final = combine(layers)
        users, positives, negatives = sample_triples(k_triples, batch, model["batch_size"], num_items)
        items = num_users + positives, num_users + negatives
        bpr = bpr_loss(final[users], final[items[0]], final[items[1]])
        ego = params["embedding"]
        l2 = (jnp.sum(ego[users] ** 2) + jnp.sum(ego[items[0]] ** 2) + jnp.sum(ego[items[1]] ** 2)) / (2 * model["batch_size"])
        value, metrics = bpr + model["reg"] * l2, {"bpr": bpr}
        if extra_loss is not None:
            extra, extra_metrics = extra_loss(params, k_extra, layers, batch)
            value, metrics = value + extra, {**metrics, **extra_metrics}
        return value, (state, metrics)

    def embed(params, state, batch):
        return combine(layers_of(params, batch))

    return Method(init, loss, embed)


def build(model: dict, sample: dict) -> Method:
    """LightGCN trained with BPR and its batch L2 term."""
    return build_recommender(model, sample)
