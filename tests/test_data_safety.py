"""Restricted unpickling, safe zip extraction, and checked downloads against a local HTTP server."""

import hashlib
import http.server
import io
import os
import pickle
import socket
import stat
import threading
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from gcl_jax import data
from gcl_jax.data import DatasetError
from gcl_jax.data.checksums import SHA256
from gcl_jax.data.download import RemoteFile, extract_zip, fetch
from gcl_jax.data.safeio import atomic_write, load_array, load_pickle

from test_data_loaders import TU_EDGES, write_shchur, write_tu

# ----------------------------------------------------------------------------- restricted unpickler


class RunsCommand:
    """Unpickling this calls os.system: what a malicious dataset file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "ind.cora.x"
    path.write_bytes(pickle.dumps(RunsCommand(marker), protocol=2))
    with pytest.raises(DatasetError, match=r"ind\.cora\.x: refused to unpickle global '(posix|os|nt)\.system'"):
        load_pickle(path)
    assert not marker.exists()


def test_malicious_pickle_inside_a_dataset_folder(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "adagcl_lastfm"
    folder.mkdir()
    for name in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl"):
        (folder / name).write_bytes(pickle.dumps(sp.coo_matrix(np.eye(3)), protocol=3))
    (folder / "valMat.pkl").write_bytes(pickle.dumps([RunsCommand(marker)], protocol=4))
    with pytest.raises(DatasetError, match=r"valMat\.pkl: refused to unpickle global"):
        data.load("lastfm", root=tmp_path, download=False)
    assert not marker.exists()


def test_malicious_object_npy_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "nei_a.npy"
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        out.write(pickle.dumps(RunsCommand(marker), protocol=3))
    with pytest.raises(DatasetError, match=r"nei_a\.npy: refused to unpickle global"):
        load_array(path)
    assert not marker.exists()


def test_admitted_types_round_trip(tmp_path):
    lists = np.empty(3, dtype=object)
    lists[:] = [np.array([1, 2]), np.array([0]), np.array([], dtype=np.int64)]
    np.save(tmp_path / "nei.npy", lists, allow_pickle=True)
    loaded = load_array(tmp_path / "nei.npy")
    assert [v.tolist() for v in loaded] == [[1, 2], [0], []]
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(sp.csr_matrix(np.eye(2)), protocol=2))
    assert (load_pickle(path, sp.spmatrix) != sp.eye(2)).nnz == 0
    with pytest.raises(DatasetError, match=r"m\.pkl: expected a pickled ndarray, got csr_matrix"):
        load_pickle(path, np.ndarray)


# ----------------------------------------------------------------------------- zip extraction


def make_zip(members):
    """A zip from (name, bytes, is_symlink) triples."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, body, symlink in members:
            info = zipfile.ZipInfo(name)
            if symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zipped.writestr(info, body)
    return buffer.getvalue()


@pytest.mark.parametrize("member, symlink", [("../escape.txt", False), ("/abs.txt", False), ("a/../../b.txt", False),
                                             ("link", True)])
def test_unsafe_zip_members_are_refused(tmp_path, member, symlink):
    archive = tmp_path / "x.zip"
    archive.write_bytes(make_zip([("ok.txt", b"fine", False), (member, b"/etc/passwd", symlink)]))
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="refused"):
        extract_zip(archive, out)
    assert not out.exists() and not (tmp_path / "escape.txt").exists()


# ----------------------------------------------------------------------------- downloads


