"""DGI: training on embedded Cora, the corruption, and the loss against a hand-written BCE.

DGI's loss is O(N) (``losses.jsd`` on per-node scores), with no N x N term: there is no
blockwise mode to compare against.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcl_jax import augment, data, train
from gcl_jax import graph as G
from gcl_jax.methods import dgi

MODEL = {**dgi.DEFAULTS["model"], "hidden": 32}


@pytest.fixture(scope="module")
def setup():
    ds = data.load("cora")
    graph = G.normalize_features(jax.device_put(ds.graph._replace(nodes=np.asarray(ds.graph.nodes, np.float32))))
    method = dgi.build(MODEL, graph)
    optimizer, _ = train.make_optimizer(1e-2, 30)
    step = jax.jit(train.make_step(method, optimizer))
    ts = train.init_state(method, optimizer, 0, graph)
    return graph, method, step, ts


def test_loss_decreases_and_embeddings(setup):
    graph, method, step, ts = setup
    values = []
    for _ in range(25):
        ts, loss, metrics = step(ts, graph)
        values.append(float(loss))
    assert np.all(np.isfinite(values))
    assert abs(values[0] - np.log(2.0)) < 0.05  # untrained discriminator: BCE ~ log 2
    assert np.mean(values[-5:]) < values[0] - 0.05
    assert float(metrics["pos_score"]) > float(metrics["neg_score"])
    z = jax.jit(method.embed)(ts.params, ts.state, graph)
    assert z.shape == (G.num_nodes(graph), MODEL["hidden"])
    assert bool(jnp.all(jnp.isfinite(z)))


def test_corruption_is_a_row_permutation(setup):
    graph = setup[0]
    key = jax.random.split(jax.random.PRNGKey(3), 3)[0]
    shuffled = np.asarray(augment.shuffle_nodes(key, graph).nodes)
    x = np.asarray(graph.nodes)
    assert not np.array_equal(shuffled, x)
    # same multiset of rows: identical after sorting rows lexicographically
    order = lambda m: m[np.lexsort(m.T[::-1])]
    np.testing.assert_array_equal(order(shuffled), order(x))
    assert np.array_equal(np.asarray(augment.shuffle_nodes(key, graph).senders), np.asarray(graph.senders))


def test_loss_is_the_official_bce_with_logits(setup):
    graph, method, _, ts = setup
    params, key = ts.params, jax.random.PRNGKey(11)
    loss, _ = method.loss(params, {}, key, graph)
    # hand computation: encoder outputs, summary, bilinear scores, BCE over [pos, neg] vs [1, 0]
    corrupted = augment.shuffle_nodes(jax.random.split(key, 3)[0], graph)
    h = np.asarray(method.embed(params, {}, graph), np.float64)
    h_neg = np.asarray(method.embed(params, {}, corrupted), np.float64)
    s = 1.0 / (1.0 + np.exp(-h.mean(axis=0)))
    w = np.asarray(params["discriminator"]["params"]["kernel"], np.float64)
    b = float(params["discriminator"]["params"]["bias"])
    logits = np.concatenate([h @ w @ s + b, h_neg @ w @ s + b])
    labels = np.concatenate([np.ones(len(h)), np.zeros(len(h))])
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    np.testing.assert_allclose(float(loss), bce, rtol=1e-4)


def test_bilinear_init_matches_torch_xavier_bound():
    w = dgi.bilinear_init(jax.random.PRNGKey(0), (64, 64))
    bound = np.sqrt(6.0 / (64 * 64 + 64))
    assert float(jnp.max(jnp.abs(w))) <= bound and float(jnp.max(jnp.abs(w))) > 0.9 * bound
