"""Recommendation data in the LightGCL / AdaGCL layout: pickled scipy ``trnMat``/``valMat``/``tstMat``.

Each pickle holds a ``coo_matrix`` of shape ``[users, items]`` (values 1.0). They are read through the
restricted unpickler and binarised.
"""

from __future__ import annotations

from pathlib import Path

import scipy.sparse as sp

from gcl_jax import graph as G
from gcl_jax.data.build import binary
from gcl_jax.data.datasets import RecDataset
from gcl_jax.data.safeio import DatasetError, load_pickle

FILES = ("trnMat.pkl", "valMat.pkl", "tstMat.pkl")


def bipartite_graph(interactions: sp.csr_matrix) -> G.GraphsTuple:
    """Users ``0..U-1`` and items ``U..U+I-1``; every interaction stored in both directions."""
    return G.from_scipy(sp.bmat([[None, interactions], [interactions.T, None]], format="csr"))


def load(folder: Path, name: str) -> RecDataset:
    """Load the three interaction matrices from ``folder``; all must share one shape."""
    train, val, test = (binary(load_pickle(folder / f, sp.spmatrix)) for f in FILES)
    for f, matrix in zip(FILES[1:], (val, test)):
        if matrix.shape != train.shape:
            raise DatasetError(f"{folder / f}: shape {matrix.shape} differs from trnMat.pkl {train.shape}")
    users, items = train.shape
    return RecDataset(name, train, val, test, int(users), int(items), bipartite_graph(train))
