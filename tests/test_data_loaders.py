"""Dataset loaders: published counts on the shared data, embedded copies, synthetic formats, errors.

Tests on real data need ``GCL_JAX_DATA`` (CI sets it). Unset: they skip. Set but files missing:
they fail, because ``load(..., download=False)`` raises naming the missing files.
"""

import functools
import hashlib
import json
import os
import pickle
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gcl_jax import data
from gcl_jax import graph as G
from gcl_jax.data import DatasetError
from gcl_jax.data.checksums import SHA256
from gcl_jax.data.registry import EMBEDDED

DATA = os.environ.get("GCL_JAX_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="GCL_JAX_DATA not set (CI sets it to the shared data root)")


@functools.lru_cache(maxsize=None)
def shared(name):
    """Each dataset is loaded once per test session."""
    return data.load(name, root=DATA, download=False)


def counts(dataset):
    info = dataset.info()
    json.dumps(info)  # the CLI prints it
    return info


# ----------------------------------------------------------------------------- published counts


NODE_COUNTS = {
    # name: nodes, edges (both directions), features, classes, (train, val, test) or None
    "cora": (2708, 10556, 1433, 7, (140, 500, 1000)),
    "citeseer": (3327, 9104, 3703, 6, (120, 500, 1000)),
    "amazon-photo": (7650, 238162, 745, 8, None),
    "amazon-computers": (13752, 491722, 767, 10, None),
}
GRAPH_COUNTS = {
    # name: graphs, nodes, edges, features, classes
    "mutag": (188, 3371, 7442, 7, 2),
    "proteins": (1113, 43471, 162088, 4, 2),
    "nci1": (4110, 122747, 265506, 37, 2),
    "imdb-binary": (1000, 19773, 193062, 136, 2),
}
HETERO_COUNTS = {
    # name: nodes per type, classes, train sizes for 20/40/60, metapath nnz
    "acm": ({"p": 4019, "a": 7167, "s": 60}, 3, (60, 120, 180), {"pap": 57853, "psp": 4338213}),
    "dblp": ({"a": 4057, "p": 14328, "c": 20, "t": 7723}, 4, (80, 160, 240),
             {"apa": 11113, "apcpa": 5000495, "aptpa": 7043571}),
    "aminer": ({"p": 6564, "a": 13329, "r": 35890}, 4, (80, 160, 240), {}),
    "freebase": ({"m": 3492, "a": 33401, "d": 2502, "w": 4459}, 3, (60, 120, 180), {}),
    "meow-acm": ({"p": 4019, "a": 7167, "s": 60}, 3, (60, 120, 180), {"pap": 57853, "psp": 4338213}),
    "meow-imdb": ({"m": 4275, "a": 5432, "d": 2083, "k": 7313}, 3, (60, 120, 180),
                  {"mam": 81360, "mdm": 16498, "mkm": 319435}),
}
REC_COUNTS = {
    # name: users, items, train, val, test
    "lastfm": (1892, 17632, 64983, 18566, 9285),
    "yelp": (42712, 26822, 182357, 13025, 65128),
}


@needs_data
@pytest.mark.parametrize("name", sorted(NODE_COUNTS))
def test_node_dataset_counts(name):
    nodes, edges, features, classes, split = NODE_COUNTS[name]
    ds = shared(name)
    info = counts(ds)
    assert (info["num_nodes"], info["num_edges"], info["num_features"], info["num_classes"]) == (nodes, edges, features, classes)
    assert ds.graph.nodes.dtype == np.float32 and ds.labels.shape == (nodes,)
    assert ds.labels.min() == 0 and ds.labels.max() == classes - 1
    adjacency = G.to_scipy(ds.graph)
    assert (adjacency != adjacency.T).nnz == 0 and adjacency.diagonal().sum() == 0
    if split is None:
        assert ds.splits == {}
    else:
        assert tuple(len(ds.splits[k]) for k in ("train", "val", "test")) == split
        assert len(np.intersect1d(ds.splits["train"], ds.splits["test"])) == 0


@needs_data
def test_planetoid_public_split_layout():
    cora, citeseer = shared("cora"), shared("citeseer")
    np.testing.assert_array_equal(cora.splits["train"], np.arange(140))
    np.testing.assert_array_equal(cora.splits["val"], np.arange(140, 640))
    assert cora.splits["test"].min() == 1708 and cora.splits["test"].max() == 2707
    # CiteSeer: 15 isolated test ids get zero feature rows and are left out of the test split.
    zero_rows = np.flatnonzero(np.asarray(citeseer.graph.nodes).sum(1) == 0)
    assert len(np.setdiff1d(np.arange(2312, 3327), citeseer.splits["test"])) == 15
    assert set(np.setdiff1d(np.arange(2312, 3327), citeseer.splits["test"])) <= set(zero_rows)


@needs_data
@pytest.mark.parametrize("name", sorted(GRAPH_COUNTS))
def test_graph_dataset_counts(name):
    graphs, nodes, edges, features, classes = GRAPH_COUNTS[name]
    ds = shared(name)
    info = counts(ds)
    assert (info["num_graphs"], info["num_nodes"], info["num_edges"], info["num_features"], info["num_classes"]) == (
        graphs, nodes, edges, features, classes)
    assert sorted(np.unique(ds.labels)) == list(range(classes))
    for g in ds.graphs[:20]:
        G.validate(g)
        assert g.nodes.shape == (int(g.n_node[0]), features)


@needs_data
def test_tu_feature_choices():
    mutag, proteins, imdb = shared("mutag"), shared("proteins"), shared("imdb-binary")
    assert np.all(np.concatenate([g.nodes for g in mutag.graphs]).sum(1) == 1)  # one-hot labels
    x = np.concatenate([g.nodes for g in proteins.graphs])
    assert np.all(x[:, 1:].sum(1) == 1) and x[:, 0].max() > 1  # attribute, then one-hot labels
    g = imdb.graphs[0]
    degree = np.bincount(np.asarray(g.senders), minlength=int(g.n_node[0]))
    np.testing.assert_array_equal(np.asarray(g.nodes).argmax(1), degree)  # one-hot degree


def test_degree_features_appended_as_mvgrl_builds_them():
    """MUTAG: 7 node-label columns, then one-hot degree up to the dataset's max degree (4)."""
    from gcl_jax.data.tu import with_degree_features

    mutag = data.load("mutag")
    extended = with_degree_features(mutag)
    assert len(extended.graphs) == len(mutag.graphs) and extended.labels is mutag.labels
    for before, after in zip(mutag.graphs, extended.graphs):
        nodes = np.asarray(after.nodes)
        assert nodes.shape == (int(before.n_node[0]), 7 + 5)
        np.testing.assert_array_equal(nodes[:, :7], np.asarray(before.nodes))
        adjacency = G.to_scipy(before)
        np.testing.assert_array_equal(nodes[:, 7:].argmax(1), np.diff(adjacency.tocsr().indptr))
        assert np.all(nodes[:, 7:].sum(1) == 1)


@needs_data
@pytest.mark.parametrize("name", sorted(HETERO_COUNTS))
def test_hetero_counts(name):
    types, classes, train, metapaths = HETERO_COUNTS[name]
    ds = shared(name)
    info = counts(ds)
    assert ds.num_nodes == types and info["num_classes"] == classes
    assert ds.labels.min() == 0 and ds.labels.max() == classes - 1
    assert tuple(len(ds.splits[k]["train"]) for k in (20, 40, 60)) == train
    assert all(len(ds.splits[k][p]) == 1000 for k in (20, 40, 60) for p in ("val", "test"))
    for key, nnz in metapaths.items():
        assert ds.metapaths[key].nnz == nnz
    for key, incidence in ds.neighbors.items():
        assert incidence.shape == (types[ds.target], types[key[-1]])
    for kind, n in types.items():
        assert ds.features[kind].shape[0] == n
    assert (ds.pos is not None) == (not name.startswith("meow"))


@needs_data
def test_hetero_quirks():
    dblp, aminer, imdb = shared("dblp"), shared("aminer"), shared("meow-imdb")
    assert dblp.features["t"].shape == (7723, 50)  # t_feat.npz is really a .npy
    assert set(aminer.featureless) == {"p", "a", "r"}
    assert (aminer.features["p"] != sp.identity(6564, format="csr")).nnz == 0
    assert np.bincount(imdb.labels).tolist() == [1112, 1594, 1569]  # 1..3 -> 0..2
    # HeCo's per-paper author lists (object .npy) equal MEOW's incidence matrix.
    assert (shared("acm").neighbors["a"] != shared("meow-acm").neighbors["a"]).nnz == 0
    graph = shared("acm").metapath_graph("pap")
    assert G.num_nodes(graph) == 4019 and int(graph.n_edge[0]) == 57853


@needs_data
@pytest.mark.parametrize("name", sorted(REC_COUNTS))
def test_rec_counts(name):
    users, items, train, val, test = REC_COUNTS[name]
    ds = shared(name)
    info = counts(ds)
    assert (ds.num_users, ds.num_items) == (users, items)
    assert info["num_interactions"] == {"train": train, "val": val, "test": test}
    assert info["num_edges"] == 2 * train and info["num_nodes"] == users + items
    assert ds.train.multiply(ds.test).nnz == 0


@needs_data
def test_pubmed_reports_the_missing_file():
    with pytest.raises(DatasetError) as error:
        data.load("pubmed", root=DATA, download=False)
    message = str(error.value)
    assert "ind.pubmed.allx" in message and "ind.pubmed.ally" not in message


@needs_data
def test_meow_dblp_lists_missing_files():
    with pytest.raises(DatasetError, match="apcpa.npz, aptpa.npz, nei_apcp.npz, nei_aptp.npz"):
        data.load("meow-dblp", root=DATA)


@needs_data
def test_pubmed_loads_once_allx_is_present(tmp_path):
    folder = tmp_path / "PubMed"
    shutil.copytree(Path(DATA) / "PubMed", folder)
    os.chmod(folder, 0o755)
    rng = np.random.default_rng(0)
    allx = sp.random(18717, 500, density=0.01, format="csr", random_state=rng, dtype=np.float32)
    (folder / "ind.pubmed.allx").write_bytes(pickle.dumps(allx, protocol=2))
    info = data.load("pubmed", root=tmp_path, download=False).info()
    assert (info["num_nodes"], info["num_edges"], info["num_features"], info["num_classes"]) == (19717, 88648, 500, 3)
    assert (info["num_train"], info["num_val"], info["num_test"]) == (60, 500, 1000)


@needs_data
def test_pinned_hashes_match_shared_files():
    checked = 0
    for folder, files in SHA256.items():
        for name, digest in files.items():
            path = Path(DATA) / folder / name
            if digest is not None and path.exists():
                assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
                checked += 1
    assert checked > 100


# ----------------------------------------------------------------------------- embedded copies


def test_embedded_cora_and_mutag_load_without_a_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("GCL_JAX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cora = data.load("cora", download=False).info()
    assert (cora["num_nodes"], cora["num_edges"], cora["num_features"], cora["num_classes"]) == (2708, 10556, 1433, 7)
    mutag = data.load("MUTAG", download=False).info()
    assert (mutag["num_graphs"], mutag["num_nodes"], mutag["num_edges"]) == (188, 3371, 7442)
    for folder in ("Cora", "MUTAG"):
        for path in (EMBEDDED / folder).iterdir():
            if path.name in SHA256.get(folder, {}):
                assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[folder][path.name]


def test_cli_data_info(capsys):
    from gcl_jax import cli

    assert cli.main(["data", "info", "mutag"]) == 0
    assert json.loads(capsys.readouterr().out)["num_graphs"] == 188
    assert cli.main(["data", "info", "no-such-set"]) == 2
    assert "known: " in capsys.readouterr().err


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*amazon-photo.*cora"):
        data.load("nope")


# ----------------------------------------------------------------------------- synthetic formats


def write_planetoid(folder: Path, prefix: str, missing_test_ids: int = 0):
    """A tiny valid Planetoid directory: 10 nodes, 4 features, 2 classes, test ids 6..9."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    n_test = 4 - missing_test_ids

    def csr(rows):
        return sp.csr_matrix(rng.integers(0, 2, size=(rows, 4)).astype(np.float32))

    def onehot(rows):
        return np.eye(2, dtype=np.int64)[rng.integers(0, 2, size=rows)]

    test_ids = np.arange(6, 6 + n_test)[::-1]
    items = {"x": csr(2), "y": onehot(2), "allx": csr(6), "ally": onehot(6), "tx": csr(n_test), "ty": onehot(n_test)}
    graph = defaultdict(list, {i: [(i + 1) % 10, i] for i in range(10)})  # a ring plus self-loops
    items["graph"] = graph
    for ext, value in items.items():
        (folder / f"ind.{prefix}.{ext}").write_bytes(pickle.dumps(value, protocol=2))
    (folder / f"ind.{prefix}.test.index").write_text("\n".join(map(str, test_ids)) + "\n")


def test_synthetic_pubmed_directory(tmp_path):
    write_planetoid(tmp_path / "PubMed", "pubmed")
    ds = data.load("pubmed", root=tmp_path, download=False)
    assert counts(ds)["num_nodes"] == 10 and counts(ds)["num_edges"] == 20  # ring both ways, loops dropped
    assert ds.splits["train"].tolist() == [0, 1] and ds.splits["test"].tolist() == [6, 7, 8, 9]


def test_missing_test_rows_are_filled_with_zeros(tmp_path):
    write_planetoid(tmp_path / "CiteSeer", "citeseer", missing_test_ids=1)  # test ids 6..8, graph has 10 nodes
    folder = tmp_path / "CiteSeer"
    (folder / "ind.citeseer.test.index").write_text("6\n9\n8\n")
    ds = data.load("citeseer", root=tmp_path, download=False)
    assert G.num_nodes(ds.graph) == 10
    assert np.asarray(ds.graph.nodes)[7].sum() == 0 and ds.splits["test"].tolist() == [6, 8, 9]


def write_shchur(path: Path, n=6):
    path.parent.mkdir(parents=True)
    adj = sp.csr_matrix((np.ones(4, np.float32), ([0, 1, 2, 3], [1, 2, 2, 4])), shape=(n, n))  # one self-loop
    attr = sp.csr_matrix(np.eye(n, 3, dtype=np.float32))
    np.savez(
        path, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
        attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
        labels=np.array([0, 1, 2, 0, 1, 2]), class_names=np.array(["a", "b", "c"], dtype=object),
    )


def test_synthetic_coauthor_npz(tmp_path):
    write_shchur(tmp_path / "CoauthorCS" / "ms_academic_cs.npz")
    info = data.load("coauthor-cs", root=tmp_path, download=False).info()
    assert (info["num_nodes"], info["num_edges"], info["num_features"], info["num_classes"]) == (6, 6, 3, 3)


def write_tu(folder: Path, prefix: str, a_lines: list[str]):
    """Two graphs (3 + 2 nodes), labels -1/1, node labels 1..2."""
    folder.mkdir(parents=True)
    (folder / f"{prefix}_A.txt").write_text("\n".join(a_lines) + "\n")
    (folder / f"{prefix}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n")
    (folder / f"{prefix}_graph_labels.txt").write_text("-1\n1\n")
    (folder / f"{prefix}_node_labels.txt").write_text("1\n2\n1\n2\n2\n")


TU_EDGES = ["1, 2", "2, 1", "2, 3", "3, 2", "4, 5", "5, 4", "4, 5"]


def test_local_tu_folder_with_any_name(tmp_path):
    write_tu(tmp_path / "MyTU", "MyTU", TU_EDGES)
    ds = data.load("mytu", root=tmp_path, download=False)
    assert counts(ds) == {"name": "mytu", "num_graphs": 2, "num_nodes": 5, "num_edges": 6, "num_features": 2, "num_classes": 2}
    assert ds.labels.tolist() == [0, 1]


# ----------------------------------------------------------------------------- corrupt files


def copy_embedded(tmp_path, folder):
    shutil.copytree(EMBEDDED / folder, tmp_path / folder)
    return tmp_path / folder


def test_truncated_pickle_is_named(tmp_path):
    folder = copy_embedded(tmp_path, "Cora")
    path = folder / "ind.cora.x"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"ind\.cora\.x: truncated pickle"):
        data.load("cora", root=tmp_path, download=False)


def test_garbage_pickle_is_named(tmp_path):
    folder = copy_embedded(tmp_path, "Cora")
    (folder / "ind.cora.graph").write_bytes(b"\x80\x02this is not a pickle")
    with pytest.raises(DatasetError, match=r"ind\.cora\.graph: (corrupt|truncated) pickle"):
        data.load("cora", root=tmp_path, download=False)


def test_tu_bad_line_is_named(tmp_path):
    folder = copy_embedded(tmp_path, "MUTAG")
    lines = (folder / "MUTAG_A.txt").read_text().splitlines()
    lines[16] = "17 x"
    (folder / "MUTAG_A.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"MUTAG_A\.txt line 17: expected 2 comma-separated integers, got '17 x'"):
        data.load("mutag", root=tmp_path, download=False)


def test_tu_out_of_range_and_count_mismatch(tmp_path):
    write_tu(tmp_path / "T1", "T1", TU_EDGES + ["5, 6"])
    with pytest.raises(DatasetError, match=r"T1_A\.txt line 8: node id 6 is outside 1\.\.5"):
        data.load("t1", root=tmp_path, download=False)
    write_tu(tmp_path / "T2", "T2", TU_EDGES)
    (tmp_path / "T2" / "T2_graph_labels.txt").write_text("1\n")
    with pytest.raises(DatasetError, match=r"T2_graph_labels\.txt: 1 labels for 2 graphs"):
        data.load("t2", root=tmp_path, download=False)


def test_truncated_npz_is_named(tmp_path):
    path = tmp_path / "CoauthorCS" / "ms_academic_cs.npz"
    write_shchur(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DatasetError, match=r"ms_academic_cs\.npz: truncated or corrupt \.npz"):
        data.load("coauthor-cs", root=tmp_path, download=False)


def test_missing_file_in_a_present_folder(tmp_path):
    folder = copy_embedded(tmp_path, "Cora")
    (folder / "ind.cora.ty").unlink()
    with pytest.raises(DatasetError, match=r"Cora is missing ind\.cora\.ty; fetch them from https://github.com/kimiyoung"):
        data.load("cora", root=tmp_path)
