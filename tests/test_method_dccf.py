"""DCCF: intent-aware propagation, the adaptive interaction mask and the whole loss against plain numpy
on tiny bipartite graphs; training on a small slice of the real LastFM data."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_loss_decreases, train_steps
from test_method_lightgcl import tiny_dataset

from gcl_jax import data, runner, train
from gcl_jax.data.datasets import RecDataset
from gcl_jax.data.rec import bipartite_graph
from gcl_jax.methods import dccf, lightgcn

DATA = os.environ.get("GCL_JAX_DATA")


def model_config(**changes):
    return {**dccf.DEFAULTS["model"], **changes}


# ----------------------------------------------------------------------------- numpy reference


def softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def dense_mask(adjacency, v):
    """Row-normalized ``A * (cos + 1) / 2`` as a dense matrix."""
    alpha = adjacency * (unit_rows(v) @ unit_rows(v).T + 1) / 2
    return alpha / alpha.sum(1, keepdims=True)


def numpy_layers(params, train_m, layers):
    """DCCF's layers and views with dense matrices (float64)."""
    users = train_m.shape[0]
    r = train_m.toarray().astype(np.float64)
    adjacency = np.block([[np.zeros((users, users)), r], [r.T, np.zeros((r.shape[1],) * 2)]])
    degree = adjacency.sum(1)
    normalized = adjacency / np.sqrt(np.outer(degree, degree))
    c_user, c_item = (np.asarray(params[k], np.float64) for k in ("user_intents", "item_intents"))
    x = np.asarray(params["embedding"], np.float64)
    out, views = [x], []
    for _ in range(layers):
        local = normalized @ x
        intents = np.concatenate([softmax(x[:users] @ c_user) @ c_user.T, softmax(x[users:] @ c_item) @ c_item.T])
        layer_views = (local, intents, dense_mask(adjacency, local) @ x, dense_mask(adjacency, intents) @ x)
        x = x + sum(layer_views)
        out.append(x)
        views.append(layer_views)
    return out, views


def numpy_info_nce(anchors, others, tau):
    """The official ``cal_loss``: mean over anchors of ``-log(exp(s_ii) / sum_j exp(s_ij))``, cosine / tau."""
    s = unit_rows(anchors) @ unit_rows(others).T / tau
    return np.mean(np.log(np.exp(s).sum(1)) - np.diag(s))


# ----------------------------------------------------------------------------- mechanism


def test_adaptive_mask_matches_hand_computation():
    # users u0, u1; items i0, i1 (nodes 2, 3); interactions u0-i0, u0-i1, u1-i1
    graph = bipartite_graph(sp.csr_matrix(np.array([[1, 1], [0, 1]], np.float32)))
    v = jnp.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # cos(u0,i0)=1, cos(u0,i1)=cos(u1,i1)=0
    weights = dccf.adaptive_mask(graph, v)
    mask = np.zeros((4, 4))
    np.add.at(mask, (np.asarray(graph.receivers), np.asarray(graph.senders)), np.asarray(weights))
    # alpha = (cos + 1) / 2: u0 -> {i0: 1, i1: 1/2}, u1 -> {i1: 1/2}, i0 -> {u0: 1}, i1 -> {u0: 1/2, u1: 1/2}
    want = np.array([
        [0, 0, 2 / 3, 1 / 3],
        [0, 0, 0, 1],
        [1, 0, 0, 0],
        [1 / 2, 1 / 2, 0, 0],
    ])
    np.testing.assert_allclose(mask, want, atol=1e-6)


def test_intent_aware_and_masked_propagation_match_numpy():
    ds = tiny_dataset(seed=11)
    batch = dccf.dataset_batch(ds, {})
    method = dccf.build(model_config(dim=5, layers=2, intents=3), batch)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    assert params["embedding"].shape == (ds.num_users + ds.num_items, 5)
    assert params["user_intents"].shape == params["item_intents"].shape == (5, 3)
    big = dccf.build(model_config(dim=64, intents=300), batch).init(jax.random.PRNGKey(1), batch)[0]
    assert np.std(big["user_intents"]) == pytest.approx(np.sqrt(2 / (64 + 300)), rel=0.05)  # Xavier-normal
    want_layers, want_views = numpy_layers(params, ds.train, 2)
    _, views = dccf.dccf_layers(params, batch["graph"], 2, ds.num_users)
    for got, want in zip(views, want_views):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(method.embed(params, state, batch), sum(want_layers), rtol=1e-4, atol=1e-5)


