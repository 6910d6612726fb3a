"""Linear-probe protocols for node embeddings: one "fit the C grid, select, report test" mechanism.

Every protocol below goes through :func:`select_and_test`: score each C of the grid on held-out rows
(one validation set, or the folds of a cross-validation inside the training set), keep the best,
and report that model's test accuracy and macro-F1. Test labels never influence the choice.

Protocol sources:

- BGRL, ``nerdslab/bgrl`` ``bgrl/logistic_regression_eval.py``: embeddings l2-normalized, l2-penalized
  logistic regression over ``C in 2**arange(-10, 11)``; with preset splits, fit on train, keep the C
  with the best validation accuracy (ties: the first, i.e. smallest, C), report its test accuracy.
  Its random-split mode holds out 80% for test and scores C on 5 random halves of the other 20%
  (``ShuffleSplit(5, test_size=0.5)``), i.e. 10/10/80; here each split has one fixed 10% val.
- GRACE, ``CRIPAC-DIG/GRACE`` ``eval.py`` (``label_classification``): embeddings l2-normalized,
  10% train / 90% test, ``C in 2**arange(-10, 10)`` chosen by 5-fold CV on the training set, micro-
  and macro-F1 on test (micro-F1 equals accuracy for single-label data).

- GraphMAE, ``THUDM/GraphMAE`` ``graphmae/evaluation.py``: a ``torch.nn.Linear`` on the raw
  embeddings trained with Adam for ``max_epoch_f`` epochs, test accuracy at the last epoch of best
  validation accuracy; :func:`graphmae_probe`, reported beside ours by ``planetoid_probe(...,
  paper_protocol=True)``.

Differences from those scripts, all deliberate: one multinomial model instead of liblinear
one-vs-rest (:mod:`gcl_jax.eval.logreg`, same C semantics as sklearn); GRACE's inner CV is
stratified and seeded (its ``GridSearchCV(cv=5)`` on one-hot targets is an unshuffled KFold).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import f1_score

from gcl_jax.data import splits as splits_lib
from gcl_jax.eval.logreg import adam_probe_runs, fit_logreg_grid, grid_logits, predict_grid, split_arrays
from gcl_jax.eval.result import EvalResult, summarize

#: BGRL's grid, ``2**-10 .. 2**10`` (nerdslab/bgrl, bgrl/logistic_regression_eval.py).
BGRL_CS = tuple(2.0 ** np.arange(-10, 11))
#: GRACE's grid, ``2**-10 .. 2**9`` (CRIPAC-DIG/GRACE, eval.py: ``2.0 ** np.arange(-10, 10)``).
GRACE_CS = tuple(2.0 ** np.arange(-10, 10))

Split = Mapping[str, np.ndarray]


def l2_normalize(x) -> np.ndarray:
    """Rows scaled to unit l2 norm (zero rows stay zero), float32, as BGRL and GRACE do before the probe."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _grid_accuracy(params, x, y) -> np.ndarray:
    """Accuracy ``[G]`` of every grid model on ``(x, y)``."""
    return (np.asarray(predict_grid(params, x)) == y[None, :]).mean(axis=1)


def select_and_test(
    x: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    refit_idx: np.ndarray,
    test_idx: np.ndarray,
    cs: Sequence[float],
    num_classes: int,
) -> dict:
    """Pick C by mean held-out accuracy over ``folds`` of ``(fit_idx, held_idx)``, then test it.

    The chosen C is refit on ``refit_idx`` (or reused when the only fold fits on exactly
    ``refit_idx``, the validation-set case) and scored on ``test_idx``. Ties go to the smallest C.
    Returns ``{"accuracy", "macro_f1", "val_accuracy", "C", "test_probabilities"}``, the last the
    chosen model's class probabilities ``[len(test_idx), K]`` (for AUC).
    """
    cs = np.asarray(cs, np.float64)
    held_scores = np.zeros(len(cs))
    for fit_idx, held_idx in folds:
        params = fit_logreg_grid(x[fit_idx], y[fit_idx], cs, num_classes)
        held_scores += _grid_accuracy(params, x[held_idx], y[held_idx]) / len(folds)
    best_ones = np.flatnonzero(held_scores == held_scores.max())
    best = int(best_ones[np.argmin(cs[best_ones])])
    if len(folds) == 1 and np.array_equal(folds[0][0], refit_idx):
        final = (params[0][best:best + 1], params[1][best:best + 1])
    else:
        final = fit_logreg_grid(x[refit_idx], y[refit_idx], cs[best:best + 1], num_classes)
    logits = grid_logits(final, x[test_idx])[0]
    pred = np.asarray(jnp.argmax(logits, axis=-1))
    y_test = y[test_idx]
    return {
        "accuracy": float(np.mean(pred == y_test)),
        "macro_f1": float(f1_score(y_test, pred, average="macro")),
        "val_accuracy": float(held_scores[best]),
        "C": float(cs[best]),
        "test_probabilities": np.asarray(jax.nn.softmax(logits, axis=-1)),
    }


def prepare_probe(x, y, normalize: bool, num_classes: int | None):
    """Checked probe inputs: float32 embeddings ``[N, D]`` (l2-normalized if asked), int64 labels ``[N]``,
    and the number of classes (``max label + 1`` unless given)."""
    x = l2_normalize(x) if normalize else np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need embeddings [N, D] and labels [N], got {x.shape} and {y.shape}")
    return x, y, int(y.max()) + 1 if num_classes is None else int(num_classes)


