"""Full training-state checkpoints in one ``.npz`` file, written atomically.

A checkpoint holds the value of every state variable -- model weights (trainable and
not, e.g. batch-norm statistics), optimizer slots and ``iterations`` (so the lr
schedule resumes), EMA shadow weights, the step counter, the ``tf.random.Generator``
state and any plug-in state such as a sampler's -- keyed ``group/index`` in a fixed
order, plus a JSON ``__meta__`` (step, best PSNR, config).  The data position is the
step: the deterministic input pipeline is rebuilt with ``start_step=step``.

Writes go through :func:`visionfw.files.write_file_atomic` (a temporary file, fsync'ed, then
renamed into place), so a killed process leaves either the old or the new checkpoint, never a
torn one.  A write that fails (full disk, read-only file system) removes its temporary file and
raises a one-line :class:`~visionfw.errors.TrainingError` naming the file; the temporary file of
a killed process is removed by the next run (:meth:`CheckpointManager.remove_stale_tmp`).

Reading verifies what it can: the zip CRC of every array (a bit flip or truncation is a
TrainingError, not a raw ``BadZipFile``) and, with :func:`check_finite`, that every float
value is finite (the trainer never writes a non-finite checkpoint).  Rotation deletes only
checkpoints of the run it serves (the ``run_id`` in their meta), never another run's files.
"""

from __future__ import annotations

import glob
import json
import os
import re
import zipfile
import zlib

import numpy as np

from visionfw.errors import TrainingError
from visionfw.files import temp_files
from visionfw.train.workdir import write_run_file

__all__ = ["save_state", "load_state", "restore_state", "CheckpointManager"]

_META = "__meta__"


def _write_npz(f, arrays):
    np.savez(f, **arrays)


def _value(var):
    return np.asarray(var.numpy() if hasattr(var, "numpy") else var)


def save_state(path, groups, meta, kept=None):
    """Writes ``{group: [variables]}`` and ``meta`` (JSON-able) to ``path`` atomically; ``kept``:
    the last good checkpoint, named if the write fails."""
    arrays = {}
    for group, variables in groups.items():
        for i, var in enumerate(variables):
            arrays[f"{group}/{i:04d}"] = _value(var)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    write_run_file(path, lambda f: _write_npz(f, arrays), kept)


class CorruptCheckpointError(TrainingError):
    """A checkpoint file is damaged (bad zip CRC, truncated, unreadable meta, non-finite values);
    ``reason`` says how, in a few words."""

    def __init__(self, path, reason):
        super().__init__(f"checkpoint {path!r} is damaged ({reason}); delete it or pass resume=never to start over.")
        self.reason = reason


# what a damaged zip/npy raises inside numpy and zipfile
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError)


