"""POT: certified compactness bounds (gcl_jax.nn.bounds) checked against enumerated / sampled edge
drops, relaxation lines, the drop budget by hand, and GRACE + POT training on Cora."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_loss_decreases, train_steps

from gcl_jax import config as config_lib
from gcl_jax import data, train
from gcl_jax import graph as G
from gcl_jax.methods import grace
from gcl_jax.nn import GraphEncoder, bounds

TINY_PAIRS = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 0), (5, 2)]  # 14 directed edges: 2^14 subsets


def random_graph(n: int, pairs, features: int, seed: int):
    """Undirected graph (both directions listed) with Gaussian features."""
    senders = [a for a, b in pairs] + [b for a, b in pairs]
    receivers = [b for a, b in pairs] + [a for a, b in pairs]
    x = np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)
    return G.from_edge_index(np.array([senders, receivers]), node_features=x, edge_weights=np.ones(len(senders)))


def random_pairs(n: int, count: int, seed: int):
    rng = np.random.default_rng(seed)
    pairs = {tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(count)}
    return sorted(pairs)


def encoder_setup(graph, activation: str, seed: int = 0, widths=(8, 4)):
    """A two-layer GCN encoder, its variables (PReLU slopes moved off the 0.25 init) and a direction."""
    encoder = GraphEncoder("gcn", widths, activation=activation)
    variables = encoder.init(jax.random.PRNGKey(seed), graph, train=False)
    if activation == "prelu":
        params = variables["params"]
        params["act_0"]["PReLU_0"]["negative_slope"] = jnp.asarray(0.4)
        params["act_1"]["PReLU_0"]["negative_slope"] = jnp.asarray(-0.2)
    other = jax.random.normal(jax.random.PRNGKey(seed + 1), (graph.nodes.shape[0], widths[-1]))
    return encoder, variables, bounds.compactness_weights(other)


def allowed_masks(receivers, budget, n):
    """Every keep-mask that drops at most ``budget[i]`` of node i's incoming edges."""
    receivers, budget = np.asarray(receivers), np.asarray(budget)
    keep = []
    for bits in itertools.product([False, True], repeat=receivers.shape[0]):
        drop = np.array(bits)
        if (np.bincount(receivers[drop], minlength=n) <= budget).all():
            keep.append(~drop)
    return np.array(keep, np.float32)


def sampled_masks(receivers, budget, count: int, seed: int):
    """Random keep-masks within the budget; half of them drop the full budget at every node."""
    rng = np.random.default_rng(seed)
    receivers, budget = np.asarray(receivers), np.asarray(budget).astype(int)
    masks = np.ones((count, receivers.shape[0]), np.float32)
    for m in range(count):
        for node in np.unique(receivers):
            incoming = np.flatnonzero(receivers == node)
            k = budget[node] if m % 2 else rng.integers(0, budget[node] + 1)
            masks[m, rng.choice(incoming, k, replace=False)] = 0.0
    return masks


def dense_forward(graph, keep, variables, slopes):
    """Numpy reference: pre-activations and outputs of the two-layer GCN on the kept edges, for a
    batch of keep-masks ``[M, E]`` (each array ``[M, N, width]``)."""
    n = graph.nodes.shape[0]
    adjacency = np.zeros((keep.shape[0], n, n)) + np.eye(n)
    for e, (s, r) in enumerate(zip(np.asarray(graph.senders), np.asarray(graph.receivers))):
        adjacency[:, r, s] += keep[:, e]
    inv_sqrt = 1.0 / np.sqrt(adjacency.sum(2))
    normalized = inv_sqrt[:, :, None] * adjacency * inv_sqrt[:, None, :]
    (w1, b1), (w2, b2) = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in bounds.gcn_weights(variables)]
    act = lambda z, a: np.where(z >= 0, z, float(a) * z)
    first = normalized @ (np.asarray(graph.nodes, np.float64) @ w1) + b1
    hidden = act(first, slopes[0])
    second = normalized @ (hidden @ w2) + b2
    return first, hidden, second, act(second, slopes[1])


def true_compactness(encoder, variables, graph, masks, direction):
    """``h_i . w_i`` of the library encoder on every masked graph: [masks, N]."""
    run = jax.vmap(lambda keep: bounds.compactness(encoder.apply(variables, graph._replace(edges=keep), train=False), direction))
    return np.asarray(jax.jit(run)(jnp.asarray(masks)))


def lower_bound(graph, budget, variables, activation, direction):
    edges = bounds.adjacency_bounds(graph, jnp.asarray(budget, jnp.float32))
    slopes = bounds.activation_slopes(variables, activation)
    return np.asarray(bounds.compactness_lower_bound(edges, graph.nodes, bounds.gcn_weights(variables), slopes, direction))


