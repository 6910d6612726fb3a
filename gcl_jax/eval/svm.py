"""Graph-classification protocol: SVC accuracy under stratified 10-fold CV, C chosen by inner CV.

Sources: InfoGraph ``unsupervised/evaluate_embedding.py`` (``svc_classify``, reused by GraphCL):
``StratifiedKFold(10, shuffle=True)``, ``GridSearchCV(SVC(), {"C": [1e-3 .. 1e3]}, cv=5,
scoring="accuracy")``, i.e. an RBF kernel on the raw (unscaled) embeddings. GraphMAE
``main_graph.py`` (``evaluate_graph_embeddings_using_svm``): the same with ``C in [1e-3 .. 10]``,
fold seed 0, and micro-F1 (= accuracy) reported as mean ± std over the 10 folds.

``gamma`` defaults to sklearn's current ``"scale"`` (what GraphMAE ran with); InfoGraph ran on an
sklearn whose default behaved as ``"auto"`` (``1 / n_features``).

``classifier="linear_svc"`` is MVGRL's choice (graph/train.py): liblinear's ``LinearSVC`` (squared
hinge, its default 1,000 iterations) with the same C grid and folds. It is not libsvm's
``SVC(kernel="linear")``, which differs in loss and, at C = 1e3 on unscaled embeddings, can run for
many minutes per fit.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC, LinearSVC

from gcl_jax.data import splits as splits_lib
from gcl_jax.eval.result import EvalResult, summarize

#: InfoGraph's inner grid (evaluate_embedding.py ``svc_classify``).
INFOGRAPH_SVC_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
#: GraphMAE's inner grid (main_graph.py ``evaluate_graph_embeddings_using_svm``).
GRAPHMAE_SVC_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
CLASSIFIERS = ("svc", "linear_svc")


def svm_estimator(classifier: str, kernel: str, gamma):
    """``SVC(kernel, gamma)`` for ``"svc"``, liblinear's ``LinearSVC()`` for ``"linear_svc"``."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"eval.classifier: expected one of {CLASSIFIERS}, got {classifier!r}")
    return LinearSVC() if classifier == "linear_svc" else SVC(kernel=kernel, gamma=gamma)


def svc_fold(x_train, y_train, x_test, y_test, *, cs=INFOGRAPH_SVC_CS, inner_folds=5, kernel="rbf",
             gamma="scale", classifier="svc") -> tuple[float, float]:
    """Fit the ``classifier`` (:func:`svm_estimator`) with C chosen by ``inner_folds``-fold CV accuracy
    on the training part; return (test accuracy, C). liblinear's iteration cap is the official
    runs' too, so its convergence warnings are silenced."""
    search = GridSearchCV(svm_estimator(classifier, kernel, gamma), {"C": list(cs)}, cv=inner_folds, scoring="accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x_train, y_train)
    return float(np.mean(search.predict(x_test) == y_test)), float(search.best_params_["C"])


def svm_cv(
    x, y, *, seeds: Sequence[int] = (0,), folds: int = 10, cs: Sequence[float] = INFOGRAPH_SVC_CS,
    inner_folds: int = 5, kernel: str = "rbf", gamma="scale", classifier: str = "svc",
    fold_fn: Callable[..., list] = splits_lib.stratified_kfold,
) -> EvalResult:
    """Stratified ``folds``-fold SVC accuracy, the whole k-fold repeated once per fold-shuffle seed.

    ``fold_fn(labels, folds, seed)`` makes the folds (default
    :func:`gcl_jax.data.splits.stratified_kfold`). ``per_split`` holds one mean accuracy per seed;
    ``test_std`` is the std over those seeds, or over the folds when there is a single seed
    (GraphMAE's ±). ``chosen`` has the inner-CV C of every fold; ``extra["fold_accuracy"]`` every fold.
    """
    svm_estimator(classifier, kernel, gamma)  # a bad name fails before any fit
    x = np.asarray(x, np.float64)
    y = np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need embeddings [N, D] and labels [N], got {x.shape} and {y.shape}")
    seed_means, fold_accs, chosen = [], [], []
    for seed in seeds:
        accs = []
        for f in fold_fn(y, folds, seed):
            acc, c = svc_fold(x[f["train"]], y[f["train"]], x[f["test"]], y[f["test"]], cs=cs,
                              inner_folds=inner_folds, kernel=kernel, gamma=gamma, classifier=classifier)
            accs.append(acc)
            chosen.append({"seed": int(seed), "C": c})
        seed_means.append(np.mean(accs))
        fold_accs.extend(accs)
    std = np.std(seed_means) if len(seed_means) > 1 else np.std(fold_accs)
    return summarize("accuracy", seed_means, chosen=chosen, std=std, fold_accuracy=fold_accs)
