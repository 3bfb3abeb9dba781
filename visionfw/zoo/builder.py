"""The builder: a checked spec dict of typed links becomes a ``keras.Model``.

The spec format is :mod:`visionfw.zoo.spec_format`; :func:`~visionfw.zoo.validation.validate_spec`
checks a spec before anything is built, and :func:`build_model` validates it once and builds it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import sys
import weakref
from fractions import Fraction
from types import FrameType
from typing import Any, cast

from visionfw.errors import SpecError
from visionfw.zoo.parts import BLOCKS, BUILD_CONTEXT, edge_padded, layer_class, resolve_kwargs
from visionfw.zoo.spec_format import TYPE_CODES, Link, ParsedSpec, is_node, loc
from visionfw.zoo.validation import validate_spec

__all__ = [
    "allow_graph_depth",
    "build",
    "build_model",
    "creation_order",
    "set_compute_policy",
]

# While build() runs: the output tensors of the links in the order they are built (nested blocks too).
_trace: contextvars.ContextVar[list | None] = contextvars.ContextVar("visionfw_build_trace", default=None)
# model -> its layers (ids) in the order the spec created them; see creation_order()
_CREATION_ORDER: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()


def _apply(layer_or_fn: Any, tensors: Any, where: str) -> Any:
    """``layer_or_fn(tensors)``, a failure inside Keras told as a SpecError at ``where``."""
    try:
        return layer_or_fn(tensors)
    except SpecError:
        raise
    except Exception as exc:  # Keras shape errors come as ValueError/TypeError and backend errors
        raise SpecError(f"{where}: building failed: {exc}".strip()) from exc


@dataclasses.dataclass
class _Scope:
    """One (sub)spec being built: where it is, the names its layers get, its local blocks, its
    ``defaults``, the parsed specs seen so far, and what its links made."""

    path: str
    prefix: str
    local_blocks: dict
    defaults: dict
    seen: dict
    made: dict = dataclasses.field(default_factory=dict)  # node -> the layer or sub-model a later link shares
    sizes: dict = dataclasses.field(default_factory=dict)  # node -> size, see _spatial_size


def _block_outputs(link: Link, args: list, lname: str, scope: _Scope, where: str) -> Any:
    """The output tensor(s) of a block link (a function block or a dict spec) applied to ``args``."""
    raw = scope.local_blocks.get(link.sub)
    if raw is None and isinstance(BLOCKS.get(link.sub), dict):
        raw = BLOCKS[link.sub]
    if raw is not None:
        bspec = dict(raw, name=raw.get("name", link.sub))
        sub_path = f"{scope.path} > block {link.sub!r}"
        sub_parsed = scope.seen.get(id(raw)) or validate_spec(bspec, sub_path, _depth=1, _seen=scope.seen)
        result = _build_graph(
            bspec, sub_parsed, args, prefix=lname + "_", path=sub_path, seen=scope.seen, defaults_override=link.par
        )
        return result[0] if len(result) == 1 else result
    fn = BLOCKS[link.sub]
    assert callable(fn)  # a registered dict block was built above
    return _apply(lambda t: fn(t, name=lname, **link.par), args, where)


# Layers whose output has their input's spatial size.
_SIZE_KEEPING = {
    "Activation",
    "PReLU",
    "LeakyReLU",
    "ELU",
    "ReLU",
    "Softmax",
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "Dropout",
    "SpatialDropout2D",
    "MeanShift",
    "Scale",
    "ChannelAttention",
    "Quantize",
    "Luma",
    "ChannelSlice",
    "WeightedSum",
} | set(TYPE_CODES["merge"][0] or ())
_CONVS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "EdgePadConv2D", "Conv2DTranspose")


def _pair(value):
    """An int or a 2-tuple of positive ints as (h, w), else None."""
    if is_node(value) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_node(v) and v > 0 for v in value):
        return tuple(value)
    return None


def _spatial_size(sub, kwargs, size):
    """A layer's output size ``(base, h factor, w factor)`` (relative to an input of the (sub)spec,
    ``base``) from its input's ``size``; None where the spec does not tell it exactly (valid
    padding, crops, resizes by a float, blocks, layers not listed here).  Sizes of unknown
    (None) height and width can still be compared this way: x and a stride-2 conv of x differ."""
    if size is None:
        return None
    base, fh, fw = size
    if sub in _SIZE_KEEPING:
        return size
    if sub in _CONVS:
        strides = _pair(kwargs.get("strides", 1))
        same = kwargs.get("padding", "valid") in ("same", "replicate", "edge") or _pair(kwargs.get("kernel_size")) == (
            1,
            1,
        )
        if strides is None or not same:
            return None
        if sub == "Conv2DTranspose":
            return base, fh * strides[0], fw * strides[1]
        return base, fh / strides[0], fw / strides[1]
    if sub in ("PixelShuffle", "PixelUnshuffle", "UpSampling2D"):
        factor = _pair(kwargs.get("size", 2) if sub == "UpSampling2D" else kwargs.get("scale", 2))
        if factor is None:
            return None
        if sub == "PixelUnshuffle":
            return base, fh / factor[0], fw / factor[1]
        return base, fh * factor[0], fw * factor[1]
    if sub in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(kwargs.get("pool_size", 2))
        strides = _pair(kwargs.get("strides") or kwargs.get("pool_size", 2))
        if pool is None or strides is None or (pool != strides and kwargs.get("padding", "valid") != "same"):
            return None
        return base, fh / strides[0], fw / strides[1]
    return None


def _size_text(size):
    _, fh, fw = size
    return f"{fh}x" if fh == fw else f"{fh}x{fw}x"


def _check_link_shapes(link, kwargs, args, sizes, where):
    """Shape errors Keras would only meet when the model runs: a pixel shuffle whose channels do
    not divide by scale**2, a merge of tensors of different spatial sizes (told from the static
    shapes, or from the strides and scales between them when the sizes are unknown)."""
    sub = link.sub
    if sub in ("PixelShuffle", "PixelUnshuffle"):
        r = kwargs.get("scale", 2)
        shape = tuple(args[0].shape)
        if sub == "PixelShuffle" and shape[-1] is not None and shape[-1] % (r * r):
            raise SpecError(
                f"{where}: PixelShuffle(scale={r}) needs channels divisible by {r * r}, but node "
                f"{link.ins[0]} has {shape[-1]}. Give the conv before it filters=channels*{r * r}."
            )
        if sub == "PixelUnshuffle" and any(d is not None and d % r for d in shape[1:3]):
            raise SpecError(
                f"{where}: PixelUnshuffle(scale={r}) needs a height and width divisible by {r}, but "
                f"node {link.ins[0]} is {shape[1]}x{shape[2]}."
            )
    concat_on_channels = sub != "Concatenate" or kwargs.get("axis", -1) in (-1, 3)
    if link.code == "merge" and concat_on_channels:
        known = [sizes.get(v) for v in link.ins]
        if all(known) and len({k[0] for k in known}) == 1 and len({k[1:] for k in known}) > 1:
            first = known[0]
            other = next(i for i, k in enumerate(known) if k[1:] != first[1:])
            raise SpecError(
                f"{where}: {sub} of node {link.ins[0]} ({_size_text(first)} the size of input "
                f"{first[0]}) and node {link.ins[other]} ({_size_text(known[other])} that size): a "
                f"merge needs one spatial size. Resample one of them (an 'upsample' or 'shuffle' link, "
                f"or a strided conv)."
            )


def _merged_defaults(spec: dict, outer: dict | None, override: dict | None) -> dict:
    """The enclosing spec's ``defaults``, updated by this spec's, then by a block link's parameters."""
    defaults = {k: dict(v) for k, v in spec.get("defaults", {}).items()}
    if outer is not None:
        merged = {k: dict(v) for k, v in outer["defaults"].items()}
        for k, v in defaults.items():
            merged.setdefault(k, {}).update(v)
        defaults = merged
    for k, v in (override or {}).items():
        defaults.setdefault(k, {}).update(v)
    return defaults


