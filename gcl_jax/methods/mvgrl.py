"""MVGRL, node level (Hassani & Khasahmadi 2020, "Contrastive Multi-View Representation Learning
on Graphs", ICML; arXiv:2006.05582).

Two views of one graph: the GCN-normalized adjacency ``D^-1/2 (A + I) D^-1/2`` and the
personalized-PageRank diffusion ``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1``
(``augment.ppr``, alpha = 0.2), both computed once on the host in :func:`build` and used as fixed
edge weights. Each view has its own one-layer GCN encoder (512, PReLU) that aggregates with
those weights as given (``GCNConv(normalize=False, self_loops=False)``).

Training follows the official ``node/train.py`` (github.com/kavehhassani/mvgrl): every step
samples ``batch_size`` windows of ``sample_size`` consecutive node indices and takes the
sub-matrices of the two (globally normalized) views, i.e. induced subgraphs; ``sample_size = 0``
(or >= N) trains on the full graph instead. Negatives are the same windows with feature rows
shuffled (``augment.shuffle_nodes``, one permutation per window). With ``h1/h2`` the adjacency /
diffusion embeddings, ``h3/h4`` their corrupted versions and ``c_v = sigmoid(mean h_v)`` per
window, the bilinear discriminator (shared, DGI's) scores cross-view pairs: positives
``D(h2, c1), D(h1, c2)``, negatives ``D(h4, c1), D(h3, c2)``; the loss is the official
``BCEWithLogits`` over all of them, ``= 0.5 * losses.jsd(pos, neg)`` (equal counts). O(N) loss:
no N x N term, so no ``block_size``.

Embeddings: ``h1 + h2`` on the full graph (official ``embed``).

Sharded (``--devices N``): every device draws the same windows (same key) and encodes all of them,
then keeps its own rows of the batched windows (``parallel.local_rows``); each window's summary is
the mean over all devices' rows of it (``dgi.global_summary``) and the loss's means are psum-ed.

Diffusion sparsification (the official code keeps the dense matrix on Cora, and on CiteSeer
thresholds it with the "auto" epsilon rule and min-max scales its columns): here the matrix is
always sparsified, ``diffusion_eps`` ("auto" = MVGRL's rule, or a number) or ``diffusion_topk``
per node, so it runs as message passing; ``diffusion_scale = "minmax"`` divides each column of S
(the edges leaving one sender) by its maximum, as sklearn's MinMaxScaler does on a matrix whose
column minima are 0.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gcl_jax import augment, losses, parallel
from gcl_jax import graph as G
from gcl_jax.parallel import as_valid, global_mean
from gcl_jax.methods.dgi import Bilinear, global_summary
from gcl_jax.nn import Activation, GCNConv
from gcl_jax.train import Method

LEVEL = "node"
SHARDED = True  # reads model["axis_name"]: each step's window rows split across devices

DEFAULTS = {
    "epochs": 300,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "normalize_features": True,
    "checkpoint_every": 100,
    "model": {
        "hidden": 512,
        "activation": "prelu",
        "alpha": 0.2,
        "diffusion_eps": "auto",
        "diffusion_topk": 0,
        "diffusion_scale": "none",
        "diffusion_tol": 1e-7,
        "self_loop_weight": 1.0,
        "sample_size": 2000,
        "batch_size": 4,
    },
    "eval": {"protocol": "planetoid"},
}


class WeightedGCN(nn.Module):
    """GCN layers that aggregate with the graph's edge weights as given (precomputed normalized
    adjacency or diffusion): shared ``GCNConv(normalize=False, self_loops=False)`` + activation
    per layer. Returns every layer's output (MVGRL's graph level concatenates their readouts)."""

    widths: Sequence[int]
    activation: str = "prelu"

    @nn.compact
    def __call__(self, graph: G.GraphsTuple, *, train: bool = False) -> list[jax.Array]:
        h, outputs = jnp.asarray(graph.nodes), []
        for i, width in enumerate(self.widths):
            h = GCNConv(width, normalize=False, self_loops=False, name=f"gcn_{i}")(graph, h)
            h = Activation(self.activation, name=f"act_{i}")(h, train=train)
            outputs.append(h)
        return outputs


# ----------------------------------------------------------------------------- host-side views


def normalized_adjacency(graph: G.GraphsTuple, self_loop_weight: float = 1.0) -> G.GraphsTuple:
    """``D^-1/2 (A + w I) D^-1/2`` as edge weights (w = 1: Kipf & Welling; the official MVGRL node
    code adds the identity twice, i.e. w = 2)."""
    looped = G.add_self_loops(graph, weight=self_loop_weight)
    return jax.tree_util.tree_map(np.asarray, G.gcn_normalize(looped, self_loops=False))


def diffusion_view(graph: G.GraphsTuple, model: dict) -> G.GraphsTuple:
    """The sparsified PPR view of ``graph`` per the model config (see the module doc)."""
    topk = int(model.get("diffusion_topk", 0) or 0)
    sparsity = {"topk": topk} if topk else {"eps": model["diffusion_eps"]}
    diff = augment.ppr(graph, alpha=model["alpha"], tol=model.get("diffusion_tol", 1e-7), **sparsity)
    if model.get("diffusion_scale", "none") == "minmax":
        senders, weights = np.asarray(diff.senders), np.asarray(diff.edges, np.float32)
        column_max = np.zeros(G.num_nodes(graph), np.float32)
        np.maximum.at(column_max, senders, weights)
        diff = diff._replace(edges=weights / np.where(column_max > 0, column_max, 1.0)[senders])
    elif model.get("diffusion_scale", "none") != "none":
        raise ValueError(f"diffusion_scale: expected 'none' or 'minmax', got {model['diffusion_scale']!r}")
    return diff


class _Windows:
    """One view's edges sorted by receiver, for cutting out induced subgraphs of ``size``
    consecutive node indices with static shapes: edges whose receiver lies in the window are a
    contiguous run starting at ``offsets[start]``, at most ``length`` long (the maximum over all
    windows, found on the host); edges leaving the window are masked (weight 0)."""

    def __init__(self, view: G.GraphsTuple, num_nodes: int, size: int):
        order = np.argsort(np.asarray(view.receivers), kind="stable")
        senders = np.asarray(view.senders, np.int32)[order]
        receivers = np.asarray(view.receivers, np.int32)[order]
        weights = np.asarray(G.edge_weights(view), np.float32)[order]
        counts = np.concatenate([[0], np.cumsum(np.bincount(receivers, minlength=num_nodes))])
        self.length = max(int(np.max(counts[size:] - counts[: num_nodes - size + 1])), 1)
        pad = self.length  # so a slice of `length` never runs off the end (padding has weight 0)
        self.senders = jnp.asarray(np.concatenate([senders, np.zeros(pad, np.int32)]))
        self.receivers = jnp.asarray(np.concatenate([receivers, np.zeros(pad, np.int32)]))
        self.weights = jnp.asarray(np.concatenate([weights, np.zeros(pad, np.float32)]))
        self.offsets = jnp.asarray(counts[:-1].astype(np.int32))
        self.size = size

    def cut(self, start):
        """Local ``(senders, receivers, weights)`` of the window ``[start, start + size)``."""
        first = self.offsets[start]
        s, r, w = (jax.lax.dynamic_slice(a, (first,), (self.length,)) for a in (self.senders, self.receivers, self.weights))
        inside = (s >= start) & (s < start + self.size) & (r >= start) & (r < start + self.size)
        clip = lambda v: jnp.clip(v - start, 0, self.size - 1)
        return clip(s), clip(r), jnp.where(inside, w, 0.0)


def window_batch(nodes: jax.Array, windows: _Windows, starts: jax.Array) -> G.GraphsTuple:
    """The induced subgraphs at ``starts`` (one per window) batched into one ``GraphsTuple``."""
    b, size = starts.shape[0], windows.size
    s, r, w = jax.vmap(windows.cut)(starts)
    shift = (jnp.arange(b, dtype=jnp.int32) * size)[:, None]
    feats = jax.vmap(lambda i: jax.lax.dynamic_slice_in_dim(nodes, i, size, axis=0))(starts)
    return G.GraphsTuple(
        nodes=feats.reshape(b * size, -1), edges=w.reshape(-1),
        senders=(s + shift).reshape(-1), receivers=(r + shift).reshape(-1),
        n_node=jnp.full((b,), size, jnp.int32), n_edge=jnp.full((b,), windows.length, jnp.int32), globals=None,
    )


# ----------------------------------------------------------------------------- method


def build(model: dict, sample) -> Method:
    n = G.num_nodes(sample)
    host = jax.tree_util.tree_map(np.asarray, sample)
    adj = normalized_adjacency(host, model.get("self_loop_weight", 1.0))
    diff = diffusion_view(host, model)
    size = int(model.get("sample_size", 0) or 0)
    windowed = 0 < size < n
    if windowed:
        adj_windows, diff_windows = _Windows(adj, n, size), _Windows(diff, n, size)
    adj_full = jax.tree_util.tree_map(jnp.asarray, adj._replace(nodes=None))
    diff_full = jax.tree_util.tree_map(jnp.asarray, diff._replace(nodes=None))

    enc_adj = WeightedGCN((model["hidden"],), model["activation"])
    enc_diff = WeightedGCN((model["hidden"],), model["activation"])
    discriminator = Bilinear()
    axis_name = model.get("axis_name")  # set by the runner for multi-device training

    def views(graph, key):
        """The two views (adjacency, diffusion) of this step: windows or the full graph."""
        if not windowed:
            return adj_full._replace(nodes=graph.nodes), diff_full._replace(nodes=graph.nodes)
        starts = jax.random.randint(key, (model["batch_size"],), 0, n - size + 1)
        return window_batch(graph.nodes, adj_windows, starts), window_batch(graph.nodes, diff_windows, starts)

    def init(key, graph):
        k1, k2, k3 = jax.random.split(key, 3)
        a, d = views(graph, k3)
        p1, p2 = enc_adj.init(k1, a), enc_diff.init(k2, d)
        h = enc_adj.apply(p1, a)[-1]
        return {"enc_adj": p1, "enc_diff": p2, "discriminator": discriminator.init(k3, h, h)}, {}

    def loss(params, state, key, graph):
        k_window, k_shuffle = jax.random.split(key)
        a, d = views(graph, k_window)
        shuffled = augment.shuffle_nodes(k_shuffle, a).nodes  # same rows for both views
        h1 = enc_adj.apply(params["enc_adj"], a, train=True)[-1]
        h2 = enc_diff.apply(params["enc_diff"], d, train=True)[-1]
        h3 = enc_adj.apply(params["enc_adj"], a._replace(nodes=shuffled), train=True)[-1]
        h4 = enc_diff.apply(params["enc_diff"], d._replace(nodes=shuffled), train=True)[-1]
        (h1, valid), (h2, _), (h3, _), (h4, _), (ids, _) = (
            parallel.local_rows(x, axis_name) for x in (h1, h2, h3, h4, G.node_graph_ids(a))
        )
        valid = as_valid(valid, h1.shape[0])
        c1, c2 = (global_summary(h, ids, a.n_node.shape[0], valid=valid, axis_name=axis_name) for h in (h1, h2))
        score = lambda h, c: discriminator.apply(params["discriminator"], h, c)
        pos = jnp.concatenate([score(h2, c1), score(h1, c2)])
        neg = jnp.concatenate([score(h4, c1), score(h3, c2)])
        pair_valid = jnp.concatenate([valid, valid])  # the rows of both view pairings
        # == BCEWithLogits over [pos, neg] vs [1, 0]
        value = 0.5 * losses.jsd(pos, neg, pos_valid=pair_valid, neg_valid=pair_valid, axis_name=axis_name)
        metrics = {name: global_mean(x, pair_valid, axis_name) for name, x in (("pos_score", pos), ("neg_score", neg))}
        return value, (state, metrics)

    def embed(params, state, graph):
        a, d = adj_full._replace(nodes=graph.nodes), diff_full._replace(nodes=graph.nodes)
        return enc_adj.apply(params["enc_adj"], a)[-1] + enc_diff.apply(params["enc_diff"], d)[-1]

    return Method(init, loss, embed)
