"""The parts a spec is made of: layer classes by name and registered blocks.

Block functions create their layers with :func:`make_layer`, so the ``defaults`` of the spec
being built reach inside them.  Keras and the custom layers load on first use: a module
that only registers models or blocks stays light (``visionfw models`` needs no Keras).
"""

import contextvars
import difflib
import inspect

from visionfw.errors import SpecError

# Keyword arguments every Keras layer takes through **kwargs.
BASE_LAYER_KWARGS = {"name", "dtype", "trainable", "autocast", "input_shape", "input_dim", "batch_size"}

_BLOCK_FUNCTIONS = {}
_BLOCK_SPECS = {}

# The defaults in force while a spec is built, so block functions get them too.
_context = contextvars.ContextVar("visionfw_builder_context", default=None)
# --------------------------------------------------------------------------- registry of blocks


def register_block(name, spec=None):
    """Registers a reusable block under ``name``.

    Either decorates a function ``fn(inputs, name=..., **params) -> tensor`` (``inputs``
    is a list of tensors; ``name`` a unique prefix for its layers), or registers a dict
    spec given as ``spec`` (a nested graph).
    """
    if spec is not None:
        if not isinstance(spec, dict):
            raise SpecError(f"register_block({name!r}, spec=...): the spec must be a dict, got {type(spec).__name__}")
        _BLOCK_SPECS[name] = spec
        _BLOCK_FUNCTIONS.pop(name, None)
        return spec

    def decorator(fn):
        _BLOCK_FUNCTIONS[name] = fn
        _BLOCK_SPECS.pop(name, None)
        return fn

    return decorator


def register_layer(cls=None, *, name=None):
    """Makes a ``keras.layers.Layer`` subclass of your own usable by name in specs and ``.keras`` files.

    As a decorator (``@visionfw.register_layer``) or a call (``visionfw.register_layer(MyLayer)``):
    the class is registered as Keras-serializable under the package ``visionfw`` (so
    ``'MyLayer'`` works in ``layer_sub`` / ``g.layer('MyLayer', x)``, and a saved model that uses
    it loads back with safe mode on once the module that registers it is imported: on the
    command line ``--import=my_module``).  Give it a ``get_config`` returning its ``__init__``
    arguments.  ``name`` registers it under another name.  Returns the class.
    """

    def decorator(klass):
        import keras

        if not (inspect.isclass(klass) and issubclass(klass, keras.layers.Layer)):
            raise SpecError(f"register_layer({klass!r}): register a keras.layers.Layer subclass.")
        return keras.saving.register_keras_serializable(package="visionfw", name=name or klass.__name__)(klass)

    return decorator(cls) if cls is not None else decorator


# the line every unknown-class error ends with
REGISTER_HINT = (
    "A layer of your own: decorate its class (a keras.layers.Layer subclass with get_config) with "
    "@visionfw.register_layer and import its module first (on the command line: --import=module)."
)


def list_blocks():
    """Names of every registered block (functions and dict specs).

    The standard blocks (``visionfw.zoo.blocks``) register the first time a spec is validated.
    """
    return sorted(set(_BLOCK_FUNCTIONS) | set(_BLOCK_SPECS))


# --------------------------------------------------------------------------- layer helpers


def layer_class(name):
    """The Keras or visionfw layer class called ``name``, or None."""
    import keras

    from visionfw.zoo import layers as vf_layers

    if name in vf_layers.CUSTOM_LAYERS:
        return vf_layers.CUSTOM_LAYERS[name]
    cls = getattr(keras.layers, name, None)
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return cls
    # layers registered elsewhere with @register_keras_serializable(package="visionfw")
    cls = keras.saving.get_registered_object(f"visionfw>{name}")
    if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer):
        return cls
    return None


def _all_layer_names():
    import keras

    from visionfw.zoo import layers as vf_layers

    names = set(vf_layers.CUSTOM_LAYERS)
    names |= {key.split(">", 1)[1] for key in keras.saving.get_custom_objects() if key.startswith("visionfw>")}
    for attr in dir(keras.layers):
        obj = getattr(keras.layers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer):
            names.add(attr)
    return sorted(names)


def _accepted_kwargs(cls):
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


def did_you_mean(word, choices):
    """`` Did you mean 'x'?`` for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


_did_you_mean = did_you_mean


def edge_padded(cls_name, cls, kwargs):
    """Conv2D with ``padding='replicate'`` (or 'edge') is an EdgePadConv2D (the official SRCNN padding)."""
    if cls_name == "Conv2D" and kwargs.get("padding") in ("replicate", "edge"):
        return layer_class("EdgePadConv2D")
    return cls


def _resolve_kwargs(cls_name, overrides, defaults):
    kwargs = dict(defaults.get(cls_name, {}))
    kwargs.update(overrides or {})
    return kwargs


# Layer arguments that must be positive ints (a bool is an int to Python: filters=True built 1 filter).
_POSITIVE_INT_ARGS = {"filters": None, "units": None, "scale": ("PixelShuffle", "PixelUnshuffle")}


def check_layer_values(cls_name, kwargs, where):
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


def make_layer(cls_name, **kwargs):
    """Creates layer ``cls_name`` with the spec's ``defaults`` for that class, then ``kwargs``.

    Block functions use this so a model defined over default values reaches inside its blocks.
    """
    ctx = _context.get()
    defaults = ctx["defaults"] if ctx else {}
    cls = layer_class(cls_name)
    if cls is None:
        raise SpecError(
            f"unknown layer class {cls_name!r}.{_did_you_mean(cls_name, _all_layer_names())} {REGISTER_HINT}"
        )
    merged = _resolve_kwargs(cls_name, kwargs, defaults)
    check_layer_values(cls_name, merged, f"layer {merged.get('name', cls_name)!r}")
    return edge_padded(cls_name, cls, merged)(**merged)


def input_channels():
    """Channels of the model's first input, for blocks that must match it (e.g. an output conv)."""
    ctx = _context.get()
    return ctx["input_channels"] if ctx else None
