"""The heterogeneous-graph protocol of HeCo-style papers: few-shot probes on the shipped splits,
plus k-means.

For each number of labelled nodes per class (20 / 40 / 60; the dataset's ``splits[shots]``), a
multinomial logistic regression is fit on ``train`` for every C of the grid, the C with the best
``val`` accuracy kept (:func:`gcl_jax.eval.linear.select_and_test`), and its ``test`` Macro-F1,
Micro-F1 (= accuracy) and one-vs-rest macro AUC (from the predicted class probabilities)
reported. k-means on the embeddings (one seeded run of ``n_init`` restarts) adds NMI and ARI.

HeCo's own ``utils/evaluate.py`` (adapted from DMGI) trains a logistic regression with Adam
(``eva_lr``, ``eva_wd``) for 200 epochs on the raw embeddings, 50 times from fresh initializations,
and for each metric separately takes the test score at the epoch with that metric's best
validation score (AUC at the epoch of best validation Micro-F1), averaged over the 50 runs. Here one
C grid and one validation choice serve all metrics; ``paper_protocol=True`` adds HeCo's numbers as
``heco_*`` extras (:func:`heco_adam_probe`), so both can be reported side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from sklearn.metrics import roc_auc_score

from gcl_jax.eval.clustering import kmeans_eval
from gcl_jax.eval.linear import BGRL_CS, prepare_probe, select_and_test
from gcl_jax.eval.logreg import adam_probe_runs, split_arrays
from gcl_jax.eval.result import EvalResult, summarize

SHOTS = (20, 40, 60)


def one_vs_rest_auc(y_true, probabilities) -> float:
    """Macro one-vs-rest ROC AUC; binary labels use the positive class's column."""
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(y_true, probabilities[:, 1]))
    return float(roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro",
                               labels=np.arange(probabilities.shape[1])))


def shot_scores(x, y, split: Mapping[str, np.ndarray], cs: Sequence[float], num_classes: int) -> dict:
    """``{"macro_f1", "micro_f1", "auc", "C"}`` on one ``{"train", "val", "test"}`` split."""
    train, val, test = (np.asarray(split[part], np.int64) for part in ("train", "val", "test"))
    chosen = select_and_test(x, y, [(train, val)], train, test, cs, num_classes)
    return {
        "macro_f1": chosen["macro_f1"],
        "micro_f1": chosen["accuracy"],
        "auc": one_vs_rest_auc(y[test], chosen["test_probabilities"]),
        "C": chosen["C"],
    }


def heco_adam_probe(x, y, split: Mapping[str, np.ndarray], *, lr: float, weight_decay: float = 0.0,
                    epochs: int = 200, repeats: int = 50, seed: int = 0) -> dict:
    """HeCo's evaluate.py on one split: ``{"macro_f1", "micro_f1", "auc"}``, each the mean over
    ``repeats`` Adam-trained logistic regressions of the validation-picked epoch's test score."""
    num_classes = int(np.max(y)) + 1
    parts = split_arrays(x, y, [split[p] for p in ("train", "val", "test")])
    best = adam_probe_runs(jax.random.PRNGKey(seed), *parts, lr, weight_decay,
                           num_classes=num_classes, epochs=int(epochs), repeats=int(repeats))
    y_test = np.asarray(parts[2][1])
    return {
        "macro_f1": float(np.mean(best["macro_f1"])),
        "micro_f1": float(np.mean(best["micro_f1"])),
        "auc": float(np.mean([one_vs_rest_auc(y_test, np.asarray(p)) for p in best["probabilities"]])),
    }


def hetero_probe(
    x, y, splits: Mapping[int, Mapping[str, np.ndarray]], *, shots: Sequence[int] = SHOTS,
    cs: Sequence[float] = BGRL_CS, normalize: bool = True, seed: int = 0, n_init: int = 10,
    paper_protocol: bool = False, paper_lr: float = 0.01, paper_weight_decay: float = 0.0,
) -> EvalResult:
    """Macro-F1 at ``shots[0]`` labels per class as the main metric; ``extra`` holds
    ``micro_f1_<k>``, ``auc_<k>``, ``macro_f1_<k>`` for the other shots, ``nmi`` and ``ari``
    (k-means on the raw embeddings, seeded by ``seed``); ``chosen`` the selected C per shot.
    ``normalize`` l2-normalizes the embeddings before the probes (as the other probes here).
    ``paper_protocol`` adds ``heco_macro_f1_<k>``, ``heco_micro_f1_<k>``, ``heco_auc_<k>``: HeCo's
    own evaluation (:func:`heco_adam_probe` with ``paper_lr`` / ``paper_weight_decay``, its
    ``eva_lr`` / ``eva_wd``) on the raw embeddings."""
    probe_x, y, num_classes = prepare_probe(x, y, normalize, None)
    raw = np.asarray(x, np.float32)
    missing = [k for k in shots if k not in splits]
    if not shots or missing:
        raise ValueError(f"shots: the dataset has splits for {sorted(splits)}, got {list(shots)}")
    scores = {k: shot_scores(probe_x, y, splits[k], cs, num_classes) for k in shots}
    clusters = kmeans_eval(raw, y, seeds=(seed,), n_init=n_init)
    extra = {f"{name}_{k}": [scores[k][name]] for k in shots for name in ("macro_f1", "micro_f1", "auc")}
    del extra[f"macro_f1_{shots[0]}"]  # the main metric
    if paper_protocol:
        for k in shots:
            paper = heco_adam_probe(raw, y, splits[k], lr=paper_lr, weight_decay=paper_weight_decay, seed=seed)
            extra.update({f"heco_{name}_{k}": [value] for name, value in paper.items()})
    return summarize(
        f"macro_f1_{shots[0]}",
        [scores[shots[0]]["macro_f1"]],
        chosen=[{f"C_{k}": scores[k]["C"] for k in shots}],
        **extra,
        nmi=clusters["nmi"].per_split,
        ari=clusters["ari"].per_split,
    )
