"""CCA-SSG: trains on Cora, embeddings, the loss against the reference objective by hand, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import config as config_lib
from gcl_jax import losses, runner, train
from gcl_jax.methods import cca_ssg
from gcl_jax.nn import GraphEncoder
from helpers import assert_loss_decreases, cora_graph, train_steps

STEPS = 25
WIDTH = 32


def reference_objective(h1, h2, lambd):
    """The official main.py objective: -tr(C) + lambd (||I - C1||^2 + ||I - C2||^2), unbiased std."""
    n = h1.shape[0]
    z1 = (h1 - h1.mean(0)) / h1.std(0, ddof=1)
    z2 = (h2 - h2.mean(0)) / h2.std(0, ddof=1)
    c, c1, c2 = z1.T @ z2 / n, z1.T @ z1 / n, z2.T @ z2 / n
    eye = np.eye(h1.shape[1])
    return -np.trace(c) + lambd * (((eye - c1) ** 2).sum() + ((eye - c2) ** 2).sum())


@pytest.fixture(scope="module")
def setup():
    graph = cora_graph()
    model = config_lib.merge(cca_ssg.DEFAULTS["model"], {"hidden": WIDTH, "out": WIDTH})
    method = cca_ssg.build(model, graph)
    optimizer, _ = train.make_optimizer(5e-3, STEPS)
    _, ts, history = train_steps(method, optimizer, graph, STEPS)
    return graph, model, method, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert_loss_decreases(history, 0.1)


def test_embeddings_finite_with_output_width(setup):
    graph, _, method, ts, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (2708, WIDTH) and np.isfinite(z).all()


def test_shared_loss_with_twice_lambda_is_twice_the_reference_plus_a_constant():
    rng = np.random.default_rng(0)
    n, d, lambd = 300, 8, 1e-3
    h1 = rng.normal(size=(n, d))
    h2 = h1 + 0.5 * rng.normal(size=(n, d)) + 0.2 * h1[:, ::-1]
    got = float(losses.cca_ssg(jnp.asarray(h1, jnp.float32), jnp.asarray(h2, jnp.float32), lambda_=2 * lambd))
    expected = 2.0 * reference_objective(h1, h2, lambd) + 2.0 * (n - 1) / n * d
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_method_loss_without_augmentation_matches_the_reference(setup):
    graph, model, _, ts, _ = setup
    plain = cca_ssg.build(dict(model, drop_edge=0.0, drop_feature=0.0), graph)
    value, _ = jax.jit(plain.loss)(ts.params, ts.state, jax.random.PRNGKey(0), graph)
    encoder = GraphEncoder("gcn", (WIDTH, WIDTH), activation="relu", activate_last=False)
    h = np.asarray(jax.jit(lambda p, g: encoder.apply(p, g, train=False))(ts.params["encoder"], graph), np.float64)
    n = h.shape[0]
    expected = 2.0 * reference_objective(h, h, model["lambd"]) + 2.0 * (n - 1) / n * WIDTH
    np.testing.assert_allclose(float(value), expected, rtol=1e-4, atol=1e-4)


def test_one_layer_encoder_is_linear_gcn():
    assert cca_ssg.encoder_widths(512, 256, 1) == (256,)
    assert cca_ssg.encoder_widths(512, 256, 2) == (512, 256)


@pytest.mark.parametrize("dataset", ["cora", "citeseer", "amazon-computers", "amazon-photo"])
def test_packaged_configs_use_known_keys(dataset):
    assert config_lib.packaged("cca-ssg", dataset) is not None
    cfg = runner.resolve_config("cca-ssg", dataset, None, [])
    assert set(cfg["model"]) == set(cca_ssg.DEFAULTS["model"])
    assert cfg["eval"]["protocol"] == ("planetoid" if dataset in ("cora", "citeseer") else "random")
