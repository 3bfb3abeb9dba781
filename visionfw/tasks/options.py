"""Task options: ``--task_options`` checked against a task's schema, ``--data_options`` checked
against the input pipeline's fields."""

from __future__ import annotations

import math
from typing import Any

from visionfw.errors import ConfigError

__all__ = ["typed_options", "checked_data_options"]

_TYPE_WORDS = {float: "a number", int: "an integer", str: "a string", bool: "true or false", type(None): "none"}
_VALUE_WORDS = {**_TYPE_WORDS, float: "a fraction", list: "a list", dict: "a dict"}


def typed_options(options: dict | None, schema: dict[str, Any], task: str) -> dict[str, Any]:
    """``options`` (``--task_options``, parsed) checked against a task's schema.

    A value of the wrong type would otherwise fail deep inside the loss (``'<' not supported between
    'str' and 'int'``).  A float option takes an integer too, an int option a whole float (100.0),
    neither a bool; floats must be finite.

    Args:
        options: The parsed options.
        schema: ``{name: type or tuple of types}`` (float, int, str, bool, ``type(None)``).
        task: The task's name, for the messages.

    Returns:
        The options with numbers as the named type.

    Raises:
        ConfigError: Naming the option, its value and the type it must have.
    """

    out = {}
    for key, value in dict(options or {}).items():
        if key not in schema:
            raise ConfigError(f"--task_options: {key!r} is not a {task} option; the options are {', '.join(schema)}.")
        kinds = schema[key] if isinstance(schema[key], tuple) else (schema[key],)
        for kind in kinds:
            if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ConfigError(f"--task_options {key}={value!r}: {task} option {key!r} must be a finite number.")
                value = float(value)
                break
            if kind is int and isinstance(value, float) and value.is_integer():  # JSON's 100.0
                value = int(value)
            if kind is int and isinstance(value, int) and not isinstance(value, bool):
                break
            if kind is not float and kind is not int and isinstance(value, kind):
                break
        else:
            want = " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
            raise ConfigError(
                f"--task_options {key}={value!r}: {task} option {key!r} must be {want}, not "
                f"{_VALUE_WORDS.get(type(value), type(value).__name__)}."
            )
        out[key] = value
    return out


def checked_data_options(options: dict | None, config: Any = None) -> dict[str, Any]:
    """``--data_options`` as TrainDataConfig keyword arguments.

    Args:
        options: The parsed ``data_options``.
        config: The run's ``TrainConfig``: its options that have their own flag are added.

    Returns:
        The keyword arguments.

    Raises:
        ConfigError: An unknown key, or one that has its own flag (named in the message).
    """
    import dataclasses

    from visionfw.data.pipeline import TrainDataConfig

    options = dict(options or {})
    fixed = {
        "source",
        "scale",
        "lr_patch",
        "batch_size",
        "channels",
        "lr_source",
        "augment",
        "seed",
        "upsample_input",
        "max_image_pixels",
    }  # set by their own flags or by the model
    allowed = {f.name for f in dataclasses.fields(TrainDataConfig)} - fixed
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"data_options: {key!r} is not a pipeline option here; use one of "
                f"{sorted(allowed)} (the others have their own config fields)."
            )
    if getattr(config, "max_image_pixels", None) is not None:
        options["max_image_pixels"] = config.max_image_pixels
    return options