def test_drop_budget_by_hand():
    graph = random_graph(6, TINY_PAIRS, 3, seed=0)
    receivers = np.asarray(graph.receivers)
    degree = np.bincount(receivers, minlength=6)
    assert np.array_equal(degree, [4, 2, 4, 2, 1, 1])
    expected = np.minimum(np.maximum(degree - 1, 0), np.round(0.5 * degree))
    assert np.array_equal(np.asarray(bounds.drop_budget(graph, 0.5)), expected)  # [2, 1, 2, 1, 0, 0]
    rates = np.linspace(0.1, 0.9, receivers.shape[0]).astype(np.float32)  # per-edge (GCA)
    by_node = np.bincount(receivers, weights=rates, minlength=6)
    expected = np.minimum(np.maximum(degree - 1, 0), np.round(by_node))
    assert np.array_equal(np.asarray(bounds.drop_budget(graph, jnp.asarray(rates))), expected)
    masked = graph._replace(edges=np.where(receivers == 0, 0.0, 1.0).astype(np.float32))  # dropped edges do not count
    assert float(bounds.drop_budget(masked, 0.5)[0]) == 0.0


@pytest.mark.parametrize("slope", [0.0, 0.25, -0.3, 1.7])
def test_relaxation_lines_enclose_the_activation(slope):
    rng = np.random.default_rng(1)
    ends = np.sort(rng.normal(scale=2.0, size=(400, 2)), axis=1)
    ends[:50, 0] = ends[:50, 1]  # degenerate intervals
    ends[50:100] = np.abs(ends[50:100])  # all positive
    ends[100:150] = -np.abs(ends[100:150])[:, ::-1]  # all negative
    values = bounds.Interval(jnp.asarray(ends[:, 0], jnp.float32), jnp.asarray(ends[:, 1], jnp.float32))
    below, above = bounds.relaxation(values, slope)
    z = ends[:, :1] + np.linspace(0.0, 1.0, 101)[None, :] * (ends[:, 1:] - ends[:, :1])
    act = np.where(z >= 0, z, slope * z)
    line = lambda l: np.asarray(l.slope)[:, None] * z + np.asarray(l.intercept)[:, None]
    assert (line(below) <= act + 1e-5).all() and (act <= line(above) + 1e-5).all()
    hull = bounds.activation_interval(values, slope)
    assert (np.asarray(hull.lower)[:, None] <= act + 1e-6).all() and (act <= np.asarray(hull.upper)[:, None] + 1e-6).all()
    # the interval is exact: its ends are attained on the grid (which contains 0 when it straddles)
    grid = np.concatenate([z, np.where((ends[:, :1] < 0) & (ends[:, 1:] > 0), 0.0, z[:, :1])], axis=1)
    act_grid = np.where(grid >= 0, grid, slope * grid)
    np.testing.assert_allclose(np.asarray(hull.lower), act_grid.min(1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(hull.upper), act_grid.max(1), atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "prelu"])
def test_bound_below_compactness_of_every_allowed_drop(activation):
    graph = random_graph(6, TINY_PAIRS, 5, seed=2)
    budget = np.asarray(bounds.drop_budget(graph, 0.5))
    masks = allowed_masks(graph.receivers, budget, 6)
    degree = np.bincount(np.asarray(graph.receivers), minlength=6)
    assert len(masks) == np.prod([sum(math.comb(d, k) for k in range(int(q) + 1)) for d, q in zip(degree, budget)])
    encoder, variables, direction = encoder_setup(graph, activation)
    slopes = bounds.activation_slopes(variables, activation)
    truth = true_compactness(encoder, variables, graph, masks, direction)
    bound = lower_bound(graph, budget, variables, activation, direction)
    assert (bound <= truth.min(0) + 1e-6).all()
    # the interval bounds contain every allowed graph's pre-activations (numpy reference)
    edges = bounds.adjacency_bounds(graph, jnp.asarray(budget))
    first, hidden, second = bounds.gcn_bounds(edges, graph.nodes, bounds.gcn_weights(variables), slopes)
    z1, h, z2, out = dense_forward(graph, masks, variables, slopes)
    for value, interval in ((z1, first), (h, hidden), (z2, second)):
        assert (np.asarray(interval.lower) <= value + 1e-5).all() and (value <= np.asarray(interval.upper) + 1e-5).all()
    # the numpy reference is the library encoder, so the enumeration covers the encoder's own graphs
    np.testing.assert_allclose(np.sum(out * np.asarray(direction), -1), truth, atol=1e-5)


