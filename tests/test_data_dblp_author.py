"""dblp-author: the HeCo DBLP authors as one homogeneous graph (SDCN's DBLP clustering benchmark)."""

import numpy as np
import pytest
import scipy.sparse as sp

from gcl_jax import data
from gcl_jax import graph as G
from gcl_jax.data.safeio import load_sparse


@pytest.fixture(scope="module")
def dblp():
    return data.load("dblp-author")


def test_counts_match_sdcn_dblp(dblp):
    """SDCN's DBLP: 4057 authors, 334 keyword features, 4 research areas."""
    info = dblp.info()
    assert (info["num_nodes"], info["num_features"], info["num_classes"]) == (4057, 334, 4)
    assert np.bincount(dblp.labels).tolist() == [1197, 745, 1109, 1006]
    assert dblp.splits == {}


def test_graph_is_the_coauthor_metapath_without_self_loops(dblp):
    adjacency = G.to_scipy(dblp.graph)
    assert adjacency.diagonal().sum() == 0
    assert (adjacency != adjacency.T).nnz == 0
    assert set(np.unique(adjacency.data)) == {1.0}
    assert adjacency.nnz == 7056  # 3528 co-author pairs, both directions
    apa = load_sparse(_folder() / "apa.npz")
    off_diagonal = sp.csr_matrix(apa, dtype=np.float32) - sp.diags(apa.diagonal().astype(np.float32))
    off_diagonal.eliminate_zeros()
    assert (abs(off_diagonal - adjacency) > 0).nnz == 0


def test_features_are_the_author_bag_of_words(dblp):
    x = np.asarray(dblp.graph.nodes)
    assert x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}


def _folder():
    return next(d / "heco_dblp" for d in data.registry.search_dirs() if (d / "heco_dblp").is_dir())
