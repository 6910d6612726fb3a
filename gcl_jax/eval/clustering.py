"""Clustering metrics and the k-means protocol: ACC (Hungarian matching), NMI, ARI, macro-F1.

ACC maps each predicted cluster to at most one class so that the number of agreeing items is
largest (``scipy.optimize.linear_sum_assignment`` on the contingency table), as in the deep-
clustering literature; macro-F1 is computed on the matched labels. NMI and ARI are sklearn's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from gcl_jax.eval.result import EvalResult, summarize


def match_clusters(y_true, y_pred) -> np.ndarray:
    """``y_pred`` relabelled by the cluster -> class matching that maximizes agreement.

    Clusters left unmatched (more clusters than classes) become ``-1`` and count as errors.
    """
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((len(clusters), len(classes)), np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(len(clusters), -1, dtype=np.int64)
    mapping[rows] = classes[cols]
    return mapping[p]


def cluster_accuracy(y_true, y_pred) -> float:
    """Fraction of items whose cluster, after the best one-to-one matching, equals their class."""
    return float(np.mean(match_clusters(y_true, y_pred) == np.asarray(y_true).reshape(-1)))


def clustering_scores(y_true, y_pred) -> dict[str, float]:
    """``{"acc", "nmi", "ari", "macro_f1"}`` of one clustering against the labels."""
    y_true = np.asarray(y_true).reshape(-1)
    matched = match_clusters(y_true, y_pred)
    return {
        "acc": float(np.mean(matched == y_true)),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, matched, labels=np.unique(y_true), average="macro")),
    }


def kmeans_eval(x, y, *, n_clusters: int | None = None, seeds: Sequence[int] = (0,), n_init: int = 10
                ) -> dict[str, EvalResult]:
    """k-means (sklearn, ``n_init`` restarts) on the embeddings, once per seed; every metric over seeds.

    ``n_clusters`` defaults to the number of classes. Returns ``{"acc", "nmi", "ari", "macro_f1"}``,
    each an :class:`EvalResult` with one value per seed.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y).reshape(-1)
    k = len(np.unique(y)) if n_clusters is None else int(n_clusters)
    runs = [clustering_scores(y, KMeans(k, n_init=n_init, random_state=s).fit_predict(x)) for s in seeds]
    return {name: summarize(name, [r[name] for r in runs]) for name in runs[0]}
