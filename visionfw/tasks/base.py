"""Training tasks: what a model is, what data it eats, what it minimises, how it is validated.

The trainer (:mod:`visionfw.train.trainer`) owns everything generic -- distribution,
the compiled step, checkpoints, logging -- and asks a :class:`Task` for the rest.  A
new task (e.g. TAD: encoder + decoder, two-part loss) subclasses :class:`Task` and is
made available to ``visionfw train --task=NAME`` with :func:`register_task`.  One patch
source per task: the shared input pipeline (:mod:`visionfw.data.pipeline`, see
:meth:`Task.hr_data_config`) or, with ``--sampler``, the sampler's patch pool.

Hooks the compiled step calls (inside ``strategy.run``, i.e. per replica, in graph):

* ``compute_loss(model, batch, training)`` -> ``(loss, metrics)``: the replica's
  float32 mean loss and a dict of extra scalars.  The keys listed in the class
  attribute ``metric_names`` are averaged over replicas and log steps and logged as
  ``train_<name>`` (CSV and TensorBoard); the key ``'_outputs'`` (the model output)
  is handed to a learning sampler and ``after_step``.
* ``after_step(model, batch, outputs)``: optional, e.g. a sampler update (default no-op).
* ``update_step(model, optimizer, batch, replicas)`` -> ``(loss, metrics)``: optional (default
  ``None``: the trainer differentiates ``compute_loss`` and applies ``optimizer`` to the model).
  A task that trains more than the model (a GAN's generator and discriminator) computes and
  applies every gradient itself, scaling each replica's loss by ``1 / replicas``.

Host-side hooks: ``build_model``, ``data_config``/``make_dataset`` (global batches, a
deterministic function of the start step), ``validate``, ``state_variables`` (extra
state to checkpoint), ``begin_step(step)`` (e.g. turn quantisation on from a step),
``check_loss(step, loss)`` (a message stops the run, e.g. when the loss explodes),
``build_training_state(model, schedule)`` (called once in the strategy's scope after the model
and its optimizer: extra networks and optimizers, e.g. a GAN's discriminator).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from visionfw.errors import ConfigError, DataError, SpecError
from visionfw.registries import Registry, import_package_modules
from visionfw.tasks.options import checked_data_options

__all__ = [
    "Task",
    "SRTask",
    "TASKS",
    "register_task",
    "get_task",
    "hr_of",
    "build_with_policy",
    "model_spec",
]


def model_spec(config):
    """The spec dict of ``config.model`` at ``config.scale`` with ``config.model_kwargs``: a registry
    name, or your own function ``'path/to/file.py:function'`` / ``'package.module:function'`` returning
    a spec dict (see :func:`visionfw.loading.spec_from_reference`; called with ``scale`` when it takes
    one)."""
    from visionfw.loading import is_model_reference, spec_from_reference

    if not is_model_reference(config.model):
        from visionfw.zoo.registry import get_spec

        return get_spec(config.model, scale=int(config.scale), **(config.model_kwargs or {}))
    spec = spec_from_reference(config.model, int(config.scale), config.model_kwargs)
    if not isinstance(spec, dict):
        raise ConfigError(
            f"model={config.model}: the function returned a keras.Model; training builds the model "
            "from a spec dict (a float32 twin, mixed precision), so return one "
            "(visionfw.Graph(...).spec())."
        )
    return spec


def build_with_policy(spec, dtype_policy=None):
    """``build_model(spec)`` under ``dtype_policy`` (e.g. ``'mixed_bfloat16'``; None: float32).

    Under a mixed policy the output head (the last layer with weights and every layer after it)
    computes in float32: a bfloat16 output has a step of 1/256 near 1.0, as coarse as the 8-bit
    image, which cost ESPCN 0.07-0.13 dB on Set5 against float32 training (paired seeds).
    """
    import keras

    from visionfw.zoo.builder import build_model, set_compute_policy

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy or "float32")
    try:
        model = build_model(spec)
    finally:
        keras.config.set_dtype_policy(previous)
    if dtype_policy and dtype_policy != "float32":
        set_compute_policy(model, dtype_policy)  # the float32 head
    return model


def hr_of(batch):
    """The HR images of a batch: the ``(hr,)`` tuples of :meth:`Task.hr_patch_dataset`, an
    ``(lr, hr)`` pair, a dict with ``'hr'``, or the HR tensor itself."""
    if isinstance(batch, dict):
        return batch["hr"]
    if isinstance(batch, (tuple, list)):
        return batch[-1]
    return batch


class Task:
    """Base class; see the module docstring.  ``config`` is a resolved ``TrainConfig``."""

    name: str | None = None
    metric_names: tuple[str, ...] = ()  # extra scalars compute_loss returns, e.g. ('l1', 'latent') for TAD

    def __init__(self, config: Any) -> None:
        """
        Args:
            config: The run's resolved ``TrainConfig``.
        """
        self.config = config
        self.rng = None  # a tf.random.Generator the trainer sets (checkpointed)
        self._spec: dict | None = None

    # -- model -------------------------------------------------------------------------
    def spec(self) -> dict:
        """The model spec dict (:func:`model_spec`: a registry name or your own function, with the
        scale and model_kwargs; the registry decides whether a family takes a scale).

        Returns:
            The spec (built once, then cached).
        """
        if self._spec is None:
            self._spec = model_spec(self.config)
        return self._spec

    def build_model(self, dtype_policy: str | None = None) -> Any:
        """A fresh model of :meth:`spec`.

        Args:
            dtype_policy: A Keras dtype policy, e.g. ``'mixed_bfloat16'`` (None: float32).

        Returns:
            The ``keras.Model``.
        """
        return build_with_policy(self.spec(), dtype_policy)

    @property
    def meta(self) -> dict:
        """The ``meta`` dict of the model's spec."""
        return self.spec().get("meta", {})

    # -- data --------------------------------------------------------------------------
    def make_dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """The training batches (global batches, deterministic in (seed, step)).

        Args:
            start_step: The step the data starts at (a resumed run's step).

        Returns:
            A ``tf.data.Dataset`` of batch tuples, which :meth:`compute_loss` reads.
        """
        raise NotImplementedError

    def hr_data_config(self, hr_patch: int) -> Any:
        """The pipeline config of RGB HR patches, for tasks that make their own model input from
        the HR patch (TAD, colorization): ``config.train_data`` (None: the embedded photos) with
        the run's batch, seed, augmentation and data options.

        Args:
            hr_patch: The HR patch size in pixels (even, >= 2).

        Returns:
            The :class:`~visionfw.data.pipeline.TrainDataConfig`.

        Raises:
            ConfigError: ``hr_patch`` is odd or below 2.
        """
        from visionfw.data.pipeline import TrainDataConfig

        c = self.config
        hr_patch = int(hr_patch)
        if hr_patch < 2 or hr_patch % 2:
            raise ConfigError(
                f"the HR patch of task {c.task!r} must be an even size >= 2, got {hr_patch}; change lr_patch."
            )
        return TrainDataConfig(
            source=c.train_data,
            scale=2,
            lr_patch=hr_patch // 2,
            batch_size=int(c.batch_size),
            channels="rgb",
            augment=bool(c.augment),
            seed=int(c.seed),
            **checked_data_options(c.data_options, c),
        )

    def hr_patch_dataset(self, hr_patch: int, start_step: int = 0) -> tf.data.Dataset:
        """Batches of RGB HR patches only, from the shared input pipeline (:meth:`hr_data_config`).

        Deterministic in (seed, step) like every pipeline batch, so resumed runs see the same data.

        Args:
            hr_patch: The HR patch size in pixels.
            start_step: The step the data starts at.

        Returns:
            A dataset of ``(hr,)`` tuples.
        """
        from visionfw.data.pipeline import make_train_dataset

        config = self.hr_data_config(hr_patch)
        return make_train_dataset(config, start_step=int(start_step)).map(lambda lr, hr: (hr,))

    # -- step --------------------------------------------------------------------------
    def compute_loss(self, model: Any, batch: Any, training: bool) -> tuple[Any, dict[str, Any]]:
        """The loss of one replica's batch (traced into the compiled step).

        Args:
            model: The model being trained.
            batch: A batch tuple of :meth:`make_dataset`.
            training: Passed to the model call.

        Returns:
            ``(scalar loss, metrics)``: ``metrics`` holds the scalars of :attr:`metric_names` and may
            hold ``'_outputs'`` (the forward pass, for a learning patch sampler).
        """
        raise NotImplementedError

    def after_step(self, model: Any, batch: Any, outputs: Any) -> None:
        """Called in the compiled step after the update (e.g. to clip weights); default: nothing."""
        return None

    # see the module docstring; a method ``update_step(model, optimizer, batch, replicas)`` replaces it
    update_step = None

    def build_training_state(self, model: Any, schedule: Any) -> None:
        """Builds extra training state in the strategy's scope (a GAN's discriminator and its
        optimizer); default: nothing.

        Args:
            model: The model being trained.
            schedule: The run's lr schedule.
        """
        return None

    def begin_step(self, step: int) -> None:
        """Called on the host before each step (e.g. TAD switches quantisation on); default: nothing."""
        return None

    def check_loss(self, step: int, loss: float) -> str | None:
        """Called with each logged (finite) mean loss; default: never stops.

        Args:
            step: The step logged.
            loss: Its mean loss since the last log point.

        Returns:
            None to go on, or a message: the run stops there, keeping the last checkpoint (as a
            non-finite loss does).
        """
        return None

    def state_variables(self) -> list:
        """The task's own variables that a checkpoint holds (default: none)."""
        return []

    # -- validation --------------------------------------------------------------------
    def validate(self, model: Any) -> dict[str, Any]:
        """Validates ``model`` on the run's ``val_data``.

        Args:
            model: The float32 model to validate (EMA weights when on).

        Returns:
            ``{set: {'psnr', 'ssim', 'bicubic_psnr'}}`` plus ``'protocol'`` (a description); empty
            for a task without validation.
        """
        return {}

    def sample_images(self, model: Any, batch: Any) -> dict[str, Any]:
        """Images for TensorBoard (a few patches).

        Args:
            model: The float32 model.
            batch: A batch of :meth:`make_dataset`.

        Returns:
            ``{name: NHWC float [0, 1] images}``.
        """
        return {}


