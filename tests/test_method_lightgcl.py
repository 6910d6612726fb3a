"""LightGCL and the LightGCN/BPR baseline on tiny user-item matrices, and the full-ranking protocol,
each checked against a plain numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from gcl_jax import eval as evaluation
from gcl_jax import runner, train
from gcl_jax.data.datasets import RecDataset
from gcl_jax.data.rec import bipartite_graph
from gcl_jax.methods import lightgcl, lightgcn
from helpers import train_steps


def random_interactions(rng, users, items, density):
    """A binary CSR matrix in which every user and item has at least one interaction."""
    dense = rng.random((users, items)) < density
    dense[np.arange(users), rng.integers(0, items, users)] = True
    dense[rng.integers(0, users, items), np.arange(items)] = True
    return sp.csr_matrix(dense.astype(np.float32))


def tiny_dataset(seed=0, users=12, items=15, density=0.25):
    rng = np.random.default_rng(seed)
    train_m = random_interactions(rng, users, items, density)
    rest = sp.csr_matrix(((rng.random((users, items)) < 0.3) & ~train_m.toarray().astype(bool)).astype(np.float32))
    val = sp.csr_matrix(rest.multiply(rng.random((users, items)) < 0.5))
    test = sp.csr_matrix(rest - val)  # keeps explicit zeros where val took the entry: the evaluator must ignore them
    return RecDataset("tiny", train_m, val, test, users, items, bipartite_graph(train_m))


def model_config(module, **changes):
    return {**module.DEFAULTS["model"], **changes}


# ----------------------------------------------------------------------------- ranking protocol


def brute_force_ranking(users, items, train_m, heldout, k):
    """Recall@k / NDCG@k by sorting every score of every user with held-out items (loops)."""
    recalls, ndcgs = [], []
    heldout, train_m = heldout.toarray() != 0, train_m.toarray() != 0  # explicit zeros are no interactions
    for u in range(users.shape[0]):
        relevant = set(np.flatnonzero(heldout[u]))
        if not relevant:
            continue
        scores = items @ users[u]
        ranked = [i for i in np.argsort(-scores) if not train_m[u, i]][:k]
        dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(ranked) if i in relevant)
        idcg = sum(1 / np.log2(r + 2) for r in range(min(k, len(relevant))))
        recalls.append(len(relevant & set(ranked)) / len(relevant))
        ndcgs.append(dcg / idcg)
    return np.array(recalls), np.array(ndcgs)


def test_ranking_matches_brute_force_with_masking_and_users_without_heldout_items():
    rng = np.random.default_rng(1)
    ds = tiny_dataset(seed=1, users=9, items=14)
    test_dense = ds.test.toarray()
    test_dense[[2, 5]] = 0  # users without test items are skipped
    heldout = sp.csr_matrix(test_dense)
    users, items = rng.normal(size=(9, 4)), rng.normal(size=(14, 4))
    for k in (1, 3, 20):
        ids, recall, ndcg = evaluation.ranking_scores(users, items, ds.train, heldout, k=k, user_block=2)
        want_recall, want_ndcg = brute_force_ranking(users, items, ds.train, heldout, k)
        assert list(ids) == [u for u in range(9) if test_dense[u].any()]
        np.testing.assert_allclose(recall, want_recall, atol=1e-12)
        np.testing.assert_allclose(ndcg, want_ndcg, atol=1e-12)


def test_training_items_never_recommended():
    train_m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]], np.float32))
    heldout = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0]], np.float32))
    users = np.array([[1.0], [1.0]])
    items = np.array([[4.0], [3.0], [2.0], [1.0]])  # training items score highest
    _, recall, ndcg = evaluation.ranking_scores(users, items, train_m, heldout, k=1)
    np.testing.assert_allclose(recall, [1.0, 1.0])  # user 0: item 2 ranks first once 0 and 1 are masked
    np.testing.assert_allclose(ndcg, [1.0, 1.0])


def test_ranking_eval_reports_test_and_val():
    ds = tiny_dataset(seed=2)
    x = np.random.default_rng(0).normal(size=(ds.num_users + ds.num_items, 3))
    result = runner.evaluate({"protocol": "ranking", "k": 5, "user_block": 4}, x, ds, seed=0)
    users, items = x[: ds.num_users], x[ds.num_users:]
    for split, prefix in ((ds.test, ""), (ds.val, "val_")):
        recall, ndcg = brute_force_ranking(users, items, ds.train, split, 5)
        assert result.extra[f"{prefix}ndcg@5"][0] == pytest.approx(ndcg.mean())
        assert (result.test_mean if split is ds.test else result.extra["val_recall@5"][0]) == pytest.approx(recall.mean())
    assert result.metric == "recall@5"
    with pytest.raises(ValueError, match="users \\+ items"):
        evaluation.ranking_eval(x[:-1], ds)


# ----------------------------------------------------------------------------- LightGCN mechanism


def dense_normalized(train_m):
    """``D_u^-1/2 R D_i^-1/2`` in numpy."""
    r = train_m.toarray().astype(np.float64)
    return r / np.sqrt(r.sum(1, keepdims=True)) / np.sqrt(r.sum(0, keepdims=True))


def test_lightgcn_propagation_matches_dense_numpy():
    ds = tiny_dataset(seed=3)
    batch = lightgcn.dataset_batch(ds, {})
    model = model_config(lightgcn, dim=5, layers=3)
    method = lightgcn.build(model, batch)
    params, state = method.init(jax.random.PRNGKey(0), batch)
    norm = dense_normalized(ds.train)
    u, i = ds.num_users, ds.num_items
    adjacency = np.block([[np.zeros((u, u)), norm], [norm.T, np.zeros((i, i))]])
    x = np.asarray(params["embedding"], np.float64)
    layers = [x]
    for _ in range(3):
        layers.append(adjacency @ layers[-1])
    np.testing.assert_allclose(method.embed(params, state, batch), np.mean(layers, axis=0), atol=1e-5)
    summed = lightgcn.build(model_config(lightgcn, dim=5, layers=3, layer_combine="sum"), batch)
    np.testing.assert_allclose(summed.embed(params, state, batch), np.sum(layers, axis=0), atol=1e-5)


def test_bpr_samples_are_positives_and_non_positives():
    ds = tiny_dataset(seed=4, users=6, items=10, density=0.7)  # dense rows: rejection sampling matters
    batch = lightgcn.dataset_batch(ds, {})
    dense = ds.train.toarray().astype(bool)
    users, pos, neg = jax.jit(lightgcn.sample_triples, static_argnums=(2, 3))(jax.random.PRNGKey(0), batch, 500, ds.num_items)
    users, pos, neg = (np.asarray(a) for a in (users, pos, neg))
    assert dense[users, pos].all()
    assert not dense[users, neg].any()
    assert len(set(zip(users, pos))) > ds.train.nnz // 2  # interactions are drawn across the whole set


def test_user_sampler_weighs_users_equally_and_draws_each_users_items():
    dense = np.zeros((5, 40), np.float32)
    dense[0, :30] = 1  # one heavy user: 30 of the 34 interactions
    dense[np.arange(1, 5), 30 + np.arange(4)] = 1
    empty = sp.csr_matrix(dense.shape, dtype=np.float32)
    ds = RecDataset("skewed", sp.csr_matrix(dense), empty, empty, 5, 40, bipartite_graph(sp.csr_matrix(dense)))
    batch = lightgcn.dataset_batch(ds, {})
    sample = jax.jit(lightgcn.sample_triples, static_argnums=(2, 3, 4))
    users, pos, neg = (np.asarray(a) for a in sample(jax.random.PRNGKey(0), batch, 5000, 40, "users"))
    assert dense[users, pos].all() and not dense[users, neg].any()
    np.testing.assert_allclose(np.bincount(users, minlength=5) / 5000, 0.2, atol=0.025)  # 4 sd of a binomial
    assert set(pos[users == 0]) == set(range(30))  # all of the heavy user's items, ~33 draws each
    by_interaction = np.asarray(sample(jax.random.PRNGKey(0), batch, 5000, 40, "interactions")[0])
    assert np.mean(by_interaction == 0) == pytest.approx(30 / 34, abs=0.03)


def test_bpr_loss_matches_formula():
    rng = np.random.default_rng(0)
    u, p, n = (rng.normal(size=(7, 3)) for _ in range(3))
    want = np.mean(-np.log(1 / (1 + np.exp(-((u * p).sum(1) - (u * n).sum(1))))))
    assert float(lightgcn.bpr_loss(jnp.asarray(u), jnp.asarray(p), jnp.asarray(n))) == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------------------- LightGCL


def test_svd_view_matches_numpy():
    ds = tiny_dataset(seed=5)
    batch = lightgcl.dataset_batch(ds, {"model": {"svd_rank": 3}})
    norm = dense_normalized(ds.train)
    np.testing.assert_allclose(lightgcl.normalized_interactions(batch["graph"], ds.num_users).toarray(), norm, atol=1e-6)
    u, s, vt = np.linalg.svd(norm)
    low_rank = u[:, :3] * s[:3] @ vt[:3]
    got = np.asarray(batch["svd_u"] * batch["svd_s"] @ batch["svd_v"].T)
    np.testing.assert_allclose(got, low_rank, atol=1e-5)
    x = np.random.default_rng(0).normal(size=(ds.num_users + ds.num_items, 4)).astype(np.float32)
    want = np.concatenate([low_rank @ x[ds.num_users:], low_rank.T @ x[: ds.num_users]])
    np.testing.assert_allclose(lightgcl.svd_propagate(batch, jnp.asarray(x), ds.num_users), want, atol=1e-5)


def test_contrast_is_dot_product_infonce_dense_and_blockwise():
    rng = np.random.default_rng(0)
    main, aug = rng.normal(size=(11, 4)), 0.7 * rng.normal(size=(11, 4))
    logits = aug @ main.T / 0.2  # anchors: SVD view; candidates: every main-view row
    want = np.mean(np.log(np.exp(logits).sum(1)) - np.diag(logits))
    want_grad = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True) - np.eye(11)).T @ aug / 0.2 / 11  # d/d main
    key = jax.random.PRNGKey(0)
    for block in (0, 4):
        model = model_config(lightgcl, tau=0.2, block_size=block)
        value, grad = jax.value_and_grad(lightgcl.contrast, argnums=1)(key, jnp.asarray(main, jnp.float32), jnp.asarray(aug, jnp.float32), model)
        assert float(value) == pytest.approx(want, rel=1e-5)
        np.testing.assert_allclose(grad, want_grad, atol=1e-5)
    sampled = model_config(lightgcl, tau=0.2, contrast_anchors="all", contrast_sample=5)
    assert np.isfinite(float(lightgcl.contrast(key, jnp.asarray(main), jnp.asarray(aug), sampled)))


def test_batch_anchored_contrast_matches_numpy_with_duplicates():
    rng = np.random.default_rng(1)
    main, aug = rng.normal(size=(9, 4)), 0.7 * rng.normal(size=(9, 4))
    anchors = np.array([3, 0, 3, 7, 3, 8])  # batch rows, node 3 three times; nodes 1, 2, 4-6 never anchor
    logits = aug[anchors] @ main.T / 0.2  # every main-view row stays a candidate
    want = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(anchors)), anchors])
    for block in (0, 4):
        model = model_config(lightgcl, tau=0.2, block_size=block)
        got = lightgcl.contrast(jax.random.PRNGKey(0), jnp.asarray(main, jnp.float32), jnp.asarray(aug, jnp.float32),
                                model, jnp.asarray(anchors))
        assert float(got) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("module", [lightgcn, lightgcl])
def test_training_decreases_loss_and_embeddings_are_finite(module):
    ds = tiny_dataset(seed=6, users=40, items=50, density=0.1)
    cfg = {"model": model_config(module, dim=16, batch_size=256, svd_rank=4, block_size=16)}
    batch = module.dataset_batch(ds, cfg)
    method = module.build(cfg["model"], batch)
    optimizer, _ = train.make_optimizer(0.01, 60)
    _, final, losses = train_steps(method, optimizer, batch, 60)
    assert losses[-10:].mean() < losses[:10].mean() - 0.05
    embeddings = np.asarray(method.embed(final.params, final.state, batch))
    assert embeddings.shape == (ds.num_users + ds.num_items, 16)
    assert np.isfinite(embeddings).all()


def test_bad_config_values_are_named():
    ds = tiny_dataset(seed=7)
    batch = lightgcl.dataset_batch(ds, {"model": {"svd_rank": 2}})
    with pytest.raises(ValueError, match="layer_combine"):
        lightgcl.build(model_config(lightgcl, layer_combine="max"), batch)
    with pytest.raises(ValueError, match="model.init"):
        lightgcn.build(model_config(lightgcn, init="zeros"), batch)
    with pytest.raises(ValueError, match="model.sampler"):
        lightgcn.build(model_config(lightgcn, sampler="items"), batch)
    with pytest.raises(ValueError, match="model.contrast_anchors"):
        lightgcl.build(model_config(lightgcl, contrast_anchors="users"), batch)
    with pytest.raises(ValueError, match="model.contrast_sample"):
        lightgcl.build(model_config(lightgcl, contrast_sample=8), batch)
    with pytest.raises(ValueError, match="svd_rank"):
        lightgcl.dataset_batch(ds, {"model": {"svd_rank": 50}})
