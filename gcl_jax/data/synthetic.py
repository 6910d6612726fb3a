"""Synthetic graphs of any size, for scale tests and benchmarks (``synthetic-200k``, ``synthetic-1m``).

A planted-community graph: nodes form communities of ``community_size``; each node draws
``avg_degree / 2`` partners, inside its community with probability ``p_in``, else anywhere; the
union is symmetrized. A community's label is its index modulo ``num_classes`` and node features
are the label's Gaussian centroid plus unit noise, so a probe on good embeddings scores well
above chance. Node ids are shuffled, so a partitioner has to find the communities itself.
Generation is O(E) numpy: a million nodes take seconds.
"""

from __future__ import annotations

import re

import numpy as np

from gcl_jax import graph as G
from gcl_jax.data.build import undirected_adjacency
from gcl_jax.data.datasets import NodeDataset

NAME = re.compile(r"^synthetic-(\d+)([km]?)$")


def planted_communities(
    num_nodes: int,
    *,
    num_classes: int = 10,
    community_size: int = 100,
    avg_degree: int = 10,
    p_in: float = 0.8,
    num_features: int = 128,
    seed: int = 0,
) -> NodeDataset:
    """A :class:`NodeDataset` of ``num_nodes`` nodes (no standard split: use random splits)."""
    rng = np.random.default_rng(seed)
    community = np.arange(num_nodes) // community_size
    draws = avg_degree // 2
    senders = np.repeat(np.arange(num_nodes), draws)
    start = community[senders] * community_size
    size = np.minimum(community_size, num_nodes - start)
    inside = rng.random(senders.size) < p_in
    receivers = np.where(inside, start + (rng.random(senders.size) * size).astype(np.int64), rng.integers(0, num_nodes, senders.size))
    labels = community % num_classes
    centroids = rng.normal(size=(num_classes, num_features)).astype(np.float32)
    features = centroids[labels] + rng.normal(size=(num_nodes, num_features)).astype(np.float32)
    shuffle = rng.permutation(num_nodes)  # new id of each node
    order = np.argsort(shuffle)
    adjacency = undirected_adjacency(shuffle[senders], shuffle[receivers], num_nodes)
    graph = G.from_scipy(adjacency, features[order])
    num_classes = int(min(num_classes, community.max() + 1))
    return NodeDataset(f"synthetic-{num_nodes}", graph, labels[order].astype(np.int64), num_classes, {})


def load(name: str) -> NodeDataset:
    """``synthetic-N`` with N a count, optionally with a ``k`` (thousand) or ``m`` (million) suffix."""
    match = NAME.match(name.strip().lower())
    if match is None:
        raise ValueError(f"dataset {name!r}: synthetic graphs are named synthetic-N, e.g. synthetic-200k or synthetic-1m")
    count = int(match.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[match.group(2)]
    if count < 2:
        raise ValueError(f"dataset {name!r}: a synthetic graph needs at least 2 nodes")
    return planted_communities(count)
