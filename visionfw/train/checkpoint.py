"""Full training-state checkpoints in one ``.npz`` file, written atomically.

A checkpoint holds the value of every state variable -- model weights (trainable and
not, e.g. batch-norm statistics), optimizer slots and ``iterations`` (so the lr
schedule resumes), EMA shadow weights, the step counter, the ``tf.random.Generator``
state and any plug-in state such as a sampler's -- keyed ``group/index`` in a fixed
order, plus a JSON ``__meta__`` (step, best PSNR, config).  The data position is the
step: the deterministic input pipeline is rebuilt with ``start_step=step``.

Writes go to ``name.tmp`` first, are fsync'ed, then ``os.replace``d into place, so a
killed process leaves either the old or the new checkpoint, never a torn one.
"""
from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from visionfw.errors import TrainingError

__all__ = ["save_state", "load_state", "restore_state", "CheckpointManager"]

_META = "__meta__"


def _fsync_dir(path):
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


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` via a temporary file and ``os.replace``."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _value(var):
    return np.asarray(var.numpy() if hasattr(var, "numpy") else var)


def save_state(path, groups, meta):
    """Writes ``{group: [variables]}`` and ``meta`` (JSON-able) to ``path`` atomically."""
    arrays = {}
    for group, variables in groups.items():
        for i, var in enumerate(variables):
            arrays[f"{group}/{i:04d}"] = _value(var)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def load_state(path):
    """``(arrays, meta)`` of a checkpoint file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise TrainingError(f"checkpoint {path!r} cannot be read ({exc}); delete it or pass "
                            "resume=never to start over.") from exc
    meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8")) if _META in arrays else {}
    return arrays, meta


def restore_state(path, groups, arrays=None):
    """Assigns the saved values to ``{group: [variables]}`` (same order and shapes)."""
    if arrays is None:
        arrays, _ = load_state(path)
    for group, variables in groups.items():
        saved = sorted(k for k in arrays if k.startswith(f"{group}/"))
        if len(saved) != len(variables):
            raise TrainingError(f"checkpoint {path!r} has {len(saved)} '{group}' variables but the "
                                f"run has {len(variables)}; it was written for another model/optimizer "
                                "config. Use another workdir or resume=never.")
        for key, var in zip(saved, variables):
            value = arrays[key]
            if tuple(value.shape) != tuple(var.shape):
                raise TrainingError(f"checkpoint {path!r}: {key} has shape {value.shape}, the run's "
                                    f"variable {getattr(var, 'path', getattr(var, 'name', '?'))} has "
                                    f"{tuple(var.shape)}. Use another workdir or resume=never.")
            var.assign(value)


class CheckpointManager:
    """``ckpt-<step>.npz`` files in ``directory`` (the last ``keep``) plus ``best.npz``."""

    _PATTERN = re.compile(r"ckpt-(\d+)\.npz$")

    def __init__(self, directory, keep=2):
        self.directory = os.fspath(directory)
        self.keep = max(1, int(keep))
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

    def save(self, step, groups, meta):
        path = self.path_for(step)
        save_state(path, groups, meta)
        for _, old in self.all()[:-self.keep]:
            os.remove(old)
        return path

    def save_best(self, groups, meta):
        save_state(self.best_path, groups, meta)
        return self.best_path
