"""MEOW (Yu, Ge, Li, Wang, Wang, Zhang, Guo, SDM 2023, "Heterogeneous Graph Contrastive Learning
with Meta-path Contexts and Weighted Negative Samples"), for :class:`gcl_jax.data.HeteroDataset`.

Two views of the target nodes, encoded by one shared two-layer GCN:

- coarse view: the target nodes' input layer ``ELU(dropout(x W + b))`` (heco's ``TypeInput``; the same
  output, dropout draw included, as the fine views'),
  propagated over the mean of the normalized meta-path adjacencies;
- fine-grained view: per meta-path, the target input plus its *meta-path context*: for every
  intermediate node type on the path (``"apcpa"``: ``ap``, ``apc``, ``apcp``) the mean of the
  input embeddings of the nodes reached by that prefix, through its own bias-free linear map and
  dropout, summed, ``ELU``; each such view is encoded over its meta-path graph, and once more with
  masked target features over a graph with masked edges; the ``2M`` results, L2-normalized, are
  fused by semantic attention (heco's ``SemanticAttention``). That fusion is the node embedding.

Meta-path graphs keep, per node, the ``top_k`` neighbours with the largest PathSim
``2 A_ij / (A_ii + A_jj)`` (``A`` the path counts), weighted by their counts, and are normalized
as HeCo does (``D^-1/2 A D^-1/2``, heco's ``normalized_metapath``). The GCN is MEOW's:
``PReLU(A_hat dropout(x W1))``, then ``A_hat dropout(h W2)``, no biases, and a layer norm over the
whole ``N x d`` output without affine parameters. Both views go through one projection
``tanh(Dense)``, L2-normalized.

Loss: k-means (several cluster counts) of the projected fine view, without gradient, gives
each pair a negative weight = the number of clusterings separating them
(:func:`gcl_jax.losses.cluster_negative_weights`); the coarse view is the anchor of
:func:`gcl_jax.losses.weighted_info_nce`; ``proto_weight`` times the prototypical contrast of the
coarse view against each clustering's centroids (:func:`gcl_jax.losses.prototypical_nce`) is added.

Official code: github.com/jianxiangyu/MEOW (code_meow/module/meow.py, encoder.py, preprocess.py,
code/module/contrast.py, cluster.py; hyperparameters code_meow/utils/params.py). As there, the
feature and edge masks are drawn once per run (here from ``model.mask_seed``, on the host) and the
embedding includes the masked views. Differences, all deliberate: k-means runs in JAX inside the
step (Lloyd, ``kmeans_iterations`` steps, one random start, Euclidean; the official code runs faiss
with 5 restarts and inner-product assignment); the concentration uses Euclidean distances to the
centroid as PCL defines it (the official code takes square roots of faiss inner products); the
loss sums the denominators where the official code multiplies means by ``N`` (a constant shift of
the prototypical term by ``log(N / K)``, same gradients); embeddings are computed without dropout
(the official code keeps its last training forward pass's); by default MEOW's input layers start
from HeCo's Xavier-normal kernels and its context maps and projection from flax's defaults, where
the official code keeps ``torch.nn.Linear``'s (``model.torch_init = true`` gives those, and is
AdaMEOW's default: there it decides between Ma-F1 72 and 85 on ACM). :mod:`gcl_jax.methods.adameow`
reuses everything here with learned negative weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax import losses
from gcl_jax.data.build import binary
from gcl_jax.methods import heco
from gcl_jax.nn import Activation, propagate
from gcl_jax.nn.layers import dense_init
from gcl_jax.train import Method

LEVEL = "node"

DEFAULTS = {
    "epochs": 200,
    "lr": 0.0007,
    "weight_decay": 0.0,
    "checkpoint_every": 100,
    "model": {
        "hidden": 64,
        "tau": 0.4,
        "dropout": 0.2,
        "feat_mask": 0.3,  # share of the target features' nonzero entries zeroed in the masked views
        # One value for every meta-path, or a table {metapath = value} (the configs give tables):
        "adj_mask": 0.2,  # share of a meta-path graph's edges dropped in its masked view
        "top_k": 700,  # PathSim neighbours kept per node (MEOW's nei_max)
        "clusters": [100, 300],  # k-means cluster counts (MEOW's num_cluster)
        "proto_weight": 1.0,  # MEOW's lam_proto
        "kmeans_iterations": 20,
        "mask_seed": 0,  # seed of the feature and edge masks, drawn once on the host
        "torch_init": False,  # torch.nn.Linear's default init where the official code keeps it (MEOWEncoder)
        "path_counts": "stored",  # "stored": the meta-path files' values; "relations": recount from edges
        "dense_above": 0.05,  # meta-path density from which the dense N x N product is used
    },
    "eval": {"protocol": "hetero"},
}


# ----------------------------------------------------------------------------- host-side batch


def relation(dataset, source: str, target: str) -> sp.csr_matrix:
    """The 0/1 incidence ``[N_source, N_target]`` of the typed edges between two node types."""
    n = dataset.num_nodes
    for name, flip in ((source + target, False), (target + source, True)):
        if name in dataset.relations:
            pairs = dataset.relations[name]
            rows, cols = (pairs[:, 1], pairs[:, 0]) if flip else (pairs[:, 0], pairs[:, 1])
            return binary(sp.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n[source], n[target])))
    raise ValueError(f"{dataset.name}: no relation between node types {source!r} and {target!r}")


def path_counts(dataset, path: str) -> sp.csr_matrix:
    """Number of path instances between the ends of ``path`` (one letter per node type)."""
    counts = relation(dataset, path[0], path[1])
    for source, target in itertools.pairwise(path[1:]):
        counts = counts @ relation(dataset, source, target)
    return sp.csr_matrix(counts)


def context_prefixes(metapath: str) -> tuple[str, ...]:
    """The prefixes of a meta-path ending at each intermediate node: ``"apcpa"`` -> ap, apc, apcp."""
    if len(metapath) < 3 or metapath[0] != metapath[-1]:
        raise ValueError(f"meta-path {metapath!r}: expected a path from the target type back to it")
    return tuple(metapath[:end] for end in range(2, len(metapath)))


def pathsim_top_k(counts: sp.spmatrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` entries of largest PathSim ``2 A_ij / (A_ii + A_jj)``, with their counts."""
    a = sp.coo_matrix(counts, dtype=np.float64)
    a.sum_duplicates()
    diagonal = sp.csr_matrix(counts).diagonal()
    score = 2 * a.data / np.maximum(diagonal[a.row] + diagonal[a.col], 1e-12)
    order = np.lexsort((-score, a.row))
    rows = a.row[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = order[rank < k]
    return sp.csr_matrix((a.data[keep], (a.row[keep], a.col[keep])), shape=a.shape)


def mean_operator(incidence: sp.spmatrix) -> dict:
    """A target x type incidence as device arrays for the row mean ``D^-1 R h``."""
    r = G.row_stochastic(incidence).tocoo()
    return {"rows": jnp.asarray(r.row, jnp.int32), "cols": jnp.asarray(r.col, jnp.int32),
            "weights": jnp.asarray(r.data, jnp.float32)}


def mask_entries(rng: np.random.Generator, matrix: sp.spmatrix, rate: float) -> sp.csr_matrix:
    """``matrix`` with ``int(rate * nnz)`` of its stored entries, drawn without replacement, set to 0."""
    out = sp.csr_matrix(matrix, copy=True)
    out.data[rng.choice(out.nnz, int(rate * out.nnz), replace=False)] = 0.0
    out.eliminate_zeros()
    return out


def masked_metapath(rng: np.random.Generator, top: sp.spmatrix, rate: float) -> sp.csr_matrix:
    """MEOW's masked meta-path graph: the 0/1 pattern without its diagonal, ``int(rate * E)`` edges
    dropped, self-loops added."""
    pattern = binary(top)
    pattern.setdiag(0)
    pattern.eliminate_zeros()
    return binary(mask_entries(rng, pattern, rate) + sp.identity(pattern.shape[0], format="csr"))


def per_metapath(model: dict, field: str, metapaths: Sequence[str]) -> dict:
    """A model field given as one value for all meta-paths or as a table ``{metapath: value}``."""
    values = model[field]
    if not isinstance(values, dict):
        return {m: values for m in metapaths}
    if set(values) != set(metapaths):
        raise ValueError(f"model.{field}: expected a value for each meta-path {sorted(metapaths)}, got {sorted(values)}")
    return dict(values)


def dataset_batch(dataset, config: dict) -> dict:
    """MEOW's batch (on the device): the target's row-normalized features, their masked copy and
    each context type's input (heco's, one-hot ids for types without features), the context mean
    operators, and each meta-path's normalized top-k operator and its masked twin. Masks are drawn
    once, from ``model.mask_seed``, as the official code draws them once per run."""
    model = config["model"]
    metapaths = sorted(dataset.metapaths)
    top_k, drops = per_metapath(model, "top_k", metapaths), per_metapath(model, "adj_mask", metapaths)
    source = model["path_counts"]
    if source not in ("stored", "relations"):
        raise ValueError(f"model.path_counts: expected 'stored' or 'relations', got {source!r}")
    rng = np.random.default_rng(int(model["mask_seed"]))
    prefixes = sorted({p for m in metapaths for p in context_prefixes(m)})
    inputs = {"target": heco.node_inputs(dataset, dataset.target, False)}
    inputs.update({kind: heco.node_inputs(dataset, kind, False) for kind in sorted({p[-1] for p in prefixes})})
    target = G.row_stochastic(dataset.features[dataset.target])
    operators, masked = {}, {}
    for m in metapaths:
        counts = dataset.metapaths[m] if source == "stored" else path_counts(dataset, m)
        top = pathsim_top_k(counts, int(top_k[m]))
        operators[m] = heco.normalized_metapath(top, model["dense_above"])
        masked[m] = heco.normalized_metapath(masked_metapath(rng, top, drops[m]), model["dense_above"])
    return {
        "features": inputs,
        "masked_target": jnp.asarray(mask_entries(rng, target, model["feat_mask"]).toarray(), jnp.float32),
        "contexts": {p: mean_operator(binary(path_counts(dataset, p))) for p in prefixes},
        "metapaths": operators,
        "masked_metapaths": masked,
    }


def apply_operator(operator, x: jax.Array) -> jax.Array:
    """``A_hat x`` for one of heco's meta-path operators (dense matrix or weighted graph)."""
    return operator @ x if isinstance(operator, jax.Array) else propagate(operator, x)


def mean_over_operators(operators: Sequence) -> Callable:
    """The operator ``x -> mean_m A_m x`` (MEOW's coarse graph, the mean of the meta-path graphs)."""
    return lambda x: sum(apply_operator(op, x) for op in operators) / len(operators)


# ----------------------------------------------------------------------------- layers


def _gcn_init(key, shape, dtype=jnp.float32):
    """MEOW's GraphConv init: uniform in ``+-1/sqrt(out_features)``."""
    bound = 1.0 / np.sqrt(shape[1])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class MEOWGCN(nn.Module):
    """Two graph convolutions ``A (dropout(x W))``, PReLU between, then a layer norm over all
    entries of the ``[N, d]`` output (no affine part); ``propagate(x)`` applies ``A``."""

    features: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, propagate_fn: Callable, *, train: bool = False) -> jax.Array:
        for layer in range(2):
            w = self.param(f"weight_{layer}", _gcn_init, (x.shape[-1], self.features))
            x = propagate_fn(nn.Dropout(self.dropout)(x @ w, deterministic=not train))
            x = Activation("prelu")(x) if layer == 0 else x
        return (x - jnp.mean(x)) / jnp.sqrt(jnp.var(x) + 1e-5)


