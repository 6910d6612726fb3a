"""Linear-probe protocols: accuracy on easy/hopeless data, validation-only selection, sklearn parity."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gcl_jax.eval import (
    BGRL_CS,
    fit_logreg_grid,
    grace_probe,
    l2_normalize,
    linear_probe,
    planetoid_probe,
    predict_grid,
    random_split_probe,
)


def _blobs(n, k, d, spread, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.standard_normal((k, d)) * spread
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def test_logreg_grid_matches_sklearn():
    x, y = _blobs(200, 3, 8, 1.0, 0)
    cs = [0.01, 1.0, 100.0]
    params = fit_logreg_grid(x, y, cs, 3, max_iter=500, tol=1e-6)
    pred = np.asarray(predict_grid(params, x))
    for g, c in enumerate(cs):
        sk = LogisticRegression(C=c, max_iter=2000, tol=1e-8).fit(x, y)
        np.testing.assert_allclose(np.asarray(params[0][g]) - np.asarray(params[0][g]).mean(1, keepdims=True),
                                   sk.coef_.T - sk.coef_.T.mean(1, keepdims=True), atol=2e-2, rtol=2e-2)
        assert np.mean(pred[g] == sk.predict(x)) >= 0.99


def test_separable_embeddings_reach_near_perfect_accuracy():
    x, y = _blobs(640, 4, 16, 6.0, 1)
    result = random_split_probe(x, y, n_splits=3, seed=0)
    assert result.metric == "accuracy" and len(result.per_split) == 3
    assert result.test_mean >= 0.98
    assert set(result.extra) == {"macro_f1", "val_accuracy"}
    assert all(c["C"] in BGRL_CS for c in result.chosen)


def test_random_labels_give_chance_accuracy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((640, 16)).astype(np.float32)
    y = rng.integers(0, 4, 640)
    result = random_split_probe(x, y, n_splits=3, seed=0)
    assert abs(result.test_mean - 0.25) < 0.08


def test_selection_uses_validation_not_test():
    # Train/val: class 1 iff x0 > 0, class 0 is the 70% majority. Test: class-1-looking points labelled 0.
    # A tiny C predicts the majority everywhere (val 0.7, test 1.0); a large C learns the rule (val 1.0,
    # test 0.0). Selecting on validation must keep the large C and so report test accuracy 0.
    rng = np.random.default_rng(3)

    def points(n_pos, n_neg):
        x0 = np.concatenate([1 + rng.random(n_pos), -1 - rng.random(n_neg)])
        x = np.stack([x0, rng.standard_normal(n_pos + n_neg)], axis=1)
        return x, np.concatenate([np.ones(n_pos), np.zeros(n_neg)]).astype(int)

    (xtr, ytr), (xva, yva) = points(30, 70), points(30, 70)
    xte = np.stack([1 + rng.random(50), rng.standard_normal(50)], axis=1)
    x = np.concatenate([xtr, xva, xte]).astype(np.float32)
    y = np.concatenate([ytr, yva, np.zeros(50, int)])
    idx = np.arange(len(y))
    train, val, test = idx[:100], idx[100:200], idx[200:]

    test_acc_per_c = (np.asarray(predict_grid(fit_logreg_grid(x[train], y[train], BGRL_CS, 2), x[test])) == 0).mean(1)
    assert test_acc_per_c.max() == 1.0 and np.argmax(test_acc_per_c) == 0  # the test-best C is the smallest

    result = planetoid_probe(x, y, train, val, test, normalize=False)
    assert result.chosen[0]["C"] > BGRL_CS[0]
    assert result.extra["val_accuracy"][0] == 1.0
    assert result.test_mean == 0.0


def test_ties_go_to_smallest_c():
    x, y = _blobs(256, 2, 4, 8.0, 4)
    z = l2_normalize(x)
    idx = np.arange(256)
    train, val = idx[:128], idx[128:192]
    val_acc = (np.asarray(predict_grid(fit_logreg_grid(z[train], y[train], BGRL_CS, 2), z[val])) == y[val]).mean(1)
    assert np.sum(val_acc == val_acc.max()) > 1  # a real tie
    result = linear_probe(x, y, [{"train": train, "val": val, "test": idx[192:]}])
    assert result.chosen[0]["C"] == BGRL_CS[int(np.argmax(val_acc))]  # first max of the ascending grid


def test_grace_probe_on_separable_data():
    x, y = _blobs(640, 3, 16, 6.0, 5)
    result = grace_probe(x, y, n_splits=2, seed=0)
    assert result.test_mean >= 0.97 and len(result.chosen) == 2
    assert all(c["C"] < 2.0 ** 10 for c in result.chosen)  # GRACE's grid stops at 2**9


def test_linear_probe_requires_validation():
    x, y = _blobs(64, 2, 4, 4.0, 6)
    with pytest.raises(ValueError, match="val"):
        linear_probe(x, y, [{"train": np.arange(32), "val": np.arange(0), "test": np.arange(32, 64)}])


def _numpy_graphmae_probe(x, y, idx, params, lr, wd, epochs):
    """GraphMAE's probe written out in numpy: full-batch Adam (betas 0.9/0.999, eps 1e-8) with L2
    added to the gradient of weights and bias; the test accuracy at the last epoch of best
    validation accuracy, and at the final epoch."""
    train, val, test = idx
    w, b = (np.array(p, np.float64) for p in params)
    onehot = np.eye(w.shape[1])[y[train]]
    moments = [[np.zeros_like(w), np.zeros_like(w)], [np.zeros_like(b), np.zeros_like(b)]]
    best_val, chosen = -1.0, None
    accuracy = lambda rows: np.mean(np.argmax(x[rows] @ w + b, 1) == y[rows])
    for t in range(1, epochs + 1):
        logits = x[train] @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        delta = (p / p.sum(1, keepdims=True) - onehot) / len(train)
        for param, grad, (m, v) in ((w, x[train].T @ delta, moments[0]), (b, delta.sum(0), moments[1])):
            grad = grad + wd * param
            m[:] = 0.9 * m + 0.1 * grad
            v[:] = 0.999 * v + 0.001 * grad**2
            param -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        if accuracy(val) >= best_val:
            best_val, chosen = accuracy(val), accuracy(test)
    return chosen, accuracy(test)


def test_graphmae_probe_matches_a_numpy_adam_loop():
    """The Adam probe (GraphMAE's protocol) against an independent numpy loop from the same start."""
    import jax

    from gcl_jax.eval import graphmae_probe, logreg

    x, y = _blobs(300, 3, 8, 0.7, 4)
    idx = (np.arange(0, 60), np.arange(60, 160), np.arange(160, 300))
    params = logreg._initial_params(jax.random.PRNGKey(3), 8, 3, "torch")
    bound = 1 / np.sqrt(8)
    assert all(np.abs(np.asarray(p)).max() <= bound for p in params)  # torch.nn.Linear's init range
    expected = _numpy_graphmae_probe(x.astype(np.float64), y, idx, params, lr=0.05, wd=1e-3, epochs=60)
    got = graphmae_probe(x, y, *idx, lr=0.05, weight_decay=1e-3, epochs=60, seed=3)
    assert 0.5 < got["accuracy"] < 1.0  # a non-trivial problem
    np.testing.assert_allclose([got["accuracy"], got["final_accuracy"]], expected, atol=1.5 / 140)


def test_planetoid_paper_protocol_adds_graphmae_extras():
    x, y = _blobs(400, 3, 8, 3.0, 5)
    idx = (np.arange(0, 60), np.arange(60, 160), np.arange(160, 400))
    plain = planetoid_probe(x, y, *idx)
    both = planetoid_probe(x, y, *idx, paper_protocol=True, paper_lr=0.05, paper_epochs=100)
    assert "graphmae_accuracy" not in plain.extra
    assert both.test_mean == plain.test_mean and both.extra["graphmae_accuracy"][0] > 0.9
    assert set(both.extra) == set(plain.extra) | {"graphmae_accuracy", "graphmae_final_accuracy"}