@pytest.mark.parametrize("activation, rate", [("relu", 0.4), ("prelu", "per-edge")])
def test_bound_below_compactness_of_sampled_drops(activation, rate):
    n = 40
    graph = random_graph(n, random_pairs(n, 110, seed=3), 12, seed=3)
    if rate == "per-edge":  # GCA-style per-edge probabilities
        rate = jnp.asarray(np.random.default_rng(4).uniform(0.1, 0.7, graph.senders.shape[0]), jnp.float32)
    budget = np.asarray(bounds.drop_budget(graph, rate))
    assert budget.sum() > 20
    masks = sampled_masks(graph.receivers, budget, 300, seed=5)
    encoder, variables, direction = encoder_setup(graph, activation, seed=6, widths=(16, 8))
    truth = true_compactness(encoder, variables, graph, masks, direction)
    bound = lower_bound(graph, budget, variables, activation, direction)
    assert (bound <= truth.min(0) + 1e-6).all()
    assert np.isfinite(bound).all()


@pytest.mark.parametrize("activation", ["relu", "prelu"])
def test_zero_budget_bound_is_the_exact_compactness(activation):
    n = 40
    graph = random_graph(n, random_pairs(n, 110, seed=7), 12, seed=7)
    encoder, variables, direction = encoder_setup(graph, activation, seed=8, widths=(16, 8))
    exact = true_compactness(encoder, variables, graph, np.ones((1, graph.senders.shape[0]), np.float32), direction)[0]
    bound = lower_bound(graph, np.zeros(n), variables, activation, direction)
    np.testing.assert_allclose(bound, exact, atol=1e-5)


def test_compactness_weights_by_hand():
    z = np.random.default_rng(9).normal(size=(5, 3))
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    expected = np.stack([unit[i] - np.delete(unit, i, axis=0).mean(0) for i in range(5)])
    np.testing.assert_allclose(np.asarray(bounds.compactness_weights(jnp.asarray(z, jnp.float32))), expected, atol=1e-6)


# ----------------------------------------------------------------------------- GRACE + POT


@pytest.fixture(scope="module")
def cora_subgraph():
    g = data.load("cora").graph
    n = 600
    adjacency = G.to_scipy(g)[:n, :n]
    return G.normalize_features(jax.device_put(G.from_scipy(adjacency, np.asarray(g.nodes, np.float32)[:n])))


def small_model(**changes):
    return config_lib.merge(grace.DEFAULTS["model"], {"hidden": 16, "proj_hidden": 16, **changes})


def test_grace_pot_trains_on_cora(cora_subgraph):
    kappa = 0.4
    method = grace.build(small_model(pot_kappa=kappa, drop_edge=[0.4, 0.3]), cora_subgraph)
    optimizer, _ = train.make_optimizer(0.01, 8, weight_decay=1e-5)
    step = jax.jit(train.make_step(method, optimizer))
    ts = train.init_state(method, optimizer, 0, cora_subgraph)
    for _ in range(8):
        ts, loss, metrics = step(ts, cora_subgraph)
        assert np.isfinite(float(loss)) and float(metrics["pot"]) > 0.0
        np.testing.assert_allclose(float(loss), (1 - kappa) * float(metrics["info_nce"]) + kappa * float(metrics["pot"]), rtol=1e-5)


def test_pot_term_alone_raises_the_certified_compactness():
    graph = random_graph(40, random_pairs(40, 110, seed=10), 12, seed=10)
    method = grace.build(small_model(pot_kappa=1.0, hidden=8, proj_hidden=8), graph)
    optimizer, _ = train.make_optimizer(0.01, 20)
    _, _, history = train_steps(method, optimizer, graph, 20)
    assert_loss_decreases(history, 0.05)


def test_pot_off_leaves_grace_unchanged():
    graph = random_graph(40, random_pairs(40, 110, seed=11), 12, seed=11)
    plain = dict(small_model(hidden=8, proj_hidden=8))
    del plain["pot_kappa"]  # a model table without the key (GCA's) is GRACE as before
    values = []
    for model in (plain, {**plain, "pot_kappa": 0.0}):
        method = grace.build(model, graph)
        params, state = jax.jit(method.init)(jax.random.PRNGKey(0), graph)
        value, (_, metrics) = jax.jit(method.loss)(params, state, jax.random.PRNGKey(1), graph)
        values.append(float(value))
        assert metrics == {}
    assert values[0] == values[1]


def test_pot_rejects_bad_settings(cora_subgraph):
    with pytest.raises(ValueError, match="model.pot_kappa: expected a weight in"):
        grace.build(small_model(pot_kappa=1.5), cora_subgraph)
    with pytest.raises(ValueError, match="model.pot_kappa: POT bounds a two-layer GCN"):
        grace.build(small_model(pot_kappa=0.3, layers=3), cora_subgraph)
    with pytest.raises(ValueError, match="activation: POT bounds need"):
        bounds.activation_slopes({}, "elu")