def load_state(path):
    """``(arrays, meta)`` of a checkpoint file; every array's zip CRC is checked as it is read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8")) if _META in arrays else {}
        if not isinstance(meta, dict):
            raise ValueError("its __meta__ is not a JSON object")
    except _READ_ERRORS as exc:
        raise CorruptCheckpointError(path, f"{type(exc).__name__}: {exc}") from None
    return arrays, meta


def check_finite(path, arrays):
    """CorruptCheckpointError when a float array of ``arrays`` holds a non-finite value."""
    for key, value in arrays.items():
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise CorruptCheckpointError(path, f"{key} holds non-finite values, which the trainer never writes")


def restore_state(path, groups, arrays=None):
    """Assigns the saved values to ``{group: [variables]}`` (same order and shapes)."""
    if arrays is None:
        arrays, _ = load_state(path)
    for group, variables in groups.items():
        saved = sorted(k for k in arrays if k.startswith(f"{group}/"))
        if len(saved) != len(variables):
            raise TrainingError(
                f"checkpoint {path!r} has {len(saved)} '{group}' variables but the "
                f"run has {len(variables)}; it was written for another model/optimizer "
                "config. Use another workdir or resume=never."
            )
        for key, var in zip(saved, variables):
            value = arrays[key]
            if tuple(value.shape) != tuple(var.shape):
                raise TrainingError(
                    f"checkpoint {path!r}: {key} has shape {value.shape}, the run's "
                    f"variable {getattr(var, 'path', getattr(var, 'name', '?'))} has "
                    f"{tuple(var.shape)}. Use another workdir or resume=never."
                )
            var.assign(value)


class CheckpointManager:
    """``ckpt-<step>.npz`` files in ``directory`` (the last ``keep``) plus ``best.npz``.

    ``run_id``: the run's id, written into every checkpoint's meta; rotation deletes an old
    checkpoint only when this manager wrote it or its meta carries the same ``run_id`` (the
    same run before a resume), never a file of another run.
    """

    _PATTERN = re.compile(r"ckpt-(\d+)\.npz$")

    def __init__(self, directory, keep=2, run_id=None):
        self.directory = os.fspath(directory)
        self.keep = max(1, int(keep))
        self.run_id = run_id
        self._written = set()
        os.makedirs(self.directory, exist_ok=True)

    def path_for(self, step):
        return os.path.join(self.directory, f"ckpt-{int(step):08d}.npz")

    @property
    def best_path(self):
        return os.path.join(self.directory, "best.npz")

    def all(self):
        """Complete checkpoints, oldest first, as (step, path)."""
        found = []
        for p in glob.glob(os.path.join(self.directory, "ckpt-*.npz")):
            m = self._PATTERN.search(os.path.basename(p))
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self):
        found = self.all()
        return found[-1][1] if found else None

    def _ours(self, path):
        if path in self._written:
            return True
        if self.run_id is None:
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data[_META].tobytes().decode("utf-8"))
        except _READ_ERRORS:
            return False
        return isinstance(meta, dict) and meta.get("run_id") == self.run_id

    def save(self, step, groups, meta):
        path = self.path_for(step)
        if self.run_id is not None:
            meta = dict(meta, run_id=self.run_id)
        save_state(path, groups, meta, kept=self.latest())
        self._written.add(path)
        for _, old in self.all()[: -self.keep]:
            if self._ours(old):
                os.remove(old)
                self._written.discard(old)
        return path

    def save_best(self, groups, meta):
        if self.run_id is not None:
            meta = dict(meta, run_id=self.run_id)
        save_state(self.best_path, groups, meta, kept=self.latest())
        return self.best_path

    def remove_stale_tmp(self):
        """Removes the ``.tmp`` files a killed run left behind (call it holding the workdir lock)."""
        removed = []
        # and plain ``<name>.tmp`` files
        for p in sorted(set(temp_files(self.directory)) | set(glob.glob(os.path.join(self.directory, "*.tmp")))):
            try:
                os.remove(p)
                removed.append(p)
            except OSError:
                pass
        return removed

    def quarantine(self, path):
        """Renames a damaged checkpoint to ``<name>.corrupt`` (kept for inspection, out of the
        way of resume and rotation); returns the new path."""
        target = f"{path}.corrupt"
        os.replace(path, target)
        return target

    def newest_intact(self, verify):
        """``(path, loaded)`` of the newest checkpoint that ``verify(path)`` accepts (``loaded``
        is what it returned); a damaged one (CorruptCheckpointError) is renamed ``.corrupt``
        with a one-line warning naming it and the checkpoint resumed from instead.
        ``(None, None)`` when there is none."""
        import warnings

        bad = []
        for _, path in reversed(self.all()):
            try:
                loaded = verify(path)
            except CorruptCheckpointError as exc:
                bad.append((path, self.quarantine(path), exc))
                continue
            if bad:
                self._warn_corrupt(warnings, bad, f"resuming from {path}")
            return path, loaded
        if bad:
            self._warn_corrupt(warnings, bad, "no intact checkpoint left: starting from step 0")
        return None, None

    @staticmethod
    def _warn_corrupt(warnings, bad, then):
        names = ", ".join(f"{os.path.basename(p)} ({e.reason})" for p, _, e in bad)
        warnings.warn(
            f"corrupt checkpoint(s) {names} in {os.path.dirname(bad[0][0])} renamed to *.corrupt; {then}.", stacklevel=3
        )
