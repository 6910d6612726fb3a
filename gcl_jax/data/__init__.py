"""Datasets: ``load(name, root=None)`` returns a node-, graph-, heterogeneous- or recommendation dataset.

See :mod:`gcl_jax.data.registry` for names, lookup order and downloads, and the loader modules
(``planetoid``, ``tu``, ``shchur``, ``hetero``, ``rec``) for each format's processing choices.
"""

from gcl_jax.data.datasets import GraphDataset, HeteroDataset, NodeDataset, RecDataset
from gcl_jax.data.registry import load, lookup, names
from gcl_jax.data.safeio import DatasetError
from gcl_jax.data import splits

__all__ = [
    "DatasetError",
    "GraphDataset",
    "HeteroDataset",
    "NodeDataset",
    "RecDataset",
    "load",
    "lookup",
    "names",
    "splits",
]
