"""Files: atomic writes (a failed save leaves the old file intact) and the one format of bdh_graph's own files.

Every file bdh_graph writes for itself (network state, spike recordings, run recordings, circuits) is a NumPy
``.npz`` archive of plain numeric arrays, read without pickles, tagged by one extra entry named ``bdh_graph``:
a JSON text ``{"format": KIND, "version": N, "meta": {...}}``. Any tool that reads ``.npz`` reads the arrays
(``numpy.load(path)``; a circuit file is also what ``scipy.sparse.load_npz`` reads); :func:`read_tagged`
refuses a file of another kind or version, naming the file, what it is and what was expected.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .errors import FileFormatError

HEADER_KEY = "bdh_graph"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    >>> with atomic_path("out.npz") as tmp:          # doctest: +SKIP
    ...     numpy.savez(tmp, a=1)
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder`` (and whatever was there), on
    error it is removed, so a failed write leaves neither a partial folder nor a changed old one."""
    folder = Path(folder).absolute()
    if not folder.parent.is_dir():
        raise FileNotFoundError(f"cannot write '{folder}': folder '{folder.parent}' does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private; give it the usual permissions
        old = None
        if folder.exists():
            old = folder.with_name(f"{tmp.name}.old")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TaggedFile(NamedTuple):
    """A file read by :func:`read_tagged`: its arrays (the header entry removed), ``meta`` and ``version``."""

    arrays: dict[str, np.ndarray]
    meta: dict
    version: int


def write_tagged(path: str | os.PathLike, kind: str, version: int, arrays: dict[str, np.ndarray],
                 meta: dict | None = None, compress: bool = False) -> Path:
    """Write ``arrays`` and the header ``{"format": kind, "version": version, "meta": meta}`` to ``path``
    (an ``.npz`` archive, atomically). ``meta`` must be JSON-serialisable; array names must not be ``bdh_graph``."""
    if HEADER_KEY in arrays:
        raise ValueError(f"array name {HEADER_KEY!r} is reserved for the file's header")
    header = json.dumps({"format": kind, "version": int(version), "meta": meta or {}}, sort_keys=True)
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        save(f, **{HEADER_KEY: np.array(header)}, **arrays)
    return Path(path)


def read_header(path: str | os.PathLike) -> dict | None:
    """The header of a tagged file, or None for an ``.npz`` without one; a missing or unreadable file is
    refused (``FileNotFoundError``, :class:`FileFormatError`)."""
    return _load(Path(path), arrays=False)[0]


def read_tagged(path: str | os.PathLike, kind: str, version: int, what: str | None = None) -> TaggedFile:
    """The arrays and meta of a file written by :func:`write_tagged` as ``kind``, version ``version``.

    Anything else (a missing file, not an ``.npz``, no header, another kind, another version) is refused with an
    error naming the file, what was found and what was expected; ``what`` names the kind in words
    (``"network state file"``). Nothing is unpickled.
    """
    path = Path(path)
    what = what or kind
    header, arrays = _load(path, arrays=True, what=what)
    if header is None:
        raise FileFormatError(f"'{path}' is not a {what}: it has no '{HEADER_KEY}' header entry "
                              f"(expected format {kind!r}, version {version})")
    found_kind, found_version = header.get("format"), header.get("version")
    if found_kind != kind:
        raise FileFormatError(f"'{path}' is not a {what}: it is a {found_kind!r} file (expected format {kind!r})")
    if found_version != version:
        raise FileFormatError(f"'{path}' is a {what} of version {found_version}; this bdh_graph reads version "
                              f"{version}")
    return TaggedFile(arrays, header.get("meta", {}), int(found_version))


def _load(path: Path, arrays: bool, what: str = "bdh_graph file") -> tuple[dict | None, dict[str, np.ndarray]]:
    if not path.exists():
        raise FileNotFoundError(f"{what} '{path}' does not exist")
    if not path.is_file():
        raise FileFormatError(f"{what} '{path}' is a folder, not a file")
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(str(f[HEADER_KEY])) if HEADER_KEY in f.files else None
            content = {k: f[k] for k in f.files if k != HEADER_KEY} if arrays else {}
    except (ValueError, OSError, json.JSONDecodeError) as err:
        raise FileFormatError(f"'{path}' is not a {what}: not a readable .npz file ({err})") from err
    if header is not None and not isinstance(header, dict):
        raise FileFormatError(f"'{path}' is not a {what}: its '{HEADER_KEY}' entry is not a JSON object")
    return header, content
