"""HeCo: loss vs numpy, attention layers and GCN by hand, neighbour sampling, training on (a slice
of) ACM, the hetero protocol on synthetic embeddings, configs."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_loss_decreases, train_steps
from sklearn.metrics import f1_score

from gcl_jax import data, losses, methods, runner, train
from gcl_jax import graph as G
from gcl_jax.eval import hetero, hetero_probe, logreg, select_and_test
from gcl_jax.methods import heco

DATA = os.environ.get("GCL_JAX_DATA")


# ----------------------------------------------------------------------------- loss


def heco_loss_numpy(z1, z2, pos, tau, lam):
    """HeCo's module/contrast.py in numpy: exp(cos / tau), rows normalized, -log of the positives' share."""
    n1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    n2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    sim = np.exp(n1 @ n2.T / tau)
    mp2sc = sim / sim.sum(axis=1, keepdims=True)
    sc2mp = sim.T / sim.T.sum(axis=1, keepdims=True)
    first = -np.log((mp2sc * pos).sum(axis=1)).mean()
    second = -np.log((sc2mp * pos).sum(axis=1)).mean()
    return lam * first + (1 - lam) * second


def test_multi_positive_loss_matches_numpy():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    pos = np.eye(7)
    pos[0, 3] = pos[2, 5] = pos[6, 1] = 1.0  # not symmetric: HeCo reuses the same rows both ways
    for tau, lam in ((0.8, 0.5), (0.3, 0.2)):
        got = losses.multi_positive_info_nce(jnp.asarray(z1), jnp.asarray(z2), pos, temperature=tau, weight=lam)
        np.testing.assert_allclose(float(got), heco_loss_numpy(z1, z2, pos, tau, lam), rtol=1e-5)


def test_multi_positive_loss_differs_from_supcon_mean_form():
    """With several positives the log-of-sum (HeCo) and the mean-of-logs (info_nce pos_mask) differ."""
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    pos = np.eye(6)
    pos[:, 0] = 1.0
    ours = float(losses.multi_positive_info_nce(z1, z2, pos, temperature=0.5))
    assert ours < heco_loss_numpy(z1, z2, np.eye(6), 0.5, 0.5)  # more positives, larger numerator
    assert np.isfinite(np.asarray(jax.grad(lambda a: losses.multi_positive_info_nce(a, z2, pos))(z1))).all()


# ----------------------------------------------------------------------------- layers by hand


def test_neighbor_attention_by_hand():
    rng = np.random.default_rng(2)
    targets, neighbors = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 2, 4)).astype(np.float32)
    layer = heco.NeighborAttention(attention_dropout=0.5)
    params = layer.init(jax.random.PRNGKey(0), targets, neighbors)
    a = np.asarray(params["params"]["attention"])[0]
    got = np.asarray(layer.apply(params, targets, neighbors))  # evaluation: no dropout
    for i in range(3):
        scores = [a[:4] @ targets[i] + a[4:] @ neighbors[i, j] for j in range(2)]
        scores = np.array([s if s > 0 else 0.01 * s for s in scores])
        alpha = np.exp(scores) / np.exp(scores).sum()
        np.testing.assert_allclose(got[i], alpha @ neighbors[i], rtol=1e-5, atol=1e-6)


def test_semantic_attention_by_hand():
    rng = np.random.default_rng(3)
    views = rng.normal(size=(3, 5, 4)).astype(np.float32)  # 3 views of 5 nodes
    layer = heco.SemanticAttention()
    params = layer.init(jax.random.PRNGKey(1), jnp.asarray(views))
    p = params["params"]
    w, b, a = (np.asarray(v) for v in (p["Dense_0"]["kernel"], p["Dense_0"]["bias"], p["attention"][0]))
    assert 0 < np.abs(b).max() <= 4 ** -0.5  # HeCo leaves the bias at torch.nn.Linear's default
    scores = np.array([a @ np.tanh(v @ w + b).mean(axis=0) for v in views])
    beta = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(np.asarray(layer.apply(params, jnp.asarray(views))), np.tensordot(beta, views, 1),
                               rtol=1e-5, atol=1e-6)


def test_metapath_gcn_dense_and_sparse_by_hand():
    """A 4-node meta-path graph: D^-1/2 A D^-1/2 (no self-loops added) x W + b, PReLU; both forms."""
    a = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 0]], np.float32))
    x = np.random.default_rng(4).normal(size=(4, 3)).astype(np.float32)
    d = a.toarray().sum(1)
    expected_operator = a.toarray() / np.sqrt(np.outer(d, d))
    layer = heco.MetapathGCN(2)
    dense, sparse = heco.normalized_metapath(a, 0.5), heco.normalized_metapath(a, 1.1)
    assert isinstance(sparse, G.GraphsTuple) and not isinstance(dense, G.GraphsTuple)
    params = layer.init(jax.random.PRNGKey(2), dense, x)
    w = np.asarray(params["params"]["Dense_0"]["kernel"])
    params = jax.tree_util.tree_map(lambda v: v, params)
    params["params"]["bias"] = jnp.asarray([0.1, -0.2])
    pre = expected_operator @ (x @ w) + np.array([0.1, -0.2])
    expected = np.where(pre > 0, pre, 0.25 * pre)  # PReLU at its initial slope
    for operator in (dense, sparse):
        np.testing.assert_allclose(np.asarray(layer.apply(params, operator, x)), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- sampling


def test_sampled_neighbors_are_true_neighbors():
    rng = np.random.default_rng(5)
    degrees = np.array([1, 2, 3, 5, 9, 4])
    incidence = sp.lil_matrix((6, 12))
    for i, deg in enumerate(degrees):
        incidence[i, rng.choice(12, deg, replace=False)] = 1
    lists = heco.neighbor_lists(incidence, "a")
    size = 4
    draw = jax.jit(heco.sample_neighbors, static_argnums=2)
    seen = [set() for _ in degrees]
    for s in range(30):
        picked = np.asarray(draw(jax.random.PRNGKey(s), lists, size))
        assert picked.shape == (6, size)
        for i, deg in enumerate(degrees):
            true = set(np.flatnonzero(incidence.toarray()[i]))
            assert set(picked[i]) <= true
            if deg >= size:
                assert len(set(picked[i])) == size  # without replacement
            seen[i] |= set(picked[i])
    assert all(seen[i] == set(np.flatnonzero(incidence.toarray()[i])) for i in range(6))  # every neighbour drawn


def test_node_without_neighbors_is_rejected():
    with pytest.raises(ValueError, match=r"neighbors\['a'\]: target node 1"):
        heco.neighbor_lists(sp.csr_matrix(np.array([[1, 0], [0, 0]])), "a")


# ----------------------------------------------------------------------------- training on ACM

SUBSET = 600
STEPS = 30


def acm_slice(ds, n):
    """ACM's first ``n`` papers with their meta-paths, neighbours and positives (all authors / subjects)."""
    cut = lambda m: sp.csr_matrix(m)[:n, :n]
    return dataclasses.replace(
        ds,
        num_nodes={**ds.num_nodes, "p": n},
        features={**ds.features, "p": ds.features["p"][:n]},
        metapaths={k: cut(m) for k, m in ds.metapaths.items()},
        neighbors={k: sp.csr_matrix(m)[:n] for k, m in ds.neighbors.items()},
        labels=ds.labels[:n],
        pos=cut(ds.pos) + sp.identity(n, format="csr"),  # a slice can cut a row's positives off
    )


