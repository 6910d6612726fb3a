"""Combining augmentations: sequence, random choice (per call or per graph), views over keys.

An augmentation returns a graph or ``(graph, keep)``; a combinator returns ``(graph, keep)`` when
any of its parts drops nodes (``keep`` ANDed across parts), else just the graph.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gcl_jax import graph as G
from gcl_jax.augment.basic import graph_keys

Augmentation = Callable


def _split_output(out):
    """``(graph, keep)`` from either output form; ``keep`` is None when no node was dropped."""
    if isinstance(out, G.GraphsTuple):
        return out, None
    return out


def _and(a, b):
    if a is None:
        return b
    return a if b is None else a & b


def _drops_nodes(aug: Augmentation, key: jax.Array, graph: G.GraphsTuple) -> bool:
    return not isinstance(jax.eval_shape(aug, key, graph), G.GraphsTuple)


def compose(*augs: Augmentation) -> Augmentation:
    """Apply ``augs`` in order, each with its own key (``fold_in(key, i)``)."""

    def composed(key, graph):
        keep = None
        for i, aug in enumerate(augs):
            graph, part = _split_output(aug(jax.random.fold_in(key, i), graph))
            keep = _and(keep, part)
        return graph if keep is None else (graph, keep)

    return composed


def _canonical(aug: Augmentation, with_keep: bool) -> Augmentation:
    """Wrap ``aug`` so every branch returns the same pytree: explicit weights (+ a keep-mask)."""

    def wrapped(key, graph):
        out, keep = _split_output(aug(key, graph))
        out = out._replace(edges=G.edge_weights(out))
        if not with_keep:
            return out
        return out, jnp.ones(G.num_nodes(graph), bool) if keep is None else keep

    return wrapped


def random_choice(augs: Sequence[Augmentation], probs: Sequence[float] | None = None, *, per_graph: bool = False):
    """Pick one of ``augs`` at random (weights ``probs``, uniform by default).

    ``per_graph=False``: one pick per call via ``lax.switch`` (one branch runs).
    ``per_graph=True``: every graph of the batch picks its own (GraphCL); all branches run on the
    whole batch and each graph's nodes and edges are taken from its branch, so the branches must
    keep the edge arrays' shape (no ``add_edges``).
    """
    augs = tuple(augs)
    logits = np.log(np.asarray(probs if probs is not None else [1.0] * len(augs), np.float32))

    def chosen(key, graph):
        graph = graph._replace(edges=G.edge_weights(graph))
        with_keep = any(_drops_nodes(aug, key, graph) for aug in augs)
        branches = [_canonical(aug, with_keep) for aug in augs]
        k_pick, k_aug = jax.random.split(key)
        if not per_graph:
            index = jax.random.categorical(k_pick, logits)
            return jax.lax.switch(index, branches, k_aug, graph)
        picks = jax.vmap(lambda k: jax.random.categorical(k, logits))(graph_keys(k_pick, graph))
        outs = [branch(jax.random.fold_in(k_aug, i), graph) for i, branch in enumerate(branches)]
        return _merge(outs, picks[G.node_graph_ids(graph)], picks[G.edge_graph_ids(graph)], with_keep)

    return chosen


def _pick_rows(arrays, pick: jax.Array) -> jax.Array:
    """Row ``i`` of ``arrays[pick[i]]``."""
    stacked = jnp.stack(arrays)
    index = pick.reshape((1,) + pick.shape + (1,) * (stacked.ndim - 2))
    return jnp.take_along_axis(stacked, index, axis=0)[0]


def _merge(outs, node_pick: jax.Array, edge_pick: jax.Array, with_keep: bool):
    """Combine per-branch outputs: each node / edge row from the branch its graph picked."""
    graphs = [out[0] if with_keep else out for out in outs]
    shapes = {g.senders.shape for g in graphs}
    if len(shapes) != 1:
        raise ValueError(f"random_choice(per_graph=True): branches change the edge count {sorted(shapes)}")
    first = graphs[0]
    merged = first._replace(
        nodes=_pick_rows([g.nodes for g in graphs], node_pick),
        edges=_pick_rows([g.edges for g in graphs], edge_pick),
    )
    if not with_keep:
        return merged
    return merged, _pick_rows([out[1] for out in outs], node_pick)


def views(aug: Augmentation, key: jax.Array, graph: G.GraphsTuple, num_views: int):
    """``num_views`` independent augmentations of ``graph``, stacked on a leading axis (``vmap``)."""
    return jax.vmap(aug, in_axes=(0, None))(jax.random.split(key, num_views), graph)