class MEOWEncoder(nn.Module):
    """Coarse and fine-grained views; ``__call__`` gives the projected ``(coarse, fine)`` and the
    fused fine embedding."""

    hidden: int
    kinds: Sequence[str]  # "target" and the context node types
    metapaths: Sequence[str]
    dropout: float = 0.0
    torch_init: bool = False  # input layers, context maps and projection as torch.nn.Linear's default

    def setup(self):
        inits = dense_init("torch", self.hidden) if self.torch_init else {}
        self.inputs = {
            kind: heco.TypeInput(self.hidden, self.dropout, "torch" if self.torch_init else "heco") for kind in self.kinds
        }
        self.context_maps = {
            f"{m}_{p}": nn.Dense(self.hidden, use_bias=False, **inits) for m in self.metapaths for p in context_prefixes(m)
        }
        self.gcn = MEOWGCN(self.hidden, self.dropout)
        self.drop = nn.Dropout(self.dropout)
        self.attention = heco.SemanticAttention(self.dropout)
        self.project = nn.Dense(self.hidden, **inits)

    def _context(self, m: str, means: dict, train: bool) -> jax.Array:
        """Sum over the meta-path's prefixes of ``dropout(W_p mean_{reached nodes} h)``; every call
        draws its own dropout masks (the official code applies the map once per view)."""
        return sum(self.drop(self.context_maps[f"{m}_{p}"](means[p]), deterministic=not train) for p in context_prefixes(m))

    def fine(self, h: dict, masked_target, contexts, operators, masked_operators, *, train: bool = False):
        """The fused fine-grained embedding ``[N, hidden]`` from the input layers' outputs ``h``."""
        h_masked = self.inputs["target"](masked_target, train=train)
        n = h["target"].shape[0]
        means = {p: jax.ops.segment_sum(op["weights"][:, None] * h[p[-1]][op["cols"]], op["rows"], num_segments=n)
                 for p, op in contexts.items()}
        views = []
        for m in self.metapaths:
            for target, op in ((h["target"], operators[m]), (h_masked, masked_operators[m])):
                context = self._context(m, means, train)
                z = self.gcn(nn.elu(target + context), lambda x, op=op: apply_operator(op, x), train=train)
                views.append(z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12))
        return self.attention(jnp.stack(views), train=train)

    def projected(self, z: jax.Array) -> jax.Array:
        """The shared projection ``normalize(tanh(Dense z))``."""
        p = jnp.tanh(self.project(z))
        return p / jnp.maximum(jnp.linalg.norm(p, axis=1, keepdims=True), 1e-12)

    def __call__(self, features, masked_target, contexts, operators, masked_operators, *, train: bool = False):
        h = {kind: self.inputs[kind](features[kind], train=train) for kind in self.kinds}
        z = self.fine(h, masked_target, contexts, operators, masked_operators, train=train)
        coarse_op = mean_over_operators([operators[m] for m in self.metapaths])
        coarse = self.gcn(h["target"], coarse_op, train=train)  # the fine views' target input, its dropout included
        return self.projected(coarse), self.projected(z), z


