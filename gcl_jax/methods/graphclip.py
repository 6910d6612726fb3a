"""GraphCLIP-style graph-text contrast (Zhu et al., WWW 2025, "GraphCLIP: Enhancing Transferability in
Graph Foundation Models for Text-Attributed Graphs"; github.com/ZhuYun97/GraphCLIP).

Every node gets a node-centred subgraph: its ``hops``-hop ego graph, centre first (GraphCLIP's
``data/sampling.py`` ``ego_graphs_sampler``, 2 hops by default), capped at ``max_nodes`` nodes by
a seeded random choice in the last hop that does not fit, so that all ego graphs batch into one
padded ``GraphsTuple`` with static shapes, built once on the host. Each step augments every ego
graph in jit (edge dropping, feature-column masking), encodes it with a GNN, pools it (mean) and
projects it into the frozen text encoder's space. The loss is the symmetric CLIP loss
(``losses.clip``) between each subgraph and its own node's text embedding, with a learnable logit
scale initialised at ``log(1/0.07)`` and clipped at ``log(100)`` (CLIP's bound); the rows and the
negatives can be split over devices (``axis_name``). Each step contrasts a random ``batch_size``
of the N pairs (all ego graphs are encoded, only the chosen ones enter the loss, whose cost grows
with the square of the batch). No label is used. ``embed`` returns the
projected subgraph embeddings, i.e. vectors in the text space, which zero-shot classification
compares with class-prompt embeddings (:mod:`gcl_jax.eval.zeroshot`).

Deviations from the paper, all for a self-contained, CPU-sized reproduction: the text paired with a
subgraph is its centre node's own title and abstract, not an LLM-written summary of the subgraph;
the graph encoder is a GCN from :mod:`gcl_jax.nn`, not the 12-layer GPS graph transformer with
random-walk positional encodings; no adversarial feature perturbation (the paper's invariant
learning).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.nn import MLP, GraphEncoder, readout
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: subgraph-text pairs and their negatives split across devices

DEFAULTS = {
    "epochs": 300,
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "decoupled_weight_decay": True,  # AdamW, as GraphCLIP's train.py
    "normalize_features": False,  # text embeddings are unit vectors already; row-sum scaling would break them
    "checkpoint_every": 100,
    "model": {
        "hops": 2,
        "max_nodes": 32,
        "seed": 0,  # the ego-graph subsampling
        "encoder": "gcn",
        "hidden": 256,
        "layers": 2,
        "activation": "relu",
        "readout": "mean",
        "proj_hidden": 256,
        "batch_size": 1024,  # subgraph-text pairs per step (GraphCLIP's README); 0: every node
        "drop_edge": 0.3,
        "drop_feature": 0.2,
        "logit_scale": math.log(1 / 0.07),
        "max_logit_scale": math.log(100.0),
        "block_size": 0,
    },
    "eval": {"protocol": "zeroshot", "train": 0.6, "val": 0.2, "baselines": True, "sgc_hops": 2},
}


class SubgraphTextBatch(NamedTuple):
    """All ego graphs as one padded batch (graph ``i`` is centred on node ``i``; the last graph is
    padding) and the frozen text embedding ``[N, D]`` of every centre node."""

    graph: G.GraphsTuple
    text: jax.Array


def ego_nodes(adjacency: sp.csr_matrix, center: int, hops: int, max_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Nodes of ``center``'s ``hops``-hop ego graph, centre first, then hop by hop (ascending within a
    hop); the first hop that overflows ``max_nodes`` contributes a random subset and ends the expansion."""
    chosen, frontier = [np.array([center])], np.array([center])
    seen = {center}
    for _ in range(hops):
        room = max_nodes - sum(len(part) for part in chosen)
        candidates = np.array(sorted(set(adjacency[frontier].indices.tolist()) - seen), np.int64)
        if room <= 0 or candidates.size == 0:
            break
        if candidates.size > room:
            chosen.append(np.sort(rng.choice(candidates, room, replace=False)))
            break
        chosen.append(candidates)
        seen.update(candidates.tolist())
        frontier = candidates
    return np.concatenate(chosen)


