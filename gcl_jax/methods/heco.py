"""HeCo (Wang, Liu, Yang, Shi, KDD 2021, "Self-supervised Heterogeneous Graph Neural Network with
Co-contrastive Learning"), for the heterogeneous datasets of :class:`gcl_jax.data.HeteroDataset`.

Every node type gets its own input layer ``ELU(dropout(x W + b))`` (types without features, or
given one-hot ids as HeCo does for all neighbour types, look up a learned row instead). Two views
of the target nodes are contrasted:

- meta-path view: one GCN per meta-path (``D^-1/2 A D^-1/2`` without self-loops, bias, PReLU),
  fused by semantic attention ``softmax_m(a . mean_i tanh(W h^m_i + b))``;
- network-schema view: for each neighbour type a fixed number of neighbours sampled per node (a
  fresh sample every step, from the step key; without replacement when the node has enough,
  else with replacement, as HeCo's ``np.random.choice``), node-level attention
  ``softmax_j LeakyReLU(a . [h_i || h_j])`` over them, ELU, then type-level attention (the same
  form as the semantic one).

A shared projection head (Dense, ELU, Dense) maps both views; the loss is
``losses.multi_positive_info_nce`` with HeCo's positive pairs ``pos``, weight ``lam`` on the
meta-path-anchored direction. Dropout acts on the input layers' outputs (``feat_drop``) and on
the attention vectors themselves (``attn_drop``), as in the official code. Embeddings for
evaluation are the meta-path view's output, without dropout.

Architecture, loss and hyperparameters follow github.com/liun-online/HeCo (code/module/*.py,
code/utils/params.py); defaults are its ACM entry. Meta-path matrices denser than
``dense_above`` are propagated as dense ``N x N`` products (cheaper than millions of edge
messages), the others as edge lists: the same operator either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax import losses
from gcl_jax.nn import MLP, Activation, propagate
from gcl_jax.nn.layers import dense_init, heco_init
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 80,  # HeCo stops on a loss plateau (`patience`); 80 is where that happened on ACM (configs/heco)
    "lr": 0.0008,
    "weight_decay": 0.0,
    "checkpoint_every": 100,
    "model": {
        "hidden": 64,
        "tau": 0.8,
        "lam": 0.5,
        "feat_drop": 0.3,
        "attn_drop": 0.5,
        "sample": {},  # neighbour type -> neighbours sampled per node (HeCo's sample_rate)
        "onehot_neighbors": True,  # HeCo feeds every neighbour type one-hot ids, stored features or not
        "dense_above": 0.05,  # meta-path density from which the dense N x N product is used
    },
    "eval": {"protocol": "hetero"},
}


# ----------------------------------------------------------------------------- host-side batch


def normalized_metapath(adjacency: sp.spmatrix, dense_above: float):
    """``D^-1/2 A D^-1/2`` (row sums, no self-loops: HeCo's ``normalize_adj``) as an operator on
    ``[N, d]``: a dense ``[N, N]`` matrix when the density reaches ``dense_above``, else a graph
    whose edge weights are the normalized entries (row = sender)."""
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    sums = np.asarray(a.sum(axis=1)).reshape(-1)
    inv_sqrt = np.divide(1.0, np.sqrt(sums), out=np.zeros_like(sums), where=sums > 0)
    scaled = sp.diags(inv_sqrt) @ a @ sp.diags(inv_sqrt)
    if a.nnz >= dense_above * a.shape[0] * a.shape[1]:
        return jnp.asarray(scaled.T.toarray(), jnp.float32)  # propagate sums over senders: A^T h
    return jax.device_put(G.from_scipy(scaled.astype(np.float32), weighted=True))


def neighbor_lists(incidence: sp.spmatrix, key: str) -> dict:
    """A target x neighbour incidence as device CSR arrays ``indptr``, ``indices`` and each
    entry's ``row``; every target node must have a neighbour of the type (HeCo samples from it)."""
    csr = sp.csr_matrix(incidence)
    degree = np.diff(csr.indptr)
    if np.any(degree == 0):
        raise ValueError(f"neighbors[{key!r}]: target node {int(np.argmin(degree))} has no neighbour of this type")
    rows = np.repeat(np.arange(csr.shape[0]), degree)
    arrays = {"indptr": csr.indptr, "indices": csr.indices, "row": rows}
    return {name: jnp.asarray(v, jnp.int32) for name, v in arrays.items()}


def node_inputs(dataset, kind: str, onehot: bool):
    """A type's input: row-normalized features (HeCo's ``preprocess_features``), or ids ``[N]`` for a
    one-hot type."""
    if onehot or kind in dataset.featureless:
        return jnp.arange(dataset.num_nodes[kind], dtype=jnp.int32)
    return jnp.asarray(G.row_stochastic(dataset.features[kind]).toarray(), jnp.float32)


def dataset_batch(dataset, config: dict) -> dict:
    """HeCo's training batch (on the device): inputs of the target (key ``"target"``) and of each
    neighbour type, normalized meta-paths, neighbour CSR lists and the dense positive-pair matrix."""
    model = config["model"]
    if getattr(dataset, "pos", None) is None:
        raise ValueError(f"{dataset.name}: HeCo needs a HeCo-layout heterogeneous dataset with pos.npz")
    sample = model["sample"]
    if set(sample) != set(dataset.neighbors):
        raise ValueError(
            f"model.sample: expected a size for each neighbour type {sorted(dataset.neighbors)} of {dataset.name}, "
            f"got {sorted(sample)}"
        )
    onehot = bool(model["onehot_neighbors"])
    inputs = {"target": node_inputs(dataset, dataset.target, False)}
    inputs.update({key[-1]: node_inputs(dataset, key[-1], onehot) for key in sample})
    return {
        "features": inputs,
        "metapaths": {m: normalized_metapath(a, model["dense_above"]) for m, a in dataset.metapaths.items()},
        "neighbors": {key: neighbor_lists(dataset.neighbors[key], key) for key in sample},
        "pos": jnp.asarray(dataset.pos.toarray(), jnp.float32),
    }


# ----------------------------------------------------------------------------- sampling


def sample_neighbors(key, lists: dict, size: int) -> jax.Array:
    """``[N, size]`` neighbour ids per target node from CSR ``lists``: ``size`` distinct uniform
    picks where the node has at least ``size`` neighbours, else ``size`` uniform picks with
    replacement. Static shapes: one random sort of all entries by (row, noise)."""
    indptr, indices, rows = lists["indptr"], lists["indices"], lists["row"]
    k_order, k_draw = jax.random.split(key)
    order = jnp.lexsort((jax.random.uniform(k_order, rows.shape), rows))  # rows stay in CSR position
    start, degree = indptr[:-1, None], (indptr[1:] - indptr[:-1])[:, None]
    slots = jnp.arange(size)[None, :]
    shuffled = order[jnp.minimum(start + slots, indices.shape[0] - 1)]
    drawn = start + jax.random.randint(k_draw, (degree.shape[0], size), 0, degree)
    return indices[jnp.where(degree >= size, shuffled, drawn)]


# ----------------------------------------------------------------------------- layers


def _attention_vector(module: nn.Module, name: str, width: int, rate: float, train: bool) -> jax.Array:
    """A learned attention vector ``[width]`` with dropout on its entries (HeCo's ``attn_drop``)."""
    vector = module.param(name, heco_init, (1, width))[0]
    return nn.Dropout(rate)(vector, deterministic=not train) if rate else vector


class SemanticAttention(nn.Module):
    """Weights over views ``[V, N, d]``: ``beta = softmax_v(a . mean_i tanh(W h^v_i + b))``, returns
    ``sum_v beta_v h^v`` (HeCo's meta-path-level and type-level attention)."""

    attention_dropout: float = 0.0

    @nn.compact
    def __call__(self, views: jax.Array, *, train: bool = False) -> jax.Array:
        summary = jnp.tanh(nn.Dense(views.shape[-1], **dense_init("heco", views.shape[-1]))(views)).mean(axis=1)  # [V, d]
        vector = _attention_vector(self, "attention", views.shape[-1], self.attention_dropout, train)
        beta = jax.nn.softmax(summary @ vector)
        return jnp.tensordot(beta, views, axes=1)


class NeighborAttention(nn.Module):
    """Node-level attention over sampled neighbours ``[N, k, d]`` of targets ``[N, d]``:
    ``sum_j softmax_j(LeakyReLU(a . [h_i || h_j], 0.01)) h_j``."""

    attention_dropout: float = 0.0

    @nn.compact
    def __call__(self, targets: jax.Array, neighbors: jax.Array, *, train: bool = False) -> jax.Array:
        d = targets.shape[-1]
        vector = _attention_vector(self, "attention", 2 * d, self.attention_dropout, train)
        logits = nn.leaky_relu((targets @ vector[:d])[:, None] + neighbors @ vector[d:], 0.01)
        return jnp.sum(jax.nn.softmax(logits, axis=1)[..., None] * neighbors, axis=1)


class MetapathGCN(nn.Module):
    """HeCo's per-meta-path GCN: ``PReLU(A_hat (x W) + b)`` with ``A_hat`` pre-normalized on the
    host, given as a dense ``[N, N]`` matrix or a graph carrying the normalized edge weights."""

    features: int

    @nn.compact
    def __call__(self, adjacency, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.features, use_bias=False, kernel_init=heco_init)(x)
        out = adjacency @ h if isinstance(adjacency, jax.Array) else propagate(adjacency, h)
        return Activation("prelu")(out + self.param("bias", nn.initializers.zeros, (self.features,)))


class TypeInput(nn.Module):
    """A node type's input layer ``ELU(dropout(x W + b))``; ids ``[N]`` (one-hot) look up rows.

    ``initializer``: ``"heco"`` (HeCo's Xavier-normal kernel, ``torch.nn.Linear``'s default bias) or
    ``"torch"`` (``torch.nn.Linear``'s default kernel and bias, as MEOW's code leaves them); see
    :func:`gcl_jax.nn.layers.dense_init`. Ids have a bias too: HeCo multiplies an identity matrix."""

    features: int
    dropout: float = 0.0
    initializer: str = "heco"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.initializer not in ("heco", "torch"):
            raise ValueError(f"TypeInput.initializer: expected 'heco' or 'torch', got {self.initializer!r}")
        fan_in = x.shape[0] if x.ndim == 1 else x.shape[-1]
        inits = dense_init(self.initializer, fan_in)
        if x.ndim == 1:
            h = nn.Embed(fan_in, self.features, embedding_init=inits["kernel_init"])(x)
            h = h + self.param("bias", inits["bias_init"], (self.features,))
        else:
            h = nn.Dense(self.features, **inits)(x)
        return nn.elu(nn.Dropout(self.dropout)(h, deterministic=not train))


class HeCoEncoder(nn.Module):
    """Both views of the target nodes: ``__call__`` gives ``(z_mp, z_sc)``; ``metapath_view`` alone
    is the embedding."""

    hidden: int
    kinds: Sequence[str]  # "target" and the neighbour types' codes
    metapaths: Sequence[str]
    neighbor_keys: Sequence[str]
    feat_drop: float = 0.0
    attn_drop: float = 0.0

    def setup(self):
        self.inputs = {kind: TypeInput(self.hidden, self.feat_drop) for kind in self.kinds}
        self.gcns = {m: MetapathGCN(self.hidden) for m in self.metapaths}
        self.metapath_attention = SemanticAttention(self.attn_drop)
        self.neighbor_attention = {key: NeighborAttention(self.attn_drop) for key in self.neighbor_keys}
        self.type_attention = SemanticAttention(self.attn_drop)

    def _metapath_view(self, h_target, metapaths, train):
        views = jnp.stack([self.gcns[m](metapaths[m], h_target) for m in self.metapaths])
        return self.metapath_attention(views, train=train)

    def _schema_view(self, h, sampled, train):
        target = h["target"]
        views = jnp.stack([
            nn.elu(self.neighbor_attention[key](target, h[key[-1]][sampled[key]], train=train))
            for key in self.neighbor_keys
        ])
        return self.type_attention(views, train=train)

    def __call__(self, features, metapaths, sampled, *, train: bool = False):
        h = {kind: self.inputs[kind](features[kind], train=train) for kind in self.kinds}
        return self._metapath_view(h["target"], metapaths, train), self._schema_view(h, sampled, train)

    def metapath_view(self, features, metapaths):
        """The evaluation embedding: the meta-path view without dropout."""
        return self._metapath_view(self.inputs["target"](features["target"]), metapaths, False)


# ----------------------------------------------------------------------------- method


def build(model: dict, sample) -> Method:
    """HeCo on a :func:`dataset_batch` batch; ``model["sample"]`` maps neighbour types to sizes."""
    sizes = dict(model["sample"])
    encoder = HeCoEncoder(
        model["hidden"], tuple(sample["features"]), tuple(sample["metapaths"]), tuple(sizes),
        feat_drop=model["feat_drop"], attn_drop=model["attn_drop"],
    )
    projector = MLP((model["hidden"], model["hidden"]), activation="elu", initializer="heco")

    def draw(key, batch):
        keys = jax.random.split(key, len(sizes))
        return {name: sample_neighbors(k, batch["neighbors"][name], size)
                for k, (name, size) in zip(keys, sizes.items())}

    def init(key, batch):
        k_enc, k_proj, k_sample = jax.random.split(key, 3)
        enc_vars = encoder.init(k_enc, batch["features"], batch["metapaths"], draw(k_sample, batch))
        z = encoder.apply(enc_vars, batch["features"], batch["metapaths"], method=HeCoEncoder.metapath_view)
        return {"encoder": enc_vars, "projector": projector.init(k_proj, z)}, {}

    def loss(params, state, key, batch):
        k_sample, k_drop = jax.random.split(key)
        z_mp, z_sc = encoder.apply(
            params["encoder"], batch["features"], batch["metapaths"], draw(k_sample, batch), train=True,
            rngs={"dropout": k_drop},
        )
        p_mp, p_sc = (projector.apply(params["projector"], z) for z in (z_mp, z_sc))
        value = losses.multi_positive_info_nce(p_mp, p_sc, batch["pos"], temperature=model["tau"], weight=model["lam"])
        return value, (state, {})

    def embed(params, state, batch):
        return encoder.apply(params["encoder"], batch["features"], batch["metapaths"], method=HeCoEncoder.metapath_view)

    return Method(init, loss, embed)
