"""MEOW / AdaMEOW: the weighted-negative and prototypical losses vs numpy, the cluster weights and
meta-path preprocessing by hand, the GCN and weight MLP by hand, views' shapes and training on (a
slice of) MEOW's ACM, configs."""

import dataclasses
import functools
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_loss_decreases, train_steps

from gcl_jax import data, losses, methods, runner, train
from gcl_jax.data import hetero as hetero_data
from gcl_jax.methods import adameow, heco, meow

DATA = os.environ.get("GCL_JAX_DATA")


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- losses vs numpy


def test_weighted_info_nce_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, size=(6, 6)).astype(np.float32)
    for weights in (w, w * (1 - np.eye(6))):  # AdaMEOW keeps the positive, MEOW zeroes it
        s = unit_rows(a) @ unit_rows(b).T / 0.4
        expected = np.mean(-np.diag(s) + np.log((weights * np.exp(s)).sum(1)))
        got = jax.jit(functools.partial(losses.weighted_info_nce, temperature=0.4))(a, b, weights)
        np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    plain = losses.weighted_info_nce(a, b, np.ones((6, 6)), temperature=0.4)  # unit weights: plain InfoNCE
    ref = losses.info_nce(a, b, temperature=0.4, intra_view=False, symmetric=False)
    np.testing.assert_allclose(float(plain), float(ref), rtol=1e-5)


def test_cluster_negative_weights_by_hand():
    # two clusterings of four nodes: {0,1 | 2,3} and {0 | 1,2 | 3}
    assignments = np.array([[0, 0, 1, 1], [0, 1, 1, 2]])
    expected = np.array([
        [0, 1, 2, 2],  # 0 and 1 share the first clustering's cluster only
        [1, 0, 1, 2],  # 1 and 2 share the second's only
        [2, 1, 0, 1],
        [2, 2, 1, 0],
    ])
    np.testing.assert_array_equal(np.asarray(jax.jit(losses.cluster_negative_weights)(assignments)), expected)


def prototypes_numpy(z, centroids, assignment, tau, smoothing=5.0):
    """PCL's concentration and ProtoNCE in plain numpy, one cluster at a time."""
    k = len(centroids)
    phi = np.zeros(k)
    members = [np.flatnonzero(assignment == c) for c in range(k)]
    for c, idx in enumerate(members):
        if len(idx) > 1:
            phi[c] = np.linalg.norm(z[idx] - centroids[c], axis=1).mean() / np.log(len(idx) + smoothing)
    phi[[len(idx) <= 1 for idx in members]] = phi.max()
    phi = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    phi = tau * phi / phi.mean()
    logits = unit_rows(z) @ unit_rows(centroids).T / phi
    loss = np.mean([np.log(np.exp(row).sum()) - row[a] for row, a in zip(logits, assignment)])
    return phi, loss


def test_prototypical_contrast_matches_numpy():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(12, 3)).astype(np.float32)
    assignment = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])  # cluster 3 is a singleton
    centroids = np.stack([z[assignment == c].mean(0) for c in range(5)]).astype(np.float32)
    phi_expected, loss_expected = prototypes_numpy(z, centroids, assignment, tau=0.4)
    concentration = jax.jit(functools.partial(losses.prototype_concentration, temperature=0.4))
    phi = concentration(jnp.asarray(z), jnp.asarray(centroids), jnp.asarray(assignment))
    np.testing.assert_allclose(np.asarray(phi), phi_expected, rtol=1e-5)
    got = jax.jit(losses.prototypical_nce)(jnp.asarray(z), jnp.asarray(centroids), jnp.asarray(assignment), phi)
    np.testing.assert_allclose(float(got), loss_expected, rtol=1e-5)


# ----------------------------------------------------------------------------- preprocessing by hand


