"""Dataset names, where their files live, and :func:`load`.

Lookup order for a dataset folder (named as in the shared data root, e.g. ``Cora``, ``IMDB-BINARY``,
``heco_acm``): the explicit ``root``, then ``$GCL_JAX_DATA``, then the copy embedded in the package
(Cora and MUTAG), then the download directory. The first folder that exists is used; if it lacks
files the error names them (a folder is only completed by download when gcl-jax itself started
filling it).

Downloads go to ``root`` if given, else ``$GCL_JAX_DATA`` if set, else ``~/.cache/gcl_jax``. Every
file with a known hash is checked against its pinned SHA-256 before it is renamed into place. TU
zips are rebuilt by their server, so no hash can be pinned: after extraction the dataset must
contain its expected files and parse, otherwise the folder is removed again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from pathlib import Path
from typing import Callable

from gcl_jax.data import hetero, planetoid, rec, shchur, synthetic, tu
from gcl_jax.data import tag
from gcl_jax.data.checksums import SHA256
from gcl_jax.data.download import RemoteFile, fetch, fetch_zip_folder, user_cache_dir
from gcl_jax.data.safeio import DatasetError

ENV_VAR = "GCL_JAX_DATA"
EMBEDDED = Path(__file__).parent / "embedded"
PARTIAL_MARKER = ".gcl_jax_partial"

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
SHCHUR_URL = "https://github.com/shchur/gnn-benchmark/raw/master/data/npz"
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"
HECO_URL = "https://github.com/liun-online/HeCo/raw/20e8ca2042838877b2c815279920218b6bbea1db/data"
MEOW_URL = "https://github.com/jianxiangyu/MEOW/raw/6a072d79648ab83f7ec7b7482af1696ed00938a1/data"
ADAGCL_URL = "https://github.com/HKUDS/AdaGCL/raw/bfb4cdfcf15f7f01d97fdc369a7ae5f81b9f095e/Datasets"

# Exact TU Dortmund names; ``load`` accepts each lower-cased. A local folder with any other TU
# name is found too (case-insensitively).
TU_NAMES = (
    "MUTAG", "PROTEINS", "PROTEINS_full", "NCI1", "NCI109", "DD", "ENZYMES", "PTC_MR", "PTC_FM",
    "PTC_MM", "PTC_FR", "AIDS", "BZR", "COX2", "DHFR", "Mutagenicity", "FRANKENSTEIN", "COLLAB",
    "IMDB-BINARY", "IMDB-MULTI", "REDDIT-BINARY", "REDDIT-MULTI-5K", "REDDIT-MULTI-12K",
    "github_stargazers", "deezer_ego_nets", "twitch_egos", "reddit_threads",
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One loadable dataset: its folder, the files its reader needs, and where to fetch them.

    ``base_url``: the files are fetched one by one from ``base_url/<file>`` (pinned hashes from
    :mod:`checksums`); ``zip_url``: a TU zip holding a folder named like ``folder``; neither: not
    downloadable (``note`` says why).
    """

    name: str
    folder: str
    files: tuple[str, ...]
    reader: Callable[[Path, str], object]
    base_url: str | None = None
    zip_url: str | None = None
    note: str = ""

    def remote_files(self, names=None, mirror: str | None = None) -> list[RemoteFile]:
        """The files to fetch (all, or ``names``); ``mirror`` replaces the URL up to the file name."""
        hashes = SHA256.get(self.folder, {})
        names = self.files if names is None else names
        return [RemoteFile(_mirrored(f"{self.base_url}/{f}", mirror), f, hashes.get(f)) for f in names]

    def source_hint(self, mirror: str | None = None) -> str:
        """Where the files come from, as a phrase for error messages."""
        if self.zip_url:
            return f"fetch them from {_mirrored(self.zip_url, mirror)}"
        if self.base_url:
            return f"fetch them from {_mirrored(self.base_url + '/', mirror)}"
        return f"not downloadable: {self.note or 'no known download location'}"


def _mirrored(url: str, mirror: str | None) -> str:
    return url if mirror is None else f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[1]}"


# ----------------------------------------------------------------------------- the registry


def _planetoid(name: str, folder: str, prefix: str) -> Entry:
    reader = functools.partial(_with_prefix, planetoid.load, prefix)
    return Entry(name, folder, planetoid.files(prefix), reader, base_url=PLANETOID_URL)


