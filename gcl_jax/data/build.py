"""Host-side helpers shared by the loaders: adjacency cleanup, label and feature encodings."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def undirected_adjacency(rows, cols, num_nodes: int) -> sp.csr_matrix:
    """Binary, symmetric CSR without self-loops from (row, col) pairs.

    This is PyG's ``remove_self_loops`` + ``to_undirected`` (which also coalesces duplicates), so edge
    counts match PyG's for every homogeneous dataset here.
    """
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    keep = rows != cols
    ones = np.ones(int(keep.sum()), np.float32)
    adjacency = sp.coo_matrix((ones, (rows[keep], cols[keep])), shape=(num_nodes, num_nodes)).tocsr()
    adjacency = adjacency.maximum(adjacency.T).tocsr()
    adjacency.data[:] = 1.0
    adjacency.sort_indices()
    return adjacency


def dense_labels(raw) -> tuple[np.ndarray, int]:
    """Map arbitrary label values to ``0..C-1`` in sorted order (MUTAG -1/1 -> 0/1, IMDB 1..3 -> 0..2)."""
    values, labels = np.unique(np.asarray(raw).reshape(-1), return_inverse=True)
    return labels.astype(np.int64), int(values.shape[0])


def one_hot(values, width: int | None = None) -> np.ndarray:
    """float32 one-hot rows for non-negative integer ``values``; ``width`` defaults to ``max + 1``."""
    values = np.asarray(values, np.int64)
    width = int(values.max()) + 1 if width is None else width
    out = np.zeros((values.shape[0], width), np.float32)
    out[np.arange(values.shape[0]), values] = 1.0
    return out


def binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR float32 with duplicates merged and every stored value set to 1."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix
