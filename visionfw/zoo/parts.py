"""The parts a spec is made of: the layer and block registries, and :func:`make_layer`.

Block functions create their layers with :func:`make_layer`, so the ``defaults`` of the spec
being built reach inside them.  Keras and the custom layers load on first use: a module
that only registers models or blocks stays light (``visionfw models`` needs no Keras).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from visionfw.errors import SpecError
from visionfw.registries import Registry, import_package_modules

__all__ = [
    "BASE_LAYER_KWARGS",
    "BLOCKS",
    "LAYERS",
    "REGISTER_HINT",
    "BUILD_CONTEXT",
    "BuildContext",
    "accepted_kwargs",
    "all_layer_names",
    "check_layer_values",
    "edge_padded",
    "input_channels",
    "layer_class",
    "list_blocks",
    "make_layer",
    "register_block",
    "register_layer",
    "resolve_kwargs",
]

# Keyword arguments every Keras layer takes through **kwargs.
BASE_LAYER_KWARGS = {"name", "dtype", "trainable", "autocast", "input_shape", "input_dim", "batch_size"}

# the line every unknown-class error ends with
REGISTER_HINT = (
    "A layer of your own: decorate its class (a keras.layers.Layer subclass with get_config) with "
    "@visionfw.register_layer and import its module first (on the command line: --import=module)."
)

BlockFn = Callable[..., Any]
LayerT = TypeVar("LayerT", bound=type)


def _load_blocks() -> None:
    """The shared blocks, then the families' own (each family file registers the blocks it alone uses)."""
    import_package_modules("visionfw.zoo.blocks")
    import_package_modules("visionfw.model_defs")


def _load_layers() -> None:
    """visionfw's own layer classes register themselves when their module is imported (it loads Keras)."""
    import_package_modules("visionfw.zoo.layers")


# name -> a block function ``fn(inputs, name=..., **params)`` or a dict spec (a nested graph)
BLOCKS: Registry[BlockFn | dict] = Registry(
    "block",
    error=SpecError,
    fix="Register it with visionfw.register_block or add it under 'blocks'.",
    loader=_load_blocks,
)
# name -> a keras.layers.Layer subclass of visionfw's or the user's (Keras' own are found in keras.layers)
LAYERS: Registry[type] = Registry("layer class", error=SpecError, fix=REGISTER_HINT, loader=_load_layers)

# What a spec being built hands to the block functions inside it: its ``defaults`` (merged with the
# enclosing spec's) and the channels of the model's first input.
BuildContext = dict[str, Any]
BUILD_CONTEXT: contextvars.ContextVar[BuildContext | None] = contextvars.ContextVar(
    "visionfw_builder_context", default=None
)


def register_block(name: str, spec: dict | None = None) -> Any:
    """Registers a reusable block under ``name``.

    Args:
        name: the name a spec's ``'block_sub'`` (or ``g.block(name, ...)``) refers to it by.
        spec: a dict spec (a nested graph) to register; leave it out to decorate a function
            ``fn(inputs, name=..., **params) -> tensor`` (``inputs`` is a list of tensors; ``name`` a
            unique prefix for its layers).

    Returns:
        ``spec`` when given, else the decorator (which returns the function unchanged).

    Raises:
        SpecError: ``spec`` is not a dict.
    """
    if spec is not None:
        if not isinstance(spec, dict):
            raise SpecError(f"register_block({name!r}, spec=...): the spec must be a dict, got {type(spec).__name__}")
        BLOCKS.register(name, spec)
        return spec

    def decorator(fn: BlockFn) -> BlockFn:
        BLOCKS.register(name, fn)
        return fn

    return decorator


def register_layer(cls: LayerT | None = None, *, name: str | None = None) -> Any:
    """Makes a ``keras.layers.Layer`` subclass of your own usable by name in specs and ``.keras`` files.

    As a decorator (``@visionfw.register_layer``) or a call (``visionfw.register_layer(MyLayer)``):
    the class is registered as Keras-serializable under the package ``visionfw`` (so
    ``'MyLayer'`` works in ``layer_sub`` / ``g.layer('MyLayer', x)``, and a saved model that uses
    it loads back with safe mode on once the module that registers it is imported: on the
    command line ``--import=my_module``).  Give it a ``get_config`` returning its ``__init__``
    arguments.

    Args:
        cls: the layer class (leave it out to use ``register_layer(name=...)`` as a decorator).
        name: registers it under this name instead of the class name.

    Returns:
        The class (or, without ``cls``, the decorator).

    Raises:
        SpecError: ``cls`` is not a ``keras.layers.Layer`` subclass.
    """

    def decorator(klass: LayerT) -> LayerT:
        import keras

        if not (inspect.isclass(klass) and issubclass(klass, keras.layers.Layer)):
            raise SpecError(f"register_layer({klass!r}): register a keras.layers.Layer subclass.")
        registered = keras.saving.register_keras_serializable(package="visionfw", name=name or klass.__name__)(klass)
        LAYERS.register(name or klass.__name__, registered)
        return registered

    return decorator(cls) if cls is not None else decorator


