"""Config resolution: :func:`resolve_config` fills a :class:`TrainConfig`'s ``None`` fields from the
model's preset and checks every option, naming the flag and the fix, before anything is built."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from visionfw.data.embedded import HELDOUT
from visionfw.errors import ConfigError, VisionFWError
from visionfw.train.config import TrainConfig

__all__ = ["resolve_config", "describe_val_data", "model_stem", "POLICIES", "AUTO", "AUTO_BENCHMARK"]

# val_data: 'auto' is Set5 when it is found, else the held-out embedded photos (HELDOUT)
AUTO, AUTO_BENCHMARK = "auto", "Set5"
# mixed_precision -> the Keras dtype policy
POLICIES = {None: None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
_DISTRIBUTE = (None, "mirrored", "multi_worker")
_PRESET_FIELDS = ("loss", "lr", "schedule", "optimizer", "batch_size", "lr_patch", "clipnorm")


def _is_y_model(config):
    from visionfw.tasks.base import model_spec, spec_channels

    return spec_channels(model_spec(config)) == "y"


def model_stem(model: str) -> str:
    """A name for ``model`` in paths.

    Args:
        model: A registry name or a ``file.py:function`` / ``package.module:function`` reference.

    Returns:
        The registry name, or the function's name of a reference.
    """
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


def describe_val_data(config: TrainConfig) -> str:
    """One line on what a resolved config validates on (the quick start says it).

    Args:
        config: A resolved config.

    Returns:
        The sentence, e.g. ``'validating on Set5'``.
    """
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


def resolve_config(config: TrainConfig) -> TrainConfig:
    """A copy of ``config`` with preset values for its ``None`` fields and checked options.

    Imports ``config.imports`` first: they may register the model or its layers.

    Args:
        config: The run's options; it is not changed.

    Returns:
        The resolved copy (preset applied, ``val_data`` and mixed precision resolved).

    Raises:
        ConfigError: An option is out of range or a combination does not work; the message names
            the flag and the fix.
    """
    from visionfw.loading import import_modules
    from visionfw.train.presets import preset_for_model

    c = dataclasses.replace(config)
    c.scale = int(c.scale)
    import_modules(c.imports)
    preset = preset_for_model(c.model, c.scale)
    _apply_preset(c, preset)
    _fill_run_defaults(c)
    _check_counts(c)
    _check_choices(c)
    _resolve_sampler(c, preset)
    _check_degradation(c)
    _check_sampler(c)
    return c


def _apply_preset(c, preset: dict[str, Any]) -> None:
    """The preset's recipe for the fields left ``None`` (schedule and optimizer kwargs only
    with the preset's own schedule / optimizer)."""
    for field in _PRESET_FIELDS:
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


def _fill_run_defaults(c) -> None:
    """The workdir, the evaluation protocol and the validation sets a run gets when unset."""
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


def _not_count(v, minimum: int) -> bool:
    return bool(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum)


def _check_counts(c) -> None:
    """Step counts, sizes and the lr are positive numbers."""
    for name in ("steps", "batch_size", "lr_patch", "log_every", "keep_checkpoints"):
        v = getattr(c, name)
        if _not_count(v, 1):
            raise ConfigError(f"{name}={v!r} must be a positive integer.")
    if c.max_image_pixels is not None and _not_count(c.max_image_pixels, 1):
        raise ConfigError(f"max_image_pixels={c.max_image_pixels!r} must be a positive integer (or unset).")
    for name in ("val_every", "ckpt_every"):
        v = getattr(c, name)
        if _not_count(v, 0):
            raise ConfigError(f"{name}={v!r} must be an integer >= 0 (0: only at the end).")
    if not (isinstance(c.lr, (int, float)) and c.lr > 0):
        raise ConfigError(f"lr={c.lr!r} must be a positive number.")


def _check_choices(c) -> None:
    """Options with a fixed set of values; ``mixed_precision='auto'`` is resolved here."""
    from visionfw.train.precision import resolve_mixed_precision

    if c.mixed_precision not in POLICIES and c.mixed_precision != "auto":
        raise ConfigError(f"mixed_precision={c.mixed_precision!r}: use auto, bfloat16, float16 or leave it unset.")
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


def _resolve_sampler(c, preset: dict[str, Any]) -> None:
    """A recipe's patch sampler (BSR's PIC) when none is set; ``'pipeline'`` opts out."""
    if c.sampler is None and preset.get("sampler"):
        c.sampler = preset["sampler"]
        c.sampler_kwargs = {**preset.get("sampler_kwargs", {}), **(c.sampler_kwargs or {})}
    if c.sampler in ("", "pipeline"):
        c.sampler = None


def _check_degradation(c) -> None:
    """A bad degradation spec, or a blur wider than the patch, fails here, before anything is
    written or traced."""
    if c.degradation:
        from visionfw.degradation import check_fits

        check_fits(c.degradation, int(c.scale or 1), int(c.lr_patch) * int(c.scale or 1))
        if c.sampler is not None or (c.lr_source or "bicubic") != "bicubic":
            raise ConfigError(
                "degradation makes the LR images from the HR patches of the input pipeline: it "
                "cannot be combined with --sampler or --lr_source (use --sampler=pipeline)."
            )
    elif c.degradation_pool:
        raise ConfigError("degradation_pool needs --degradation (e.g. --degradation=realsr).")


def _check_sampler(c) -> None:
    if c.sampler is not None:
        from visionfw.data.sampling import SAMPLERS

        if c.sampler not in SAMPLERS:
            raise ConfigError(
                f"sampler={c.sampler!r}: use one of {sorted(SAMPLERS)} or leave it unset "
                "(the input pipeline's uniform patches)."
            )
        if _not_count(c.pool_size, 1):
            raise ConfigError(f"pool_size={c.pool_size!r} must be a positive integer.")
