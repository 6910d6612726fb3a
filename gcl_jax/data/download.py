"""Checked, atomic downloads and safe zip extraction.

A file is streamed into a temporary file next to its destination and renamed into place only after
the transfer is complete (as long as ``Content-Length`` says) and its SHA-256 matches the pinned
value; on any failure the temporary file is removed, so a destination either holds a verified file
or nothing. TU zips cannot be pinned (the server rebuilds them), so they are checked after
extraction instead: the expected files must exist and parse (see ``registry``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from gcl_jax.data.safeio import DatasetError

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, its name on disk, and its pinned SHA-256 (None: unpinned)."""

    url: str
    name: str
    sha256: str | None


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gcl_jax``, else ``~/.cache/gcl_jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gcl_jax"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stream_to(url: str, out) -> int:
    """Copy a URL's body into ``out``; raise if fewer bytes arrive than ``Content-Length`` promised."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        expected = response.headers.get("Content-Length")
        received = 0
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            received += len(block)
    if expected is not None and received != int(expected):
        raise DatasetError(f"{url}: truncated transfer ({received} of {expected} bytes)")
    return received


def fetch(remote: RemoteFile, directory: Path) -> Path:
    """Download ``remote`` into ``directory/remote.name`` atomically, verifying its checksum."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.name
    handle, temp_name = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _stream_to(remote.url, out)
        if remote.sha256 is not None:
            actual = _sha256(temp)
            if actual != remote.sha256:
                raise DatasetError(
                    f"{remote.url}: checksum mismatch for {remote.name} (expected sha256 {remote.sha256}, got {actual})"
                )
        os.replace(temp, target)
        return target
    except (OSError, ValueError, http.client.HTTPException) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{remote.url}: download failed ({type(error).__name__}: {error})") from None
    finally:
        temp.unlink(missing_ok=True)


def _safe_member_path(info: zipfile.ZipInfo, archive: str) -> PurePosixPath:
    """The member's relative path; refuse absolute paths, ``..``, drive letters and symlinks."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DatasetError(f"{archive}: refused unsafe member path {info.filename!r}")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError(f"{archive}: refused symlink member {info.filename!r}")
    return path


def extract_zip(archive: Path, destination: Path) -> None:
    """Extract every regular member of ``archive`` under ``destination`` after checking all paths."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [(info, _safe_member_path(info, str(archive))) for info in zipped.infolist()]
            for info, relative in members:
                if info.is_dir():
                    continue
                out_path = destination.joinpath(*relative.parts)
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, open(out_path, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
    except (zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(f"{archive}: corrupt zip ({error})") from None


def fetch_zip_folder(remote: RemoteFile, folder: Path, member_dir: str) -> Path:
    """Download a zip, extract it in a scratch directory, and move ``member_dir`` to ``folder``.

    The folder appears in one rename, so an interrupted download never leaves a half-filled folder.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        archive = fetch(remote, scratch)
        extract_zip(archive, scratch / "x")
        extracted = scratch / "x" / member_dir
        if not extracted.is_dir():
            raise DatasetError(f"{remote.url}: the archive has no folder {member_dir!r}")
        os.replace(extracted, folder)
        return folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
