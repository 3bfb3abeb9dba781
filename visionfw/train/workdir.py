"""One training run per workdir, and one-line errors for a workdir that cannot be written.

:func:`lock_workdir` holds an exclusive ``fcntl.flock`` on ``<workdir>/.visionfw.lock`` for the
whole run.  A second run on the same workdir fails at once with a :class:`WorkdirBusyError`
naming the process that holds it (pid, start time, command line, read from the lock file),
before it writes anything: the lock file is only opened, never changed, when it is held by
someone else.  The kernel releases the lock when the holder exits, however it exits
(kill -9 included), so a stale lock file never blocks a later run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time

from visionfw.errors import TrainingError

__all__ = ["LOCK_NAME", "WorkdirBusyError", "lock_workdir", "write_error", "WRITE_ERRNOS"]

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


def write_error(path, exc, kept=None):
    """A one-line :class:`TrainingError` for an ``OSError`` met writing ``path``; ``kept``: the
    last good checkpoint, named in the message."""
    why = WRITE_ERRNOS.get(exc.errno, "check the workdir")
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
def lock_workdir(workdir):
    """Holds the exclusive lock of ``workdir`` (created if missing) while the block runs."""
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