def _with_prefix(load_fn, prefix, folder, name):
    return load_fn(folder, prefix, name)


def _shchur(name: str, folder: str, file: str) -> Entry:
    return Entry(name, folder, (file,), lambda path, n: shchur.load(path / file, n), base_url=SHCHUR_URL)


def _tu(exact: str) -> Entry:
    reader = functools.partial(_with_prefix, tu.load, exact)
    return Entry(exact.lower(), exact, tu.files(exact), reader, zip_url=f"{TU_URL}/{exact}.zip")


def _hetero(name: str, folder: str, spec: hetero.HeteroSpec, base_url: str | None, note: str = "") -> Entry:
    reader = lambda path, n: hetero.load(path, spec, n)  # noqa: E731
    return Entry(name, folder, spec.files(), reader, base_url=base_url, note=note)


def _metapath_reader(folder, name, *, target, metapath):
    return hetero.load_metapath_graph(folder, target, metapath, name)


def _metapath_graph(name: str, folder: str, target: str, metapath: str, base_url: str) -> Entry:
    reader = functools.partial(_metapath_reader, target=target, metapath=metapath)
    return Entry(name, folder, hetero.metapath_files(target, metapath), reader, base_url=base_url)


def _rec(name: str, folder: str, upstream: str) -> Entry:
    return Entry(name, folder, rec.FILES, rec.load, base_url=f"{ADAGCL_URL}/{upstream}")


def _build_registry() -> dict[str, Entry]:
    entries = [
        _planetoid("cora", "Cora", "cora"),
        _planetoid("citeseer", "CiteSeer", "citeseer"),
        _planetoid("pubmed", "PubMed", "pubmed"),
        _shchur("amazon-computers", "AmazonComputers", "amazon_electronics_computers.npz"),
        _shchur("amazon-photo", "AmazonPhoto", "amazon_electronics_photo.npz"),
        _shchur("coauthor-cs", "CoauthorCS", "ms_academic_cs.npz"),
        _shchur("coauthor-physics", "CoauthorPhysics", "ms_academic_phy.npz"),
        *(_tu(exact) for exact in TU_NAMES),
        *(_hetero(n, f"heco_{n}", spec, f"{HECO_URL}/{n}") for n, spec in hetero.HECO.items()),
        # SDCN's DBLP: the HeCo authors with their 334 keyword features and the co-author (APA) graph
        _metapath_graph("dblp-author", "heco_dblp", "a", "apa", f"{HECO_URL}/dblp"),
        _hetero("meow-acm", "meow_acm", hetero.MEOW["acm"], f"{MEOW_URL}/acm"),
        _hetero("meow-imdb", "meow_imdb", hetero.MEOW["imdb"], f"{MEOW_URL}/imdb"),
        _hetero("meow-dblp", "meow_dblp", hetero.MEOW["dblp"], None,
                note="MEOW's DBLP meta-path files are published only on Baidu pan (see the MEOW README)"),
        _rec("lastfm", "adagcl_lastfm", "lastFM"),
        _rec("yelp", "adagcl_yelp", "sparse_yelp"),
        Entry("citeseer-tag", "citeseer_tag", tag.FILES, tag.load,
              note="TAPE's CiteSeer-Orig text files exist only in an old commit of XiaoxinHe/TAPE; see its SOURCE.md"),
    ]
    return {entry.name: entry for entry in entries}


REGISTRY = _build_registry()


def names() -> list[str]:
    """Every known dataset name (CLI spelling)."""
    return sorted(REGISTRY)


# ----------------------------------------------------------------------------- locating files