# ----------------------------------------------------------------------------- k-means


def kmeans(key, x: jax.Array, clusters: int, iterations: int) -> tuple[jax.Array, jax.Array]:
    """Lloyd's k-means from ``clusters`` distinct random rows: ``(centroids [K, d], assignment [N])``.
    An empty cluster keeps its previous centroid."""
    centroids = x[jax.random.choice(key, x.shape[0], (clusters,), replace=False)]

    def assign(c):
        return jnp.argmin(jnp.sum(c * c, axis=1)[None, :] - 2.0 * x @ c.T, axis=1)

    def step(c, _):
        a = assign(c)
        sums = jax.ops.segment_sum(x, a, num_segments=clusters)
        counts = jax.ops.segment_sum(jnp.ones(x.shape[0]), a, num_segments=clusters)[:, None]
        return jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), c), None

    centroids, _ = jax.lax.scan(step, centroids, None, length=iterations)
    return centroids, assign(centroids)


# ----------------------------------------------------------------------------- method


def build_with_contrast(model: dict, sample, init_contrast: Callable, contrast: Callable) -> Method:
    """The MEOW encoder with a loss ``contrast(params, key, coarse, fine) -> (loss, metrics)`` over the
    projected views; ``init_contrast(key, coarse, fine)`` gives its own parameters (``{}`` if none)."""
    metapaths = tuple(sorted(sample["metapaths"]))
    encoder = MEOWEncoder(
        model["hidden"], tuple(sample["features"]), metapaths, dropout=model["dropout"], torch_init=model["torch_init"]
    )

    def views(batch):
        return batch["features"], batch["masked_target"], batch["contexts"], batch["metapaths"], batch["masked_metapaths"]

    def init(key, batch):
        k_enc, k_contrast = jax.random.split(key)
        enc_vars = encoder.init(k_enc, *views(batch))
        coarse, fine, _ = (jnp.zeros(s.shape, s.dtype) for s in jax.eval_shape(encoder.apply, enc_vars, *views(batch)))
        return {"encoder": enc_vars, "contrast": init_contrast(k_contrast, coarse, fine)}, {}

    def loss(params, state, key, batch):
        k_drop, k_contrast = jax.random.split(key)
        coarse, fine, _ = encoder.apply(params["encoder"], *views(batch), train=True, rngs={"dropout": k_drop})
        value, metrics = contrast(params["contrast"], k_contrast, coarse, fine)
        return value, (state, metrics)

    def embed(params, state, batch):
        return encoder.apply(params["encoder"], *views(batch))[2]

    return Method(init, loss, embed)


