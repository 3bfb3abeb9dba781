"""The shared training loop: ``train(TrainConfig(...)) -> result dict``.

:mod:`visionfw.train.resolve` fills and checks the config, :mod:`visionfw.train.distribute` builds the
strategy and the compiled step, :class:`Trainer` holds the run's state and runs the loop with its
checkpoints, validation and logs.

Run directory (``workdir``)::

    config.json          resolved config (preset applied) + the preset's source
    train_log.csv        step, loss, lr, time, steps_per_sec, val_<set>_psnr/ssim
    tb/                  TensorBoard scalars and SR sample images
    checkpoints/         ckpt-<step>.npz (last ``keep_checkpoints``) and best.npz
    model.keras          the final float32 model (EMA weights when --ema)

Resume (``resume='auto'``) restores weights, optimizer slots and iterations (so the lr
schedule), EMA weights, the step, the RNG state and the data position (the input
pipeline is deterministic and rebuilt at ``start_step=step``), so a resumed run equals
an uninterrupted one.  With ``deterministic=True`` the weights match bit for bit.

Distribution: ``batch_size`` is the *global* batch.  Every worker builds the same
deterministic global batch and feeds its replicas their slices, so a distributed run
sees exactly the batches of a single-device run; the loss is the global mean and the
lr is kept as is for the same global batch (no linear scaling).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from visionfw.errors import ConfigError, TrainingError
from visionfw.train.config import TrainConfig
from visionfw.train.distribute import build_train_step, distributed_batches, is_chief, make_strategy
from visionfw.train.guards import all_finite
from visionfw.train.loop import TrainingLoop
from visionfw.train.optimizers import make_optimizer
from visionfw.train.resolve import POLICIES, resolve_config
from visionfw.train.workdir import latest_checkpoint, remove_unfinished

__all__ = ["train", "Trainer", "warn_below_bicubic"]


class Trainer(TrainingLoop):
    """Builds everything for a resolved config; :meth:`run` trains.  See the module docstring.

    Args:
        config: A resolved config (:func:`~visionfw.train.resolve.resolve_config`).
        label: The progress bar's title (default ``'train <model> x<scale>'``).

    Raises:
        ConfigError: ``batch_size`` is not divisible by the replicas, or a bad optimizer option.
    """

    def __init__(self, config: TrainConfig, label: str | None = None) -> None:
        import keras

        from visionfw.tasks.base import get_task
        from visionfw.train.schedules import make_schedule

        self.config = config
        c: Any = config  # resolved: the preset's fields are set
        self.label = label
        if c.deterministic:
            tf.config.experimental.enable_op_determinism()
        # before any op: MultiWorkerMirroredStrategy must be created first
        self.strategy = make_strategy(c.distribute, c.num_devices)
        keras.utils.set_random_seed(int(c.seed))
        self.chief = is_chief(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if c.batch_size % self.replicas:
            raise ConfigError(
                f"batch_size={c.batch_size} must be divisible by the {self.replicas} replicas (it is the global batch)."
            )
        self.task = get_task(c.task)(c)
        self.policy = POLICIES[c.mixed_precision]
        self.schedule = make_schedule(c.schedule, float(c.lr), **(c.schedule_kwargs or {}))
        # the optimizer clips per replica before the all-reduce; with several replicas the step
        # clips the reduced gradient so the result equals the single-device one
        self.own_clip = bool(c.clipnorm) and self.replicas > 1
        with self.strategy.scope():
            self._build_training_state()
        self.rng = tf.random.Generator.from_seed(int(c.seed))
        self.task.rng = self.rng
        # a float32 twin for validation and export (mixed precision / EMA weights go here)
        self.eval_model = self.task.build_model(None) if (self.policy or c.ema) else None
        self.step = 0
        self.best_psnr, self.best_step = -math.inf, None
        self.elapsed_before = 0.0
        # names this run's checkpoints (kept across resumes): rotation deletes only those
        self.run_id = uuid.uuid4().hex
        self.dataset = None

    def _build_training_state(self):
        """The model, optimizer, EMA shadow weights, patch sampler and loss accumulators (in the
        strategy's scope)."""
        import keras

        c = self.config
        self.model = self.task.build_model(self.policy)
        opt = make_optimizer(
            c.optimizer, self.schedule, None if self.own_clip else c.clipnorm, **(c.optimizer_kwargs or {})
        )
        if c.mixed_precision == "float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        self.optimizer = opt
        self.optimizer.build(self.model.trainable_variables)
        self.task.build_training_state(self.model, self.schedule)  # e.g. a GAN's discriminator
        self.ema_vars = []
        if c.ema:
            self.ema_vars = [
                tf.Variable(v.value if hasattr(v, "value") else v, trainable=False, name=f"ema_{i}")
                for i, v in enumerate(self.model.trainable_variables)
            ]
        self.pool = self.sampler = self.bicubic_fn = None
        if c.sampler:
            self.pool, self.sampler, self.bicubic_fn = self.task.make_patch_source(
                c.sampler, c.pool_size, **(c.sampler_kwargs or {})
            )
        self.loss_sum = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="loss_sum")
        self.loss_count = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="loss_count")
        # extra scalars a task reports (Task.metric_names), averaged between log points
        self.metric_sums = {
            name: tf.Variable(0.0, trainable=False, dtype=tf.float32, name=f"sum_{name}")
            for name in getattr(self.task, "metric_names", ())
        }

    # -- state ---------------------------------------------------------------------------
    def state_groups(self) -> dict[str, list]:
        """The run's state variables by group (what a checkpoint holds).

        Returns:
            ``{group: [variables]}`` for model, optimizer, ema, rng, sampler and task.
        """
        return {
            "model": list(self.model.weights),
            "optimizer": list(self.optimizer.variables),
            "ema": list(self.ema_vars),
            "rng": [self.rng.state],
            "sampler": list(self.sampler.variables) if self.sampler is not None else [],
            "task": list(self.task.state_variables()),
        }

    def state_is_finite(self, groups: dict[str, list]) -> bool:
        """Whether every float variable of ``groups`` (:meth:`state_groups`) is finite."""
        return all_finite([v.numpy() for g in groups.values() for v in g])

    def _export_weights(self):
        """Weights of the model to validate / save: EMA shadow values when EMA is on."""
        weights = [np.asarray(w.numpy()) for w in self.model.weights]
        if self.ema_vars:
            trainable_ids = {id(v): i for i, v in enumerate(self.model.trainable_variables)}
            ema = [np.asarray(v.numpy()) for v in self.ema_vars]
            for j, w in enumerate(self.model.weights):
                i = trainable_ids.get(id(w))
                if i is not None:
                    weights[j] = ema[i]
        return weights

    def export_model(self) -> Any:
        """The model to validate and save.

        Returns:
            The float32 twin holding the current (EMA when on) weights, or the trained model itself
            when it is float32 without EMA.
        """
        if self.eval_model is None:
            return self.model
        self.eval_model.set_weights(self._export_weights())
        return self.eval_model

    # -- data and the compiled step -------------------------------------------------------
    def make_iterator(self, start_step: int) -> Iterator | None:
        """The iterator the compiled step reads its batches from.

        Args:
            start_step: The step the data starts at (the deterministic pipeline skips to it).

        Returns:
            A (distributed) iterator, or None when a patch sampler draws the batches in the step.
        """
        if self.sampler is not None:
            return None
        if self.replicas == 1 and self.config.distribute is None:
            self.dataset = self.task.make_dataset(start_step)
            return iter(self.dataset)
        return distributed_batches(
            self.strategy, lambda: self.task.make_dataset(start_step), int(self.config.batch_size)
        )

    def build_step(self) -> Callable:
        """The compiled step ``step(iterator) -> global mean loss`` (a tf.function)."""
        return build_train_step(self)

    # -- resume --------------------------------------------------------------------------
    def maybe_resume(self, manager: Any) -> str | None:
        """Restores the run's state from a checkpoint as ``config.resume`` says.

        Args:
            manager: The run's :class:`~visionfw.train.checkpoint.CheckpointManager`.

        Returns:
            The checkpoint resumed from, or None (a new run).

        Raises:
            TrainingError: The checkpoint is missing or was written for another model or task.
        """
        from visionfw.train.checkpoint import restore_state

        c = self.config
        path = None
        if c.resume == "auto":
            # a damaged newest checkpoint is set aside (renamed .corrupt) for the newest intact one
            path, loaded = manager.newest_intact(self._verified_state)
        elif c.resume != "never":
            path = c.resume
            if not os.path.exists(path):
                raise TrainingError(f"resume={path!r}: no such checkpoint file.")
            loaded = self._verified_state(path)
        if path is None:
            return None
        arrays, meta = loaded
        restore_state(path, self.state_groups(), arrays)
        self.run_id = meta.get("run_id") or self.run_id
        self.step = int(meta["step"])
        best = meta.get("best_psnr")
        self.best_psnr = -math.inf if best is None else float(best)
        self.best_step = meta.get("best_step")
        self.elapsed_before = float(meta.get("elapsed", 0.0))
        return path

    def _verified_state(self, path):
        """``(arrays, meta)`` of checkpoint ``path``, checked: zip CRCs and finite values
        (CorruptCheckpointError), written for this run's model and task (TrainingError)."""
        from visionfw.train.checkpoint import check_finite, load_state

        c = self.config
        arrays, meta = load_state(path)
        check_finite(path, arrays)
        saved = meta.get("config", {})
        for key in ("model", "scale", "batch_size", "task", "model_kwargs"):
            if key in saved and saved[key] != getattr(c, key):
                raise TrainingError(
                    f"checkpoint {path!r} was written with {key}={saved[key]!r}, this run "
                    f"has {key}={getattr(c, key)!r}; use another workdir or resume=never."
                )
        return arrays, meta

    def checkpoint_meta(self, elapsed: float) -> dict[str, Any]:
        """The meta a checkpoint of this step holds (step, best PSNR, elapsed time, config)."""
        return {
            "step": int(self.step),
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "elapsed": float(elapsed),
            "config": json.loads(self.config.to_json()),
        }

    # -- the run -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Trains to ``config.steps``; see :func:`train` for the result and the errors.

        Returns:
            The result dict of :func:`train`.
        """
        workdir = self.config.workdir
        created = not os.path.exists(workdir)
        with self._hold_workdir():
            try:
                return self.run_loop()
            except BaseException:
                # a run that fails before its first checkpoint leaves no empty run directory behind
                if created and self.chief:
                    remove_unfinished(workdir)
                raise

    @contextlib.contextmanager
    def _hold_workdir(self):
        """The run's exclusive lock on its workdir (chief only: a second run stops here, before
        writing anything), and one-line errors for a workdir that cannot be written."""
        from visionfw.train.workdir import WRITE_ERRNOS, lock_workdir, write_error

        workdir = self.config.workdir
        with lock_workdir(workdir) if self.chief else contextlib.nullcontext():
            try:
                yield
            except OSError as exc:
                if exc.errno not in WRITE_ERRNOS:
                    raise
                raise write_error(exc.filename or workdir, exc, latest_checkpoint(workdir)) from None


def train(config: TrainConfig, label: str | None = None) -> dict[str, Any]:
    """Trains ``config``; returns the result dict (final metrics, paths).

    A run that fails before its first checkpoint removes the run directory it created.

    Args:
        config: The run's options (``None`` fields come from the model's preset).
        label: The progress bar's title (default ``'train <model> x<scale>'``).

    Returns:
        ``workdir``, ``model_path``, ``steps``, ``replicas``, ``resumed_from``, ``already_complete``
        (True, and nothing trained, when the run's checkpoint is already at ``steps``),
        ``final_loss``, ``val`` (per validation set), ``protocol``, ``val_psnr``, ``best_psnr``,
        ``best_step``, ``time_s`` and ``steps_per_sec``.

    Raises:
        TrainingError: A non-finite loss (the last good checkpoint is kept) or an unwritable workdir.
        TrainingInterrupted: After the first SIGINT/SIGTERM (a checkpoint of the step reached is
            written).
        DataError: A validation set is missing.
        ConfigError: Bad options.
    """
    import keras

    resolved = resolve_config(config)
    previous_policy = keras.config.dtype_policy()
    try:
        trainer = Trainer(resolved, label=label)
        result = trainer.run()
    finally:
        keras.config.set_dtype_policy(previous_policy)
    warn_below_bicubic(resolved, result)
    return result


def warn_below_bicubic(config: TrainConfig, result: dict[str, Any]) -> None:
    """A warning when the final validation is below bicubic: the run learned less than a fixed
    interpolation, which a short budget, the default recipe or the architecture can cause.

    Args:
        config: The resolved config of the run.
        result: What :func:`train` returned.
    """
    import warnings

    from visionfw.train.presets import USER_DEFAULT

    for name, r in (result.get("val") or {}).items():
        gain = r.get("psnr", math.nan) - r.get("bicubic_psnr", math.nan)
        if not gain < 0:
            continue
        if config.preset_source == USER_DEFAULT["source"]:
            advice = (
                "with the default recipe of a model without a family recipe: more steps, a nonlinearity "
                "between its convolutions, a global residual (input + network, as VDSR) or "
                "register_model(..., family='<zoo family>') for that family's recipe usually help"
            )
        else:
            advice = "with its family's recipe: a longer run (steps) usually helps"
        warnings.warn(
            f"model {config.model!r} ended {gain:+.2f} dB against bicubic on {name} after "
            f"{result['steps']} steps {advice}.",
            stacklevel=3,
        )