def _collect(outcomes: list[dict]) -> EvalResult:
    return summarize(
        "accuracy",
        [o["accuracy"] for o in outcomes],
        chosen=[{"C": o["C"]} for o in outcomes],
        macro_f1=[o["macro_f1"] for o in outcomes],
        val_accuracy=[o["val_accuracy"] for o in outcomes],
    )


def linear_probe(
    x, y, splits: Sequence[Split], *, cs: Sequence[float] = BGRL_CS, normalize: bool = True,
    num_classes: int | None = None,
) -> EvalResult:
    """Validation-selected linear probe on each ``{"train", "val", "test"}`` split (BGRL protocol).

    Fits the whole C grid on ``train``, keeps the C with the best ``val`` accuracy, reports ``test``.
    Result: ``metric="accuracy"``, per-split test accuracies, ``chosen=[{"C": ...}]``, and
    ``extra={"macro_f1", "val_accuracy"}``.
    """
    x, y, k = prepare_probe(x, y, normalize, num_classes)
    outcomes = []
    for s in splits:
        train, val, test = (np.asarray(s[key], np.int64) for key in ("train", "val", "test"))
        if len(val) == 0:
            raise ValueError("linear_probe selects on validation; this split has no 'val' (see grace_probe)")
        outcomes.append(select_and_test(x, y, [(train, val)], train, test, cs, k))
    return _collect(outcomes)


def planetoid_probe(x, y, train_idx, val_idx, test_idx, *, paper_protocol: bool = False, paper_lr: float = 0.01,
                    paper_weight_decay: float = 1e-4, paper_epochs: int = 300, seed: int = 0, **kwargs) -> EvalResult:
    """The Planetoid public split (e.g. Cora 140/500/1000): :func:`linear_probe` on that one split.

    ``paper_protocol`` adds GraphMAE's own probe (:func:`graphmae_probe` with ``paper_lr``,
    ``paper_weight_decay``, ``paper_epochs``: its ``lr_f``, ``weight_decay_f``, ``max_epoch_f``) as the
    extras ``graphmae_accuracy`` and ``graphmae_final_accuracy``, so both can be reported side by side.
    """
    result = linear_probe(x, y, [{"train": train_idx, "val": val_idx, "test": test_idx}], **kwargs)
    if not paper_protocol:
        return result
    paper = graphmae_probe(x, y, train_idx, val_idx, test_idx, lr=paper_lr, weight_decay=paper_weight_decay,
                           epochs=paper_epochs, seed=seed)
    return dataclasses.replace(result, extra={**result.extra, **{f"graphmae_{k}": (v,) for k, v in paper.items()}})


def graphmae_probe(x, y, train_idx, val_idx, test_idx, *, lr: float, weight_decay: float, epochs: int = 300,
                   seed: int = 0) -> dict:
    """GraphMAE's probe (THUDM/GraphMAE, graphmae/evaluation.py): one ``torch.nn.Linear`` on the raw
    embeddings, trained full-batch with Adam and L2 ``weight_decay`` for ``epochs``. Returns
    ``{"accuracy", "final_accuracy"}``: the test accuracy at the last epoch of best validation
    accuracy (the paper's "early-stopping" accuracy) and at the final epoch."""
    num_classes = int(np.max(y)) + 1
    best = adam_probe_runs(jax.random.PRNGKey(seed), *split_arrays(x, y, (train_idx, val_idx, test_idx)), lr,
                           weight_decay, num_classes=num_classes, epochs=int(epochs), repeats=1, init="torch",
                           last_best=True)
    return {"accuracy": float(best["micro_f1"][0]), "final_accuracy": float(best["final_accuracy"][0])}


def random_split_probe(
    x, y, *, n_splits: int = 20, train: float = 0.1, val: float = 0.1, seed: int = 0,
    split_fn: Callable[..., Split] = splits_lib.random_split, **kwargs,
) -> EvalResult:
    """BGRL/GCA-style random ``train/val/test`` splits (default 10/10/80, 20 of them, seeds ``seed+i``).

    ``split_fn(num_items, train, val, seed)`` makes one split (default
    :func:`gcl_jax.data.splits.random_split`); the rest goes to :func:`linear_probe`.
    """
    n = np.shape(y)[0]
    return linear_probe(x, y, [split_fn(n, train, val, seed + i) for i in range(n_splits)], **kwargs)


def grace_probe(
    x, y, *, n_splits: int = 20, seed: int = 0, cv_folds: int = 5, cs: Sequence[float] = GRACE_CS,
    normalize: bool = True, num_classes: int | None = None,
    split_fn: Callable[..., Split] = splits_lib.grace_split,
    fold_fn: Callable[..., list[Split]] = splits_lib.stratified_kfold,
) -> EvalResult:
    """GRACE's protocol: random 10% train / 90% test, C chosen by ``cv_folds``-fold CV inside train.

    ``split_fn(num_items, seed)`` makes the train/test split (default
    :func:`gcl_jax.data.splits.grace_split`), ``fold_fn(labels, folds, seed)`` the CV folds over the
    training rows. GRACE's eval.py repeats 3 times per call; ``n_splits`` sets the repeats here.
    ``metric="accuracy"`` equals GRACE's F1Mi; ``extra["macro_f1"]`` is its F1Ma.
    """
    x, y, k = prepare_probe(x, y, normalize, num_classes)
    outcomes = []
    for i in range(n_splits):
        s = split_fn(y.shape[0], seed + i)
        train, test = np.asarray(s["train"], np.int64), np.asarray(s["test"], np.int64)
        folds = [(train[f["train"]], train[f["test"]]) for f in fold_fn(y[train], cv_folds, seed + i)]
        outcomes.append(select_and_test(x, y, folds, train, test, cs, k))
    return _collect(outcomes)