class Server:
    """Serves ``routes[path] = (body, declared_length)`` on 127.0.0.1; a short body then a close
    simulates a transfer cut off mid-way."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in routes:
                    self.send_error(404)
                    return
                body, length = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, name, body, length=None):
        self.routes[f"/{name}"] = (body, len(body) if length is None else length)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha(body):
    return hashlib.sha256(body).hexdigest()


def test_fetch_good_file_lands_in_place(server, tmp_path):
    body = os.urandom(3 << 20)  # several chunks
    server.add("f.bin", body)
    path = fetch(RemoteFile(f"{server.url}/f.bin", "f.bin", sha(body)), tmp_path / "cache")
    assert path.read_bytes() == body and os.listdir(tmp_path / "cache") == ["f.bin"]


def test_fetch_wrong_checksum_leaves_nothing(server, tmp_path):
    server.add("f.bin", b"tampered")
    with pytest.raises(DatasetError, match="checksum mismatch for f.bin"):
        fetch(RemoteFile(f"{server.url}/f.bin", "f.bin", sha(b"original")), tmp_path)
    assert os.listdir(tmp_path) == []


def test_fetch_truncated_transfer_leaves_nothing(server, tmp_path):
    body = b"x" * 1000
    server.add("f.bin", body, length=5000)
    with pytest.raises(DatasetError, match="f.bin"):
        fetch(RemoteFile(f"{server.url}/f.bin", "f.bin", sha(body)), tmp_path)
    assert os.listdir(tmp_path) == []


def test_load_downloads_pinned_file_into_root(server, tmp_path, monkeypatch):
    source = tmp_path / "src" / "ms_academic_cs.npz"
    write_shchur(source)
    body = source.read_bytes()
    server.add("ms_academic_cs.npz", body)
    monkeypatch.setitem(SHA256["CoauthorCS"], "ms_academic_cs.npz", sha(body))
    root = tmp_path / "root"
    root.mkdir()
    ds = data.load("coauthor-cs", root=root, mirror=server.url)
    assert ds.info()["num_nodes"] == 6
    assert os.listdir(root / "CoauthorCS") == ["ms_academic_cs.npz"]
    assert data.load("coauthor-cs", root=root, download=False).info()["num_nodes"] == 6  # now local


def test_load_wrong_checksum_keeps_cache_clean(server, tmp_path, monkeypatch):
    server.add("ms_academic_cs.npz", b"not the pinned file")
    monkeypatch.setitem(SHA256["CoauthorCS"], "ms_academic_cs.npz", sha(b"the pinned file"))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        data.load("coauthor-cs", root=tmp_path, mirror=server.url)
    assert not (tmp_path / "CoauthorCS").exists()


def test_load_tu_zip_is_extracted_and_parsed(server, tmp_path):
    write_tu(tmp_path / "src" / "PTC_MR", "PTC_MR", TU_EDGES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for path in (tmp_path / "src" / "PTC_MR").iterdir():
            zipped.write(path, f"PTC_MR/{path.name}")
    server.add("PTC_MR.zip", buffer.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    assert data.load("ptc_mr", root=root, mirror=server.url).info()["num_graphs"] == 2
    assert sorted(os.listdir(root)) == ["PTC_MR"]  # no scratch directory left


def test_load_tu_zip_that_does_not_parse_is_removed(server, tmp_path):
    write_tu(tmp_path / "src" / "PTC_MR", "PTC_MR", ["1, 2", "oops"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for path in (tmp_path / "src" / "PTC_MR").iterdir():
            zipped.write(path, f"PTC_MR/{path.name}")
    server.add("PTC_MR.zip", buffer.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DatasetError, match=r"failed verification.*PTC_MR_A\.txt line 2"):
        data.load("ptc_mr", root=root, mirror=server.url)
    assert os.listdir(root) == []


def test_offline_error_names_dirs_files_and_url(tmp_path, monkeypatch):
    monkeypatch.delenv("GCL_JAX_DATA", raising=False)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatasetError) as error:
        data.load("coauthor-cs", root=tmp_path, mirror=f"http://127.0.0.1:{port}")
    message = str(error.value)
    assert str(tmp_path / "CoauthorCS") in message and "ms_academic_cs.npz" in message
    assert f"http://127.0.0.1:{port}/ms_academic_cs.npz" in message and "download failed" in message
    with pytest.raises(DatasetError, match=r"https://github.com/shchur/gnn-benchmark/raw/master/data/npz/.*download=False"):
        data.load("coauthor-cs", root=tmp_path, download=False)
    with pytest.raises(DatasetError, match=r"data root .*nowhere does not exist"):
        data.load("cora", root=tmp_path / "nowhere")


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = atomic_write(tmp_path / "sub" / "cache.npy", lambda handle: np.save(handle, np.arange(3)))
    np.testing.assert_array_equal(np.load(path), np.arange(3))

    def crash(handle):
        handle.write(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert os.listdir(path.parent) == ["cache.npy"]  # the temporary file is gone too