def test_pathsim_top_k_by_hand():
    counts = sp.csr_matrix(np.array([[4, 2, 1, 0], [2, 2, 0, 1], [1, 0, 1, 1], [0, 1, 1, 3]], float))
    # row 0: PathSim to 0,1,2 = 1, 2*2/6, 2*1/5 -> keep 0 and 1; row 2: to 0,2,3 = 2/5, 1, 2/4 -> keep 2 and 3
    top = meow.pathsim_top_k(counts, 2).toarray()
    np.testing.assert_array_equal(top[0], [4, 2, 0, 0])
    np.testing.assert_array_equal(top[2], [0, 0, 1, 1])
    np.testing.assert_array_equal((top != 0).sum(1), [2, 2, 2, 2])


def test_context_prefixes_and_path_counts():
    assert meow.context_prefixes("apcpa") == ("ap", "apc", "apcp")
    assert meow.context_prefixes("pap") == ("pa",)
    with pytest.raises(ValueError, match="'pa'"):
        meow.context_prefixes("pa")
    toy = types.SimpleNamespace(  # papers 0-2, authors 0-1, one venue
        name="toy", num_nodes={"p": 3, "a": 2, "c": 1},
        relations={"pa": np.array([[0, 0], [1, 0], [1, 1], [2, 1]]), "pc": np.array([[0, 0], [2, 0]])},
    )
    np.testing.assert_array_equal(meow.path_counts(toy, "apa").toarray(), [[2, 1], [1, 2]])
    np.testing.assert_array_equal(meow.path_counts(toy, "apc").toarray(), [[1], [1]])
    with pytest.raises(ValueError, match="'a' and 'c'"):
        meow.relation(toy, "a", "c")


def test_masked_metapath_drops_edges_and_keeps_self_loops():
    rng = np.random.default_rng(2)
    top = sp.csr_matrix(rng.integers(0, 3, size=(30, 30)).astype(float))
    pattern = (top.toarray() != 0) & ~np.eye(30, dtype=bool)
    masked = meow.masked_metapath(np.random.default_rng(3), top, 0.25).toarray()
    assert np.all(np.diag(masked) == 1) and set(np.unique(masked)) <= {0.0, 1.0}
    off = masked.astype(bool) & ~np.eye(30, dtype=bool)
    assert np.all(pattern[off])  # only existing edges survive
    assert off.sum() == pattern.sum() - int(0.25 * pattern.sum())
    features = sp.csr_matrix(rng.uniform(size=(10, 8)) * (rng.uniform(size=(10, 8)) < 0.5))
    kept = meow.mask_entries(np.random.default_rng(4), features, 0.3)
    assert kept.nnz == features.nnz - int(0.3 * features.nnz)


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(5)
    centres = np.array([[5.0, 0], [-5, 0], [0, 5]])
    x = np.concatenate([c + 0.3 * rng.normal(size=(20, 2)) for c in centres]).astype(np.float32)
    found, assignment = meow.kmeans(jax.random.PRNGKey(0), jnp.asarray(x), 3, 10)
    truth = np.repeat(np.arange(3), 20)
    pairs_agree = (np.asarray(assignment)[:, None] == np.asarray(assignment)[None]) == (truth[:, None] == truth[None])
    assert pairs_agree.all()
    np.testing.assert_allclose(np.sort(np.asarray(found)[:, 0]), [-5, 0, 5], atol=0.3)


# ----------------------------------------------------------------------------- layers by hand


def test_meow_gcn_by_hand():
    rng = np.random.default_rng(6)
    a = rng.uniform(size=(5, 5)).astype(np.float32)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    layer = meow.MEOWGCN(4)
    params = jax.jit(lambda key: layer.init(key, x, lambda h: a @ h))(jax.random.PRNGKey(0))
    p = params["params"]
    w0, w1, slope = np.asarray(p["weight_0"]), np.asarray(p["weight_1"]), 0.25  # PReLU at its initial slope
    assert np.abs(w0).max() <= 0.5  # uniform within 1/sqrt(4)
    h = a @ (x @ w0)
    z = a @ (np.where(h > 0, h, slope * h) @ w1)
    expected = (z - z.mean()) / np.sqrt(z.var() + 1e-5)  # one layer norm over all entries
    got = jax.jit(lambda p: layer.apply(p, x, lambda h: a @ h))(params)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)


