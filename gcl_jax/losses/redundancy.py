"""Redundancy-reduction losses on feature cross-correlations: Barlow Twins,
VICReg, CCA-SSG.

These are O(N d^2): batch statistics are sums over rows, so under
``axis_name`` (inside ``jax.shard_map`` with rows sharded) every batch sum is
``psum``-ed and the result equals the single-device loss.  ``valid`` is an
optional ``(N,)`` row mask (padding rows are excluded from every statistic).
All statistics are accumulated in float32.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gcl_jax.parallel import as_valid, count_valid, global_mean, psum


def _centered(z, valid, axis_name):
    """Rows minus the (global, valid-row) batch mean; padding rows set to 0."""
    zf = z.astype(jnp.float32)
    w = valid[:, None]
    n = count_valid(valid, axis_name)
    mean = psum(jnp.sum(jnp.where(w, zf, 0.0), axis=0), axis_name) / n
    return jnp.where(w, zf - mean, 0.0), n


def _gram(a, b, axis_name):
    """``sum_rows a^T b`` over all devices, float32."""
    return psum(jnp.dot(a.T, b, preferred_element_type=jnp.float32), axis_name)


def _off_diagonal_sq(c):
    return jnp.sum(c * c) - jnp.sum(jnp.diagonal(c) ** 2)


def barlow_twins(z1, z2, *, lambda_=None, eps=1e-5, valid=None, axis_name=None):
    r"""Barlow Twins (Zbontar et al., ICML 2021; graph version G-BT, Bielak et
    al. 2022).

    Each feature is standardised over the batch, ``a = (z1 - mean) / sqrt(var +
    eps)`` (biased variance, as BatchNorm without affine), same for ``b``;
    ``C = a^T b / N`` (d x d cross-correlation)::

        L = sum_k (1 - C_kk)^2 + lambda * sum_{k != l} C_kl^2

    ``lambda_=None`` uses ``1 / d`` (G-BT's choice); the image paper uses 5e-3.
    """
    valid = as_valid(valid, z1.shape[0])
    d = z1.shape[1]
    lam = 1.0 / d if lambda_ is None else lambda_
    a, n = _centered(z1, valid, axis_name)
    b, _ = _centered(z2, valid, axis_name)
    a = a / jnp.sqrt(psum(jnp.sum(a * a, axis=0), axis_name) / n + eps)
    b = b / jnp.sqrt(psum(jnp.sum(b * b, axis=0), axis_name) / n + eps)
    c = _gram(a, b, axis_name) / n
    return jnp.sum((1.0 - jnp.diagonal(c)) ** 2) + lam * _off_diagonal_sq(c)


def vicreg(z1, z2, *, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, gamma=1.0, eps=1e-4,
           valid=None, axis_name=None):
    r"""VICReg (Bardes et al., ICLR 2022), paper eq. (6)::

        s(Z, Z') = (1/N) sum_i ||z_i - z'_i||^2 / d            (invariance, MSE)
        v(Z)     = (1/d) sum_k max(0, gamma - sqrt(Var(z^k) + eps))
        c(Z)     = (1/d) sum_{k != l} Cov(Z)_kl^2
        L = sim_coeff s + std_coeff [v(Z) + v(Z')] + cov_coeff [c(Z) + c(Z')]

    with unbiased (N - 1) variance/covariance.  (The official code averages the
    two variance terms, i.e. halves ``std_coeff``.)
    """
    valid = as_valid(valid, z1.shape[0])
    d = z1.shape[1]
    diff = z1.astype(jnp.float32) - z2.astype(jnp.float32)
    inv = global_mean(jnp.mean(diff * diff, axis=1), valid, axis_name)

    def var_cov(z):
        zc, n = _centered(z, valid, axis_name)
        cov = _gram(zc, zc, axis_name) / (n - 1.0)
        std = jnp.sqrt(jnp.diagonal(cov) + eps)
        return jnp.mean(jax.nn.relu(gamma - std)), _off_diagonal_sq(cov) / d

    v1, c1 = var_cov(z1)
    v2, c2 = var_cov(z2)
    return sim_coeff * inv + std_coeff * (v1 + v2) + cov_coeff * (c1 + c2)


def cca_ssg(z1, z2, *, lambda_=1e-3, eps=1e-8, valid=None, axis_name=None):
    r"""CCA-SSG (Zhang et al., NeurIPS 2021, eq. 5-6).

    ``Z~ = (Z - mean) / std / sqrt(N)`` per feature (unbiased std, as the
    reference code), then::

        L = ||Z~_A - Z~_B||_F^2 + lambda (||I - Z~_A^T Z~_A||_F^2 + ||I - Z~_B^T Z~_B||_F^2)
    """
    valid = as_valid(valid, z1.shape[0])

    def standardise(z):
        zc, n = _centered(z, valid, axis_name)
        var = psum(jnp.sum(zc * zc, axis=0), axis_name) / (n - 1.0)
        return zc / jnp.sqrt(var + eps) / jnp.sqrt(n)

    a, b = standardise(z1), standardise(z2)
    eye = jnp.eye(z1.shape[1], dtype=jnp.float32)
    inv = psum(jnp.sum((a - b) ** 2), axis_name)
    dec = jnp.sum((eye - _gram(a, a, axis_name)) ** 2) + jnp.sum((eye - _gram(b, b, axis_name)) ** 2)
    return inv + lambda_ * dec