def cluster_weighted_contrast(model: dict) -> Callable:
    """MEOW's loss: k-means of the (gradient-free) fine view per cluster count; cluster-weighted
    InfoNCE anchored on the coarse view plus ``proto_weight`` x the mean prototypical contrast."""
    counts = tuple(int(k) for k in model["clusters"])
    tau, iterations = model["tau"], int(model["kmeans_iterations"])

    def contrast(params, key, coarse, fine):
        target = jax.lax.stop_gradient(fine)
        results = [kmeans(k, target, count, iterations) for k, count in zip(jax.random.split(key, len(counts)), counts)]
        weights = losses.cluster_negative_weights(jnp.stack([a for _, a in results]))
        info = losses.weighted_info_nce(coarse, fine, weights, temperature=tau)
        proto = sum(
            losses.prototypical_nce(coarse, c, a, losses.prototype_concentration(target, c, a, temperature=tau))
            for c, a in results
        ) / len(results)
        return info + model["proto_weight"] * proto, {"info_nce": info, "proto_nce": proto}

    return contrast


def build(model: dict, sample) -> Method:
    """MEOW on a :func:`dataset_batch` batch."""
    if not model["clusters"]:
        raise ValueError("model.clusters: expected at least one k-means cluster count")
    return build_with_contrast(model, sample, lambda key, coarse, fine: {}, cluster_weighted_contrast(model))
