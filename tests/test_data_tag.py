"""The CiteSeer TAG loader: published counts on the shared files (no text encoder needed), the
embedding cache (written here with random vectors, so no torch), format errors naming file and line,
and the text extra's missing-package message.

Tests on the real files need ``GCL_JAX_DATA`` like tests/test_data_loaders.py (CI sets it)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcl_jax import cli, data, text
from gcl_jax.data import DatasetError, tag

DATA = os.environ.get("GCL_JAX_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="GCL_JAX_DATA not set (CI sets it to the shared data root)")


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty user cache directory for the embeddings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def citeseer():
    return tag.read(Path(DATA) / "citeseer_tag", "citeseer-tag")


@needs_data
def test_published_counts(citeseer):
    assert len(citeseer.ids) == len(citeseer.texts) == 3186
    assert len(citeseer.senders) == 4277  # directed citing -> cited, no self-loops, both ends with text
    assert not np.any(citeseer.senders == citeseer.receivers)
    assert citeseer.label_names == ("Agents", "ML", "IR", "DB", "HCI", "AI")
    np.testing.assert_array_equal(np.bincount(citeseer.labels), [562, 569, 641, 685, 490, 239])
    node = citeseer.ids.index("kusiak00decomposition")
    assert citeseer.texts[node].startswith("Decomposition in Data Mining") and citeseer.labels[node] == 1
    assert citeseer.prompts[1] == "a paper about Machine Learning"


@needs_data
def test_load_attaches_cached_embeddings(citeseer, cache_home):
    with pytest.raises(DatasetError, match="gcl-jax embed-text citeseer-tag"):
        data.load("citeseer-tag", root=DATA, download=False)
    rng = np.random.default_rng(0)
    nodes, prompts = rng.normal(size=(3186, 8)), rng.normal(size=(6, 8))
    files = tag.write_cache(citeseer, tag.DEFAULT_MODEL, nodes, prompts)
    assert all(path.is_relative_to(cache_home) for path in files.values())
    dataset = data.load("citeseer-tag", root=DATA, download=False)
    info = dataset.info()
    assert (info["num_nodes"], info["num_edges"], info["num_features"], info["num_classes"]) == (3186, 8450, 8, 6)
    np.testing.assert_allclose(np.asarray(dataset.graph.nodes), nodes, rtol=1e-6)
    np.testing.assert_allclose(dataset.prompt_embeddings, prompts, rtol=1e-6)
    assert dataset.texts == citeseer.texts and len(dataset.prompts) == 6
    other = tag.TextGraph("citeseer-tag", ("x",), ("other text",), np.zeros(1, np.int64), ("AI",),
                          np.zeros(0, np.int64), np.zeros(0, np.int64))
    tag.write_cache(other, tag.DEFAULT_MODEL, nodes[:1], prompts[:1])
    with pytest.raises(DatasetError, match="other texts"):  # a stale cache is refused
        data.load("citeseer-tag", root=DATA, download=False)
    with pytest.raises(ValueError):  # a rewrite that fails half-way leaves no record behind ...
        tag.write_cache(citeseer, tag.DEFAULT_MODEL, nodes, np.array([["not a number"]]))
    with pytest.raises(DatasetError, match="no cached text embeddings"):  # ... so it asks for embed-text
        data.load("citeseer-tag", root=DATA, download=False)


def write_tag(folder: Path, texts: str, cites: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / tag.TEXTS_FILE).write_text(texts, encoding="utf-8")
    (folder / tag.CITES_FILE).write_text(cites, encoding="utf-8")
    return folder


def test_small_file_links_are_filtered(tmp_path):
    folder = write_tag(tmp_path, "a\nfirst text\nML\nb\nsecond\nAI\nc\nthird\nML",
                       "a\tb\nb\tb\nz\ta\nb\tc\n")  # b -> a kept, self-loop and unknown z dropped, c -> b kept
    raw = tag.read(folder, "toy")
    assert raw.ids == ("a", "b", "c") and raw.label_names == ("ML", "AI")
    np.testing.assert_array_equal(raw.labels, [0, 1, 0])
    np.testing.assert_array_equal(np.stack([raw.senders, raw.receivers]), [[1, 2], [0, 1]])


@pytest.mark.parametrize(
    "texts, cites, message",
    [
        ("a\ntext\nML\nb\ntext", "", r"citeseer_texts.txt: 5 lines, expected 3 per node"),
        ("a\ntext\nML\na\nagain\nAI", "", r"citeseer_texts.txt: line 4: paper id 'a' repeats line 1"),
        ("a\n \nML", "", r"citeseer_texts.txt: line 2: empty text"),
        ("a\ntext\nML", "a b\n", r"citeseer.cites: line 1: expected"),
    ],
)
def test_format_errors_name_file_and_line(tmp_path, texts, cites, message):
    with pytest.raises(DatasetError, match=message):
        tag.read(write_tag(tmp_path, texts, cites), "toy")


def test_missing_text_extra_names_the_install_command(monkeypatch, capsys):
    def absent(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(text.importlib, "import_module", absent)
    with pytest.raises(ImportError, match=r"pip install 'gcl-jax\[text\]'"):
        text.load_encoder()
    if DATA:  # the CLI turns it into one line and status 2
        assert cli.main(["embed-text", "citeseer-tag", "--root", DATA]) == 2
        assert "pip install 'gcl-jax[text]'" in capsys.readouterr().err


def test_jax_side_never_imports_torch():
    code = ("import sys; import gcl_jax.text, gcl_jax.runner, gcl_jax.methods.graphclip; "
            "bad = {'torch', 'sentence_transformers'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
