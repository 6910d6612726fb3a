"""AdaMEOW (Yu, Ge, Li, Zhou, IEEE TKDE 2024, "Heterogeneous Graph Contrastive Learning with
Meta-path Contexts and Adaptively Weighted Negative Samples"): MEOW's encoder and views
(:mod:`gcl_jax.methods.meow`) with learned instead of cluster-given negative weights.

The weight of candidate ``j`` for anchor ``i`` is ``W_ij = sigmoid(MLP(f_i + c_j))`` with ``f`` the
projected fine-grained view (the anchor), ``c`` the projected coarse view and the MLP ``Dense(16),
tanh, Dense(1)``; the loss is :func:`gcl_jax.losses.weighted_info_nce` over all candidates, the
positive included. No clustering and no prototypical term. The first layer acts on a sum, so it
is applied to ``f`` and ``c`` separately (``N x 16`` each) and only the tanh and the read-out are
pairwise, one ``N x N`` plane per hidden unit (:func:`gcl_jax.nn.pairwise_tanh_sum`).

Official code: github.com/jianxiangyu/MEOW, code_adameow/module/adameow.py (model and loss) and
code_adameow/utils/params.py (hyperparameters). As in the official code the weights are only
bounded by the sigmoid: nothing but the training length stops them from shrinking, which lowers
the loss without changing the embeddings' contrast (see the configs for the epochs used).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcl_jax import losses
from gcl_jax.methods import meow
from gcl_jax.nn import pairwise_tanh_sum
from gcl_jax.nn.layers import dense_init
from gcl_jax.train import Method

LEVEL = "node"

_CLUSTER_ONLY = ("clusters", "proto_weight", "kmeans_iterations")
DEFAULTS = {
    **meow.DEFAULTS,
    "epochs": 300,
    "lr": 5e-5,
    "weight_decay": 1e-5,
    "model": {
        **{k: v for k, v in meow.DEFAULTS["model"].items() if k not in _CLUSTER_ONLY},
        "tau": 1.0,
        "dropout": 0.3,
        "adj_mask": 0.2,
        "top_k": 690,
        "weigher_hidden": 16,
        # The official code's torch.nn.Linear init: on ACM, seed 0, Ma-F1 84.9-85.5 at epochs 700-900
        # with it, 71.9 at epoch 1,200 with flax's (below the untrained encoder's 74.9).
        "torch_init": True,
    },
}

dataset_batch = meow.dataset_batch


class NegativeWeigher(nn.Module):
    """``W_ij = sigmoid(w2 . tanh(W1 (anchor_i + candidate_j) + b1) + b2)``, ``[N, N]``, through
    :func:`gcl_jax.nn.pairwise_tanh_sum` (no ``[N, N, hidden]`` array). With ``torch_init`` both
    layers start as ``torch.nn.Linear``'s default, else as flax's ``Dense`` (zero biases)."""

    hidden: int = 16
    torch_init: bool = False

    def inits(self, fan_in: int) -> dict:
        if self.torch_init:
            return dense_init("torch", fan_in)
        return {"kernel_init": nn.linear.default_kernel_init, "bias_init": nn.initializers.zeros}

    @nn.compact
    def __call__(self, anchor: jax.Array, candidates: jax.Array) -> jax.Array:
        first, second = self.inits(anchor.shape[-1]), self.inits(self.hidden)
        w1 = self.param("kernel_1", first["kernel_init"], (anchor.shape[-1], self.hidden))
        b1 = self.param("bias_1", first["bias_init"], (self.hidden,))
        w2 = self.param("kernel_2", second["kernel_init"], (self.hidden, 1))
        b2 = self.param("bias_2", second["bias_init"], (1,))
        scores = pairwise_tanh_sum((anchor @ w1 + b1).T, (candidates @ w1).T, w2[:, 0])
        return jax.nn.sigmoid(scores + b2[0])


def build(model: dict, sample) -> Method:
    """AdaMEOW on a :func:`gcl_jax.methods.meow.dataset_batch` batch."""
    weigher = NegativeWeigher(int(model["weigher_hidden"]), bool(model["torch_init"]))

    def init_contrast(key, coarse, fine):
        return weigher.init(key, fine, coarse)

    def contrast(params, key, coarse, fine):
        weights = weigher.apply(params, fine, coarse)
        value = losses.weighted_info_nce(fine, coarse, weights, temperature=model["tau"])
        return value, {"mean_weight": jnp.mean(weights)}

    return meow.build_with_contrast(model, sample, init_contrast, contrast)