def ego_batch(graph: G.GraphsTuple, hops: int, max_nodes: int, seed: int) -> G.GraphsTuple:
    """Every node's ego graph (induced edges, features copied), batched and padded by one graph."""
    if hops < 1 or max_nodes < 1:
        raise ValueError(f"model.hops and model.max_nodes: expected >= 1, got {hops} and {max_nodes}")
    adjacency = G.to_scipy(graph)
    features = np.asarray(graph.nodes, np.float32)
    rng = np.random.default_rng(seed)
    egos = []
    for center in range(adjacency.shape[0]):
        nodes = ego_nodes(adjacency, center, hops, max_nodes, rng)
        edges = adjacency[nodes][:, nodes].tocoo()
        egos.append(G.GraphsTuple(
            nodes=features[nodes], edges=None, senders=edges.row.astype(np.int32), receivers=edges.col.astype(np.int32),
            n_node=np.array([len(nodes)], np.int32), n_edge=np.array([edges.nnz], np.int32), globals=None,
        ))
    batched = G.batch(egos)
    return G.pad(batched, int(np.sum(batched.n_node)) + 1, max(int(np.sum(batched.n_edge)), 1))


def dataset_batch(dataset, config: dict) -> SubgraphTextBatch:
    """The training (and evaluation) batch: all ego graphs and the node text embeddings."""
    model = config["model"]
    graph = jax.device_get(dataset.graph)
    egos = ego_batch(graph, int(model["hops"]), int(model["max_nodes"]), int(model["seed"]))
    return SubgraphTextBatch(jax.device_put(egos), jnp.asarray(graph.nodes, jnp.float32))


def build(model: dict, sample: SubgraphTextBatch) -> Method:
    """GraphCLIP over ``sample``'s ego graphs; ``sample.text`` fixes the projection width."""
    encoder = GraphEncoder(model["encoder"], (model["hidden"],) * model["layers"], activation=model["activation"])
    projector = MLP((model["proj_hidden"], sample.text.shape[1]), activation=model["activation"])
    block_size = losses.tile_size(model["block_size"])
    axis_name = model.get("axis_name")  # set by the runner for multi-device training
    num_centers = sample.text.shape[0]
    batch_size = int(model["batch_size"])

    def project(params, graph, train, key):
        h = encoder.apply(params["encoder"], graph, train=train, rngs={"dropout": key})
        pooled = readout(graph, h, model["readout"])[:num_centers]  # drop the padding graph
        return projector.apply(params["projector"], pooled)

    def init(key, batch):
        k_enc, k_proj = jax.random.split(key)
        enc_vars = encoder.init(k_enc, batch.graph, train=False)
        pooled = readout(batch.graph, encoder.apply(enc_vars, batch.graph, train=False), model["readout"])
        params = {"encoder": enc_vars, "projector": projector.init(k_proj, pooled),
                  "logit_scale": jnp.asarray(model["logit_scale"], jnp.float32)}
        return params, {}

    def pairs(key, z, text):
        """A random ``batch_size`` of the (subgraph, text) pairs, or all of them."""
        if not 0 < batch_size < num_centers:
            return z, text
        pick = jax.random.permutation(key, num_centers)[:batch_size]
        return z[pick], text[pick]

    def loss(params, state, key, batch):
        k_view, k_act, k_pick = jax.random.split(key, 3)
        view = augment.drop_edges_mask_features(
            k_view, batch.graph, model["drop_edge"], model["drop_feature"], padded=True
        )
        chosen = pairs(k_pick, project(params, view, True, k_act), batch.text)
        (z, valid), (text, _) = (parallel.local_rows(x, axis_name) for x in chosen)
        scale = jnp.minimum(params["logit_scale"], model["max_logit_scale"])
        value = losses.clip(z, text, scale, valid=valid, block_size=block_size, axis_name=axis_name)
        return value, (state, {"logit_scale": scale})

    def embed(params, state, batch):
        return project(params, batch.graph, False, jax.random.PRNGKey(0))

    return Method(init, loss, embed)