def test_negative_weigher_by_hand():
    rng = np.random.default_rng(7)
    f, c = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    weigher = adameow.NegativeWeigher(3)
    params = jax.jit(weigher.init)(jax.random.PRNGKey(1), f, c)
    p = params["params"]
    w1, b1 = np.asarray(p["kernel_1"]), np.asarray(p["bias_1"])
    w2, b2 = np.asarray(p["kernel_2"])[:, 0], float(p["bias_2"][0])
    expected = np.array([[1 / (1 + np.exp(-(np.tanh((f[i] + c[j]) @ w1 + b1) @ w2 + b2))) for j in range(4)]
                         for i in range(4)])
    np.testing.assert_allclose(np.asarray(jax.jit(weigher.apply)(params, f, c)), expected, rtol=1e-5, atol=1e-6)


def test_torch_init_follows_torch_linear_default():
    """``torch_init``: every input layer (features or one-hot ids), context map, the projection and
    both weigher layers start uniform in +-1/sqrt(fan_in), biases included; HeCo's input layer
    keeps its Xavier-normal kernel (wider than that bound) with the same uniform bias."""
    rng = np.random.default_rng(3)
    x = rng.random((6, 40)).astype(np.float32)
    for data_in, fan_in in ((x, 40), (np.arange(50, dtype=np.int32), 50)):
        params = heco.TypeInput(8, initializer="torch").init(jax.random.PRNGKey(0), data_in)["params"]
        leaves = jax.tree_util.tree_leaves(params)
        assert len(leaves) == 2  # kernel (or embedding) and bias
        for leaf in leaves:
            leaf = np.asarray(leaf)
            assert np.abs(leaf).max() <= fan_in ** -0.5 and np.abs(leaf).max() > 0.8 * fan_in ** -0.5
    heco_params = heco.TypeInput(8).init(jax.random.PRNGKey(0), x)["params"]["Dense_0"]
    bias = np.abs(np.asarray(heco_params["bias"]))
    assert 0 < bias.max() <= 40 ** -0.5 and np.abs(np.asarray(heco_params["kernel"])).max() > 40 ** -0.5

    f = rng.normal(size=(5, 64)).astype(np.float32)
    p = adameow.NegativeWeigher(16, torch_init=True).init(jax.random.PRNGKey(1), f, f)["params"]
    for leaf, fan_in in ((p["kernel_1"], 64), (p["bias_1"], 64), (p["kernel_2"], 16), (p["bias_2"], 16)):
        assert 0 < np.abs(np.asarray(leaf)).max() <= fan_in ** -0.5


# ----------------------------------------------------------------------------- MEOW's ACM

SUBSET = 300
STEPS = 8


def meow_slice(ds, n, other_width=32):
    """The first ``n`` target nodes with their meta-paths, features and typed edges; the other
    types' stored features cut to ``other_width`` columns (ACM's authors have 1902: a slow test)."""
    t = ds.target
    relations = {r: pairs[pairs[:, r.index(t)] < n] for r, pairs in ds.relations.items()}
    narrow = {k: m[:, :other_width] for k, m in ds.features.items() if k != t and k not in ds.featureless}
    return dataclasses.replace(
        ds,
        num_nodes={**ds.num_nodes, t: n},
        features={**ds.features, **narrow, t: ds.features[t][:n]},
        relations=relations,
        metapaths={k: sp.csr_matrix(m)[:n, :n] for k, m in ds.metapaths.items()},
        neighbors={k: sp.csr_matrix(m)[:n] for k, m in ds.neighbors.items()},
        labels=ds.labels[:n],
    )


