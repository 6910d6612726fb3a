"""Guarded readers for the raw files behind every loader, and the atomic writer of our caches.

Benchmark data still ships as Python pickles (Planetoid ``ind.*``, LightGCL ``*.pkl``, HeCo's object
``.npy``). ``pickle.load`` runs whatever the file names, so every pickle here goes through
:class:`RestrictedUnpickler`, which admits only the numpy / scipy.sparse / builtin container types
those files need and refuses everything else. All readers raise :class:`DatasetError` naming the file
and what is wrong with it, never a bare ``EOFError`` or ``KeyError``.
"""

from __future__ import annotations

import codecs
import collections
import importlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import scipy.sparse as sp


class DatasetError(ValueError):
    """A dataset file is missing, truncated or malformed; the message names the file."""


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, renamed into place
    only when complete: a crash leaves the old file or none, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text file (configs, records)."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


# ----------------------------------------------------------------------------- restricted unpickling


def _numpy_reconstruct():
    """``_reconstruct`` lives in ``numpy._core`` from numpy 2 on, ``numpy.core`` before."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy multiarray._reconstruct not found")


def _admitted_globals() -> dict[tuple[str, str], object]:
    """The exact (module, name) pairs the supported pickles reference, resolved without importing by name.

    Both the private (scipy >= 1.8, numpy >= 2) and the legacy public module paths are listed,
    because the files were written by old library versions (Planetoid's by Python 2).
    """
    reconstruct = _numpy_reconstruct()
    admitted: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "list"): list,
        ("__builtin__", "list"): list,
        # Python 3 writes bytes as _codecs.encode(text, "latin1") under protocol 2 (e.g. a Planetoid
        # file re-created today); it only converts text to bytes.
        ("_codecs", "encode"): codecs.encode,
    }
    for fmt, cls in (("csr", sp.csr_matrix), ("coo", sp.coo_matrix)):
        admitted[("scipy.sparse", f"{fmt}_matrix")] = cls
        admitted[(f"scipy.sparse.{fmt}", f"{fmt}_matrix")] = cls
        admitted[(f"scipy.sparse._{fmt}", f"{fmt}_matrix")] = cls
    return admitted


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :func:`_admitted_globals` and refuses any other global."""

    def __init__(self, file, source: str, **kwargs):
        super().__init__(file, **kwargs)
        self._source = source
        self._admitted = _admitted_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._admitted[(module, name)]
        except KeyError:
            raise DatasetError(
                f"{self._source}: refused to unpickle global '{module}.{name}' "
                "(only numpy arrays, scipy.sparse csr/coo matrices and builtin containers are admitted)"
            ) from None


def unpickle(stream, source: str, encoding: str = "ASCII"):
    """Restricted-unpickle one object from a binary stream; ``source`` names the file in errors."""
    try:
        return RestrictedUnpickler(stream, source, encoding=encoding).load()
    except DatasetError:
        raise
    except EOFError:
        raise DatasetError(f"{source}: truncated pickle (ran out of data)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, OverflowError) as error:
        reason = "truncated pickle" if "truncated" in str(error) else "corrupt pickle"
        raise DatasetError(f"{source}: {reason} ({type(error).__name__}: {error})") from None


def load_pickle(path: Path, expect: type | tuple[type, ...] | None = None, encoding: str = "ASCII"):
    """Restricted-unpickle a whole file and check the result's type.

    Planetoid files were written by Python 2: pass ``encoding="latin1"`` for them (numpy's own advice
    for Python 2 array pickles).
    """
    with open(path, "rb") as stream:
        value = unpickle(stream, str(path), encoding)
        if stream.read(1):
            raise DatasetError(f"{path}: trailing data after the pickle (corrupt file)")
    _check_type(value, expect, path)
    return value


def _check_type(value, expect, path) -> None:
    if expect is not None and not isinstance(value, expect):
        names = expect.__name__ if isinstance(expect, type) else " or ".join(t.__name__ for t in expect)
        raise DatasetError(f"{path}: expected a pickled {names}, got {type(value).__name__}")


# ----------------------------------------------------------------------------- numpy files


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _magic(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(6)


def load_array(path: Path) -> np.ndarray:
    """A ``.npy`` array (also when misnamed ``.npz``, like HeCo's ``dblp/t_feat.npz``).

    Object arrays are read through the restricted unpickler; everything else with
    ``allow_pickle=False``.
    """
    if not _magic(path).startswith(_NPY_MAGIC):
        raise DatasetError(f"{path}: not a .npy file (bad magic bytes)")
    with open(path, "rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(stream)
        except ValueError as error:
            raise DatasetError(f"{path}: corrupt .npy header ({error})") from None
        if dtype.hasobject:
            array = unpickle(stream, str(path), encoding="latin1")
            _check_type(array, np.ndarray, path)
            if array.shape != tuple(shape):
                raise DatasetError(f"{path}: header shape {shape} does not match the stored array {array.shape}")
            return array
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:  # numpy reports short reads as ValueError
        raise DatasetError(f"{path}: truncated or corrupt .npy ({error})") from None


def open_npz(path: Path) -> dict[str, np.ndarray]:
    """All non-object arrays of an ``.npz`` archive as a dict (object members, e.g. names, are skipped)."""
    if _magic(path)[:4] != _ZIP_MAGIC:
        raise DatasetError(f"{path}: not an .npz archive (bad magic bytes)")
    try:
        with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as archive:
            out = {}
            for key in archive.files:
                try:
                    out[key] = archive[key]
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
            return out
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{path}: truncated or corrupt .npz ({type(error).__name__}: {error})") from None


def load_sparse(path: Path) -> sp.csr_matrix:
    """A matrix written by ``scipy.sparse.save_npz`` (any format), as CSR."""
    arrays = open_npz(path)
    try:
        fmt = arrays["format"].item()
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        shape = tuple(int(v) for v in arrays["shape"])
        if fmt == "coo":
            matrix = sp.coo_matrix((arrays["data"], (arrays["row"], arrays["col"])), shape=shape)
        elif fmt in ("csr", "csc"):
            cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
            matrix = cls((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        else:
            raise DatasetError(f"{path}: unsupported sparse format {fmt!r}")
        return matrix.tocsr()
    except KeyError as error:
        raise DatasetError(f"{path}: not a scipy sparse .npz (missing array {error})") from None
    except ValueError as error:
        raise DatasetError(f"{path}: inconsistent sparse arrays ({error})") from None


# ----------------------------------------------------------------------------- text tables


def read_table(path: Path, columns: int, dtype=np.int64, delimiter: str | None = None) -> np.ndarray:
    """A numeric text table ``[lines, columns]``; blank lines are skipped.

    On malformed input the first bad line is reported by number, e.g.
    ``MUTAG_A.txt line 17: expected 2 comma-separated integers, got 'x'``.
    """
    try:
        table = np.loadtxt(path, dtype=dtype, delimiter=delimiter, ndmin=2, comments=None)
    except ValueError:
        raise _first_bad_line(path, columns, dtype, delimiter) from None
    if table.size == 0:
        return np.zeros((0, columns), dtype)
    if table.shape[1] != columns:
        raise _first_bad_line(path, columns, dtype, delimiter)
    return table


def _first_bad_line(path: Path, columns: int, dtype, delimiter: str | None) -> DatasetError:
    """Scan line by line (slow path, only after a failure) for the first line that does not parse."""
    kind = "integers" if np.issubdtype(dtype, np.integer) else "numbers"
    sep = "comma-separated" if delimiter == "," else "whitespace-separated"
    expected = f"expected {columns} {sep} {kind}"
    with open(path, encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            fields = line.split(delimiter)
            try:
                ok = len(fields) == columns and all(np.array(f.strip(), dtype=dtype).ndim == 0 for f in fields)
            except ValueError:
                ok = False
            if not ok:
                return DatasetError(f"{path} line {number}: {expected}, got {line.strip()[:60]!r}")
    return DatasetError(f"{path}: {expected} on every line")


def read_lines_as_ints(path: Path) -> np.ndarray:
    """A one-column integer file (TU labels and indicators, Planetoid ``test.index``) as a 1-D array."""
    return read_table(path, 1, np.int64)[:, 0]