def download_dir(root=None) -> Path:
    """Where downloads go: ``root``, else ``$GCL_JAX_DATA``, else the user cache directory."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else user_cache_dir()


def search_dirs(root=None) -> list[Path]:
    """Data roots in lookup order, without duplicates."""
    env = os.environ.get(ENV_VAR)
    ordered = [Path(root)] if root is not None else []
    ordered += [Path(env)] if env else []
    ordered += [EMBEDDED, download_dir(root)]
    return list(dict.fromkeys(ordered))


def _local_tu_entry(name: str, root) -> Entry | None:
    """A TU dataset not in :data:`TU_NAMES`, found as a local folder whose name matches case-insensitively."""
    for base in search_dirs(root):
        if base.is_dir():
            for child in base.iterdir():
                if child.name.lower() == name and (child / f"{child.name}_A.txt").exists():
                    return _tu(child.name)
    return None


def lookup(name: str, root=None) -> Entry:
    """The registry entry for ``name`` (case-insensitive); ``ValueError`` listing known names otherwise."""
    key = name.strip().lower()
    entry = REGISTRY.get(key) or _local_tu_entry(key, root)
    if entry is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names())} (or any local TU folder)")
    return entry


def _missing(folder: Path, entry: Entry) -> list[str]:
    return [f for f in entry.files if not (folder / f).is_file()]


def _absent_error(entry: Entry, searched: list[Path], reason: str, mirror) -> DatasetError:
    where = ", ".join(str(d / entry.folder) for d in searched)
    return DatasetError(
        f"{entry.name}: files not found (searched {where}); expected {', '.join(entry.files)}; "
        f"{entry.source_hint(mirror)}" + (f" ({reason})" if reason else "")
    )


def _download(entry: Entry, target: Path, names, mirror) -> None:
    """Fetch ``names`` (file sets) or the whole zip (TU) into ``target``."""
    if entry.zip_url:
        fetch_zip_folder(RemoteFile(_mirrored(entry.zip_url, mirror), f"{entry.folder}.zip", None), target, entry.folder)
        return
    target.mkdir(parents=True, exist_ok=True)
    marker = target / PARTIAL_MARKER
    marker.touch()
    try:
        for remote in entry.remote_files(names, mirror):
            fetch(remote, target)
    except DatasetError:
        if not any((target / f).exists() for f in entry.files):  # nothing to resume: leave no trace
            shutil.rmtree(target, ignore_errors=True)
        raise
    marker.unlink()


def folder_for(entry: Entry, root, download: bool, mirror) -> tuple[Path, bool]:
    """The folder holding every file of ``entry`` and whether it was just downloaded."""
    searched = search_dirs(root)
    target = download_dir(root) / entry.folder
    found = next((d / entry.folder for d in searched if (d / entry.folder).is_dir()), None)
    if found is not None:
        missing = _missing(found, entry)
        if not missing:
            return found, False
        resumable = found == target and (found / PARTIAL_MARKER).exists() and entry.base_url
        if not (download and resumable):
            raise DatasetError(
                f"{entry.name}: {found} is missing {', '.join(missing)}; {entry.source_hint(mirror)}"
            )
        names = missing
    else:
        names = None
    if not download or not (entry.base_url or entry.zip_url):
        raise _absent_error(entry, searched, "" if download else "download=False", mirror)
    try:
        _download(entry, target, names, mirror)
    except DatasetError as error:
        raise _absent_error(entry, searched, f"download failed: {error}", mirror) from None
    missing = _missing(target, entry)
    if missing:
        if entry.zip_url:
            shutil.rmtree(target, ignore_errors=True)
        raise DatasetError(f"{entry.name}: the download lacks {', '.join(missing)}")
    return target, True


def load(name: str, root=None, *, download: bool = True, mirror: str | None = None):
    """Load dataset ``name`` (e.g. ``"cora"``, ``"imdb-binary"``, ``"acm"``, ``"lastfm"``, or a
    generated ``"synthetic-200k"``: see :mod:`gcl_jax.data.synthetic`).

    Returns a :class:`NodeDataset`, :class:`GraphDataset`, :class:`HeteroDataset` or
    :class:`RecDataset`. ``root`` is a data root holding one folder per dataset; ``mirror`` is a base
    URL that replaces every canonical download location (files are looked up by their own name).
    An explicit ``root`` must be an existing directory (a typo there should not silently fall
    back to another copy). Raises ``ValueError`` for an unknown name and :class:`DatasetError` (a ``ValueError``) naming the
    file for anything missing, truncated or malformed.
    """
    if name.strip().lower().startswith("synthetic-"):
        return synthetic.load(name)
    if root is not None and not Path(root).is_dir():
        raise DatasetError(f"data root {root} does not exist or is not a directory")
    entry = lookup(name, root)
    folder, fresh = folder_for(entry, root, download, mirror)
    try:
        return entry.reader(folder, entry.name)
    except DatasetError as error:
        if fresh and entry.zip_url:  # unpinned archive: parsing is the verification
            shutil.rmtree(folder, ignore_errors=True)
            raise DatasetError(f"{entry.name}: downloaded archive failed verification and was removed: {error}") from None
        raise
