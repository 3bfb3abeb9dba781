"""Learning-rate schedules: constant, step, multistep and cosine (with linear warm-up).

All are ``keras.optimizers.schedules.LearningRateSchedule`` subclasses registered for
serialisation.  They are functions of the optimizer's ``iterations`` counter, which is
checkpointed, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from visionfw.errors import ConfigError

__all__ = ["ConstantLR", "StepLR", "MultiStepLR", "CosineLR", "ScaledLR", "SCHEDULES", "make_schedule"]

_register = keras.saving.register_keras_serializable(package="visionfw")


@_register
class ConstantLR(keras.optimizers.schedules.LearningRateSchedule):
    """``lr`` at every step."""

    def __init__(self, lr):
        self.lr = float(lr)

    def __call__(self, step):
        return tf.constant(self.lr, tf.float32)

    def get_config(self):
        return {"lr": self.lr}


@_register
class StepLR(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * gamma ** floor(step / step_size)`` (EDSR: halve every 200k steps)."""

    def __init__(self, lr, step_size, gamma=0.5):
        if int(step_size) < 1:
            raise ConfigError(f"step schedule: step_size={step_size!r} must be >= 1.")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, step):
        k = tf.floor(tf.cast(step, tf.float32) / float(self.step_size))
        return self.lr * tf.pow(tf.constant(self.gamma, tf.float32), k)

    def get_config(self):
        return {"lr": self.lr, "step_size": self.step_size, "gamma": self.gamma}


@_register
class MultiStepLR(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * gamma ** (number of milestones <= step)``."""

    def __init__(self, lr, milestones, gamma=0.1):
        ms = [int(m) for m in milestones]
        if not ms or ms != sorted(ms) or ms[0] < 1:
            raise ConfigError(
                f"multistep schedule: milestones={milestones!r} must be increasing "
                "positive step numbers, e.g. [200000, 400000]."
            )
        self.lr, self.milestones, self.gamma = float(lr), ms, float(gamma)

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        passed = tf.reduce_sum(tf.cast(step >= tf.constant(self.milestones, tf.int64), tf.float32))
        return self.lr * tf.pow(tf.constant(self.gamma, tf.float32), passed)

    def get_config(self):
        return {"lr": self.lr, "milestones": self.milestones, "gamma": self.gamma}


@_register
class CosineLR(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over ``warmup`` steps, then cosine from ``lr`` to ``min_lr``
    at ``total_steps`` (held at ``min_lr`` after)."""

    def __init__(self, lr, total_steps, warmup=0, min_lr=0.0):
        if int(total_steps) <= int(warmup):
            raise ConfigError(f"cosine schedule: total_steps={total_steps} must exceed warmup={warmup}.")
        self.lr, self.total_steps = float(lr), int(total_steps)
        self.warmup, self.min_lr = int(warmup), float(min_lr)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        span = float(self.total_steps - self.warmup)
        t = tf.clip_by_value((step - self.warmup) / span, 0.0, 1.0)
        cos = self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + tf.cos(math.pi * t))
        if self.warmup > 0:
            return tf.where(step < self.warmup, self.lr * step / float(self.warmup), cos)
        return cos

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "warmup": self.warmup, "min_lr": self.min_lr}


@_register
class ScaledLR(keras.optimizers.schedules.LearningRateSchedule):
    """Another schedule times ``factor`` (a GAN discriminator's learning rate from the generator's)."""

    def __init__(self, schedule, factor):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule, self.factor = schedule, float(factor)

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "factor": self.factor}


SCHEDULES = {"constant": ConstantLR, "step": StepLR, "multistep": MultiStepLR, "cosine": CosineLR}


def make_schedule(name: str, lr: float, **kw: Any) -> Any:
    """Schedule ``name`` starting at ``lr``.

    Args:
        name: One of :data:`SCHEDULES` (constant, step, multistep, cosine).
        lr: The initial learning rate.
        **kw: ``step``: ``step_size``, ``gamma`` (0.5); ``multistep``: ``milestones``, ``gamma``
            (0.1); ``cosine``: ``total_steps``, ``warmup`` (0), ``min_lr`` (0).

    Returns:
        The ``keras.optimizers.schedules.LearningRateSchedule``.

    Raises:
        ConfigError: An unknown name or an unused keyword.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"--schedule={name!r} is unknown; use one of {sorted(SCHEDULES)}.")
    try:
        return SCHEDULES[name](lr, **kw)
    except TypeError as exc:
        raise ConfigError(f"--schedule={name}: bad options {sorted(kw)} ({exc}).") from None