@pytest.fixture(scope="module")
def acm():
    if not DATA:
        pytest.fail("GCL_JAX_DATA must point at the shared data folder (MEOW ACM)")
    small = meow_slice(data.load("meow-acm", root=DATA), SUBSET)
    out = {}
    for name, module, clusters in (("meow", meow, [8, 20]), ("adameow", adameow, None)):
        cfg = runner.resolve_config(name, "meow-acm", None, [])
        if clusters:
            cfg["model"]["clusters"] = clusters  # 100 / 300 clusters of 400 nodes would be near-singletons
        batch = module.dataset_batch(small, cfg)
        method = module.build(cfg["model"], batch)
        optimizer, _ = train.make_optimizer(1e-3, STEPS)
        _, ts, history = train_steps(method, optimizer, batch, STEPS)
        out[name] = (cfg, batch, method, ts, history)
    return small, out


def test_batch_layout_and_view_shapes(acm):
    small, runs = acm
    cfg, batch, _, ts, _ = runs["meow"]
    assert set(batch["features"]) == {"target", "a", "s"}
    assert batch["features"]["target"].shape == (SUBSET, 1902) and batch["masked_target"].shape == (SUBSET, 1902)
    assert 0 < int((batch["masked_target"] != 0).sum()) < int((batch["features"]["target"] != 0).sum())
    assert set(batch["contexts"]) == {"pa", "ps"} and set(batch["metapaths"]) == set(batch["masked_metapaths"]) == {"pap", "psp"}
    encoder = meow.MEOWEncoder(64, tuple(batch["features"]), ("pap", "psp"))
    args = (batch["features"], batch["masked_target"], batch["contexts"], batch["metapaths"], batch["masked_metapaths"])
    coarse, fine, z = jax.eval_shape(encoder.apply, ts.params["encoder"], *args)
    assert coarse.shape == fine.shape == z.shape == (SUBSET, 64)
    fine_params = {"params": {k: v for k, v in ts.params["encoder"]["params"].items() if k != "project"}}
    assert set(fine_params["params"]) == {"inputs_target", "inputs_a", "inputs_s", "context_maps_pap_pa",
                                          "context_maps_psp_ps", "gcn", "attention"}
    torch_params = meow.MEOWEncoder(64, tuple(batch["features"]), ("pap", "psp"), torch_init=True).init(
        jax.random.PRNGKey(0), *args)["params"]
    for name in ("inputs_target", "inputs_a", "inputs_s", "context_maps_pap_pa", "context_maps_psp_ps", "project"):
        leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(torch_params[name])]
        fan_in = next(leaf.shape[0] for leaf in leaves if leaf.ndim == 2)  # kernel [in, out], ids: [N, out]
        assert all(0 < np.abs(leaf).max() <= fan_in ** -0.5 for leaf in leaves), name
    with pytest.raises(ValueError, match="model.top_k"):
        meow.dataset_batch(small, {**cfg, "model": {**cfg["model"], "top_k": {"pap": 5}}})
    with pytest.raises(ValueError, match="model.path_counts"):
        meow.dataset_batch(small, {**cfg, "model": {**cfg["model"], "path_counts": "guess"}})


@pytest.mark.parametrize("name", ["meow", "adameow"])
def test_training_on_acm_decreases_loss(acm, name):
    _, runs = acm
    _, batch, method, ts, history = runs[name]
    assert_loss_decreases(history, 0.02)
    z = np.asarray(jax.jit(method.embed)(ts.params, ts.state, batch))
    assert z.shape == (SUBSET, 64) and np.isfinite(z).all() and np.std(z, axis=0).mean() > 1e-3


# ----------------------------------------------------------------------------- configs


def test_configs_and_registry():
    assert {"meow", "adameow"} <= set(methods.names())
    specs = {"meow-acm": hetero_data.MEOW["acm"], "meow-imdb": hetero_data.MEOW["imdb"], "dblp": hetero_data.HECO["dblp"]}
    for name in ("meow", "adameow"):
        for dataset, spec in specs.items():
            cfg = runner.resolve_config(name, dataset, None, [])
            assert cfg["eval"]["protocol"] == "hetero" and cfg["eval"]["paper_protocol"]
            for field in ("top_k", "adj_mask"):
                table = meow.per_metapath(cfg["model"], field, spec.metapaths)
                assert set(table) == set(spec.metapaths), (name, dataset, field)
            assert ("clusters" in cfg["model"]) == (name == "meow")