def test_distinct_rows_marks_first_occurrences():
    rows, valid = dccf.distinct_rows(jnp.array([4, 1, 4, 7, 1, 1]))
    assert list(np.asarray(rows)[np.asarray(valid)]) == [1, 4, 7]


def test_loss_matches_numpy_bpr_regularizers_and_view_contrast():
    ds = tiny_dataset(seed=12)
    batch = dccf.dataset_batch(ds, {})
    model = model_config(dim=4, layers=2, intents=3, batch_size=24, contrast_sample=16, tau=0.5, block_size=5)
    method = dccf.build(model, batch)
    params, state = method.init(jax.random.PRNGKey(1), batch)
    params = {**params, "embedding": 3 * params["embedding"]}  # views far from uniform: a stronger check
    key = jax.random.PRNGKey(2)
    value, (_, metrics) = jax.jit(method.loss)(params, state, key, batch)

    triple_key = jax.random.split(key)[0]  # build_recommender's key for the triples
    sample = jax.jit(lightgcn.sample_triples, static_argnums=(2, 3, 4))
    users, pos, neg = (np.asarray(a) for a in sample(triple_key, batch, 24, ds.num_items, "users"))
    layers, views = numpy_layers(params, ds.train, 2)
    final, ego, u = sum(layers), np.asarray(params["embedding"], np.float64), ds.num_users
    margin = (final[users] * final[u + pos]).sum(1) - (final[users] * final[u + neg]).sum(1)
    bpr = np.mean(np.log1p(np.exp(-margin)))
    emb = sum((ego[rows] ** 2).sum() for rows in (users, u + pos, u + neg))
    intent = sum((np.asarray(params[k], np.float64) ** 2).sum() for k in ("user_intents", "item_intents"))
    contrast = 0.0
    for local, *others in views:
        for rows in (np.unique(users[:16]), u + np.unique(pos[:16])):
            contrast += sum(numpy_info_nce(local[rows], other[rows], 0.5) for other in others)
    assert float(metrics["bpr"]) == pytest.approx(bpr, rel=1e-4)
    assert float(metrics["contrast"]) == pytest.approx(contrast, rel=1e-4)
    want = bpr + model["emb_reg"] * emb + model["intent_reg"] * intent + model["lambda_contrast"] * contrast
    assert float(value) == pytest.approx(want, rel=1e-4)


# ----------------------------------------------------------------------------- training


def lastfm_slice(users=60):
    """The first ``users`` users of the real LastFM files and the items they interacted with."""
    if DATA is None:
        pytest.fail("GCL_JAX_DATA must point at the shared data folder (LastFM)")
    full = data.load("lastfm", root=DATA)
    rows = full.train.tocsr()[:users]
    items = np.flatnonzero(np.asarray(rows.sum(0)).ravel())
    train_m, val, test = (m.tocsr()[:users][:, items] for m in (full.train, full.val, full.test))
    return RecDataset("lastfm-slice", train_m, val, test, users, len(items), bipartite_graph(train_m))


def test_training_on_real_lastfm_slice_decreases_loss_with_finite_embeddings():
    ds = lastfm_slice()
    batch = dccf.dataset_batch(ds, {})
    method = dccf.build(model_config(dim=16, intents=8, batch_size=256, contrast_sample=64, block_size=0), batch)
    optimizer, _ = train.make_optimizer(0.01, 30)
    _, final, history = train_steps(method, optimizer, batch, 30)
    assert_loss_decreases(history, margin=0.05)
    embeddings = np.asarray(method.embed(final.params, final.state, batch))
    assert embeddings.shape == (ds.num_users + ds.num_items, 16)
    assert np.isfinite(embeddings).all()


def test_bad_config_values_are_named():
    batch = dccf.dataset_batch(tiny_dataset(seed=13), {})
    with pytest.raises(ValueError, match="model.intents"):
        dccf.build(model_config(intents=0), batch)
    with pytest.raises(ValueError, match="model.contrast_sample"):
        dccf.build(model_config(batch_size=8, contrast_sample=9), batch)
    with pytest.raises(ValueError, match="model.tau"):
        dccf.build(model_config(tau=0.0), batch)


@pytest.mark.parametrize("dataset", ["lastfm", "yelp"])
def test_packaged_configs_use_only_known_fields(dataset):
    cfg = runner.resolve_config("dccf", dataset, None, [])
    assert set(cfg["model"]) == set(dccf.DEFAULTS["model"])  # a misspelled key would add one
    dccf.check(cfg["model"])