@pytest.fixture(scope="module")
def acm():
    if not DATA:
        pytest.fail("GCL_JAX_DATA must point at the shared data folder (HeCo ACM)")
    full = data.load("acm", root=DATA)
    cfg = runner.resolve_config("heco", "acm", None, [])
    batch = heco.dataset_batch(acm_slice(full, SUBSET), cfg)
    method = heco.build(cfg["model"], batch)
    optimizer, _ = train.make_optimizer(cfg["lr"] * 5, STEPS)
    _, ts, history = train_steps(method, optimizer, batch, STEPS)
    return full, cfg, batch, method, ts, history


def test_acm_batch_layout(acm):
    full, cfg, batch, *_ = acm
    assert set(batch["features"]) == {"target", "a", "s"}
    assert batch["features"]["target"].shape == (SUBSET, 1902) and batch["features"]["a"].shape == (7167,)
    np.testing.assert_allclose(np.asarray(batch["features"]["target"]).sum(1), 1.0, rtol=1e-5)
    assert isinstance(batch["metapaths"]["pap"], G.GraphsTuple)  # sparse meta-path as edges
    assert not isinstance(batch["metapaths"]["psp"], G.GraphsTuple)  # dense one as a matrix
    with pytest.raises(ValueError, match="model.sample"):
        heco.dataset_batch(full, {**cfg, "model": {**cfg["model"], "sample": {"a": 7}}})


