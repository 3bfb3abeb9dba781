"""Keras optimizers by name (``--optimizer``), with the run's gradient clipping."""

from __future__ import annotations

from typing import Any

from visionfw.errors import ConfigError

__all__ = ["make_optimizer"]


def make_optimizer(name: str, schedule: Any, clipnorm: float | None = None, **kwargs: Any) -> Any:
    """A Keras optimizer by name.

    Args:
        name: ``'adam'``, ``'adamw'`` or ``'sgd'``.
        schedule: The learning rate: a number or a Keras ``LearningRateSchedule``.
        clipnorm: Clip the gradients to this global norm (unset or 0: no clipping).
        **kwargs: More optimizer arguments (``beta_1``, ``weight_decay``, ...).

    Returns:
        The ``keras.optimizers.Optimizer``.

    Raises:
        ConfigError: An unknown name or a bad keyword argument.
    """
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
