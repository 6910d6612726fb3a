"""CSGCL: trains on a Cora subgraph, community strength / CED / CAV by hand, the team-up InfoNCE
against the official formula in numpy (dense, blockwise, sharded), its warm-up schedule, configs."""

import functools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_loss_decreases, cora_graph
from jax.sharding import PartitionSpec as P

from gcl_jax import augment, losses, runner, train
from gcl_jax import config as config_lib
from gcl_jax import graph as G
from gcl_jax.methods import csgcl

STEPS = 25
NODES = 600  # a real subgraph of Cora: the dense N x N loss stays cheap


def two_triangles():
    """Triangles 0-1-2 and 3-4-5 joined by the edge 2-3, both directions; communities {0,1,2}, {3,4,5}."""
    pairs = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]
    rows, cols = zip(*(pairs + [(b, a) for a, b in pairs]))
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 6))
    return G.from_scipy(adjacency, np.eye(6, dtype=np.float32)), np.array([0, 0, 0, 1, 1, 1])


@pytest.fixture(scope="module")
def setup():
    full = cora_graph()
    adjacency = G.to_scipy(full)[:NODES, :NODES]
    graph = jax.device_put(G.from_scipy(adjacency, np.asarray(full.nodes)[:NODES]))
    model = config_lib.merge(csgcl.DEFAULTS["model"], {
        "hidden": 16, "proj_hidden": 16, "tau": 0.5, "team_up_start": 5, "team_up_ramp": 5, "team_up_max": 1.0,
    })
    method = csgcl.build(model, graph)
    optimizer, _ = train.make_optimizer(0.01, STEPS, weight_decay=1e-5)
    step = jax.jit(train.make_step(method, optimizer))
    ts = train.init_state(method, optimizer, 0, graph)
    history, gammas = [], []
    for _ in range(STEPS):
        ts, loss, metrics = step(ts, graph)
        history.append(float(loss))
        gammas.append(float(metrics["gamma"]))
    return graph, model, method, ts, np.array(history), np.array(gammas)


def test_loss_finite_and_decreases(setup):
    *_, history, _ = setup
    assert_loss_decreases(history, 0.05)


def test_embeddings_finite_with_hidden_width(setup):
    graph, _, method, ts, *_ = setup
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, graph))
    assert z.shape == (NODES, 16) and np.isfinite(z).all()


def test_team_up_weight_warms_up_per_epoch(setup):
    *_, ts, _, gammas = setup
    epochs = np.arange(1, STEPS + 1)
    np.testing.assert_allclose(gammas, np.clip((epochs - 5) / 5, 0.0, 1.0))  # 0 until t0, +1/ramp, capped
    assert int(ts.state["epoch"]) == STEPS


def test_community_strength_by_hand():
    graph, labels = two_triangles()
    per_community, per_node = augment.community_strength(graph, labels)
    # m = 7 edges; each community holds 3 of them and a degree sum of 7: S = 3/7 - (7/14)^2
    np.testing.assert_allclose(per_community, [3 / 7 - 0.25] * 2)
    np.testing.assert_allclose(per_node, [3 / 7 - 0.25] * 6, rtol=1e-6)
    assert augment.detect_communities(graph, seed=0).tolist() == labels.tolist()


def test_strengths_sum_to_networkx_modularity(setup):
    graph = setup[0]
    labels = augment.detect_communities(graph, seed=0)
    assert augment.detect_communities(graph, seed=0) is labels  # cached per (graph, seed)
    per_community, per_node = augment.community_strength(graph, labels)
    nx_graph = nx.from_scipy_sparse_array(G.to_scipy(graph))
    communities = [set(np.flatnonzero(labels == c)) for c in range(labels.max() + 1)]
    assert per_community.sum() == pytest.approx(nx.community.modularity(nx_graph, communities), abs=1e-9)
    np.testing.assert_allclose(per_node, per_community[labels], rtol=1e-6)


def test_communal_edge_dropping_by_hand():
    graph, labels = two_triangles()
    strength, _ = augment.community_strength(graph, labels)
    bridge = (np.asarray(graph.senders) + np.asarray(graph.receivers)) == 5  # 2->3 and 3->2 only
    # intra edges score S, the bridge -2S: min-max gives 1 and 0, mean 12/14, keep = w / mean * (1 - p)
    probs = augment.communal_edge_weights(graph, labels, strength, p=0.3)
    np.testing.assert_allclose(probs[~bridge], 1 - 14 / 12 * 0.7, rtol=1e-6)
    np.testing.assert_allclose(probs[bridge], 1.0)
    low = augment.communal_edge_weights(graph, labels, strength, p=0.1)  # keep 14/12 * 0.9 > 1: clipped
    np.testing.assert_allclose(low[~bridge], 0.0, atol=1e-7)
    capped = augment.communal_edge_weights(graph, labels, strength, p=0.3, threshold=0.6)  # keep >= 0.4
    np.testing.assert_allclose(capped[bridge], 0.6, rtol=1e-6)


