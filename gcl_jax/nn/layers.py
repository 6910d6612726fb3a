"""Graph layers (GCN, GAT, GIN, GraphSAGE) and the pieces a block is made of (activation, norm, MLP).

Every layer is ``layer(graph, x, *, train=False, ...) -> [N, features]``: ``x`` is the node state
(``graph.nodes`` for the first layer), ``graph`` supplies the edges and their weights.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from gcl_jax import graph as G
from gcl_jax.parallel import psum
from gcl_jax.nn.ops import edge_sum, propagate, segment_softmax

glorot = nn.initializers.glorot_uniform()
DENSE_INITS = ("glorot", "torch", "heco")

#: torch's ``xavier_normal_(gain=1.414)``: HeCo's (and MEOW's) init for weights and attention vectors.
heco_init = nn.initializers.variance_scaling(2.0, "fan_avg", "normal")


def dense_init(kind: str, fan_in: int) -> dict:
    """Initializers for ``nn.Dense``: ``glorot`` (Glorot-uniform kernel, zero bias), ``torch``
    (``torch.nn.Linear``'s default: kernel and bias uniform in ``+-1/sqrt(fan_in)``), which the
    official PyTorch code of GRACE-family projection heads relies on (a Glorot head with zero bias
    collapses GCA's Amazon configs at learning rate 0.1 after one Adam step, in PyTorch as here),
    or ``heco`` (:data:`heco_init` kernel, bias left at ``torch.nn.Linear``'s default, as HeCo's
    and MEOW's code re-initialize only the weights)."""
    if kind == "glorot":
        return {"kernel_init": glorot}
    if kind in ("torch", "heco"):
        bound = fan_in ** -0.5

        def uniform(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        return {"kernel_init": heco_init if kind == "heco" else uniform, "bias_init": uniform}
    raise ValueError(f"initializer: expected one of {', '.join(DENSE_INITS)}, got {kind!r}")


def xavier_normal(gain: float):
    """``torch.nn.init.xavier_normal_``: normal with std ``gain * sqrt(2 / (fan_in + fan_out))``,
    the fans counted as torch counts them (dims 1 and 0, each times the trailing dims)."""

    def init(key, shape, dtype=jnp.float32):
        fan_sum = (shape[0] + shape[1]) * math.prod(shape[2:])
        return gain * math.sqrt(2.0 / fan_sum) * jax.random.normal(key, shape, dtype)

    return init


#: GATConv initializations: PyG's Glorot-uniform, or GraphMAE's xavier-normal with ReLU's gain
#: sqrt(2) (its gat.py ``reset_parameters``) for weights and attention vectors alike.
GAT_INITS = {"glorot": glorot, "xavier_normal_relu": xavier_normal(math.sqrt(2.0))}

ACTIVATIONS = ("relu", "prelu", "elu", "rrelu", "leaky_relu", "gelu", "tanh", "sigmoid", "identity")
NORMS = ("none", "batch", "layer")


class Activation(nn.Module):
    """A named activation. ``prelu`` learns one slope (init 0.25, as torch's PReLU used by DGI/GRACE);
    ``rrelu`` (Xu et al. 2015, used by GRACE) draws a slope in ``[lower, upper]`` per element while
    training (rng stream ``"dropout"``) and uses the mean slope in evaluation."""

    kind: str = "relu"
    lower: float = 1.0 / 8.0
    upper: float = 1.0 / 3.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        kind = self.kind
        if kind == "prelu":
            return nn.PReLU(negative_slope_init=0.25)(x)
        if kind == "rrelu":
            if train:
                slope = jax.random.uniform(self.make_rng("dropout"), x.shape, x.dtype, self.lower, self.upper)
            else:
                slope = (self.lower + self.upper) / 2.0
            return jnp.where(x >= 0, x, slope * x)
        simple = {
            "relu": nn.relu,
            "elu": nn.elu,
            "leaky_relu": nn.leaky_relu,
            "gelu": nn.gelu,
            "tanh": jnp.tanh,
            "sigmoid": nn.sigmoid,
            "identity": lambda v: v,
        }
        if kind not in simple:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {kind!r}")
        return simple[kind](x)


BATCH_NORM_MOMENTUM = 0.9  # flax's decay of the running averages: torch's momentum 0.1
BATCH_NORM_EPSILON = 1e-5


def masked_moments(x: jax.Array, mask: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """Per-feature mean and biased variance (``E[x^2] - E[x]^2``, as flax) of the rows of ``x [N, F]``
    that ``mask [N, F]`` keeps, on every device of ``axis_name`` together: sums and counts are
    ``psum``-ed, so devices holding different numbers of rows weigh each row alike."""
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    count = jnp.maximum(psum(jnp.sum(mask, 0, dtype=x.dtype), axis_name), 1.0)
    mean = psum(jnp.sum(jnp.where(mask, x, 0.0), 0), axis_name) / count
    mean_sq = psum(jnp.sum(jnp.where(mask, x * x, 0.0), 0), axis_name) / count
    return mean, jnp.maximum(mean_sq - mean * mean, 0.0)


class AllDevicesBatchNorm(nn.Module):
    """Training-mode batch norm over the masked rows of all devices on ``axis_name`` (inside
    ``shard_map``). flax's own ``BatchNorm(axis_name=...)`` averages the devices' means, which is
    wrong when devices hold different numbers of rows. Its variables are flax ``BatchNorm``'s
    (params ``scale`` / ``bias``, batch_stats ``mean`` / ``var``, same initial values) and the
    running averages decay alike, so both read and update one variable tree."""

    axis_name: str
    momentum: float = BATCH_NORM_MOMENTUM
    epsilon: float = BATCH_NORM_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        features = x.shape[-1:]
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
        scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
        mean, var = masked_moments(x, mask, self.axis_name)
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
        return (x - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias


class Norm(nn.Module):
    """``batch`` (statistics over ``node_mask`` rows only, so padding nodes never bias them),
    ``layer`` or ``none``. Batch norm uses torch's momentum 0.1 (flax 0.9). With ``axis_name``
    (graph-level data parallelism, inside ``shard_map``), training-mode batch statistics are
    those of the kept rows of all devices (:class:`AllDevicesBatchNorm`, same variables);
    evaluation uses the running averages either way."""

    kind: str = "none"
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, node_mask: jax.Array | None = None) -> jax.Array:
        if self.kind == "none":
            return x
        if self.kind == "layer":
            return nn.LayerNorm()(x)
        if self.kind == "batch":
            mask = None if node_mask is None else jnp.broadcast_to(node_mask[:, None], x.shape)
            if train and self.axis_name is not None and not self.is_initializing():
                mask = jnp.ones(x.shape, bool) if mask is None else mask
                return AllDevicesBatchNorm(self.axis_name, name="BatchNorm_0")(x, mask)  # flax's name for it
            return nn.BatchNorm(use_running_average=not train, momentum=BATCH_NORM_MOMENTUM,
                                epsilon=BATCH_NORM_EPSILON)(x, mask=mask)
        raise ValueError(f"norm: expected one of {NORMS}, got {self.kind!r}")


class MLP(nn.Module):
    """Dense layers with activation / norm / dropout between them: the graph-free baseline and
    the projection heads of GRACE, BGRL, GraphCL. ``activate_last`` also activates the output;
    ``initializer`` names the Dense initialization (:func:`dense_init`); ``norm_axis_name``
    takes batch statistics over all devices on that mesh axis (:class:`Norm`)."""

    widths: Sequence[int]
    activation: str = "relu"
    norm: str = "none"
    dropout: float = 0.0
    activate_last: bool = False
    initializer: str = "glorot"
    norm_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, node_mask: jax.Array | None = None) -> jax.Array:
        last = len(self.widths) - 1
        for i, width in enumerate(self.widths):
            x = nn.Dropout(self.dropout)(x, deterministic=not train) if self.dropout else x
            x = nn.Dense(width, **dense_init(self.initializer, x.shape[-1]))(x)
            if i < last or self.activate_last:
                x = Norm(self.norm, self.norm_axis_name)(x, train=train, node_mask=node_mask)
                x = Activation(self.activation)(x, train=train)
        return x


class GCNConv(nn.Module):
    """GCN layer (Kipf & Welling 2017): ``D^-1/2 (A + I) D^-1/2 X W + b`` with weighted degrees,
    so weighted graphs (diffusion views, GCA) and masked edges work. ``normalize=False`` uses the
    weights as given (MVGRL's diffusion encoder)."""

    features: int
    use_bias: bool = True
    normalize: bool = True
    self_loops: bool = True

    @nn.compact
    def __call__(self, graph: G.GraphsTuple, x: jax.Array, *, train: bool = False) -> jax.Array:
        dense = nn.Dense(self.features, use_bias=False, kernel_init=glorot)
        if self.normalize:
            graph = G.gcn_normalize(graph, self_loops=self.self_loops)
        elif self.self_loops:
            graph = G.add_self_loops(graph)
        # A (X W) == (A X) W: send the narrower of input and output along the edges, which halves
        # per-edge memory and work when a layer widens (e.g. 128 -> 256 features)
        out = dense(propagate(graph, x)) if x.shape[-1] < self.features else propagate(graph, dense(x))
        if self.use_bias:
            out = out + self.param("bias", nn.initializers.zeros, (self.features,))
        return out


def _with_self_loops(graph: G.GraphsTuple, edge_features: jax.Array | None):
    """Senders, receivers, presence and edge features with one self-loop per node appended.

    Unlike ``graph.add_self_loops`` the original edge order is kept, so ``edge_features`` stay
    aligned; existing self-loops are masked first (as PyG's GATConv). A loop's edge features are
    the mean of the node's incoming present edges (PyG's ``fill_value="mean"``).
    """
    n = G.num_nodes(graph)
    loops = jnp.arange(n, dtype=jnp.int32)
    present = G.edge_mask(graph) & (graph.senders != graph.receivers)
    senders = jnp.concatenate([jnp.asarray(graph.senders, jnp.int32), loops])
    receivers = jnp.concatenate([jnp.asarray(graph.receivers, jnp.int32), loops])
    mask = jnp.concatenate([present, jnp.ones(n, bool)])
    if edge_features is not None:
        weights = present.astype(edge_features.dtype)
        incoming = jax.ops.segment_sum(edge_features * weights[:, None], graph.receivers, num_segments=n)
        count = jax.ops.segment_sum(weights, graph.receivers, num_segments=n)
        edge_features = jnp.concatenate([edge_features, incoming / jnp.maximum(count, 1.0)[:, None]])
    return senders, receivers, mask, edge_features


class GATConv(nn.Module):
    """Graph attention layer (Velickovic et al. 2018), multi-head.

    ``e_ij = LeakyReLU(a_s . W x_j + a_d . W x_i [+ a_e . W_e f_ij])``, softmax over the present
    incoming edges of ``i`` (self-loop included), dropout on the attention coefficients.
    Heads are concatenated (``[N, heads*features]``) or averaged (``[N, features]``). Edge weights
    act as a presence mask only: attention replaces them. ``edge_features`` is ``[E, D]``.
    ``initializer`` is a key of :data:`GAT_INITS`.
    """

    features: int
    heads: int = 1
    concat: bool = True
    negative_slope: float = 0.2
    attention_dropout: float = 0.0
    self_loops: bool = True
    use_bias: bool = True
    initializer: str = "glorot"

    @nn.compact
    def __call__(
        self, graph: G.GraphsTuple, x: jax.Array, *, train: bool = False, edge_features: jax.Array | None = None
    ) -> jax.Array:
        if self.initializer not in GAT_INITS:
            raise ValueError(f"initializer: expected one of {', '.join(GAT_INITS)}, got {self.initializer!r}")
        init = GAT_INITS[self.initializer]
        n, heads, width = x.shape[0], self.heads, self.features
        flat = nn.Dense(heads * width, use_bias=False, kernel_init=init)(x)  # [N, H*D]
        h = flat.reshape(n, heads, width)
        if self.self_loops:
            senders, receivers, mask, edge_features = _with_self_loops(graph, edge_features)
        else:
            senders, receivers, mask = graph.senders, graph.receivers, G.edge_mask(graph)
        att_src = self.param("att_src", init, (1, heads, width)).reshape(heads, width)
        att_dst = self.param("att_dst", init, (1, heads, width)).reshape(heads, width)
        src_score = jnp.einsum("nhd,hd->nh", h, att_src)  # contractions: no [N, H, D] products
        dst_score = jnp.einsum("nhd,hd->nh", h, att_dst)
        logits = src_score[senders] + dst_score[receivers]  # [E', H]
        if edge_features is not None:
            he = nn.Dense(heads * width, use_bias=False, kernel_init=init, name="edge_proj")(edge_features)
            att_edge = self.param("att_edge", init, (1, heads, width)).reshape(heads, width)
            logits = logits + jnp.sum(he.reshape(-1, heads, width) * att_edge, -1)
        logits = nn.leaky_relu(logits, self.negative_slope)
        alpha = segment_softmax(logits, receivers, n, mask)
        if self.attention_dropout:
            alpha = nn.Dropout(self.attention_dropout)(alpha, deterministic=not train)
        out = edge_sum(senders, receivers, alpha, h).reshape(n, heads * width)
        out = out if self.concat else out.reshape(n, heads, width).mean(axis=1)
        if self.use_bias:
            out = out + self.param("bias", nn.initializers.zeros, (out.shape[-1],))
        return out


class ShortcutMLP(nn.Module):
    """``MLP(x) + Dense(x)``: ``depth`` Dense layers of ``width`` with ``activation`` after every one,
    plus a linear shortcut of the input; InfoGraph's ``FF`` heads (ReLU) and MVGRL's projection heads
    (PReLU). ``initializer`` names every Dense's initialization (:func:`dense_init`)."""

    width: int
    activation: str = "relu"
    depth: int = 3
    initializer: str = "glorot"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        deep = MLP((self.width,) * self.depth, activation=self.activation, activate_last=True,
                   initializer=self.initializer, name="block")(x)
        return deep + nn.Dense(self.width, **dense_init(self.initializer, x.shape[-1]), name="shortcut")(x)


class GINConv(nn.Module):
    """GIN layer (Xu et al. 2019): ``MLP((1 + eps) x_i + sum_j w_ij x_j)``.

    ``learn_eps=False`` is GIN-0 as GraphCL / InfoGraph / GraphMAE use it; ``True`` makes eps a
    parameter (initialized at ``eps``). The MLP has ``mlp_layers`` Dense layers of ``features``
    with ReLU (and ``mlp_norm``, over all devices on ``norm_axis_name`` if given) between them,
    initialized as ``initializer`` names (:func:`dense_init`).
    """

    features: int
    mlp_layers: int = 2
    eps: float = 0.0
    learn_eps: bool = False
    mlp_norm: str = "none"
    norm_axis_name: str | None = None
    initializer: str = "glorot"

    @nn.compact
    def __call__(
        self, graph: G.GraphsTuple, x: jax.Array, *, train: bool = False, node_mask: jax.Array | None = None
    ) -> jax.Array:
        eps = self.param("eps", nn.initializers.constant(self.eps), ()) if self.learn_eps else self.eps
        h = (1.0 + eps) * x + propagate(graph, x)
        mlp = MLP((self.features,) * self.mlp_layers, activation="relu", norm=self.mlp_norm,
                  initializer=self.initializer, norm_axis_name=self.norm_axis_name)
        return mlp(h, train=train, node_mask=node_mask)


class SAGEConv(nn.Module):
    """GraphSAGE layer, mean aggregator (Hamilton et al. 2017): ``W_r x_i + W_n mean_j x_j``.

    The mean is weighted (``sum w x / sum w``), so masked edges drop out of it; a node with no
    present neighbour aggregates 0. ``normalize`` L2-normalizes the output.
    """

    features: int
    normalize: bool = False

    @nn.compact
    def __call__(self, graph: G.GraphsTuple, x: jax.Array, *, train: bool = False) -> jax.Array:
        degree = G.degrees(graph, "in")
        mean = propagate(graph, x) / jnp.where(degree > 0, degree, 1.0)[:, None]
        out = nn.Dense(self.features, kernel_init=glorot, name="root")(x)
        out = out + nn.Dense(self.features, use_bias=False, kernel_init=glorot, name="neighbors")(mean)
        if self.normalize:
            out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        return out
