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

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.metrics import roc_auc_score

from gcl_jax.eval.clustering import kmeans_eval
from gcl_jax.eval.linear import BGRL_CS, prepare_probe, select_and_test
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


def _macro_f1(pred, y, num_classes: int):
    """Macro-F1 of integer predictions (classes absent from both ``y`` and ``pred`` count as 0)."""
    p, t = jax.nn.one_hot(pred, num_classes), jax.nn.one_hot(y, num_classes)
    tp, fp, fn = (p * t).sum(0), (p * (1 - t)).sum(0), ((1 - p) * t).sum(0)
    return jnp.mean(jnp.where(tp > 0, 2 * tp / jnp.maximum(2 * tp + fp + fn, 1.0), 0.0))


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "repeats"))
def _adam_runs(key, train, val, test, lr, weight_decay, *, num_classes, epochs, repeats):
    """HeCo's classifier runs: per restart, the test scores at the first epoch of best validation
    accuracy (= Micro-F1) and of best validation Macro-F1, and the test probabilities at the former."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = train, val, test
    optimizer = optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr))  # torch Adam's L2

    def cross_entropy(params):
        logits = x_tr @ params[0] + params[1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y_tr[:, None], 1))

    def epoch(carry, _):
        params, state, best = carry
        updates, state = optimizer.update(jax.grad(cross_entropy)(params), state, params)
        params = optax.apply_updates(params, updates)
        val_pred = jnp.argmax(x_va @ params[0] + params[1], 1)
        test_logits = x_te @ params[0] + params[1]
        test_pred = jnp.argmax(test_logits, 1)
        val_acc, val_f1 = jnp.mean(val_pred == y_va), _macro_f1(val_pred, y_va, num_classes)
        better_acc, better_f1 = val_acc > best["val_acc"], val_f1 > best["val_f1"]  # first maximum wins
        best = {
            "val_acc": jnp.where(better_acc, val_acc, best["val_acc"]),
            "micro_f1": jnp.where(better_acc, jnp.mean(test_pred == y_te), best["micro_f1"]),
            "probabilities": jnp.where(better_acc, jax.nn.softmax(test_logits), best["probabilities"]),
            "val_f1": jnp.where(better_f1, val_f1, best["val_f1"]),
            "macro_f1": jnp.where(better_f1, _macro_f1(test_pred, y_te, num_classes), best["macro_f1"]),
        }
        return (params, state, best), None

    def run(k):
        params = (jax.nn.initializers.glorot_uniform()(k, (x_tr.shape[1], num_classes)), jnp.zeros(num_classes))
        best = {"val_acc": -1.0, "micro_f1": 0.0, "val_f1": -1.0, "macro_f1": 0.0,
                "probabilities": jnp.zeros((x_te.shape[0], num_classes))}
        return jax.lax.scan(epoch, (params, optimizer.init(params), best), None, length=epochs)[0][2]

    return jax.vmap(run)(jax.random.split(key, repeats))


def heco_adam_probe(x, y, split: Mapping[str, np.ndarray], *, lr: float, weight_decay: float = 0.0,
                    epochs: int = 200, repeats: int = 50, seed: int = 0) -> dict:
    """HeCo's evaluate.py on one split: ``{"macro_f1", "micro_f1", "auc"}``, each the mean over
    ``repeats`` Adam-trained logistic regressions of the validation-picked epoch's test score."""
    x = np.asarray(x, np.float32)
    num_classes = int(np.max(y)) + 1
    parts = [(jnp.asarray(x[idx]), jnp.asarray(y[idx], jnp.int32))
             for idx in (np.asarray(split[p], np.int64) for p in ("train", "val", "test"))]
    best = _adam_runs(jax.random.PRNGKey(seed), *parts, lr, weight_decay,
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