def test_communal_attribute_voting_by_hand():
    features = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 2], [0, 0, 0, 1]], np.float32)
    strength = np.array([1.0, 1.0, 2.0, 2.0])
    # votes sum |x| S per attribute: 2, 3, 0 (no carrier: never dropped), 6
    w = np.array([1.0, np.log(2) / np.log(3), 0.0, 0.0])  # (log 6 - log vote) / (log 6 - log 2)
    got = augment.communal_attribute_weights(features, strength, p=0.2)
    np.testing.assert_allclose(got, w / w.mean() * 0.2, rtol=1e-6)
    np.testing.assert_allclose(augment.communal_attribute_weights(features, strength, p=0.2, p_max=0.4),
                               np.minimum(w / w.mean() * 0.2, 0.4), rtol=1e-6)


# --- the team-up InfoNCE: official formula (src/model.py _team_up) in numpy, three execution modes

N, D, N_PAD, BLOCK, TAU, GAMMA = 37, 16, 40, 8, 0.5, 0.7
MESH = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))


def _loss_data():
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(N, D)).astype(np.float32)
    z2 = (z1 + 0.8 * rng.normal(size=(N, D))).astype(np.float32)
    return z1, z2, rng.uniform(-0.1, 0.3, N).astype(np.float32)


def team_up_numpy(z1, z2, strength, gamma, tau):
    """CSGCL's team-up loss as the official code writes it: both directions averaged."""
    def one_way(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        bonus = gamma * (strength[:, None] + strength[None, :])
        refl, between = np.exp((a @ a.T + bonus) / tau), np.exp((a @ b.T + bonus) / tau)
        return -np.log(np.diag(between) / (refl.sum(1) + between.sum(1) - np.diag(refl)))

    z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
    return np.mean(0.5 * (one_way(z1, z2) + one_way(z2, z1)))


def _team_up(z1, z2, bonus, **kw):
    return losses.info_nce(z1, z2, temperature=TAU, team_up=bonus, **kw)


@functools.cache
def _grad_fn(block_size):
    return jax.jit(jax.value_and_grad(functools.partial(_team_up, block_size=block_size), argnums=(0, 1)))


def _sharded_grad_fn(collective, block_size):
    local = lambda a, b, s, v: _team_up(a, b, s, valid=v, axis_name="d", block_size=block_size, collective=collective)
    mapped = jax.shard_map(local, mesh=MESH, in_specs=(P("d"),) * 4, out_specs=P())
    return jax.jit(jax.value_and_grad(mapped, argnums=(0, 1)))


def test_team_up_info_nce_matches_official_formula_dense_and_blockwise():
    z1, z2, strength = _loss_data()
    expected = team_up_numpy(z1, z2, strength, GAMMA, TAU)
    assert expected != pytest.approx(team_up_numpy(z1, z2, strength, 0.0, TAU), rel=1e-3)  # the bonus matters
    dense_value, dense_grads = _grad_fn(None)(z1, z2, GAMMA * strength / TAU)
    block_value, block_grads = _grad_fn(BLOCK)(z1, z2, GAMMA * strength / TAU)
    np.testing.assert_allclose(float(dense_value), expected, rtol=1e-5)
    np.testing.assert_allclose(float(block_value), expected, rtol=1e-5)
    for got, ref in zip(block_grads, dense_grads):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    plain = losses.info_nce(z1, z2, temperature=TAU)
    np.testing.assert_allclose(float(_team_up(z1, z2, np.zeros(N, np.float32))), float(plain), rtol=1e-6)


@pytest.mark.parametrize("collective", ["ring", "all_gather"])
def test_team_up_info_nce_sharded_matches_official_formula(collective):
    z1, z2, strength = _loss_data()
    pad = lambda x: jnp.pad(x, ((0, N_PAD - N),) + ((0, 0),) * (x.ndim - 1))
    value, grads = _sharded_grad_fn(collective, 2)(pad(z1), pad(z2), pad(GAMMA * strength / TAU), jnp.arange(N_PAD) < N)
    np.testing.assert_allclose(float(value), team_up_numpy(z1, z2, strength, GAMMA, TAU), rtol=1e-5)
    _, dense_grads = _grad_fn(None)(z1, z2, GAMMA * strength / TAU)
    for got, ref in zip(grads, dense_grads):
        assert np.all(np.asarray(got)[N:] == 0)
        np.testing.assert_allclose(np.asarray(got)[:N], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_team_up_rejects_pos_mask():
    z1, z2, strength = _loss_data()
    with pytest.raises(ValueError, match="team_up: not supported with pos_mask"):
        losses.info_nce(z1, z2, team_up=strength, pos_mask=np.eye(N, dtype=bool))


@pytest.mark.parametrize("dataset", ["amazon-computers", "amazon-photo"])
def test_packaged_configs_use_known_keys(dataset):
    assert config_lib.packaged("csgcl", dataset) is not None
    cfg = runner.resolve_config("csgcl", dataset, None, [])
    assert set(cfg["model"]) == set(csgcl.DEFAULTS["model"])
    assert cfg["eval"]["protocol"] == "random" and cfg["epochs"] in (1500, 2000)


def test_bad_ramp_is_rejected(setup):
    graph, model, *_ = setup
    with pytest.raises(ValueError, match="model.team_up_ramp: expected a positive number of epochs, got 0"):
        csgcl.build(dict(model, team_up_ramp=0), graph)