def _shared_block(link: Link, args: list, lname: str, scope: _Scope, where: str) -> Any:
    """A block that later links share becomes one sub-model, called here and by every link that shares it."""
    import keras

    sub_inputs = [keras.Input(shape=tuple(a.shape[1:]), name=f"{lname}_in{k}") for k, a in enumerate(args)]
    result = _block_outputs(link, sub_inputs, lname, scope, where)
    allow_graph_depth(_layer_calls_behind(result))
    scope.made[link.out] = keras.Model(sub_inputs if len(sub_inputs) > 1 else sub_inputs[0], result, name=lname)
    return _apply(scope.made[link.out], args if len(args) > 1 else args[0], where)


def _layer_output(link: Link, args: list, lname: str, scope: _Scope, where: str) -> Any:
    """Creates a layer link's layer (checking the shapes it will meet) and applies it to ``args``."""
    sub, ins, sizes = link.sub, link.ins, scope.sizes
    kwargs = resolve_kwargs(sub, link.par, scope.defaults)
    kwargs.setdefault("name", lname)
    cls = layer_class(sub)
    assert cls is not None  # validation found every class
    cls = edge_padded(sub, cls, kwargs)
    _check_link_shapes(link, kwargs, args, sizes, where)
    same_sizes = len({sizes.get(v) for v in ins}) == 1
    sizes[link.out] = _spatial_size(sub, kwargs, sizes.get(ins[0])) if same_sizes else None
    try:
        layer = cls(**kwargs)
    except Exception as exc:
        raise SpecError(f"{where}: {sub}({kwargs}) could not be created: {exc}") from exc
    multi = TYPE_CODES[link.code][2]
    scope.made[link.out] = layer
    return _apply(layer, args if multi and len(args) > 1 else args[0], where)


