"""The run directory: one training run per workdir, its log file, its clean-up, and one-line
errors for a workdir that cannot be written.

:func:`lock_workdir` holds an exclusive ``fcntl.flock`` on ``<workdir>/.visionfw.lock`` for the
whole run.  A second run on the same workdir fails at once with a :class:`WorkdirBusyError`
naming the process that holds it (pid, start time, command line, read from the lock file),
before it writes anything: the lock file is only opened, never changed, when it is held by
someone else.  The kernel releases the lock when the holder exits, however it exits
(kill -9 included), so a stale lock file never blocks a later run.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from visionfw.errors import TrainingError
from visionfw.files import temp_files, write_file_atomic

__all__ = [
    "LOCK_NAME",
    "WorkdirBusyError",
    "lock_workdir",
    "write_error",
    "WRITE_ERRNOS",
    "write_run_file",
    "CsvLog",
    "remove_stale_tmp",
    "remove_unfinished",
    "latest_checkpoint",
]

LOCK_NAME = ".visionfw.lock"
# errors of a workdir that cannot take the run's files: one line each, not a traceback
WRITE_ERRNOS = {
    errno.EROFS: "the file system is read-only: pass a writable --workdir",
    errno.ENOSPC: "the disk is full: free some space (or pass --workdir on another disk)",
    errno.EDQUOT: "the disk quota is used up: free some space or pass another --workdir",
    errno.EACCES: "no permission to write there: pass a writable --workdir",
    errno.EPERM: "no permission to write there: pass a writable --workdir",
}


class WorkdirBusyError(TrainingError):
    """Another training run holds the workdir's lock."""


def write_error(path: str, exc: OSError, kept: str | None = None) -> TrainingError:
    """A one-line :class:`TrainingError` for an ``OSError`` met writing ``path``.

    Args:
        path: The file that could not be written.
        exc: The error.
        kept: The last good checkpoint, named in the message.

    Returns:
        The error to raise.
    """
    why = WRITE_ERRNOS.get(exc.errno or 0, "check the workdir")
    where = f"; the last good checkpoint {kept} is kept" if kept else ""
    return TrainingError(f"cannot write {path}: {exc.strerror or exc} [Errno {exc.errno}]{where}; {why}.")


def _holder(fd):
    """What the lock file says about the run holding it, as a short phrase."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid', '?')} (started {started}: {info.get('command', '?')})"


@contextlib.contextmanager
def lock_workdir(workdir: str) -> Iterator[str]:
    """Holds the exclusive lock of ``workdir`` (created if missing) while the block runs.

    Args:
        workdir: The run directory.

    Yields:
        The lock file's path.

    Raises:
        WorkdirBusyError: Another run holds the lock.
        TrainingError: The workdir cannot be written (one line).
    """
    import fcntl

    path = os.path.join(workdir, LOCK_NAME)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise write_error(path if os.path.isdir(workdir) else workdir, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusyError(
                f"workdir {workdir} is in use by another training run, {_holder(fd)}; wait for "
                "it to finish (or stop it), or pass another --workdir."
            ) from None
        except OSError as exc:  # a file system without locks (some network mounts): run unprotected
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            import warnings

            warnings.warn(
                f"workdir {workdir} cannot be locked ({exc.strerror}): nothing stops a second run "
                "from using it at the same time.",
                stacklevel=3,
            )
        info = {"pid": os.getpid(), "started": time.time(), "command": " ".join(sys.argv)[:500]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        except OSError as exc:
            raise write_error(path, exc) from None
        yield path
    finally:
        os.close(fd)  # releases the lock


def write_run_file(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], kept: str | None = None) -> None:
    """Writes a file of a training run atomically (:func:`visionfw.files.write_file_atomic`).

    Args:
        path: The file to create or replace.
        write: Called with the temporary file open for binary writing.
        kept: The last good checkpoint, named in the error.

    Raises:
        TrainingError: One line naming ``path`` (and ``kept``) when an ``OSError`` (full disk,
            read-only file system, ...) stops the write; no partial file is left.
    """
    try:
        write_file_atomic(path, write)
    except OSError as exc:
        raise write_error(os.fspath(path), exc, kept) from None


class CsvLog:
    """``train_log.csv`` with fixed columns; rows after the resume step are dropped.

    Args:
        path: The log file.
        columns: Its columns.
        resume_step: The step the run resumes from (0: a new log).
        enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, path: str, columns: list[str], resume_step: int, enabled: bool) -> None:
        self.path, self.columns, self.enabled = path, columns, enabled
        if not enabled:
            return
        rows = []
        if resume_step > 0 and os.path.exists(path):
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["step"]) <= resume_step:
                            rows.append(row)
                    except (KeyError, ValueError):
                        continue
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        data = buf.getvalue().encode()
        write_run_file(path, lambda f: f.write(data))

    def write(self, row: Mapping[str, Any]) -> None:
        """Appends ``row`` (missing columns empty, ``None`` as empty)."""
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: ("" if v is None else v) for k, v in row.items()}
            )


# the fixed temporary names (name.tmp, .model.tmp.keras) a killed run may also have left
_FIXED_TMP_NAMES = ("config.json.tmp", "train_log.csv.tmp", ".model.tmp.keras")


def remove_stale_tmp(workdir: str, manager: Any) -> None:
    """Removes the temporary files a killed run left (in ``workdir`` and its checkpoints folder).

    Call it holding the workdir's lock, so no live run is writing them.

    Args:
        workdir: The run directory.
        manager: Its :class:`~visionfw.train.checkpoint.CheckpointManager`.
    """
    manager.remove_stale_tmp()
    stale = temp_files(workdir) + [os.path.join(workdir, name) for name in _FIXED_TMP_NAMES]
    for path in stale:
        try:
            os.remove(path)
        except OSError:
            pass


def latest_checkpoint(workdir: str) -> str | None:
    """The newest ``ckpt-*.npz`` of ``workdir``, or None (no directory is created)."""
    found = sorted(glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.npz")))
    return found[-1] if found else None


def remove_unfinished(workdir: str) -> None:
    """Removes a run directory that holds nothing to resume from (no checkpoint, no model)."""
    if os.path.exists(os.path.join(workdir, "model.keras")):
        return
    if glob.glob(os.path.join(workdir, "checkpoints", "*.npz")):
        return
    shutil.rmtree(workdir, ignore_errors=True)
