"""LightGCN (He et al., SIGIR 2020, "LightGCN: Simplifying and Powering Graph Convolution Network
for Recommendation") trained with BPR: the recommendation baseline, and the mechanism LightGCL
builds on.

Users and items are free embeddings ``E0`` (one ``[users + items, d]`` table, users first),
propagated ``layers`` times over the symmetric-normalized bipartite training graph
``D^-1/2 A D^-1/2`` without self-loops or weights (``graph.gcn_normalize`` + ``nn.propagate``); the
final embedding combines the layers, their mean (LightGCN's ``alpha_k = 1 / (K + 1)``) or their sum
(LightGCL's code). Each step draws ``batch_size`` BPR triples inside jit from the step key: training
interactions ``(u, i)`` uniformly (``sampler = "users"``: a user uniformly, then one of their items),
and for each a negative item uniformly among the items ``u`` has no training interaction with
(redrawn until none is a positive). The loss is BPR,
``-log sigmoid(e_u . e_i - e_u . e_j)`` averaged over the triples, plus LightGCN's L2 term
``reg * (|e0_u|^2 + |e0_i|^2 + |e0_j|^2) / (2 * batch_size)`` on the triples' layer-0 embeddings.

:func:`build_recommender` is this model with three hooks, shared by LightGCL and DCCF: how the
layer embeddings are computed from the parameters, further parameters, and a further loss term
that sees the step's layers and BPR triples.

``epochs`` counts optimizer steps (the runner's step count for methods with a ``dataset_batch``).
Defaults are the LightGCN paper's (d = 64, 3 layers, lr 0.001, L2 1e-4, N(0, 0.1) init) with its
official code's batch of 2048 triples (github.com/gusye1234/LightGCN-PyTorch, parse.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
        "sampler": "interactions",
    },
    "eval": {"protocol": "ranking", "k": 20},
}

#: Xavier-normal (Glorot) initialization, untruncated, as ``torch.nn.init.xavier_normal_``.
XAVIER_NORMAL = jax.nn.initializers.variance_scaling(1.0, "fan_avg", "normal")

INITIALIZERS = {
    "normal": lambda key, rows, dim: 0.1 * jax.random.normal(key, (rows, dim)),  # LightGCN's code
    "xavier": lambda key, rows, dim: jax.nn.initializers.xavier_uniform()(key, (rows, dim)),  # LightGCL's
    "xavier_normal": lambda key, rows, dim: XAVIER_NORMAL(key, (rows, dim)),  # DCCF's
}


def interaction_batch(dataset) -> dict:
    """The training data as jit-able arrays: the normalized bipartite ``graph``, the training
    ``pairs`` ``[nnz, 2]`` (user, item), their sorted keys ``user * items + item`` (membership
    tests for negative sampling) with each user's first position in them (``user_start``, ``[users + 1]``)
    and the ``active_users`` (those with a training interaction), plus ``sizes`` ``[users, items]``
    read on the host by ``build``."""
    users, items = dataset.num_users, dataset.num_items
    if users * items >= np.iinfo(np.int32).max:
        raise ValueError(f"{dataset.name}: {users} users x {items} items overflows the int32 interaction keys")
    train = dataset.train.tocoo()
    full = np.flatnonzero(np.diff(dataset.train.tocsr().indptr) >= items)
    if len(full):
        raise ValueError(f"{dataset.name}: user {full[0]} interacted with every item; no negative exists")
    pairs = np.stack([train.row, train.col], axis=1).astype(np.int32)
    keys = np.sort(pairs[:, 0] * items + pairs[:, 1])
    return {
        "graph": G.gcn_normalize(jax.device_put(dataset.graph), self_loops=False),
        "pairs": jnp.asarray(pairs),
        "keys": jnp.asarray(keys),
        "user_start": jnp.asarray(np.searchsorted(keys, np.arange(users + 1) * items).astype(np.int32)),
        "active_users": jnp.asarray(np.unique(pairs[:, 0])),
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


#: How the training interactions of the BPR triples are drawn (see :func:`sample_interactions`).
SAMPLERS = ("interactions", "users")


def sample_interactions(key, batch: dict, size: int, num_items: int, sampler: str) -> tuple[jax.Array, jax.Array]:
    """``size`` training interactions ``(users, items)``: drawn uniformly (``"interactions"``,
    LightGCN's code), or a user uniformly among the active ones, then one of their items uniformly
    (``"users"``, DCCF's code: every user weighs the same, whatever their activity)."""
    if sampler == "interactions":
        pairs = batch["pairs"][jax.random.randint(key, (size,), 0, batch["pairs"].shape[0])]
        return pairs[:, 0], pairs[:, 1]
    k_user, k_item = jax.random.split(key)
    users = batch["active_users"][jax.random.randint(k_user, (size,), 0, batch["active_users"].shape[0])]
    start, stop = batch["user_start"][users], batch["user_start"][users + 1]
    return users, batch["keys"][jax.random.randint(k_item, (size,), start, stop)] % num_items


def sample_triples(key, batch: dict, size: int, num_items: int, sampler: str = "interactions") -> tuple[jax.Array, jax.Array, jax.Array]:
    """``size`` BPR triples ``(user, positive item, negative item)``: training interactions drawn
    by ``sampler`` (:data:`SAMPLERS`), negatives uniform over each user's non-interacted items
    (rejection sampling)."""
    k_pair, k_neg = jax.random.split(key)
    users, positive_items = sample_interactions(k_pair, batch, size, num_items, sampler)

    def redraw(state):
        k, negatives = state
        k, sub = jax.random.split(k)
        fresh = jax.random.randint(sub, (size,), 0, num_items)
        return k, jnp.where(is_training_pair(batch["keys"], users, negatives, num_items), fresh, negatives)

    def any_positive(state):
        return jnp.any(is_training_pair(batch["keys"], users, state[1], num_items))

    k_first, k_loop = jax.random.split(k_neg)
    _, negatives = jax.lax.while_loop(any_positive, redraw, (k_loop, jax.random.randint(k_first, (size,), 0, num_items)))
    return users, positive_items, negatives


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


class Forward(NamedTuple):
    """One training step's forward pass, as a method's extra loss term sees it."""

    layers: list  # the embeddings after 0..L layers, ``[E^0, ..., E^L]``
    aux: Any  # the propagation's by-products (DCCF's views); None for LightGCN's propagation
    triples: tuple  # the step's BPR triples ``(users, positive items, negative items)``, item ids from 0


def lightgcn_propagation(model: dict):
    """LightGCN's propagation hook: ``[E^0, A E^0, ...]`` over the normalized graph, no by-products."""

    def propagation(params, batch):
        return propagation_layers(batch["graph"], params["embedding"], model["layers"]), None

    return propagation


def check_choices(model: dict) -> None:
    """Reject an unknown ``init``, ``layer_combine`` or ``sampler``, naming the field."""
    for field, choices in (("init", INITIALIZERS), ("layer_combine", COMBINERS), ("sampler", SAMPLERS)):
        if model[field] not in choices:
            raise ValueError(f"model.{field}: expected one of {', '.join(choices)}, got {model[field]!r}")


def build_recommender(model: dict, sample: dict, extra_loss=None, propagation=None, extra_params=None) -> Method:
    """Embeddings trained with BPR and LightGCN's batch L2 term; the hooks make the other recommenders.

    - ``propagation(params, batch) -> (layers, aux)``: how ``[E^0, ..., E^L]`` come from the
      parameters (default :func:`lightgcn_propagation`); ``aux`` is handed on to ``extra_loss``.
    - ``extra_params(key) -> dict``: parameters beside the ``embedding`` table (DCCF's intents).
    - ``extra_loss(params, key, forward, batch) -> (value, metrics)``: a method's own term (LightGCL's
      or DCCF's contrast), given the step's :class:`Forward` (layers, ``aux`` and BPR triples).
    """
    num_users, num_items = (int(n) for n in sample["sizes"])
    check_choices(model)
    init_table, combine = INITIALIZERS[model["init"]], COMBINERS[model["layer_combine"]]
    propagation = propagation or lightgcn_propagation(model)

    def init(key, batch):
        k_user, k_item = jax.random.split(key)
        tables = [init_table(k_user, num_users, model["dim"]), init_table(k_item, num_items, model["dim"])]
        extra = extra_params(jax.random.fold_in(key, 1)) if extra_params is not None else {}
        return {"embedding": jnp.concatenate(tables), **extra}, {}

    def loss(params, state, key, batch):
        k_triples, k_extra = jax.random.split(key)
        layers, aux = propagation(params, batch)
        final = combine(layers)
        triples = sample_triples(k_triples, batch, model["batch_size"], num_items, model["sampler"])
        users, positive_items, negative_items = triples
        items = num_users + positive_items, num_users + negative_items
        bpr = bpr_loss(final[users], final[items[0]], final[items[1]])
        ego = params["embedding"]
        l2 = (jnp.sum(ego[users] ** 2) + jnp.sum(ego[items[0]] ** 2) + jnp.sum(ego[items[1]] ** 2)) / (2 * model["batch_size"])
        value, metrics = bpr + model["reg"] * l2, {"bpr": bpr}
        if extra_loss is not None:
            extra, extra_metrics = extra_loss(params, k_extra, Forward(layers, aux, triples), batch)
            value, metrics = value + extra, {**metrics, **extra_metrics}
        return value, (state, metrics)

    def embed(params, state, batch):
        return combine(propagation(params, batch)[0])

    return Method(init, loss, embed)


def build(model: dict, sample: dict) -> Method:
    """LightGCN trained with BPR and its batch L2 term."""
    return build_recommender(model, sample)