def _build_graph(
    spec: dict,
    parsed: ParsedSpec,
    tensors: list,
    *,
    prefix: str = "",
    path: str = "",
    seen: dict,
    defaults_override: dict | None = None,
) -> list:
    """Adds the spec's layers on top of ``tensors`` (its input nodes); returns its output tensors."""
    outer = BUILD_CONTEXT.get()
    scope = _Scope(
        path=path or f"spec {spec['name']!r}",
        prefix=prefix,
        local_blocks=spec.get("blocks", {}),
        defaults=_merged_defaults(spec, outer, defaults_override),
        seen=seen,
        sizes={i: (i, Fraction(1), Fraction(1)) for i in range(len(tensors))},
    )
    nodes = dict(enumerate(tensors))
    token = BUILD_CONTEXT.set(
        {"defaults": scope.defaults, "input_channels": outer["input_channels"] if outer else tensors[0].shape[-1]}
    )
    shared = {link.share for link in parsed.links if link.share is not None}
    try:
        for link in parsed.links:
            where = loc(scope.path, link.key, link.index) + f" ({link.sub}, nodes {tuple(link.ins)} -> {link.out})"
            args = [nodes[v] for v in link.ins]
            lname = f"{prefix}{link.code}{link.index}_n{link.out}"
            if link.share is not None:
                nodes[link.out] = _apply(scope.made[link.share], args if len(args) > 1 else args[0], where)
            elif link.code == "block" and link.out in shared:
                nodes[link.out] = _shared_block(link, args, lname, scope, where)
            elif link.code == "block":
                nodes[link.out] = _block_outputs(link, args, lname, scope, where)
            else:
                nodes[link.out] = _layer_output(link, args, lname, scope, where)
            trace = _trace.get()
            if trace is not None:
                trace.append(nodes[link.out])
    finally:
        BUILD_CONTEXT.reset(token)
    return [nodes[v] for v in parsed.outputs]


def _layer_calls_behind(outputs):
    """How many layer calls the Keras tensors ``outputs`` depend on, counted without recursion."""
    seen, stack = set(), list(outputs if isinstance(outputs, (list, tuple)) else [outputs])
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if not history or not history[0]:
            continue
        node = history[0]._inbound_nodes[history[1]]
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.input_tensors)
    return len(seen)


def allow_graph_depth(layer_calls: int) -> None:
    """Raises Python's recursion limit (never lowers it) so that Keras can walk a graph of
    ``layer_calls`` layer calls: Keras makes a Model -- when it is built, cloned or loaded -- by a
    recursive walk, one Python frame per layer on the longest path, and a chain of ~1000 layers hits
    Python's default limit.  The limit stays raised while the process may walk that model again.
    The walk calls itself from Python, which since Python 3.11 takes no C stack per call."""
    depth, frame = 0, cast("FrameType | None", sys._getframe())
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    needed = 1000 + depth + 2 * int(layer_calls)
    if needed > sys.getrecursionlimit():
        sys.setrecursionlimit(needed)


