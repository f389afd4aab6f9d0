"""Atomic file writes (a failed save leaves the old file intact) and tagged .npz files read without pickles."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_tagged_npz(path: str | os.PathLike, tag: str, kind: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file whose ``format`` entry is ``tag``, loaded without pickles; a missing file,
    an unreadable one or another format is refused with an error that names the ``kind`` of file expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError) as err:
        raise ValueError(f"'{path}' is not a {kind}: not a readable .npz file ({err})") from err
    if "format" not in arrays or str(arrays["format"]) != tag:
        raise ValueError(f"'{path}' is not a {kind} (expected format {tag})")
    return arrays
