"""Zero-shot node classification in a text space, with a linear probe and two label-free baselines.

Zero-shot (CLIP; GraphCLIP, Zhu et al. WWW 2025, ``ZhuYun97/GraphCLIP`` ``eval.py``): each node's
class is the prompt whose embedding has the largest cosine similarity with the node's embedding; no
label is used. Everything is scored on the test part of one seeded random 60/20/20 split (GraphCLIP's
CiteSeer loader splits 60/20/20 at random). The linear probe of the same embeddings fits on train,
selects C on val (:func:`gcl_jax.eval.linear.linear_probe`) and reports test.

Baselines, each scored both ways on the same split:

- ``text``: the raw text embeddings (the dataset's node features), no graph;
- ``sgc``: the text embeddings propagated ``hops`` times with the GCN-normalised adjacency with
  self-loops (SGC, Wu et al. 2019): graph + text, but no training. It stays in the text space, so
  it can be zero-shot classified too.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.metrics import f1_score

from gcl_jax import graph as G
from gcl_jax.data import splits as splits_lib
from gcl_jax.eval.linear import BGRL_CS, l2_normalize, linear_probe
from gcl_jax.eval.result import EvalResult, summarize
from gcl_jax.nn import propagate


def zero_shot_predict(x, prompt_embeddings) -> np.ndarray:
    """Index of the most cosine-similar prompt for every row of ``x`` ``[N, D]`` (prompts ``[K, D]``)."""
    x, prompts = l2_normalize(x), l2_normalize(prompt_embeddings)
    if x.shape[1] != prompts.shape[1]:
        raise ValueError(f"embeddings have {x.shape[1]} dimensions but the prompts {prompts.shape[1]}: "
                         "zero-shot needs embeddings in the text space")
    return np.argmax(x @ prompts.T, axis=1)


def zero_shot_scores(x, prompt_embeddings, y, idx) -> dict[str, float]:
    """Zero-shot accuracy and macro-F1 on the rows ``idx``."""
    pred, truth = zero_shot_predict(np.asarray(x)[idx], prompt_embeddings), np.asarray(y)[idx]
    return {"accuracy": float(np.mean(pred == truth)), "macro_f1": float(f1_score(truth, pred, average="macro"))}


def sgc_features(graph: G.GraphsTuple, hops: int) -> np.ndarray:
    """``(D^-1/2 (A + I) D^-1/2)^hops X`` for the graph's features ``X``: training-free smoothing."""
    normalized = G.gcn_normalize(graph)
    step = jax.jit(lambda x: propagate(normalized, x))
    x = jax.numpy.asarray(graph.nodes, jax.numpy.float32)
    for _ in range(hops):
        x = step(x)
    return np.asarray(x)


def _both(x, prompts, y, split, cs) -> tuple[float, float]:
    """(zero-shot, probe) test accuracy of ``x`` on ``split``."""
    probe = linear_probe(x, y, [split], cs=cs)
    return zero_shot_scores(x, prompts, y, split["test"])["accuracy"], probe.test_mean


def zeroshot_eval(
    x, dataset, *, seed: int = 0, train: float = 0.6, val: float = 0.2, baselines: bool = True,
    sgc_hops: int = 2, cs=BGRL_CS,
) -> EvalResult:
    """Zero-shot test accuracy of ``x`` against ``dataset.prompt_embeddings`` (the metric), with the
    probe and, if ``baselines``, the text-only and SGC scores as extras, on one split seeded by ``seed``."""
    prompts = getattr(dataset, "prompt_embeddings", None)
    if prompts is None:
        raise ValueError(f"eval.protocol 'zeroshot' needs class-prompt embeddings; {dataset.name} has none "
                         "(a text-attributed dataset such as citeseer-tag has them)")
    y = np.asarray(dataset.labels)
    split = splits_lib.random_split(len(y), train, val, seed)
    zero = zero_shot_scores(x, prompts, y, split["test"])
    probe = linear_probe(x, y, [split], cs=cs)
    extra = {"zeroshot_macro_f1": [zero["macro_f1"]], "probe_accuracy": probe.per_split,
             "val_accuracy": probe.extra["val_accuracy"]}
    if baselines:
        for name, features in (("text", dataset.graph.nodes), ("sgc", sgc_features(dataset.graph, sgc_hops))):
            zero_acc, probe_acc = _both(features, prompts, y, split, cs)
            extra[f"{name}_zeroshot_accuracy"], extra[f"{name}_probe_accuracy"] = [zero_acc], [probe_acc]
    return summarize("zeroshot_accuracy", [zero["accuracy"]], chosen=probe.chosen, **extra)