class SRTask(Task):
    """Single-image super-resolution: ``model(lr) -> sr``, pixel loss against ``hr``."""

    name = "sr"

    def __init__(self, config):
        super().__init__(config)
        from visionfw.tasks.losses import parse_loss

        self.loss_fn = parse_loss(config.loss)

    def build_model(self, dtype_policy=None):
        """The model, with the spec's ``meta`` completed and checked against it the first time
        (:func:`checked_sr_meta`), so a wrong meta key is one line before any step is traced."""
        model = super().build_model(dtype_policy)
        if not getattr(self, "_meta_checked", False):
            self.spec()["meta"] = checked_sr_meta(self.spec(), model, int(self.config.scale))
            self._meta_checked = True
        return model

    @property
    def channels(self):
        return "y" if self.meta.get("channels") == "y" else "rgb"

    @property
    def upsampled_input(self):
        return bool(self.meta.get("upsampled_input", False))

    def data_config(self, batch_size=None):
        from visionfw.data.pipeline import TrainDataConfig

        c = self.config
        extra = checked_data_options(c.data_options, c)
        return TrainDataConfig(
            source=c.train_data,
            scale=int(c.scale),
            lr_patch=int(c.lr_patch),
            batch_size=int(batch_size or c.batch_size),
            channels=self.channels,
            lr_source=c.lr_source or "bicubic",
            augment=bool(c.augment),
            seed=int(c.seed),
            upsample_input=self.upsampled_input,
            **extra,
        )

    def make_dataset(self, start_step=0):
        from visionfw.data.pipeline import make_train_dataset

        ds = make_train_dataset(self.data_config(), start_step=int(start_step))
        return self._degraded(ds, int(start_step)) if self.config.degradation else ds

    def _degraded(self, ds, start_step):
        """``(degrade(hr, step), hr)`` batches: the LR of batch ``step`` depends on (seed, step) only,
        so a resumed run sees the same LR images (:mod:`visionfw.degradation`)."""
        from visionfw.data.imresize import imresize
        from visionfw.degradation import make_degrader

        c = self.config
        scale, upsampled = int(c.scale), self.upsampled_input
        degrade = make_degrader(
            c.degradation, scale, int(c.seed), pool=c.degradation_pool, hr_size=int(c.lr_patch) * scale
        )

        def lr_of(step, batch):
            hr = batch[1]
            lr = degrade(hr, step)
            return (imresize(lr, scale=float(scale)) if upsampled else lr), hr

        return (
            ds.enumerate(start=start_step)
            .map(lr_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def compute_loss(self, model, batch, training):
        lr, hr = batch
        sr = model(lr, training=training)
        loss = self.loss_fn(hr, sr)
        # '_outputs' is not logged; the trainer hands it to a learning sampler
        return tf.cast(loss, tf.float32), {"_outputs": sr}

    # -- patch pool + sampler (--sampler) -------------------------------------------------
    def make_patch_source(self, sampler_name, pool_size, **sampler_kwargs):
        """``(pool, sampler, bicubic_fn)`` for sampler-driven training.

        The pool holds ``pool_size`` HR crops (uniformly random positions, seeded) of the
        training images; each LR patch is the MATLAB bicubic (float, unrounded) of its own
        HR crop (crop-then-downscale) and is not augmented.  ``bicubic_fn(lr)`` is the
        HR-size bicubic the PSNR-gain of ``psnr_hist`` is measured against.
        """
        from visionfw.data.imresize import imresize
        from visionfw.data.patch_pool import PatchPool
        from visionfw.data.pipeline import load_train_images
        from visionfw.data.sampling import make_sampler

        dc = self.data_config()
        if dc.source is not None and str(dc.source).lower().endswith((".h5", ".hdf5")):
            raise ConfigError(
                "sampler needs a folder of training images (or the embedded set) as train_data, not an .h5 patch file."
            )
        _, hr_images, _ = load_train_images(dc)
        scale, hr_p = int(self.config.scale), dc.hr_patch
        sizes = [im.shape[:2] for im in hr_images]
        coords = PatchPool.random_coords(sizes, hr_p, int(pool_size), seed=int(self.config.seed))
        upsampled = self.upsampled_input

        def downscale(hr):
            lr = imresize(hr, scale=1.0 / scale)
            return imresize(lr, scale=float(scale)) if upsampled else lr

        def bicubic(lr):
            return lr if upsampled else imresize(lr, scale=float(scale))

        pool = PatchPool.from_images(hr_images, coords, hr_p, downscale_fn=downscale)
        opts = dict(sampler_kwargs)
        if sampler_name == "pic" and "pic_values" not in opts:
            opts["pic_values"] = pool.compute_pic()
        opts.setdefault("seed", int(self.config.seed))
        sampler = make_sampler(sampler_name, pool.num_patches, **opts)
        return pool, sampler, bicubic

    # -- validation --------------------------------------------------------------------
    def validate(self, model):
        names = list(self.config.val_data or [])
        if not names:
            return {}
        from visionfw.evaluate import evaluate_model

        raw = evaluate_model(
            model,
            names,
            int(self.config.scale),
            protocol=self.config.protocol,
            data_dir=self.config.data_dir,
            channels=self.channels,
            upsampled_input=self.upsampled_input,
            progress=False,
        )
        return _normalise_results(raw, names)

    def sample_images(self, model, batch):
        lr, hr = batch
        lr, hr = lr[:3], hr[:3]
        sr = tf.clip_by_value(tf.cast(model(lr, training=False), tf.float32), 0.0, 1.0)
        size = tf.shape(hr)[1:3]
        lr_view = lr if self.upsampled_input else tf.image.resize(lr, size, method="nearest")
        return {"lr": lr_view, "sr": sr, "hr": hr}


def spec_channels(spec):
    """``'y'`` or ``'rgb'``: the spec's ``meta['channels']``, else read from its input shape (1: Y)."""
    meta = spec.get("meta", {})
    if meta.get("channels"):
        return meta["channels"]
    inputs = spec.get("inputs") or [()]
    return "y" if tuple(inputs[0])[-1:] == (1,) else "rgb"


def checked_sr_meta(spec, model, scale):
    """The spec's ``meta`` with ``channels``, ``upsampled_input`` and ``scale`` filled in from the
    built ``model`` (input channels; output size over input size on a probe image), and SpecError
    (one line naming the meta key) where the spec states one that the model contradicts."""
    import numpy as np

    meta = dict(spec.get("meta", {}))
    name = meta.get("registry_name") or spec.get("name", "model")
    if len(model.inputs) != 1:
        return meta
    shape = model.inputs[0].shape
    c_in = shape[-1]
    channels = {1: "y", 3: "rgb"}.get(c_in)
    if channels is None:
        raise SpecError(f"model {name!r}: its input has {c_in} channels; SR training feeds 1 (Y) or 3 (RGB).")
    if meta.get("channels") not in (None, channels):
        raise SpecError(
            f"model {name!r}: meta['channels']={meta['channels']!r} but its input has {c_in} "
            f"channel(s); set meta['channels']={channels!r} or leave it out (read from the input)."
        )
    meta["channels"] = channels
    h, w = shape[1] or 24, shape[2] or 24
    out = model(np.zeros((1, h, w, c_in), np.float32), training=False)
    if isinstance(out, (list, tuple)):  # several outputs (a pyramid): the meta stays the spec's
        return meta
    ratio = out.shape[1] / h
    upsampled = ratio == 1
    if meta.get("upsampled_input") not in (None, upsampled):
        raise SpecError(
            f"model {name!r}: meta['upsampled_input']={meta['upsampled_input']!r} but its output is "
            f"{ratio:g}x its input; set meta['upsampled_input']={upsampled} or leave it out (read "
            "from the output size)."
        )
    meta["upsampled_input"] = upsampled
    if not upsampled and ratio != scale:
        raise SpecError(
            f"model {name!r} upscales by {ratio:g}, not scale={scale}; train it with scale={ratio:g} "
            "or build it for this scale."
        )
    if meta.get("scale") is not None and int(meta["scale"]) != scale:
        raise SpecError(
            f"model {name!r}: meta['scale']={meta['scale']!r} but the run's scale={scale}; train it "
            f"with scale={meta['scale']} or set meta['scale']={scale}."
        )
    if out.shape[-1] != c_in:
        raise SpecError(
            f"model {name!r}: its output has {out.shape[-1]} channels, its input {c_in}; an SR model "
            "returns the input's channels."
        )
    meta["scale"] = scale
    return meta


def _normalise_results(raw, names):
    """evaluate_model's dict -> ``{set: {psnr, ssim, bicubic_psnr}, 'protocol': str}``."""
    from pathlib import Path

    out = {"protocol": ""}
    for name in names:
        # evaluate_model keys a set by its name as given, or by the folder's name for a path
        r = raw.get(name) or raw.get(Path(str(name)).name)
        if r is None:
            raise DataError(f"evaluate_model returned no result for validation set {name!r}.")
        out[name] = {"psnr": float(r["psnr"]), "ssim": float(r["ssim"]), "bicubic_psnr": float(r["bicubic_psnr"])}
        out["protocol"] = r["protocol_description"]
    return out


def _import_task_modules() -> None:
    import_package_modules("visionfw.tasks")


# name -> Task subclass; every module of this package registers its own task on import, loaded on
# the first name not known yet (so `--task=tad` just works and a new task module needs no list).
TASKS: Registry[type[Task]] = Registry(
    "task",
    fix="A task of your own: register_task(name, cls) in a module imported first (--import=module).",
    loader=_import_task_modules,
)
TASKS.register("sr", SRTask)


def register_task(name: str, cls: type[Task]) -> type[Task]:
    """Makes ``cls`` available as ``--task=name``.

    Args:
        name: the task's name.
        cls: a :class:`Task` subclass.

    Returns:
        ``cls``.

    Raises:
        ConfigError: ``cls`` is not a Task subclass.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"register_task({name!r}): {cls!r} is not a Task subclass.")
    return TASKS.register(str(name), cls)


def get_task(name: str) -> type[Task]:
    """The Task subclass registered as ``name``.

    Args:
        name: a task name (``'sr'``, ``'tad'``, ``'colorize'``, ``'video_sr'``, ``'gan'`` or one of yours).

    Returns:
        The class.

    Raises:
        ConfigError: the name is unknown (the message suggests a close one).
    """
    return TASKS.lookup(name)
