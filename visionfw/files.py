"""Atomic file writes: the one way the project creates or replaces a file it must not leave torn.

:func:`write_file_atomic` fills a temporary file in the target's folder, fsyncs it, gives it a new
file's mode and renames it into place, so a killed process leaves the old file or the new one,
never a partial one.  A write that fails removes its temporary file and raises the error as is;
callers at higher layers turn an ``OSError`` into their own one-line error.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_file_atomic", "new_file_mode", "temp_files"]

# temporary names: ".<name>.<random>.tmp" (and ".<name>.<random>.tmp<suffix>" for writers by name)
_TEMP_PATTERNS = (".*.tmp", ".*.tmp.*")


def write_file_atomic(
    path: str | os.PathLike[str],
    write: Callable[[Any], object],
    *,
    by_name: bool = False,
) -> Path:
    """Creates or replaces ``path`` atomically.

    ``write`` fills a temporary file in the same folder (named ``.<name>.<random>.tmp``); the file is
    fsynced, given a new file's mode (:func:`new_file_mode`; ``mkstemp`` makes 0600) and renamed to
    ``path`` only when ``write`` returned.  Parent folders are created.

    Args:
        path: The file to create or replace.
        write: Called with the temporary file open for binary writing; with ``by_name=True``, called
            with the temporary file's path instead.
        by_name: For writers that take a file name (Keras' ``model.save``): the temporary name then
            ends with ``path``'s suffix, which such writers check.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OSError: The folder or the file cannot be written (full disk, read-only file system, ...);
            no temporary file is left behind.  Whatever ``write`` raises is raised as well.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + (path.suffix if by_name else "")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        if by_name:
            os.close(fd)
            write(tmp)
            _fsync_file(tmp)
        else:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def new_file_mode() -> int:
    """The mode a newly created file gets here (0666 less the umask).

    Returns:
        The mode for a file written through a ``mkstemp`` temporary (0600) and renamed into place.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_files(folder: str | os.PathLike[str]) -> list[str]:
    """The temporary files of :func:`write_file_atomic` in ``folder`` (what a killed process left).

    Args:
        folder: The folder to look in (not its sub-folders).

    Returns:
        Their paths, sorted.
    """
    found: set[str] = set()
    for pattern in _TEMP_PATTERNS:
        found.update(glob.glob(os.path.join(glob.escape(os.fspath(folder)), pattern)))
    return sorted(found)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: str | os.PathLike[str]) -> None:
    """Makes the rename durable; a file system that cannot open or sync a folder is left as is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