def test_training_on_acm_decreases_loss(acm):
    *_, history = acm
    assert_loss_decreases(history, 0.05)


def test_embeddings_finite(acm):
    _, cfg, batch, method, ts, _ = acm
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch))
    assert z.shape == (SUBSET, cfg["model"]["hidden"]) and np.isfinite(z).all()
    assert np.std(z, axis=0).mean() > 1e-3  # not collapsed to one point


# ----------------------------------------------------------------------------- protocol


def synthetic_hetero(separation, seed=0, n=600, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 8)) + separation * np.eye(classes, 8)[y]
    order = rng.permutation(n)
    splits = {k: {"train": order[:k * classes], "val": order[200:400], "test": order[400:]} for k in (20, 40, 60)}
    return x.astype(np.float32), y, splits


SMALL_GRID = tuple(2.0 ** np.arange(-4, 5))


def test_hetero_protocol_on_separable_embeddings():
    x, y, splits = synthetic_hetero(separation=6.0)
    result = hetero_probe(x, y, splits, seed=0, cs=SMALL_GRID)
    assert result.metric == "macro_f1_20" and result.test_mean > 0.95
    for key in ("micro_f1_20", "auc_20", "macro_f1_40", "micro_f1_40", "auc_40", "macro_f1_60", "auc_60"):
        assert result.extra[key][0] > 0.95, key
    assert result.extra["nmi"][0] > 0.8 and result.extra["ari"][0] > 0.8
    assert set(result.chosen[0]) == {"C_20", "C_40", "C_60"}
    noise = hetero_probe(*synthetic_hetero(separation=0.0), seed=0, cs=SMALL_GRID)  # no signal: chance level
    assert noise.test_mean < 0.5 and noise.extra["auc_20"][0] < 0.65 and noise.extra["nmi"][0] < 0.05
    with pytest.raises(ValueError, match="shots"):
        hetero_probe(x, y, splits, shots=(20, 80))


def test_auc_probabilities_come_from_the_selected_model():
    """The probabilities behind the AUC predict exactly what select_and_test scored (overlapping classes)."""
    x, y, splits = synthetic_hetero(separation=1.5)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = hetero.shot_scores(x, y, splits[20], SMALL_GRID, 3)
    train, val, test = (np.asarray(splits[20][part], np.int64) for part in ("train", "val", "test"))
    probabilities = select_and_test(x, y, [(train, val)], train, test, SMALL_GRID, 3)["test_probabilities"]
    assert 0.5 < scores["micro_f1"] < 0.99
    assert np.mean(probabilities.argmax(1) == y[test]) == pytest.approx(scores["micro_f1"])
    assert scores["auc"] == pytest.approx(hetero.one_vs_rest_auc(y[test], probabilities))


def test_heco_paper_protocol():
    """HeCo's Adam-trained, validation-epoch-picked probe: high on separable data, chance on noise."""
    x, y, splits = synthetic_hetero(separation=6.0)
    good = hetero_probe(x, y, splits, shots=(20,), cs=SMALL_GRID, paper_protocol=True, paper_lr=0.05)
    assert all(good.extra[f"heco_{m}_20"][0] > 0.95 for m in ("macro_f1", "micro_f1", "auc"))
    noise = hetero.heco_adam_probe(*synthetic_hetero(separation=0.0)[:2], splits[20], lr=0.05, repeats=5)
    assert noise["auc"] < 0.65 and noise["micro_f1"] < 0.5


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(6)
    y, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    np.testing.assert_allclose(float(logreg.macro_f1(pred, y, 4)), f1_score(y, pred, average="macro"), rtol=1e-6)


def test_configs_and_registry():
    assert "heco" in methods.names() and "hetero" in runner.PROTOCOLS
    expected = {
        "acm": {"a": 7, "s": 1}, "dblp": {"p": 6}, "aminer": {"a": 3, "r": 8}, "freebase": {"a": 18, "d": 1, "w": 2},
    }
    for name, sample in expected.items():
        cfg = runner.resolve_config("heco", name, None, [])
        assert cfg["model"]["sample"] == sample and cfg["eval"]["protocol"] == "hetero"
