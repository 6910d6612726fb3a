"""PamC: the meta-node loss against a dense numpy reference, edge chunks and empty clusters, no N x N buffer,
training on Cora, the method's loss against an independent computation, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_loss_decreases, train_steps
from test_method_scgc import SMALL, numpy_dec_kl, numpy_positive_log_mass, random_edges

from gcl_jax import config as config_lib
from gcl_jax import data, losses, runner, train
from gcl_jax import graph as G
from gcl_jax.methods import pamc, scgc

STEPS = 20


def numpy_meta_node_loss(z, assignments, clusters, dense_weights, tau):
    """Dense reference: meta-nodes M = onehot^T Z; negatives log sum_l exp(tau cos(M_k, M_l)) with
    cos(M_k, M_k) = 0 over the non-empty clusters; positives as in SCGC."""
    onehot = np.eye(clusters)[assignments]
    present = onehot.sum(0) > 0
    meta = (onehot.T @ z)[present]
    u = meta / np.linalg.norm(meta, axis=1, keepdims=True)
    cos = u @ u.T
    np.fill_diagonal(cos, 0.0)
    negatives = np.log(np.exp(tau * cos).sum(1)).mean()
    return negatives - numpy_positive_log_mass(z, dense_weights, tau).mean()


def test_meta_node_loss_equals_dense_reference_on_a_tiny_graph():
    rng = np.random.default_rng(0)
    n, clusters, tau = 12, 3, 0.5
    z = rng.normal(size=(n, 4))
    assignments = rng.integers(0, clusters, n)
    senders, receivers, weights, dense_weights = random_edges(rng, n, 20)
    got = losses.meta_node_contrastive(jnp.asarray(z, jnp.float32), assignments, clusters, senders, receivers, weights, tau=tau)
    np.testing.assert_allclose(float(got), numpy_meta_node_loss(z, assignments, clusters, dense_weights, tau), rtol=1e-5)


def test_edge_chunks_and_empty_clusters():
    """Edge chunks (a ragged last one) change nothing; empty clusters are left out, gradients finite."""
    rng = np.random.default_rng(1)
    n, clusters, tau = 30, 5, 0.8
    z = rng.normal(size=(n, 5))
    assignments = rng.choice([0, 2, 4], n)  # clusters 1 and 3 empty
    senders, receivers, weights, dense_weights = random_edges(rng, n, 50)  # 70 to 80 edges, chunks of 16
    whole, chunked = (
        jax.value_and_grad(lambda v, b=b: losses.meta_node_contrastive(
            v, assignments, clusters, senders, receivers, weights, tau=tau, edge_block=b))(jnp.asarray(z, jnp.float32))
        for b in (None, 16)
    )
    np.testing.assert_allclose(float(whole[0]), numpy_meta_node_loss(z, assignments, clusters, dense_weights, tau), rtol=1e-5)
    np.testing.assert_allclose(float(chunked[0]), float(whole[0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(chunked[1]), np.asarray(whole[1]), rtol=1e-5, atol=1e-7)
    assert np.isfinite(np.asarray(whole[1])).all()


def test_meta_node_loss_never_forms_an_n_by_n_array():
    n, d, clusters, edges = 1000, 16, 4, 5000
    rng = np.random.default_rng(2)
    senders, receivers = rng.integers(0, n, edges), rng.integers(0, n, edges)

    def loss(z, assignments):
        return losses.meta_node_contrastive(z, assignments, clusters, senders, receivers, np.ones(edges, np.float32))

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(jnp.zeros((n, d)), jnp.zeros((n,), jnp.int32))
    shapes = [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars]
    assert max(int(np.prod(s)) for s in shapes) <= edges * d
    assert not any(sum(dim >= n for dim in s) >= 2 for s in shapes)


@pytest.fixture(scope="module")
def setup():
    cora = data.load("cora")
    model = config_lib.merge(pamc.DEFAULTS["model"], {**SMALL, "alpha": 2.0, "beta": 2.0, "tau": 1.0})
    batch = pamc.dataset_batch(cora, {"model": model})
    method = pamc.build(model, batch)
    optimizer, _ = train.make_optimizer(1e-3, STEPS)
    _, ts, history = train_steps(method, optimizer, batch, STEPS)
    return cora, model, batch, method, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert_loss_decreases(history, 0.01)


def test_embeddings_finite_with_embedding_width(setup):
    _, _, batch, method, ts, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch))
    assert z.shape == (2708, SMALL["embedding"]) and np.isfinite(z).all()


def test_method_loss_equals_an_independent_computation(setup):
    cora, model, batch, method, ts, _ = setup
    value, (_, metrics) = jax.jit(method.loss)(ts.params, ts.state, jax.random.PRNGKey(0), batch)
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch), np.float64)
    q, _, kl = numpy_dec_kl(z, np.asarray(ts.params["centres"], np.float64))
    weights = scgc.influence_matrix(G.to_scipy(cora.graph), model["order"], model["influence"]).toarray()
    contrast = numpy_meta_node_loss(z, q.argmax(1), model["clusters"], weights, model["tau"])
    np.testing.assert_allclose(float(metrics["contrastive"]), contrast, rtol=1e-4)
    np.testing.assert_allclose(float(value), model["beta"] * kl + model["alpha"] * contrast, rtol=1e-4)
    assert "reconstruction" not in metrics


@pytest.mark.parametrize("dataset,clusters,order", [("citeseer", 6, 3), ("dblp-author", 4, 1)])
def test_packaged_configs_use_known_keys(dataset, clusters, order):
    assert config_lib.packaged("pamc", dataset) is not None
    cfg = runner.resolve_config("pamc", dataset, None, [])
    assert set(cfg["model"]) == set(pamc.DEFAULTS["model"])
    assert (cfg["model"]["clusters"], cfg["model"]["order"], cfg["eval"]["protocol"]) == (clusters, order, "clustering")
