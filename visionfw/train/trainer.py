"""The shared training loop: ``train(TrainConfig(...)) -> result dict``.

One compiled step serves every task and every strategy: ``strategy.run(replica_step)``
inside a ``tf.function``, a Keras 3 optimizer applying the gradients in the replica
function (Keras ``fit`` does not work under MultiWorkerMirroredStrategy).

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
import csv
import dataclasses
import io
import json
import math
import os
import time
import uuid

import numpy as np
import tensorflow as tf

from visionfw.data.embedded import HELDOUT
from visionfw.errors import ConfigError, TrainingError, VisionFWError
from visionfw.train.config import TrainConfig

__all__ = ["TrainConfig", "resolve_config", "train", "Trainer", "TrainingInterrupted"]

# seconds slept after every step: a test hook (kill a run between checkpoints), not a user option
STEP_DELAY_ENV = "VISIONFW_TEST_STEP_DELAY"
# val_data: 'auto' is Set5 when it is found, else the held-out embedded photos (HELDOUT)
AUTO, AUTO_BENCHMARK = "auto", "Set5"
_POLICIES = {None: None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_DISTRIBUTE = (None, "mirrored", "multi_worker")


def _is_y_model(config):
    from visionfw.tasks.base import model_spec, spec_channels

    return spec_channels(model_spec(config)) == "y"


def model_stem(model):
    """A name for ``model`` in paths: the registry name, or the function of ``file.py:function``."""
    from visionfw.loading import is_model_reference

    return model.rsplit(":", 1)[1] if is_model_reference(model) else model


def _resolve_val_data(c):
    """``val_data`` with ``'auto'`` replaced: Set5 when it is on the data search path, else the
    held-out embedded photos (when training on the embedded photos), else nothing.  Tasks
    without a validation (e.g. colorize) get nothing."""
    from visionfw.tasks.base import Task, get_task

    names = list(c.val_data or [])
    if AUTO not in names:
        return names
    picked = []
    if get_task(c.task).validate is not Task.validate:
        from visionfw.evaluate import resolve_eval_set

        try:
            resolve_eval_set(AUTO_BENCHMARK, c.data_dir)
            picked = [AUTO_BENCHMARK]
        except VisionFWError:
            picked = [HELDOUT] if c.train_data is None else []
    out = []
    for name in names:
        for n in picked if name == AUTO else [name]:
            if n not in out:
                out.append(n)
    return out


def describe_val_data(config):
    """One line on what a resolved config validates on (the quick start says it)."""
    from visionfw.data.embedded import EMBEDDED_HELDOUT

    if not config.val_data:
        return "no validation (val_data is empty)"
    parts = []
    for name in config.val_data:
        if name == HELDOUT:
            parts.append(
                f"{HELDOUT} ({', '.join(EMBEDDED_HELDOUT)}: photos held out of the embedded training "
                "set; benchmark sets such as Set5 are used when found: --data_dir=DIR or $VISIONFW_DATA)"
            )
        else:
            parts.append(name)
    return "validating on " + ", ".join(parts)


def resolve_config(config):
    """A copy of ``config`` with preset values for its ``None`` fields and checked options.  Imports
    ``config.imports`` first: they may register the model or its layers."""
    from visionfw.loading import import_modules
    from visionfw.train.presets import preset_for_model

    c = dataclasses.replace(config)
    c.scale = int(c.scale)
    import_modules(c.imports)
    preset = preset_for_model(c.model, c.scale)
    for field in ("loss", "lr", "schedule", "optimizer", "batch_size", "lr_patch", "clipnorm"):
        if getattr(c, field) is None and field in preset:
            setattr(c, field, preset[field])
    if c.schedule_kwargs is None:
        c.schedule_kwargs = dict(preset.get("schedule_kwargs", {})) if c.schedule == preset["schedule"] else {}
        if "warmup" in c.schedule_kwargs and isinstance(c.steps, (int, np.integer)):
            # a preset's warm-up is sized for its demo budget: at most a tenth of a shorter run
            c.schedule_kwargs["warmup"] = min(int(c.schedule_kwargs["warmup"]), max(0, int(c.steps) // 10))
    if c.optimizer_kwargs is None:
        c.optimizer_kwargs = dict(preset.get("optimizer_kwargs", {})) if c.optimizer == preset["optimizer"] else {}
    if c.schedule == "cosine":
        c.schedule_kwargs.setdefault("total_steps", int(c.steps))
    c.preset_source, c.preset_notes = preset.get("source", ""), preset.get("notes", "")
    if c.workdir is None:
        c.workdir = os.path.join("runs", f"{model_stem(c.model)}_x{c.scale}")
    if c.protocol is None:
        c.protocol = "srcnn" if _is_y_model(c) else "edsr"
    if isinstance(c.val_data, str):
        c.val_data = [s for s in c.val_data.split(",") if s]
    c.val_data = _resolve_val_data(c)
    if HELDOUT in c.val_data and c.train_data is None:
        # the held-out photos must not be trained on
        c.data_options = dict(c.data_options or {}, embedded_holdout=True)
    # checks that name the flag and the fix
    for name in ("steps", "batch_size", "lr_patch", "log_every", "keep_checkpoints"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name}={v!r} must be a positive integer.")
    if c.max_image_pixels is not None and (
        isinstance(c.max_image_pixels, bool)
        or not isinstance(c.max_image_pixels, (int, np.integer))
        or c.max_image_pixels < 1
    ):
        raise ConfigError(f"max_image_pixels={c.max_image_pixels!r} must be a positive integer (or unset).")
    for name in ("val_every", "ckpt_every"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"{name}={v!r} must be an integer >= 0 (0: only at the end).")
    if not (isinstance(c.lr, (int, float)) and c.lr > 0):
        raise ConfigError(f"lr={c.lr!r} must be a positive number.")
    if c.mixed_precision not in _POLICIES and c.mixed_precision != "auto":
        raise ConfigError(f"mixed_precision={c.mixed_precision!r}: use auto, bfloat16, float16 or leave it unset.")
    from visionfw.train.precision import resolve_mixed_precision

    if c.mixed_precision == "auto" or not c.precision_note:  # a resolved config keeps its reason
        c.mixed_precision, c.precision_note = resolve_mixed_precision(c.mixed_precision)
    if c.distribute not in _DISTRIBUTE:
        raise ConfigError(f"distribute={c.distribute!r}: use mirrored or multi_worker (or leave it unset).")
    if c.ema is not None and not 0.0 < float(c.ema) < 1.0:
        raise ConfigError(f"ema={c.ema!r} must be a decay in (0, 1), e.g. 0.999.")
    if c.protocol not in ("edsr", "srcnn"):
        raise ConfigError(f"protocol={c.protocol!r}: use edsr or srcnn.")
    if not (c.resume in ("auto", "never") or str(c.resume).endswith(".npz")):
        raise ConfigError(f"resume={c.resume!r}: use auto, never or the path of a checkpoint .npz.")
    if c.sampler is None and preset.get("sampler"):  # a recipe's sampler (BSR's PIC); 'pipeline' opts out
        c.sampler = preset["sampler"]
        c.sampler_kwargs = {**preset.get("sampler_kwargs", {}), **(c.sampler_kwargs or {})}
    if c.sampler in ("", "pipeline"):
        c.sampler = None
    if c.degradation:
        from visionfw.degradation import check_fits

        # a bad spec, or a blur wider than the patch, fails here, before anything is written or traced
        check_fits(c.degradation, int(c.scale or 1), int(c.lr_patch) * int(c.scale or 1))
        if c.sampler is not None or (c.lr_source or "bicubic") != "bicubic":
            raise ConfigError(
                "degradation makes the LR images from the HR patches of the input pipeline: it "
                "cannot be combined with --sampler or --lr_source (use --sampler=pipeline)."
            )
    elif c.degradation_pool:
        raise ConfigError("degradation_pool needs --degradation (e.g. --degradation=realsr).")
    if c.sampler is not None:
        from visionfw.data.sampling import SAMPLERS

        if c.sampler not in SAMPLERS:
            raise ConfigError(
                f"sampler={c.sampler!r}: use one of {sorted(SAMPLERS)} or leave it unset "
                "(the input pipeline's uniform patches)."
            )
        if isinstance(c.pool_size, bool) or not isinstance(c.pool_size, (int, np.integer)) or c.pool_size < 1:
            raise ConfigError(f"pool_size={c.pool_size!r} must be a positive integer.")
    return c


# ----------------------------------------------------------------------------- helpers


def make_optimizer(name, schedule, clipnorm=None, **kwargs):
    import keras

    makers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
    if name not in makers:
        raise ConfigError(f"optimizer={name!r} is unknown; use one of {sorted(makers)}.")
    if clipnorm:
        kwargs["global_clipnorm"] = float(clipnorm)
    try:
        return makers[name](learning_rate=schedule, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer={name}: bad optimizer_kwargs {kwargs} ({exc}).") from None


def make_strategy(kind, num_devices=None):
    if kind is None:
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = None
        if num_devices:
            gpus = tf.config.list_logical_devices("GPU")
            pool = gpus if gpus else tf.config.list_logical_devices("CPU")
            if len(pool) < num_devices:
                raise ConfigError(f"num_devices={num_devices} but only {len(pool)} devices are visible.")
            devices = [d.name for d in pool[:num_devices]]
        if devices is None and not tf.config.list_logical_devices("GPU"):
            cpus = tf.config.list_logical_devices("CPU")
            devices = [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices=devices)
    if "TF_CONFIG" not in os.environ:
        raise ConfigError(
            "distribute=multi_worker needs the TF_CONFIG environment variable "
            "(cluster spec and this worker's task); see tf.distribute docs."
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def _all_finite(arrays):
    return all(np.all(np.isfinite(a)) for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


class _CsvLog:
    """train_log.csv with fixed columns; rows after the resume step are dropped."""

    def __init__(self, path, columns, resume_step, enabled):
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
        from visionfw.train.checkpoint import atomic_write_bytes

        atomic_write_bytes(path, buf.getvalue().encode())

    def write(self, row):
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: ("" if v is None else v) for k, v in row.items()}
            )


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Builds everything for a resolved config; :meth:`run` trains.  See the module docstring."""

    def __init__(self, config, label=None):
        import keras

        from visionfw.tasks.base import get_task
        from visionfw.train.schedules import make_schedule

        self.config = c = config
        self.label = label
        if c.deterministic:
            tf.config.experimental.enable_op_determinism()
        # before any op: MultiWorkerMirroredStrategy must be created first
        self.strategy = make_strategy(c.distribute, c.num_devices)
        keras.utils.set_random_seed(int(c.seed))
        self.chief = _is_chief(self.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if c.batch_size % self.replicas:
            raise ConfigError(
                f"batch_size={c.batch_size} must be divisible by the {self.replicas} replicas (it is the global batch)."
            )
        self.task = get_task(c.task)(c)
        self.policy = _POLICIES[c.mixed_precision]
        self.schedule = make_schedule(c.schedule, float(c.lr), **(c.schedule_kwargs or {}))
        # the optimizer clips per replica before the all-reduce; with several replicas we clip
        # the reduced gradient ourselves so the result equals the single-device one
        self._own_clip = bool(c.clipnorm) and self.replicas > 1
        with self.strategy.scope():
            self.model = self.task.build_model(self.policy)
            opt = make_optimizer(
                c.optimizer, self.schedule, None if self._own_clip else c.clipnorm, **(c.optimizer_kwargs or {})
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
        self.rng = tf.random.Generator.from_seed(int(c.seed))
        self.task.rng = self.rng
        # a float32 twin for validation and export (mixed precision / EMA weights go here)
        self.eval_model = self.task.build_model(None) if (self.policy or c.ema) else None
        self.step = 0
        self.best_psnr, self.best_step = -math.inf, None
        self.elapsed_before = 0.0
        # names this run's checkpoints (kept across resumes): rotation deletes only those
        self.run_id = uuid.uuid4().hex

    # -- state ---------------------------------------------------------------------------
    def state_groups(self):
        return {
            "model": list(self.model.weights),
            "optimizer": list(self.optimizer.variables),
            "ema": list(self.ema_vars),
            "rng": [self.rng.state],
            "sampler": list(self.sampler.variables) if self.sampler is not None else [],
            "task": list(self.task.state_variables()),
        }

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

    def export_model(self):
        if self.eval_model is None:
            return self.model
        self.eval_model.set_weights(self._export_weights())
        return self.eval_model

    # -- data ----------------------------------------------------------------------------
    def make_iterator(self, start_step):
        if self.sampler is not None:
            return None  # batches come from the pool inside the step
        if self.replicas == 1 and self.config.distribute is None:
            self._dataset = self.task.make_dataset(start_step)
            return iter(self._dataset)
        global_batch, n = int(self.config.batch_size), self.replicas

        def dataset_fn(ctx):
            per = global_batch // n
            local = n // ctx.num_input_pipelines
            first = ctx.input_pipeline_id * local * per

            def split(*batch):
                parts = tuple(
                    tf.reshape(t[first : first + local * per], tf.concat([[local, per], tf.shape(t)[1:]], 0))
                    for t in batch
                )
                return tf.data.Dataset.from_tensor_slices(parts)

            ds = self.task.make_dataset(start_step).flat_map(split)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            options.deterministic = True
            return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    # -- the compiled step ------------------------------------------------------------
    def build_step(self):
        """The compiled step ``step(iterator) -> global mean loss`` (a tf.function)."""
        c, task, model, opt = self.config, self.task, self.model, self.optimizer
        n = float(self.replicas)
        own_clip, clipnorm = self._own_clip, c.clipnorm
        metric_names = tuple(self.metric_sums)

        def model_update(batch):
            with tf.GradientTape() as tape:
                loss, metrics = task.compute_loss(model, batch, True)
                # each replica's mean over its slice / n sums to the global mean
                scaled = opt.scale_loss(loss / n)
            grads = tape.gradient(scaled, model.trainable_variables)
            if own_clip:
                ctx = tf.distribute.get_replica_context()
                grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
                grads, _ = tf.clip_by_global_norm(grads, clipnorm)
                grads = [g / n for g in grads]  # the optimizer sums the replicas again
            opt.apply(grads, model.trainable_variables)
            return loss, metrics

        def core_step(*batch):
            if task.update_step is not None:  # the task applies its own gradients (a GAN's two networks)
                loss, metrics = task.update_step(model, opt, batch, n)
            else:
                loss, metrics = model_update(batch)
            extra = {k: tf.cast(metrics[k], tf.float32) for k in metric_names}
            return loss, extra, metrics.get("_outputs")

        if c.jit_compile:
            core_step = tf.function(core_step, jit_compile=True)
        pool, sampler, bicubic_fn = self.pool, self.sampler, self.bicubic_fn
        learns = sampler is not None and type(sampler).update is not _base_update()
        per_replica_batch = int(c.batch_size) // self.replicas

        def replica_step(*batch):
            if pool is not None:
                # the sampler draws this replica's slice of the global batch (no host round trip)
                indices = sampler.draw(per_replica_batch)
                batch = pool.gather(indices)
            loss, extra, outputs = core_step(*batch)
            if learns:
                from visionfw.data.sampling import per_patch_psnr_gain

                # gains of the forward pass the step trained on (before its update)
                gains = per_patch_psnr_gain(outputs, batch[1], bicubic_fn(batch[0]))
                sampler.update(indices, gains)
            task.after_step(model, batch, outputs)
            return loss, extra

        ema_vars, trainable = self.ema_vars, model.trainable_variables
        decay = float(c.ema) if c.ema else None

        @tf.function
        def train_step(iterator):
            batch = next(iterator) if iterator is not None else ()
            per_replica_loss, per_replica_extra = self.strategy.run(replica_step, args=tuple(batch))
            loss = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_loss, axis=None)
            for name in metric_names:
                self.metric_sums[name].assign_add(
                    self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_extra[name], axis=None)
                )
            self.loss_sum.assign_add(loss)
            self.loss_count.assign_add(1.0)
            if decay is not None:
                for e, v in zip(ema_vars, trainable):
                    e.assign(decay * e + (1.0 - decay) * tf.cast(v, e.dtype))
            return loss

        return train_step

    # -- resume --------------------------------------------------------------------------
    def maybe_resume(self, manager):
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

    def _meta(self, elapsed):
        return {
            "step": int(self.step),
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "elapsed": float(elapsed),
            "config": json.loads(self.config.to_json()),
        }

    # -- the loop ------------------------------------------------------------------------
    def run(self):
        """Trains to ``config.steps``; see :func:`train` for the result and the errors."""
        workdir = self.config.workdir
        created = not os.path.exists(workdir)
        with self._hold_workdir():
            try:
                return self._run()
            except BaseException:
                # a run that fails before its first checkpoint leaves no empty run directory behind
                if created and self.chief:
                    _remove_unfinished(workdir)
                raise

    @contextlib.contextmanager
    def _hold_workdir(self):
        """The run's exclusive lock on its workdir (chief only: a second run stops here, before
        writing anything), and one-line errors for a workdir that cannot be written."""
        from visionfw.train.workdir import WRITE_ERRNOS, lock_workdir, write_error

        workdir = self.config.workdir
        with lock_workdir(workdir) if self.chief else _null():
            try:
                yield
            except OSError as exc:
                if exc.errno not in WRITE_ERRNOS:
                    raise
                raise write_error(exc.filename or workdir, exc, _latest_checkpoint(workdir)) from None

    def _check_val_data(self):
        """Every validation set exists, before anything is written (a missing Set5 fails now,
        not at the first validation)."""
        from visionfw.evaluate import resolve_eval_set

        for name in self.config.val_data:
            if name == HELDOUT:
                continue
            try:
                resolve_eval_set(name, self.config.data_dir)
            except VisionFWError as exc:
                raise type(exc)(
                    f"{exc} Or validate on other images: val_data={HELDOUT} (photos held out of "
                    "the embedded training set), or val_data= (no validation)."
                ) from None

    def _run(self):
        from visionfw.console import Progress
        from visionfw.train.checkpoint import CheckpointManager, atomic_write_bytes

        c = self.config
        self._check_val_data()
        os.makedirs(c.workdir, exist_ok=True)
        manager = CheckpointManager(os.path.join(c.workdir, "checkpoints"), keep=c.keep_checkpoints)
        if self.chief:
            _remove_stale_tmp(c.workdir, manager)
        resumed_from = self.maybe_resume(manager)
        manager.run_id = self.run_id
        start_step = self.step
        if resumed_from is not None and start_step >= c.steps:
            return self._already_complete(resumed_from)
        if self.chief:
            atomic_write_bytes(os.path.join(c.workdir, "config.json"), c.to_json().encode())
        columns = ["step", "loss", "lr", "time", "steps_per_sec"] + [f"train_{m}" for m in self.metric_sums]
        for name in c.val_data:
            columns += [f"val_{name}_psnr", f"val_{name}_ssim"]
        log = _CsvLog(os.path.join(c.workdir, "train_log.csv"), columns, self.step, self.chief)
        writer = None
        if c.tensorboard and self.chief:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is None:
                import warnings

                warnings.warn(
                    "TensorBoard is not installed, so no summaries are written; "
                    "`pip install tensorboard` (or pass --notensorboard).",
                    stacklevel=2,
                )
            else:
                writer = tf.summary.create_file_writer(os.path.join(c.workdir, "tb"))

        # crash-recovery tests slow the loop down so they can kill it between checkpoints
        step_delay = float(os.environ.get(STEP_DELAY_ENV) or 0.0)
        iterator = self.make_iterator(start_step)
        sample_batch = None
        if writer is not None and c.val_data:
            # a fixed batch for the TensorBoard SR samples (the run's first batch)
            if self.pool is not None:
                sample_batch = self.pool.gather(tf.range(3))
            else:
                ds = getattr(self, "_dataset", None) or self.task.make_dataset(start_step)
                sample_batch = next(iter(ds.take(1)))
        train_step = self.build_step()
        progress = Progress(
            c.steps,
            self.label or f"train {model_stem(c.model)} x{c.scale}",
            initial=start_step,
            enabled=bool(c.progress and self.chief),
        )
        budget = f"steps {start_step} -> {c.steps} (resumed)" if start_step else f"{c.steps} steps"
        data = "the embedded photos" if c.train_data is None else os.path.basename(os.path.normpath(c.train_data))
        progress.write(f"{progress.desc}: {budget} on {data}, batch {c.batch_size}; {describe_val_data(c)}")
        t0 = time.perf_counter()
        last_t, last_step = t0, start_step
        last_val = {}
        nonfinite = None
        loss = None
        stop = _StopRequest()
        growth = _LossGrowthWatch(c.lr)
        try:
            with stop, writer.as_default() if writer is not None else _null():
                while self.step < c.steps:
                    self.task.begin_step(self.step)
                    step_loss = train_step(iterator)
                    self.step += 1
                    if step_delay:
                        time.sleep(step_delay)
                    s = self.step
                    if stop.signum is not None:
                        break
                    if s == start_step + 1:
                        growth.set_start(s, step_loss)  # one read in the run, not one per step
                        progress.update(s)
                        progress.restart_clock()  # the first step traced the graph: not a rate to go by
                    at_end = s >= c.steps
                    do_log = at_end or s % c.log_every == 0
                    do_val = bool(c.val_data) and (at_end or (c.val_every and s % c.val_every == 0))
                    do_ckpt = at_end or (c.ckpt_every and s % c.ckpt_every == 0)
                    if not (do_log or do_val or do_ckpt):
                        progress.update(s)
                        continue
                    # host sync point: read the device-side loss accumulator
                    count = float(self.loss_count.numpy())
                    loss = float(self.loss_sum.numpy()) / max(count, 1.0)
                    self.loss_sum.assign(0.0)
                    self.loss_count.assign(0.0)
                    extras = {}
                    for name, var in self.metric_sums.items():
                        extras[f"train_{name}"] = float(var.numpy()) / max(count, 1.0)
                        var.assign(0.0)
                    now = time.perf_counter()
                    rate = (s - last_step) / max(now - last_t, 1e-9)
                    last_t, last_step = now, s
                    lr_now = float(self.schedule(max(s - 1, 0)))
                    elapsed = self.elapsed_before + now - t0
                    if not math.isfinite(loss):
                        nonfinite = (s, loss)
                        log.write(
                            {
                                "step": s,
                                "loss": loss,
                                "lr": f"{lr_now:.6g}",
                                "time": f"{elapsed:.2f}",
                                "steps_per_sec": f"{rate:.3f}",
                            }
                        )
                        break
                    growth.check(s, loss)
                    stopped = self.task.check_loss(s, loss)
                    if stopped:
                        nonfinite = (s, loss, stopped)
                        log.write(
                            {
                                "step": s,
                                "loss": f"{loss:.6g}",
                                "lr": f"{lr_now:.6g}",
                                "time": f"{elapsed:.2f}",
                                "steps_per_sec": f"{rate:.3f}",
                            }
                        )
                        break
                    row = {
                        "step": s,
                        "loss": f"{loss:.6g}",
                        "lr": f"{lr_now:.6g}",
                        "time": f"{elapsed:.2f}",
                        "steps_per_sec": f"{rate:.3f}",
                    }
                    row.update({k: f"{v:.6g}" for k, v in extras.items()})
                    if writer is not None:
                        for k, v in extras.items():
                            tf.summary.scalar(f"train/{k[len('train_') :]}", v, step=s)
                        tf.summary.scalar("train/loss", loss, step=s)
                        tf.summary.scalar("train/lr", lr_now, step=s)
                        tf.summary.scalar("train/steps_per_sec", rate, step=s)
                    progress.update(s, line=do_log and not at_end, loss=f"{loss:.4g}")
                    if do_val:
                        last_val = self._validate(s, row, writer, sample_batch)
                        first = c.val_data[0]
                        if first in last_val:
                            progress.update(s, **{f"{first}": f"{last_val[first]['psnr']:.2f} dB"})
                    log.write(row)
                    if do_ckpt and self.chief:
                        groups = self.state_groups()
                        values = [v.numpy() for g in groups.values() for v in g]
                        if not _all_finite(values):
                            nonfinite = (s, float("nan"))
                            break
                        manager.save(s, groups, self._meta(elapsed))
                    if stop.signum is not None:
                        break
                if writer is not None:
                    writer.flush()
                if stop.signum is not None and nonfinite is None and self.step < c.steps:
                    # the first Ctrl-C / SIGTERM: keep this step's state, then stop (one that came
                    # during the last step's validation lets the run finish: it is written next)
                    path, kept = None, "checkpoint {} written"
                    if self.chief:
                        elapsed = self.elapsed_before + time.perf_counter() - t0
                        groups = self.state_groups()
                        if os.path.exists(manager.path_for(self.step)):
                            path = manager.path_for(self.step)
                        elif _all_finite([v.numpy() for g in groups.values() for v in g]):
                            path = manager.save(self.step, groups, self._meta(elapsed))
                        else:  # diverged since the last log point: keep the last good checkpoint
                            path, kept = manager.latest(), "weights not finite, last good checkpoint {} kept"
                    raise TrainingInterrupted(
                        f"interrupted at step {self.step} of {c.steps}; {kept.format(path)}. To resume, run "
                        "the same command again (resume=auto continues from the last checkpoint).",
                        signum=stop.signum,
                        step=self.step,
                        checkpoint=path,
                    )
        finally:
            progress.close(line=nonfinite is None and stop.signum is None)
        if nonfinite is not None:
            kept = manager.latest()
            where = (
                f"The last good checkpoint {kept} is kept (resume=auto restarts from it)"
                if kept
                else "No checkpoint was written yet"
            )
            if len(nonfinite) == 3:
                raise TrainingError(f"training stopped at step {nonfinite[0]}: {nonfinite[2]} {where}.")
            raise TrainingError(
                f"training diverged: loss {nonfinite[1]} (non-finite) at or before step {nonfinite[0]}. "
                f"{where}; no checkpoint with non-finite weights is written. Lower lr, add clipnorm "
                "or check the training data."
            )
        total_time = self.elapsed_before + time.perf_counter() - t0
        model_path = self._export()
        first = c.val_data[0] if c.val_data else None
        return {
            "workdir": c.workdir,
            "model_path": model_path,
            "steps": int(self.step),
            "replicas": self.replicas,
            "resumed_from": resumed_from,
            "already_complete": False,
            "final_loss": loss if self.step > start_step else None,
            "val": {k: v for k, v in last_val.items() if k != "protocol"},
            "protocol": last_val.get("protocol", ""),
            "val_psnr": last_val.get(first, {}).get("psnr") if first else None,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "time_s": total_time,
            "steps_per_sec": (self.step - start_step) / max(time.perf_counter() - t0, 1e-9),
        }

    def _export(self):
        """Writes ``model.keras`` (the float32 / EMA model) atomically; returns its path."""
        model_path = os.path.join(self.config.workdir, "model.keras")
        if self.chief:
            tmp = os.path.join(self.config.workdir, _MODEL_TMP)
            try:
                self.export_model().save(tmp)
                os.replace(tmp, model_path)
            except BaseException:
                if os.path.exists(tmp):  # no partial file left using the space
                    os.remove(tmp)
                raise
        return model_path

    def _already_complete(self, checkpoint):
        """The result of a run whose checkpoint is already at (or past) ``steps``: nothing is
        trained or validated again; ``model.keras`` is written only if it is missing."""
        c = self.config
        model_path = os.path.join(c.workdir, "model.keras")
        if not os.path.exists(model_path):
            model_path = self._export()
        return {
            "workdir": c.workdir,
            "model_path": model_path,
            "steps": int(self.step),
            "replicas": self.replicas,
            "resumed_from": checkpoint,
            "already_complete": True,
            "final_loss": None,
            "val": {},
            "protocol": "",
            "val_psnr": None,
            "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
            "best_step": self.best_step,
            "time_s": self.elapsed_before,
            "steps_per_sec": 0.0,
        }

    def _validate(self, step, row, writer, sample_batch):
        model = self.export_model()
        results = self.task.validate(model)
        for name in self.config.val_data:
            r = results.get(name)
            if not r:
                continue
            row[f"val_{name}_psnr"] = f"{r['psnr']:.4f}"
            row[f"val_{name}_ssim"] = f"{r['ssim']:.5f}"
            if writer is not None:
                tf.summary.scalar(f"val/{name}_psnr", r["psnr"], step=step)
                tf.summary.scalar(f"val/{name}_ssim", r["ssim"], step=step)
                if math.isfinite(r.get("bicubic_psnr", float("nan"))):
                    tf.summary.scalar(f"val/{name}_gain_over_bicubic", r["psnr"] - r["bicubic_psnr"], step=step)
        if writer is not None and sample_batch is not None:
            for key, images in self.task.sample_images(model, sample_batch).items():
                tf.summary.image(f"samples/{key}", images, step=step, max_outputs=3)
        first = self.config.val_data[0]
        psnr = results.get(first, {}).get("psnr")
        if psnr is not None and math.isfinite(psnr) and psnr > self.best_psnr and self.chief:
            groups = self.state_groups()
            if _all_finite([v.numpy() for g in groups.values() for v in g]):
                self.best_psnr, self.best_step = psnr, step
                manager = _manager_for(self.config)
                manager.save_best(groups, self._meta(0.0))
        return results