def list_blocks() -> list[str]:
    """Names of every registered block (functions and dict specs), sorted.

    Returns:
        The shared blocks (``visionfw.zoo.blocks``), the zoo families' own and yours.
    """
    return BLOCKS.names()


# --------------------------------------------------------------------------- layer helpers


def layer_class(name: str) -> type | None:
    """The Keras or visionfw layer class called ``name``, or None."""
    import keras

    LAYERS.load()
    if name in LAYERS:
        return LAYERS[name]
    cls = getattr(keras.layers, name, None)
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return cls
    # layers registered elsewhere with @register_keras_serializable(package="visionfw")
    cls = keras.saving.get_registered_object(f"visionfw>{name}")
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return cls
    return None


def all_layer_names() -> list[str]:
    """Every layer class name a spec may use (visionfw's, the user's and Keras'), sorted."""
    import keras

    names = set(LAYERS.names())
    names |= {key.split(">", 1)[1] for key in keras.saving.get_custom_objects() if key.startswith("visionfw>")}
    for attr in dir(keras.layers):
        obj = getattr(keras.layers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer):
            names.add(attr)
    return sorted(names)


def accepted_kwargs(cls: type) -> set[str]:
    """The keyword arguments ``cls.__init__`` takes, walking up for **kwargs pass-through."""
    import keras

    accepted = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        accepted |= {p for p, v in params.items() if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
        if klass is keras.layers.Layer:
            break
    return accepted | BASE_LAYER_KWARGS


def edge_padded(cls_name: str, cls: type, kwargs: dict) -> type:
    """Conv2D with ``padding='replicate'`` (or 'edge') is an EdgePadConv2D (the official SRCNN padding)."""
    if cls_name == "Conv2D" and kwargs.get("padding") in ("replicate", "edge"):
        return layer_class("EdgePadConv2D") or cls
    return cls


def resolve_kwargs(cls_name: str, overrides: dict | None, defaults: dict) -> dict:
    """The keyword arguments of one ``cls_name`` layer: the spec's ``defaults`` for the class, then ``overrides``."""
    kwargs = dict(defaults.get(cls_name, {}))
    kwargs.update(overrides or {})
    return kwargs


# Layer arguments that must be positive ints (a bool is an int to Python: filters=True built 1 filter).
_POSITIVE_INT_ARGS = {"filters": None, "units": None, "scale": ("PixelShuffle", "PixelUnshuffle")}


def check_layer_values(cls_name: str, kwargs: dict, where: str) -> None:
    """Raises SpecError when ``kwargs`` give a count or factor that is not a positive int
    (``filters``, ``units``, a pixel shuffle's ``scale``); ``where`` starts the message."""
    for key, classes in _POSITIVE_INT_ARGS.items():
        if key not in kwargs or (classes is not None and cls_name not in classes):
            continue
        value = kwargs[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(
                f"{where}: {cls_name} {key}={value!r} must be a positive int (a bool is refused), "
                f"e.g. {key}={64 if key in ('filters', 'units') else 2}."
            )


def make_layer(cls_name: str, **kwargs: Any) -> Any:
    """Creates layer ``cls_name`` with the spec's ``defaults`` for that class, then ``kwargs``.

    Block functions use this so a model defined over default values reaches inside its blocks.

    Args:
        cls_name: a Keras or visionfw layer class name (``'Conv2D'``, ``'PixelShuffle'``, ...).
        **kwargs: the layer's keyword arguments (they win over the defaults).

    Returns:
        The new ``keras.layers.Layer``.

    Raises:
        SpecError: the class is unknown or a count (``filters``, ``units``, ``scale``) is not a positive int.
    """
    ctx = BUILD_CONTEXT.get()
    defaults = ctx["defaults"] if ctx else {}
    cls = layer_class(cls_name)
    if cls is None:
        raise SpecError(LAYERS.unknown_message(cls_name, also=all_layer_names()))
    merged = resolve_kwargs(cls_name, kwargs, defaults)
    check_layer_values(cls_name, merged, f"layer {merged.get('name', cls_name)!r}")
    return edge_padded(cls_name, cls, merged)(**merged)


def input_channels() -> int | None:
    """Channels of the model's first input, for blocks that must match it (e.g. an output conv)."""
    ctx = BUILD_CONTEXT.get()
    return ctx["input_channels"] if ctx else None
