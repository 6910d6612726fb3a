"""SVM graph-classification protocol, clustering metrics, link-prediction split/scoring, RankMe."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.svm import LinearSVC

from gcl_jax.data import splits as splits_lib
from gcl_jax.eval import (
    cluster_accuracy,
    clustering_scores,
    kmeans_eval,
    link_scores,
    rankme,
    split_edges,
    svm_cv,
)
from gcl_jax.eval.svm import svm_estimator

# ----------------------------------------------------------------------------- SVM


def _two_blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    return rng.standard_normal((n, 8)) + 4.0 * y[:, None], y


def test_svm_cv_separable():
    x, y = _two_blobs()
    result = svm_cv(x, y, seeds=(0,))
    assert result.test_mean >= 0.98 and len(result.extra["fold_accuracy"]) == 10
    assert len(result.chosen) == 10


def test_linear_svc_is_liblinear_and_bad_names_fail():
    x, y = _two_blobs()
    assert isinstance(svm_estimator("linear_svc", "rbf", "scale"), LinearSVC)
    assert svm_cv(x, y, seeds=(0,), classifier="linear_svc").test_mean >= 0.98
    with pytest.raises(ValueError, match="eval.classifier"):
        svm_cv(x, y, classifier="linearsvc")


def test_svm_folds_stratified_and_seeded():
    x, y = _two_blobs(n=100)
    y = np.where(np.arange(100) < 30, 0, 1)  # 30/70 imbalance
    seen = {}

    def recording_folds(labels, folds, seed):
        seen[seed] = splits_lib.stratified_kfold(labels, folds, seed)
        return seen[seed]

    result = svm_cv(x, y, seeds=(0, 1), fold_fn=recording_folds)
    assert len(result.per_split) == 2
    for folds in seen.values():
        tests = np.concatenate([f["test"] for f in folds])
        assert np.array_equal(np.sort(tests), np.arange(100))  # a partition
        for f in folds:
            assert np.sum(y[f["test"]] == 0) == 3 and len(f["test"]) == 10  # class ratio kept per fold
    assert any(not np.array_equal(a["test"], b["test"]) for a, b in zip(seen[0], seen[1]))


# ----------------------------------------------------------------------------- clustering


def _brute_force_acc(y_true, y_pred):
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    if len(clusters) <= len(classes):
        for image in itertools.permutations(classes, len(clusters)):
            mapped = np.array([dict(zip(clusters, image))[c] for c in y_pred])
            best = max(best, np.sum(mapped == y_true))
    else:
        for owners in itertools.permutations(clusters, len(classes)):
            best = max(best, sum(np.sum((y_pred == o) & (y_true == c)) for o, c in zip(owners, classes)))
    return best / len(y_true)


def test_permuted_labels_score_perfectly():
    y = np.repeat(np.arange(5), 7)
    pred = np.array([3, 0, 4, 1, 2])[y] + 10  # relabelled clusters, different label range
    scores = clustering_scores(y, pred)
    assert scores == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0, "macro_f1": 1.0})


@pytest.mark.parametrize("seed", range(12))
def test_hungarian_acc_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = rng.integers(2, 5), rng.integers(2, 6)
    y_true, y_pred = rng.integers(0, n_classes, 14), rng.integers(0, n_clusters, 14)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(_brute_force_acc(y_true, y_pred))
    scores = clustering_scores(y_true, y_pred)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred))


def test_kmeans_eval_on_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.standard_normal((90, 4)) * 0.1 + 5.0 * np.eye(4)[y]
    result = kmeans_eval(x, y, seeds=(0, 1))
    assert set(result) == {"acc", "nmi", "ari", "macro_f1"}
    assert result["acc"].test_mean == 1.0 and result["nmi"].per_split == (1.0, 1.0)


# ----------------------------------------------------------------------------- link prediction


def _cliques(n_cliques=4, size=8):
    """Disjoint complete graphs, stored in both directions, plus a self-loop and a duplicate edge."""
    edges = [(c * size + i, c * size + j) for c in range(n_cliques) for i in range(size) for j in range(size) if i != j]
    edges += [(0, 0), (1, 2)]
    return np.array(edges).T, n_cliques * size


def _keys(pairs, n):
    return set((np.minimum(*pairs) * n + np.maximum(*pairs)).tolist())


def test_split_edges_holds_out_both_directions():
    edge_index, n = _cliques()
    split = split_edges(edge_index, n, val=0.1, test=0.2, seed=0)
    train_directed = set(map(tuple, split["train_edge_index"].T.tolist()))
    for key in ("val_pos", "test_pos"):
        for u, v in split[key].T.tolist():
            assert (u, v) not in train_directed and (v, u) not in train_directed
    all_pos = _keys(edge_index[:, edge_index[0] != edge_index[1]], n)
    parts = [_keys(split[k], n) for k in ("train_pos", "val_pos", "test_pos")]
    assert set().union(*parts) == all_pos and sum(map(len, parts)) == len(all_pos) == 4 * 28
    assert split["test_pos"].shape[1] == int(0.2 * 112) == split["test_neg"].shape[1]
    assert split["val_neg"].shape[1] == split["val_pos"].shape[1]
    negs = [split["val_neg"], split["test_neg"]]
    for neg in negs:
        assert np.all(neg[0] != neg[1]) and not (_keys(neg, n) & all_pos)
        assert len(_keys(neg, n)) == neg.shape[1]
    assert not (_keys(negs[0], n) & _keys(negs[1], n))


def test_split_edges_is_seeded():
    edge_index, n = _cliques()
    a, b, c = (split_edges(edge_index, n, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test_pos"], c["test_pos"])


def test_split_edges_refuses_impossible_negatives():
    full = np.array([(i, j) for i in range(5) for j in range(5) if i != j]).T
    with pytest.raises(ValueError, match="non-edges"):
        split_edges(full, 5, test=0.5)


@pytest.mark.parametrize("score", ["dot", "cosine"])
def test_perfect_embeddings_score_auc_one(score):
    edge_index, n = _cliques()
    split = split_edges(edge_index, n, seed=0)
    z = np.eye(4)[np.arange(n) // 8] * 3.0  # one direction per clique: dot 9 inside, 0 across
    assert link_scores(z, split["test_pos"], split["test_neg"], score=score) == {"auc": 1.0, "ap": 1.0}


# ----------------------------------------------------------------------------- RankMe


@pytest.mark.parametrize("k", [1, 5, 32])
def test_rankme_of_orthonormal_rank_k(k):
    rng = np.random.default_rng(k)
    left = np.linalg.qr(rng.standard_normal((300, k)))[0]
    right = np.linalg.qr(rng.standard_normal((64, k)))[0]
    assert float(rankme(7.0 * left @ right.T)) == pytest.approx(k, rel=1e-2)


def test_rankme_of_rank_one():
    rng = np.random.default_rng(0)
    z = np.outer(rng.standard_normal(200), rng.standard_normal(48))
    assert float(rankme(z)) == pytest.approx(1.0, abs=1e-2)
