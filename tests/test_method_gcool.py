"""gCooL: DeCA and ReSC against plain numpy on tiny inputs, the decay schedule, training on a real
subgraph of Cora, embeddings, configs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_loss_decreases, train_steps
from test_method_gca import cora_subgraph

from gcl_jax import config as config_lib
from gcl_jax import graph as G
from gcl_jax import losses, runner, train
from gcl_jax.methods import gcool

STEPS = 25
NODES = 600  # the N x N InfoNCE dominates a step: a real subgraph of Cora keeps the file fast
SMALL = {"encoder_hidden": 32, "hidden": 16, "proj_hidden": 16, "tau": 0.5, "communities": 4}


def numpy_deca(r, senders, receivers, lam):
    """The official dense form: ``(lam sum(F) - (n - 1 + lam) tr(F)) / (n (n - 1)) + tr(R^T R) / (2 n)``,
    ``F = R^T A R`` with the 0/1 adjacency of the kept edges."""
    n = r.shape[0]
    a = np.zeros((n, n))
    a[senders, receivers] = 1.0
    f = r.T @ a @ r
    return (lam * f.sum() - (n - 1 + lam) * np.trace(f)) / (n * (n - 1)) + np.trace(r.T @ r) / (2 * n)


def numpy_resc(h1, h2, labels1, labels2, k, tau, gamma):
    """Both directions node -> other view's centroids, with the weights as the official RBF branch
    applies them to the exponentiated similarities."""

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def centroids(u, labels):
        return np.stack([u[labels == c].mean(0) if (labels == c).any() else np.zeros(u.shape[1]) for c in range(k)])

    def one_way(u, c, labels):
        s = np.exp(u @ c.T / tau)
        w = np.exp(-gamma * ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))[labels]
        ws = s * w
        pos = s[np.arange(len(u)), labels]
        return -np.log(pos) + np.log(pos + ws.sum(1) - ws[np.arange(len(u)), labels])

    u1, u2 = unit(h1), unit(h2)
    return np.mean((one_way(u1, centroids(u2, labels2), labels2) + one_way(u2, centroids(u1, labels1), labels1)) / 2)


def test_deca_equals_dense_numpy_form_with_dropped_edges():
    rng = np.random.default_rng(0)
    n, k, lam = 9, 3, 0.4
    r = np.asarray(jax.nn.softmax(rng.normal(size=(n, k)) * 2, axis=1), np.float64)
    pairs = rng.choice(n * n, 20, replace=False)
    senders, receivers = pairs // n, pairs % n
    weights = (rng.random(20) > 0.3).astype(np.float32)  # zero weight = an edge the view dropped
    deca = jax.jit(functools.partial(losses.dense_community_aggregation, lam=lam))
    got = deca(jnp.asarray(r, jnp.float32), senders, receivers, edge_weights=weights)
    kept = weights > 0
    np.testing.assert_allclose(float(got), numpy_deca(r, senders[kept], receivers[kept], lam), rtol=1e-5)


def test_community_assignments_are_a_softmax_of_cosines():
    rng = np.random.default_rng(1)
    h, centers = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    cos = (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (centers / np.linalg.norm(centers, axis=1, keepdims=True)).T
    expected = np.exp(cos / 0.3) / np.exp(cos / 0.3).sum(1, keepdims=True)
    assign = jax.jit(functools.partial(losses.community_assignments, temperature=0.3))
    got = assign(jnp.asarray(h, jnp.float32), jnp.asarray(centers, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.7])
def test_resc_equals_numpy_with_an_empty_community(gamma):
    rng = np.random.default_rng(2)
    n, k, tau = 10, 4, 0.5
    h1, h2 = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
    labels1, labels2 = rng.choice([0, 1, 3], n), rng.choice([0, 2, 3], n)  # community 2 / 1 empty in view 1 / 2
    resc = jax.jit(functools.partial(losses.reweighted_cross_contrast, num_communities=k, temperature=tau, gamma=gamma))
    got = resc(jnp.asarray(h1, jnp.float32), jnp.asarray(h2, jnp.float32), labels1, labels2)
    np.testing.assert_allclose(float(got), numpy_resc(h1, h2, labels1, labels2, k, tau, gamma), rtol=1e-5)


def test_resc_centroids_carry_no_gradient():
    """The centroids are fixed targets: with one node per community, ReSC's gradient equals the one
    of the same loss with the centroids (the nodes' unit vectors) passed in as constants."""
    rng = np.random.default_rng(3)
    h1, h2 = (jnp.asarray(rng.normal(size=(3, 4)), jnp.float32) for _ in range(2))
    labels, tau = jnp.arange(3), 0.5

    def unit(x):
        return x / jnp.linalg.norm(x, axis=1, keepdims=True)

    const1, const2 = unit(h1), unit(h2)

    def one_way(u, c):
        return jax.nn.logsumexp(u @ c.T / tau, axis=1) - jnp.sum(u * c, axis=1) / tau

    def with_constant_centroids(a, b):
        return jnp.mean((one_way(unit(a), const2) + one_way(unit(b), const1)) / 2)

    def resc(a, b):
        return losses.reweighted_cross_contrast(a, b, labels, labels, 3, temperature=tau)

    got, want = (jax.jit(jax.grad(f, argnums=(0, 1)))(h1, h2) for f in (resc, with_constant_centroids))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


def test_community_weights_schedule_by_hand():
    """Photo's schedule (stride 500, alpha_rate 0.2): DeCA first, ReSC growing, both off from epoch 100."""
    for epoch, alpha in [(0, 1.0), (50, 0.5), (80, 0.2), (100, 0.0), (2000, 0.0)]:
        beta = np.exp(-epoch / 500)
        deca, resc = gcool.community_weights(epoch, 500, 0.2)
        np.testing.assert_allclose([float(deca), float(resc)], [alpha * beta, alpha * (1 - beta)], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def setup():
    graph = G.normalize_features(jax.device_put(cora_subgraph(NODES)))
    model = config_lib.merge(gcool.DEFAULTS["model"], {**SMALL, "stride": 10000.0, "alpha_rate": 1.0})  # both terms on
    method = gcool.build(model, graph)
    optimizer, _ = train.make_optimizer(0.01, STEPS, weight_decay=1e-5)
    _, ts, history = train_steps(method, optimizer, graph, STEPS)
    return graph, model, method, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert_loss_decreases(history, 0.05)


def test_loss_is_info_nce_plus_scheduled_community_terms(setup):
    """The epoch counter follows the optimizer steps; the loss is the weighted sum of its parts and
    drops to the InfoNCE alone once the schedule has switched the community terms off."""
    graph, model, method, ts, _ = setup
    assert int(ts.state["epoch"]) == STEPS
    key = jax.random.fold_in(ts.key, ts.step)
    loss = jax.jit(method.loss)
    value, (_, parts) = loss(ts.params, ts.state, key, graph)
    w_deca, w_resc = gcool.community_weights(STEPS, model["stride"], model["alpha_rate"])
    combined = parts["info_nce"] + w_deca * parts["deca"] + w_resc * parts["resc"]
    np.testing.assert_allclose(float(value), float(combined), rtol=1e-6)
    assert float(parts["deca"]) < 0  # edge mass inside communities outweighs the rest
    off = {"epoch": jnp.asarray(int(model["stride"] * model["alpha_rate"]), jnp.int32)}
    value, (_, parts) = loss(ts.params, off, key, graph)
    np.testing.assert_allclose(float(value), float(parts["info_nce"]), rtol=1e-6)


def test_embeddings_are_the_encoder_outputs(setup):
    graph, _, method, ts, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (NODES, SMALL["hidden"]) and np.isfinite(z).all()
    assert ts.params["centers"].shape == (SMALL["communities"], SMALL["hidden"])


def test_bad_fields_are_named(setup):
    graph, model, *_ = setup
    with pytest.raises(ValueError, match="model.communities: expected at least 2"):
        gcool.build(dict(model, communities=1), graph)
    with pytest.raises(ValueError, match="model.stride: expected a positive number"):
        gcool.build(dict(model, stride=0), graph)


@pytest.mark.parametrize("dataset", ["amazon-computers", "amazon-photo"])
def test_packaged_configs_use_known_keys(dataset):
    assert config_lib.packaged("gcool", dataset) is not None
    cfg = runner.resolve_config("gcool", dataset, None, [])
    assert set(cfg["model"]) == set(gcool.DEFAULTS["model"])
    assert cfg["eval"]["protocol"] == "random" and cfg["epochs"] == 2900
