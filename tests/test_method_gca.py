"""GCA: trains on Cora, embeddings, adaptive drop probabilities by hand, blockwise == dense, configs."""

import jax
import numpy as np
import pytest

from gcl_jax import config as config_lib
from gcl_jax import data, runner, train
from gcl_jax import graph as G
from gcl_jax.methods import gca
from helpers import assert_loss_decreases, train_steps

STEPS = 25
NODES = 1000  # the dense N x N loss dominates a step: a real subgraph of Cora keeps the file fast


def cora_subgraph(n):
    """Cora's first ``n`` nodes and the edges among them."""
    g = data.load("cora").graph
    adjacency = G.to_scipy(g)[:n, :n]
    return G.from_scipy(adjacency, np.asarray(g.nodes, np.float32)[:n])


@pytest.fixture(scope="module")
def setup():
    raw = cora_subgraph(NODES)
    graph = G.normalize_features(jax.device_put(raw))
    model = config_lib.merge(gca.DEFAULTS["model"], {"hidden": 16, "proj_hidden": 16, "tau": 0.5})
    method = gca.build(model, graph)
    optimizer, _ = train.make_optimizer(0.01, STEPS, weight_decay=1e-5)
    step = jax.jit(train.make_step(method, optimizer))
    _, ts, history = train_steps(method, optimizer, graph, STEPS)
    return raw, graph, model, method, ts, step, history


def test_loss_finite_and_decreases(setup):
    *_, history = setup
    assert_loss_decreases(history, 0.05)


def test_embeddings_finite_with_hidden_width(setup):
    _, graph, _, method, ts, _, _ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (NODES, 16) and np.isfinite(z).all()


def _normalized(scores, p, p_tau=0.7):
    w = (scores.max() - scores) / (scores.max() - scores.mean())
    return np.minimum(w * p, p_tau)


def test_degree_drop_probabilities_by_hand(setup):
    raw, graph, model, *_ = setup
    senders, receivers = np.asarray(raw.senders), np.asarray(raw.receivers)
    n = raw.nodes.shape[0]
    adjacency = np.zeros((n, n), bool)
    adjacency[senders, receivers] = adjacency[receivers, senders] = True
    degree = adjacency.sum(0).astype(np.float64)
    edges, feats = gca.drop_probabilities(model, graph)
    for p, got in zip(model["drop_edge"], edges):
        np.testing.assert_allclose(got, _normalized(np.log1p(degree[receivers]), p), rtol=1e-5, atol=1e-6)
        assert got.max() <= 0.7 + 1e-7
    binary = (np.asarray(raw.nodes) != 0).astype(np.float64)
    for p, got in zip(model["drop_feature"], feats):
        np.testing.assert_allclose(got, _normalized(np.log1p(binary.T @ degree), p), rtol=1e-5, atol=1e-6)
    # the weights are those of the nonzero pattern, whatever the row normalization did
    assert np.allclose(gca.drop_probabilities(model, raw)[1][0], feats[0])
    # uncapped, the probabilities average the view's nominal rate (GCA divides by the mean weight)
    assert np.mean(_normalized(np.log1p(degree[receivers]), 0.2, p_tau=1.0)) == pytest.approx(0.2, rel=1e-6)


def test_blockwise_loss_equals_dense(setup):
    _, graph, model, _, ts, step, _ = setup
    blockwise = gca.build(dict(model, block_size=256), graph)
    _, dense_value, _ = step(ts, graph)  # the compiled dense step's loss, at key fold_in(run key, step)
    key = jax.random.fold_in(ts.key, ts.step)
    block_value, _ = jax.jit(blockwise.loss)(ts.params, ts.state, key, graph)
    np.testing.assert_allclose(float(block_value), float(dense_value), rtol=1e-5)


def test_bfloat16_compute_matches_float32_and_keeps_float32_parameters(setup):
    """Mixed precision (GRACE's model, so GCA's too): same loss and gradients up to bf16 rounding,
    gradients and parameters stay float32, and the compiled step keeps fewer bytes."""
    _, graph, model, _, ts, _, _ = setup
    model = dict(model, activation="relu")  # RReLU draws its random slopes in the compute dtype
    method, mixed = (gca.build(dict(model, compute_dtype=dtype), graph) for dtype in ("float32", "bfloat16"))
    key = jax.random.fold_in(ts.key, ts.step)
    grads = [jax.jit(jax.grad(lambda p, m=m: m.loss(p, ts.state, key, graph)[0]))(ts.params) for m in (method, mixed)]
    values = [float(jax.jit(m.loss)(ts.params, ts.state, key, graph)[0]) for m in (method, mixed)]
    np.testing.assert_allclose(values[1], values[0], rtol=2e-2)
    full, half = (np.concatenate([np.ravel(g) for g in jax.tree_util.tree_leaves(t)]) for t in grads)
    assert {g.dtype for g in jax.tree_util.tree_leaves(grads[1])} == {np.dtype(np.float32)}
    assert np.dot(full, half) / (np.linalg.norm(full) * np.linalg.norm(half)) > 0.99  # same direction
    optimizer, _ = train.make_optimizer(0.01, STEPS)

    def temp_bytes(m):
        state = train.init_state(m, optimizer, 0, graph)
        return jax.jit(train.make_step(m, optimizer)).lower(state, graph).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(mixed) < temp_bytes(method)
    with pytest.raises(ValueError, match="model.compute_dtype: expected 'float32' or 'bfloat16', got 'float16'"):
        gca.build(dict(model, compute_dtype="float16"), graph)


@pytest.mark.parametrize("method_name, dataset", [
    ("gca", "amazon-computers"), ("gca", "amazon-photo"), ("grace", "amazon-computers"), ("grace", "amazon-photo"),
])
def test_packaged_configs_use_known_keys(method_name, dataset):
    from gcl_jax import methods

    module = methods.get(method_name)
    assert config_lib.packaged(method_name, dataset) is not None
    cfg = runner.resolve_config(method_name, dataset, None, [])
    assert set(cfg["model"]) == set(module.DEFAULTS["model"])
    assert cfg["eval"]["protocol"] == "random" and cfg["epochs"] == 2000
