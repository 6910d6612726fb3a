"""SCGC / SCGC*: influence matrix, the influence contrastive loss and DEC head against numpy, training
on Cora, the method's loss against an independent computation, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_loss_decreases, train_steps

from gcl_jax import config as config_lib
from gcl_jax import data, losses, runner, train
from gcl_jax import graph as G
from gcl_jax.methods import scgc

STEPS = 20
SMALL = {"clusters": 7, "hidden": [32, 32, 64], "embedding": 8, "pretrain_epochs": 1, "kmeans_restarts": 1}


def random_edges(rng, n, extra):
    """Weighted edges: every self-loop plus ``extra`` random pairs (duplicates merged)."""
    pairs = np.concatenate([np.stack([np.arange(n)] * 2, 1), rng.integers(0, n, (extra, 2))])
    matrix = sp.coo_matrix((rng.uniform(0.1, 1.0, len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr().tocoo()
    return matrix.row, matrix.col, matrix.data, matrix.toarray()


def numpy_cosines(z):
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    cos = u @ u.T
    np.fill_diagonal(cos, 0.0)
    return cos


def numpy_positive_log_mass(z, dense_weights, tau):
    return np.log(np.sum(dense_weights * np.exp(tau * numpy_cosines(z)), axis=1))


def numpy_influence_loss(z, dense_weights, tau):
    """SCGC's Ncontrast: -log(sum_j W_ij exp(tau cos_ij) / sum_j exp(tau cos_ij)), cos_ii = 0."""
    cos = numpy_cosines(z)
    return np.mean(np.log(np.exp(tau * cos).sum(1)) - numpy_positive_log_mass(z, dense_weights, tau))


def numpy_dec_kl(z, centres):
    q = 1.0 / (1.0 + ((z[:, None, :] - centres[None]) ** 2).sum(-1))
    q = q / q.sum(1, keepdims=True)
    p = q**2 / q.sum(0)
    p = p / p.sum(1, keepdims=True)
    return q, p, np.sum(p * np.log(p / q)) / len(z)


def test_influence_matrix_is_the_row_normalized_powers():
    a = sp.csr_matrix(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0]], float))
    dense = a.toarray() + np.eye(4)
    a_hat = dense / dense.sum(1, keepdims=True)
    np.testing.assert_allclose(scgc.influence_matrix(a, 1, True).toarray(), a_hat)
    np.testing.assert_allclose(scgc.influence_matrix(a, 3, False).toarray(), a_hat @ a_hat @ a_hat)
    np.testing.assert_allclose(scgc.influence_matrix(a, 3, True).toarray(), a_hat + a_hat @ a_hat + a_hat @ a_hat @ a_hat)
    with pytest.raises(ValueError, match="model.order"):
        scgc.influence_matrix(a, 0, True)


def test_influence_contrastive_matches_numpy():
    rng = np.random.default_rng(0)
    n, tau = 37, 0.7
    z = rng.normal(size=(n, 5))
    senders, receivers, weights, dense_weights = random_edges(rng, n, 90)
    got = losses.influence_contrastive(jnp.asarray(z, jnp.float32), senders, receivers, weights, tau=tau)
    np.testing.assert_allclose(float(got), numpy_influence_loss(z, dense_weights, tau), rtol=1e-5)
    positives = losses.influence_positives(jnp.asarray(z, jnp.float32), senders, receivers, weights, tau=tau)
    np.testing.assert_allclose(np.asarray(positives), numpy_positive_log_mass(z, dense_weights, tau), rtol=1e-5, atol=1e-6)


def test_blockwise_value_and_gradient_equal_dense():
    rng = np.random.default_rng(1)
    n, tau = 50, 2.0
    z = rng.normal(size=(n, 6))
    senders, receivers, weights, dense_weights = random_edges(rng, n, 120)
    dense, blockwise = (
        jax.value_and_grad(lambda v, b=b: losses.influence_contrastive(v, senders, receivers, weights, tau=tau, block_size=b))(
            jnp.asarray(z, jnp.float32))
        for b in (None, 16)
    )
    np.testing.assert_allclose(float(blockwise[0]), numpy_influence_loss(z, dense_weights, tau), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(blockwise[1]), np.asarray(dense[1]), rtol=1e-4, atol=1e-6)


def test_dec_head_matches_numpy():
    rng = np.random.default_rng(2)
    z, centres = rng.normal(size=(40, 3)), rng.normal(size=(4, 3))
    q, p, kl = numpy_dec_kl(z, centres)
    got_q = losses.student_t_assignments(jnp.asarray(z, jnp.float32), jnp.asarray(centres, jnp.float32))
    np.testing.assert_allclose(np.asarray(got_q), q, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.dec_target(got_q)), p, rtol=1e-5)
    np.testing.assert_allclose(float(losses.dec_kl(got_q)), kl, rtol=1e-4)


@pytest.fixture(scope="module")
def setup():
    cora = data.load("cora")
    model = config_lib.merge(scgc.DEFAULTS["model"], SMALL)
    batch = scgc.dataset_batch(cora, {"model": model})
    method = scgc.build(model, batch)
    optimizer, _ = train.make_optimizer(1e-3, STEPS)
    ts0, ts, history = train_steps(method, optimizer, batch, STEPS)
    return cora, model, batch, method, ts0, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert_loss_decreases(history, 0.01)


def test_init_pretrains_and_places_centres_at_kmeans(setup):
    _, _, batch, method, ts0, _, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts0.params, ts0.state, batch))
    assert z.shape == (2708, SMALL["embedding"]) and np.isfinite(z).all()
    centres = np.asarray(ts0.params["centres"])
    assert centres.shape == (SMALL["clusters"], SMALL["embedding"])
    nearest = np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    for k in np.unique(nearest):  # k-means centres are the means of their clusters
        np.testing.assert_allclose(centres[k], z[nearest == k].mean(0), rtol=1e-3, atol=1e-3)
    assert "decoder" in ts0.params


def test_method_loss_equals_an_independent_computation(setup):
    cora, model, batch, method, _, ts, _ = setup
    value, (_, metrics) = jax.jit(method.loss)(ts.params, ts.state, jax.random.PRNGKey(0), batch)
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch), np.float64)
    weights = scgc.influence_matrix(G.to_scipy(cora.graph), model["order"], model["influence"]).toarray()
    _, _, kl = numpy_dec_kl(z, np.asarray(ts.params["centres"], np.float64))
    contrast = numpy_influence_loss(z, weights, model["tau"])
    np.testing.assert_allclose(float(metrics["kl"]), kl, rtol=1e-3)
    np.testing.assert_allclose(float(metrics["contrastive"]), contrast, rtol=1e-4)
    np.testing.assert_allclose(float(value), model["beta"] * kl + model["alpha"] * contrast, rtol=1e-4)


def test_missing_cluster_count_is_rejected():
    with pytest.raises(ValueError, match="model.clusters"):
        scgc.build(scgc.DEFAULTS["model"], None)


@pytest.mark.parametrize("dataset,clusters", [("citeseer", 6), ("dblp-author", 4)])
def test_packaged_configs_use_known_keys(dataset, clusters):
    assert config_lib.packaged("scgc", dataset) is not None
    cfg = runner.resolve_config("scgc", dataset, None, [])
    assert set(cfg["model"]) == set(scgc.DEFAULTS["model"])
    assert cfg["model"]["clusters"] == clusters and cfg["eval"]["protocol"] == "clustering"
