"""Graph-classification protocol: SVC accuracy under stratified 10-fold CV, C chosen by inner CV.

Sources: InfoGraph ``unsupervised/evaluate_embedding.py`` (``svc_classify``, reused by GraphCL):
``StratifiedKFold(10, shuffle=True)``, ``GridSearchCV(SVC(), {"C": [1e-3 .. 1e3]}, cv=5,
scoring="accuracy")``, i.e. an RBF kernel on the raw (unscaled) embeddings. GraphMAE
``main_graph.py`` (``evaluate_graph_embeddings_using_svm``): the same with ``C in [1e-3 .. 10]``,
fold seed 0, and micro-F1 (= accuracy) reported as mean ± std over the 10 folds.

``gamma`` defaults to sklearn's current ``"scale"`` (what GraphMAE ran with); InfoGraph ran on an
sklearn whose default behaved as ``"auto"`` (``1 / n_features``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from gcl_jax.data import splits as splits_lib
from gcl_jax.eval.result import EvalResult, summarize

#: InfoGraph's inner grid (evaluate_embedding.py ``svc_classify``).
INFOGRAPH_SVC_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
#: GraphMAE's inner grid (main_graph.py ``evaluate_graph_embeddings_using_svm``).
GRAPHMAE_SVC_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def svc_fold(x_train, y_train, x_test, y_test, *, cs=INFOGRAPH_SVC_CS, inner_folds=5, kernel="rbf",
             gamma="scale") -> tuple[float, float]:
    """Fit ``SVC`` with C chosen by ``inner_folds``-fold CV accuracy on the training part; return (test accuracy, C)."""
    search = GridSearchCV(SVC(kernel=kernel, gamma=gamma), {"C": list(cs)}, cv=inner_folds, scoring="accuracy")
    search.fit(x_train, y_train)
    return float(np.mean(search.predict(x_test) == y_test)), float(search.best_params_["C"])


def svm_cv(
    x, y, *, seeds: Sequence[int] = (0,), folds: int = 10, cs: Sequence[float] = INFOGRAPH_SVC_CS,
    inner_folds: int = 5, kernel: str = "rbf", gamma="scale",
    fold_fn: Callable[..., list] = splits_lib.stratified_kfold,
) -> EvalResult:
    """Stratified ``folds``-fold SVC accuracy, the whole k-fold repeated once per fold-shuffle seed.

    ``fold_fn(labels, folds, seed)`` makes the folds (default
    :func:`gcl_jax.data.splits.stratified_kfold`). ``per_split`` holds one mean accuracy per seed;
    ``test_std`` is the std over those seeds, or over the folds when there is a single seed
    (GraphMAE's ±). ``chosen`` has the inner-CV C of every fold; ``extra["fold_accuracy"]`` every fold.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need embeddings [N, D] and labels [N], got {x.shape} and {y.shape}")
    seed_means, fold_accs, chosen = [], [], []
    for seed in seeds:
        accs = []
        for f in fold_fn(y, folds, seed):
            acc, c = svc_fold(x[f["train"]], y[f["train"]], x[f["test"]], y[f["test"]], cs=cs,
                              inner_folds=inner_folds, kernel=kernel, gamma=gamma)
            accs.append(acc)
            chosen.append({"seed": int(seed), "C": c})
        seed_means.append(np.mean(accs))
        fold_accs.extend(accs)
    std = np.std(seed_means) if len(seed_means) > 1 else np.std(fold_accs)
    return summarize("accuracy", seed_means, chosen=chosen, std=std, fold_accuracy=fold_accs)
