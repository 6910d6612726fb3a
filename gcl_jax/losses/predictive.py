"""Per-node predictive losses: BGRL bootstrap and GraphMAE scaled cosine error.

O(N d); under ``axis_name`` the mean is psum-ed (global mean on every device).
``valid`` is an optional ``(N,)`` row mask (for GraphMAE: the masked nodes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax.parallel import as_valid, global_mean

from ._common import l2_normalize


def _cosine(a, b):
    a, b = l2_normalize(a), l2_normalize(b)
    return jnp.sum(a.astype(jnp.float32) * b.astype(jnp.float32), axis=-1)


def bootstrap(online, target, *, stop_target_gradient=True, valid=None, axis_name=None):
    r"""BGRL bootstrap loss (Thakoor et al., ICLR 2022; BYOL, Grill et al. 2020)::

        L = (1/N) sum_i (2 - 2 cos(q_i, y_i))

    ``online``: predictor outputs ``q``; ``target``: target-encoder outputs ``y``
    (wrapped in ``stop_gradient`` unless ``stop_target_gradient=False``).  BGRL
    symmetrises by adding the loss with the views swapped.
    """
    if stop_target_gradient:
        target = jax.lax.stop_gradient(target)
    return global_mean(2.0 - 2.0 * _cosine(online, target),
                       as_valid(valid, online.shape[0]), axis_name)


def scaled_cosine_error(x, x_rec, *, alpha=2.0, valid=None, axis_name=None):
    r"""GraphMAE scaled cosine error (Hou et al., KDD 2022, eq. 3)::

        L = (1/|V~|) sum_{i in V~} (1 - cos(x_i, z_i))^alpha,  alpha >= 1

    over the masked nodes ``V~`` (pass them as ``valid``).
    """
    err = jnp.maximum(1.0 - _cosine(x, x_rec), 0.0)
    return global_mean(err ** alpha, as_valid(valid, x.shape[0]), axis_name)