def build(spec: dict) -> tuple[Any, ParsedSpec]:
    """Validates ``spec`` once and builds it.

    Args:
        spec: the spec dict.

    Returns:
        ``(keras.Model, ParsedSpec)``.

    Raises:
        SpecError: the spec is invalid or a layer cannot be built.
    """
    import keras

    seen: dict[int, ParsedSpec] = {}
    parsed = validate_spec(spec, _seen=seen)
    shapes = spec.get("inputs", [(None, None, 3)])
    inputs = [keras.Input(shape=tuple(s), name=f"input_{i}") for i, s in enumerate(shapes)]
    trace: list[Any] = []
    token = _trace.set(trace)
    try:
        outputs = _build_graph(spec, parsed, inputs, seen=seen)
    finally:
        _trace.reset(token)
    allow_graph_depth(_layer_calls_behind(outputs))
    model = keras.Model(
        inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0], name=spec["name"]
    )
    _CREATION_ORDER[model] = _operations_in_order(trace)
    return model, parsed


def _operations_in_order(tensors):
    """Ids of the layers behind ``tensors`` (link outputs in build order), each listed once,
    inputs before the layers that use them: the order the spec wrote them."""
    order, seen = [], set()
    for t in tensors:
        # depth-first, inputs first, without recursion (a graph may be a thousand layers deep)
        stack = [(x, False) for x in reversed(t if isinstance(t, (list, tuple)) else [t])]
        while stack:
            tensor, inputs_done = stack.pop()
            history = getattr(tensor, "_keras_history", None)
            if history is None:
                continue
            op = history.operation
            if inputs_done:
                if id(op) not in seen:
                    seen.add(id(op))
                    order.append(id(op))
                continue
            if id(op) in seen:
                continue
            stack.append((tensor, True))
            stack.extend((x, False) for x in reversed(op._inbound_nodes[history.node_index].input_tensors))
    return order


def creation_order(model: Any) -> list[int] | None:
    """Ids of ``model``'s layers (nested ones too) in the order its spec created them, or None for a
    model not built by :func:`build_model` (e.g. loaded from a ``.keras`` file).

    Keras lists ``model.layers`` by graph depth, which differs from the written order as soon as
    branches meet; the weights importer pairs unnamed PyTorch modules in this order instead."""
    return _CREATION_ORDER.get(model)


def build_model(spec: dict) -> Any:
    """Builds the ``keras.Model`` a spec describes (validating it first, once).

    Args:
        spec: the spec dict (see :mod:`visionfw.zoo.spec_format`).

    Returns:
        The ``keras.Model``.

    Raises:
        SpecError: naming the key, the link and the fix.
    """
    return build(spec)[0]


def set_compute_policy(model: Any, dtype_policy: str) -> Any:
    """Makes a built ``model`` compute under ``dtype_policy`` (e.g. ``'mixed_bfloat16'``), in place,
    except its output head (the last layer with weights and every layer after it), which becomes
    float32: a bfloat16 output has a step of 1/256 near 1.0, as coarse as the 8-bit image.
    Before the head only layers with the model's own policy change, so in a model built under a
    mixed policy a layer the spec pinned to float32 keeps it (in a float32 model such a layer
    cannot be told apart and converts too); nested sub-models are followed.  Variables keep
    their dtype.  Returns ``model``."""
    import keras

    source = model.dtype_policy.name

    def set_all(layer, policy, force):
        if isinstance(layer, keras.Model):  # a nested sub-model (e.g. TAD's blocks): its layers too
            for inner in layer.layers:
                set_all(inner, policy, force)
        if not isinstance(layer, keras.layers.InputLayer) and (force or layer.dtype_policy.name == source):
            layer.dtype_policy = policy

    weighted = [i for i, layer in enumerate(model.layers) if layer.weights]
    head = weighted[-1] if weighted else len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        set_all(layer, "float32" if i >= head else dtype_policy, force=i >= head)
    return model
