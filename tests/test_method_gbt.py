"""Graph Barlow Twins: trains on Cora, embeddings, the loss against a numpy Barlow Twins, configs."""

import jax
import numpy as np
import pytest

from gcl_jax import config as config_lib
from gcl_jax import runner, train
from gcl_jax.methods import gbt
from gcl_jax.nn import GraphEncoder
from helpers import cora_graph, train_steps

STEPS = 25
EMB = 16


@pytest.fixture(scope="module")
def setup():
    graph = cora_graph()
    model = config_lib.merge(gbt.DEFAULTS["model"], {"emb_dim": EMB})
    method = gbt.build(model, graph)
    optimizer, _ = train.make_optimizer(5e-3, STEPS, weight_decay=1e-5, decoupled=True, warmup_steps=2, schedule="cosine")
    ts0, ts, history = train_steps(method, optimizer, graph, STEPS)
    return graph, model, method, ts0, ts, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert np.isfinite(history).all()
    assert history[-5:].mean() < 0.8 * history[:3].mean()


def test_embeddings_finite_and_batch_stats_in_state(setup):
    graph, _, method, ts0, ts, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (2708, EMB) and np.isfinite(z).all()
    assert set(ts.state) == {"batch_stats"} and "batch_stats" not in ts.params
    before = np.asarray(ts0.state["batch_stats"]["norm_0"]["BatchNorm_0"]["var"])
    after = np.asarray(ts.state["batch_stats"]["norm_0"]["BatchNorm_0"]["var"])
    assert not np.allclose(before, after)


def test_loss_without_augmentation_matches_numpy_barlow_twins(setup):
    graph, model, _, _, ts, _ = setup
    plain = gbt.build(dict(model, drop_edge=0.0, drop_feature=0.0), graph)
    value, _ = jax.jit(plain.loss)(ts.params, ts.state, jax.random.PRNGKey(0), graph)
    # independent forward: GCN(2d) -> BN (batch statistics) -> PReLU -> GCN(d)
    encoder = GraphEncoder("gcn", (2 * EMB, EMB), activation="prelu", norm="batch", activate_last=False)
    forward = jax.jit(lambda p, s, g: encoder.apply({"params": p, "batch_stats": s}, g, train=True, mutable=["batch_stats"])[0])
    z = forward(ts.params["encoder"], ts.state["batch_stats"], graph)
    z = np.asarray(z, np.float64)
    a = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
    c = a.T @ a / z.shape[0]
    off = (c ** 2).sum() - (np.diag(c) ** 2).sum()
    expected = ((1.0 - np.diag(c)) ** 2).sum() + off / EMB  # lambda = 1 / d
    np.testing.assert_allclose(float(value), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dataset", ["amazon-computers", "amazon-photo"])
def test_packaged_configs_use_known_keys(dataset):
    assert config_lib.packaged("gbt", dataset) is not None
    cfg = runner.resolve_config("gbt", dataset, None, [])
    assert set(cfg["model"]) == set(gbt.DEFAULTS["model"])
    assert cfg["decoupled_weight_decay"] and cfg["schedule"] == "cosine" and cfg["warmup_steps"] == 400
