"""Cached runs: short training runs that are reused, and a JSON file of computed results.

``compare`` and ``rank-datasets`` train many small models and evaluate each on many sets.
Both are resumable through the two pieces here:

* :func:`train_or_reuse` / :func:`train_short`: a training run in its own ``workdir`` is
  reused when it finished with the same config, resumed when it was interrupted, and
  restarted when the config changed;
* :class:`ResultCache`: computed cells (an evaluation, a cost row) keyed by what produced
  them -- :func:`spec_hash` identifies an architecture -- in one JSON file that is written
  atomically after every new cell, so a killed run loses at most the cell in progress.

Where the data lives (benchmark, training sets, weights) is :mod:`visionfw.data.paths`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["train_or_reuse", "train_short", "ResultCache", "spec_hash", "evaluate_on_set", "interrupted"]

# TrainConfig fields that are bookkeeping, not part of what a run learns
_BOOKKEEPING = {
    "workdir",
    "progress",
    "tensorboard",
    "val_every",
    "ckpt_every",
    "log_every",
    "val_data",
    "resume",
    "keep_checkpoints",
}


def train_or_reuse(label: str | None = None, **config: Any) -> tuple[str, bool]:
    """Runs :func:`visionfw.train.train` on ``TrainConfig(**config)`` unless its workdir
    already holds a finished run of the same config.

    Same config (every given field but bookkeeping equals the saved ``config.json``) and
    ``model.keras`` present: reused.  Same config, no model: the interrupted run resumes
    from its checkpoints.  Another config: the old checkpoints (ours) are removed and the
    run starts afresh.

    Args:
      label: the title of the training's progress lines.
      **config: :class:`visionfw.train.TrainConfig` fields, ``workdir`` among them.

    Returns:
      (model.keras path, trained now?).
    """
    from visionfw.train import TrainConfig, train

    workdir = Path(config["workdir"])
    saved = None
    if (workdir / "config.json").is_file():
        try:
            saved = json.loads((workdir / "config.json").read_text())
        except ValueError:
            saved = None
    wanted = {k: v for k, v in config.items() if k not in _BOOKKEEPING}
    same = saved is not None and all(saved.get(k) == json.loads(json.dumps(v)) for k, v in wanted.items())
    if same and (workdir / "model.keras").is_file():
        return str(workdir / "model.keras"), False
    if not same:
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
        (workdir / "model.keras").unlink(missing_ok=True)
    return train(TrainConfig(**config), label=label)["model_path"], True


def train_short(
    model: str,
    scale: int,
    steps: int,
    workdir: str | Path,
    *,
    model_kwargs: dict | None = None,
    train_data: str | Path | None = None,
    seed: int = 0,
    options: dict | None = None,
    progress: bool = False,
    label: str | None = None,
) -> tuple[str, bool]:
    """Trains registry model ``model`` for ``steps`` without validation (or reuses the run, see
    :func:`train_or_reuse`).

    The first Ctrl-C / SIGTERM stops the training with a checkpoint
    (:class:`visionfw.train.TrainingInterrupted`); the next call resumes it.

    Args:
      model: registry name.
      scale: SR factor.
      steps: training steps.
      workdir: the run's folder.
      model_kwargs: the model's hyper-parameters.
      train_data: the training images (None: the embedded photos).
      seed: the training's seed.
      options: more TrainConfig fields (batch_size, lr_patch, log_every...).
      progress: show the trainer's progress bar / lines, titled ``label``.
      label: see ``progress``.

    Returns:
      (model.keras path, trained now?).
    """
    steps = int(steps)
    kwargs = dict(
        model=model,
        scale=int(scale),
        model_kwargs=dict(model_kwargs or {}),
        train_data=str(train_data) if train_data else None,
        val_data=[],
        steps=steps,
        seed=int(seed),
        workdir=str(workdir),
        progress=bool(progress),
        tensorboard=False,
        val_every=0,
        ckpt_every=max(1, min(steps, 500)),
        log_every=max(1, min(100, steps)),
    )
    kwargs.update(options or {})
    return train_or_reuse(label=label, **kwargs)


def spec_hash(spec: dict) -> str:
    """Identifies an architecture.

    Args:
      spec: a spec dict.

    Returns:
      The first 16 hex digits of the sha256 of the spec's canonical JSON.
    """
    from visionfw.zoo.spec_tools import spec_to_json

    text = json.dumps(json.loads(spec_to_json(spec)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultCache:
    """``{key: cell}`` in a JSON file (``{'version', 'cells'}``), written atomically after every
    new cell.  A file of another version, or one that does not parse, is recomputed, not trusted."""

    VERSION = 1

    def __init__(self, path: str | Path | None) -> None:
        """Reads the cache.

        Args:
          path: the JSON file (None: in memory only).
        """
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {"version": self.VERSION, "cells": {}}
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == self.VERSION and isinstance(data.get("cells"), dict):
                    self.data = data
            except (OSError, ValueError):
                pass

    @property
    def cells(self) -> dict[str, Any]:
        """The cached cells by key."""
        return self.data["cells"]

    def get(self, key: str) -> Any:
        """The cell of ``key``, or None when it was not computed yet."""
        return self.cells.get(key)

    def put(self, key: str, value: Any) -> None:
        """Stores a cell and writes the file (atomically).

        Args:
          key: what produced the cell.
          value: the cell, JSON-able.

        Raises:
          TrainingError: the file cannot be written.
        """
        self.cells[key] = value
        if self.path:
            from visionfw.studies.reports import write_json

            write_json(self.path, self.data, indent=1)


def evaluate_on_set(
    run: Any, model: Any, test_set: str, meta: dict, label: str, save_images: str | Path | None = None
) -> dict:
    """One set's result of :func:`visionfw.evaluate.evaluate_model` inside a study.

    Args:
      run: the study's state; its ``scale``, ``protocol``, ``data_dir``, ``progress`` and ``log_every``
        are the evaluation's.
      model: the Keras model.
      test_set: a set name or folder.
      meta: the spec's ``meta`` (``channels``, ``upsampled_input``).
      label: the progress label.
      save_images: where to write the outputs (None: nowhere).

    Returns:
      The set's result dict (means, bicubic baseline, per-image rows).
    """
    from visionfw.evaluate import evaluate_model

    results = evaluate_model(
        model,
        [test_set],
        run.scale,
        protocol=run.protocol,
        data_dir=run.data_dir,
        channels=meta.get("channels"),
        upsampled_input=meta.get("upsampled_input"),
        progress=run.progress,
        log_every=run.log_every,
        progress_label=label,
        save_images=save_images,
    )
    return next(iter(results.values()))


def interrupted(command: str, doing: str, exc: BaseException, finished: str) -> Exception:
    """The :class:`visionfw.train.TrainingInterrupted` that ``compare`` and
    ``rank-datasets`` raise after the first Ctrl-C / SIGTERM.

    Args:
      command: the command's name.
      doing: what was going on.
      exc: the interrupt (a TrainingInterrupted carries the training's step and checkpoint).
      finished: where the partial table is.

    Returns:
      The exception to raise: what was going on, where the table is, and how to go on.
    """
    from visionfw.train import TrainingInterrupted

    step = getattr(exc, "step", None)
    resumes = " and the training resumes from its checkpoint" if getattr(exc, "checkpoint", None) else ""
    return TrainingInterrupted(
        f"{command} interrupted while {doing}{f' at step {step}' if step else ''}; {finished}. Run the same "
        f"command again to finish it: finished cells come from the cache{resumes}.",
        signum=getattr(exc, "signum", 2),
        step=step,
        checkpoint=getattr(exc, "checkpoint", None),
    )