def _base_update():
    from visionfw.data.sampling import Sampler

    return Sampler.update


def _manager_for(config):
    from visionfw.train.checkpoint import CheckpointManager

    return CheckpointManager(os.path.join(config.workdir, "checkpoints"), keep=config.keep_checkpoints)


_MODEL_TMP = ".model.tmp.keras"


def _remove_stale_tmp(workdir, manager):
    """Removes the temporary files a killed run left (checkpoints/*.tmp, config.json.tmp, ...);
    called holding the workdir's lock, so no live run is writing them."""
    manager.remove_stale_tmp()
    for name in ("config.json.tmp", "train_log.csv.tmp", _MODEL_TMP):
        try:
            os.remove(os.path.join(workdir, name))
        except OSError:
            pass


def _latest_checkpoint(workdir):
    """The newest ``ckpt-*.npz`` of ``workdir`` or None (no directory is created)."""
    import glob

    found = sorted(glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.npz")))
    return found[-1] if found else None


class _LossGrowthWatch:
    """Warns once when a logged loss is over ``GROWTH`` times the run's first-step loss: a
    divergence that stays finite (``--lr=1e6`` with Adam) would otherwise finish silently.

    It reads the first step's loss once (one host sync in the whole run), then only the
    log-point means the loop fetches anyway, so the steps get no extra host sync."""

    GROWTH = 1000.0

    def __init__(self, lr):
        self.lr, self.start, self.start_step, self.warned = lr, None, None, False

    def set_start(self, step, loss):
        value = float(loss)
        if math.isfinite(value) and value > 0:
            self.start, self.start_step = value, step

    def check(self, step, loss):
        if self.warned or self.start is None or not loss > self.GROWTH * self.start:
            return
        self.warned = True
        import warnings

        warnings.warn(
            f"the training loss grew from {self.start:.4g} at step {self.start_step} to {loss:.4g} at "
            f"step {step} (over x{self.GROWTH:g}): training is diverging; lower --lr (now {self.lr:g}) or "
            "set --clipnorm.",
            stacklevel=3,
        )


def _remove_unfinished(workdir):
    """Removes a run directory that holds nothing to resume from (no checkpoint, no model)."""
    import glob
    import shutil

    if os.path.exists(os.path.join(workdir, "model.keras")):
        return
    if glob.glob(os.path.join(workdir, "checkpoints", "*.npz")):
        return
    shutil.rmtree(workdir, ignore_errors=True)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _StopRequest:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM only records ``signum``: the loop
    checks it after each step, writes a checkpoint and stops.  A second signal stops at once
    (KeyboardInterrupt).  Handlers are installed in the main thread only (Python's rule) and
    restored on exit."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False


class TrainingInterrupted(TrainingError):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint to resume from.

    ``signum``: the signal; ``exit_status``: 128 + signum (the shell's convention); ``step`` and
    ``checkpoint``: where the run stopped (``checkpoint`` is None on non-chief workers).
    """

    def __init__(self, message, signum=2, step=None, checkpoint=None):
        super().__init__(message)
        self.signum, self.step, self.checkpoint = int(signum), step, checkpoint

    @property
    def exit_status(self):
        return 128 + self.signum


def train(config, label=None):
    """Trains ``config`` (a :class:`TrainConfig`); returns the result dict (final metrics, paths).

    ``label``: the progress bar's title (default ``'train <model> x<scale>'``).  The result has
    ``already_complete=True`` (and nothing is trained) when the run's checkpoint is already at
    ``steps``.

    Raises :class:`visionfw.errors.TrainingError` on a non-finite loss (the last good
    checkpoint is kept), :class:`TrainingInterrupted` after the first SIGINT/SIGTERM (a
    checkpoint of the step reached is written), DataError when a validation set is missing and
    ConfigError on bad options.  A run that fails before its first checkpoint removes the run
    directory it created.
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


def warn_below_bicubic(config, result):
    """A warning when the final validation is below bicubic: the run learned less than a fixed
    interpolation, which a short budget, the default recipe or the architecture can cause."""
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
