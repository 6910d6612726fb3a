"""Full-ranking top-K evaluation for recommendation: Recall@K and NDCG@K over all items.

Every user with at least one held-out item scores every item by the dot product of its embedding
with the item's; the user's training items are removed from the ranking (masked to ``-inf``), and
the top ``k`` of the rest are compared with the held-out items. Per user (as LightGCL's and
AdaGCL's ``metrics``/``calcRes`` define them)::

    recall@k = |top-k ∩ held-out| / |held-out|
    ndcg@k   = sum_{r < k, item_r held out} 1 / log2(r + 2)  /  sum_{r < min(k, |held-out|)} 1 / log2(r + 2)

averaged over the users with held-out items. Users are scored ``user_block`` at a time, so memory is
``O(user_block x items)`` whatever the number of users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gcl_jax.eval.result import EvalResult, summarize


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices ``[rows, k]`` of each row's ``k`` largest scores, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ideal_dcg(relevant: np.ndarray, k: int) -> np.ndarray:
    """Best possible DCG@k of users with ``relevant`` held-out items each."""
    gains = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    return gains[np.minimum(relevant, k) - 1]


def ranking_scores(
    user_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    train: sp.csr_matrix,
    heldout: sp.csr_matrix,
    k: int = 20,
    user_block: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user ``(users, recall@k, ndcg@k)`` for the users with at least one held-out item.

    ``train`` and ``heldout`` are binary ``[users, items]`` matrices; ``train``'s items are never
    recommended.
    """
    if user_block < 1:
        raise ValueError(f"user_block: expected a positive integer, got {user_block}")
    if k < 1:
        raise ValueError(f"k: expected a positive integer, got {k}")
    train, heldout = (sp.csr_matrix(m, dtype=bool, copy=True) for m in (train, heldout))
    for matrix in (train, heldout):
        matrix.eliminate_zeros()  # a stored 0 is no interaction
    counts = np.diff(heldout.indptr)
    users = np.flatnonzero(counts)
    items = np.asarray(item_embeddings, np.float32)
    if not len(users):
        return users, np.zeros(0), np.zeros(0)
    discounts = 1.0 / np.log2(np.arange(min(k, items.shape[0])) + 2.0)
    recall, ndcg = [], []
    for start in range(0, len(users), user_block):
        block = users[start:start + user_block]
        scores = np.asarray(user_embeddings, np.float32)[block] @ items.T
        scores[train[block].toarray()] = -np.inf
        top = top_k_items(scores, k)
        hits = np.take_along_axis(heldout[block].toarray(), top, axis=1)
        recall.append(hits.sum(1) / counts[block])
        ndcg.append((hits * discounts).sum(1) / ideal_dcg(counts[block], len(discounts)))
    return users, np.concatenate(recall), np.concatenate(ndcg)


def ranking_eval(embeddings: np.ndarray, dataset, k: int = 20, user_block: int = 1024) -> EvalResult:
    """Recall@k on ``dataset.test`` (the main metric) with NDCG@k on test and both metrics on
    ``dataset.val`` as extras; ``embeddings`` are ``[users + items, d]``, users first."""
    embeddings = np.asarray(embeddings)
    expected = dataset.num_users + dataset.num_items
    if embeddings.shape[0] != expected:
        raise ValueError(f"embeddings: expected {expected} rows (users + items), got {embeddings.shape[0]}")
    users, items = embeddings[: dataset.num_users], embeddings[dataset.num_users:]
    scores = {}
    for split in ("val", "test"):
        _, recall, ndcg = ranking_scores(users, items, dataset.train, getattr(dataset, split), k, user_block)
        scores[split] = (float(recall.mean()), float(ndcg.mean()))
    return summarize(
        f"recall@{k}",
        [scores["test"][0]],
        **{f"ndcg@{k}": [scores["test"][1]], f"val_recall@{k}": [scores["val"][0]], f"val_ndcg@{k}": [scores["val"][1]]},
    )
