"""Evaluation of frozen embeddings: linear probes, SVM graph classification, clustering, link
prediction, and the label-free RankMe.

Node classification (:mod:`~gcl_jax.eval.linear`): :func:`planetoid_probe`,
:func:`random_split_probe` (BGRL/GCA 10/10/80), :func:`grace_probe` (GRACE 10/90 with inner CV), all
through :func:`select_and_test`. Graph classification (:mod:`~gcl_jax.eval.svm`): :func:`svm_cv`.
Heterogeneous graphs (:mod:`~gcl_jax.eval.hetero`): :func:`hetero_probe` (20/40/60-shot probes with
AUC, k-means NMI/ARI).
Every protocol returns an :class:`EvalResult`.
"""

from gcl_jax.eval.clustering import cluster_accuracy, clustering_scores, kmeans_eval, match_clusters
from gcl_jax.eval.hetero import hetero_probe
from gcl_jax.eval.linear import (
    BGRL_CS,
    GRACE_CS,
    grace_probe,
    graphmae_probe,
    l2_normalize,
    linear_probe,
    planetoid_probe,
    random_split_probe,
    select_and_test,
)
from gcl_jax.eval.link import link_scores, pair_scores, sample_non_edges, split_edges, undirected_pairs
from gcl_jax.eval.logreg import fit_logreg_grid, predict_grid
from gcl_jax.eval.ranking import ranking_eval, ranking_scores
from gcl_jax.eval.rankme import rankme
from gcl_jax.eval.result import EvalResult, summarize
from gcl_jax.eval.svm import GRAPHMAE_SVC_CS, INFOGRAPH_SVC_CS, svc_fold, svm_cv
from gcl_jax.eval.zeroshot import zeroshot_eval

__all__ = [
    "BGRL_CS",
    "EvalResult",
    "GRACE_CS",
    "GRAPHMAE_SVC_CS",
    "INFOGRAPH_SVC_CS",
    "cluster_accuracy",
    "clustering_scores",
    "fit_logreg_grid",
    "grace_probe",
    "graphmae_probe",
    "hetero_probe",
    "kmeans_eval",
    "l2_normalize",
    "linear_probe",
    "link_scores",
    "match_clusters",
    "pair_scores",
    "planetoid_probe",
    "predict_grid",
    "random_split_probe",
    "rankme",
    "ranking_eval",
    "ranking_scores",
    "sample_non_edges",
    "select_and_test",
    "split_edges",
    "summarize",
    "svc_fold",
    "svm_cv",
    "zeroshot_eval",
    "undirected_pairs",
]
