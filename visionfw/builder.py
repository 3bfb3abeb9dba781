"""The declarative graph builder: a spec dict of typed links becomes a ``keras.Model``.

A spec looks like::

    {'name': 'VDSR',
     'inputs': [(None, None, 1)],                     # optional; default one RGB input
     'defaults': {'Conv2D': {'kernel_size': 3, 'padding': 'same'}},
     'block': [(0, 1), (1, 2)], 'block_sub': ['conv_relu', 'conv_out'],
     'merge': [(0, 2, 3)], 'merge_sub': ['Add']}

Nodes are integers; nodes ``0 .. n_inputs-1`` are the inputs.  In every link tuple
the last index is the node the link creates and the others are its inputs.  The
model's output is the highest node, or the nodes listed under ``'outputs'``.

:func:`validate_spec` checks everything it can before a layer is built and raises
:class:`visionfw.errors.SpecError` naming the key, the link index and the fix.
"""
import contextvars
import difflib
import inspect

import keras

from visionfw import layers as vf_layers
from visionfw.errors import SpecError

# Type code -> (classes it accepts, default class when '<code>_sub' is left out,
# whether it takes several inputs).
TYPE_CODES = {
    "convo": (("Conv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D", "EdgePadConv2D",
               "Conv1D", "Conv3D"), "Conv2D", False),
    "aactv": (("PReLU", "LeakyReLU", "ELU", "ReLU", "Softmax"), None, False),
    "actvn": (("Activation",), "Activation", False),
    "btnrm": (("BatchNormalization", "LayerNormalization", "GroupNormalization"),
              "BatchNormalization", False),
    "merge": (("Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum"),
              None, True),
    "block": ((), None, True),
    "pslyr": (("PixelShuffle", "PixelUnshuffle"), "PixelShuffle", False),
    "usmpl": (("UpSampling2D", "BicubicResize"), "UpSampling2D", False),
    "poolg": (("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"),
              None, False),
    "zpdng": (("ZeroPadding2D", "Cropping2D"), "ZeroPadding2D", False),
    "dense": (("Dense",), "Dense", False),
    "drpot": (("Dropout",), "Dropout", False),
    "spdrp": (("SpatialDropout2D",), "SpatialDropout2D", False),
    "flttn": (("Flatten",), "Flatten", False),
    "reshp": (("Reshape",), "Reshape", False),
    "wsuml": (("WeightedSum",), "WeightedSum", True),
    # Beyond the original format: any Keras or visionfw layer by class name
    # (MeanShift, Scale, ChannelAttention, Quantize, ...).
    "layer": (None, None, True),
}
# Activation names accepted directly in 'actvn_sub' (shorthand for Activation(name)).
ACTIVATION_NAMES = ("relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "gelu", "swish",
                    "silu", "softplus", "softsign", "hard_sigmoid", "leaky_relu", "relu6", "mish")
SPEC_KEYS = ("name", "inputs", "outputs", "defaults", "blocks", "meta")
# Keyword arguments every Keras layer takes through **kwargs.
BASE_LAYER_KWARGS = {"name", "dtype", "trainable", "autocast", "input_shape", "input_dim", "batch_size"}
_MAX_BLOCK_DEPTH = 16

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
            raise SpecError(f"register_block({name!r}, spec=...): the spec must be a dict, "
                            f"got {type(spec).__name__}")
        _BLOCK_SPECS[name] = spec
        _BLOCK_FUNCTIONS.pop(name, None)
        return spec

    def decorator(fn):
        _BLOCK_FUNCTIONS[name] = fn
        _BLOCK_SPECS.pop(name, None)
        return fn

    return decorator


def list_blocks():
    """Names of every registered block (functions and dict specs)."""
    _ensure_standard_blocks()
    return sorted(set(_BLOCK_FUNCTIONS) | set(_BLOCK_SPECS))


def _ensure_standard_blocks():
    from visionfw import blocks  # noqa: F401  (registers the standard blocks)


# --------------------------------------------------------------------------- layer helpers


def layer_class(name):
    """The Keras or visionfw layer class called ``name``, or None."""
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
    names = set(vf_layers.CUSTOM_LAYERS)
    for attr in dir(keras.layers):
        obj = getattr(keras.layers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer):
            names.add(attr)
    return sorted(names)


def _accepted_kwargs(cls):
    """The keyword arguments ``cls.__init__`` takes, walking up for **kwargs pass-through."""
    accepted = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        accepted |= {p for p, v in params.items()
                     if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
        if klass is keras.layers.Layer:
            break
    return accepted | BASE_LAYER_KWARGS


def _did_you_mean(word, choices):
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _resolve_kwargs(cls_name, overrides, defaults):
    kwargs = dict(defaults.get(cls_name, {}))
    kwargs.update(overrides or {})
    return kwargs


def make_layer(cls_name, **kwargs):
    """Creates layer ``cls_name`` with the spec's ``defaults`` for that class, then ``kwargs``.

    Block functions use this so a model defined over default values reaches inside its blocks.
    """
    ctx = _context.get()
    defaults = ctx["defaults"] if ctx else {}
    cls = layer_class(cls_name)
    if cls is None:
        raise SpecError(f"unknown layer class {cls_name!r}.{_did_you_mean(cls_name, _all_layer_names())}")
    merged = _resolve_kwargs(cls_name, kwargs, defaults)
    if cls_name == "Conv2D" and merged.get("padding") in ("replicate", "edge"):
        cls = vf_layers.EdgePadConv2D
    return cls(**merged)


def input_channels():
    """Channels of the model's first input, for blocks that must match it (e.g. an output conv)."""
    ctx = _context.get()
    return ctx["input_channels"] if ctx else None


# --------------------------------------------------------------------------- validation


def _loc(path, key, index=None):
    where = f"{path}: " if path else ""
    if index is None:
        return f"{where}key {key!r}"
    return f"{where}key {key!r}, link {index}"


def _is_node(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_kwargs(cls_name, cls, kwargs, where, fix_key):
    if not isinstance(kwargs, dict):
        raise SpecError(f"{where}: parameters must be a dict of keyword arguments, got "
                        f"{type(kwargs).__name__} ({kwargs!r}). Fix: write e.g. {{'filters': 64}} "
                        f"in {fix_key!r}, or {{}} for the class defaults.")
    accepted = _accepted_kwargs(cls)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise SpecError(f"{where}: parameter names must be strings, got {key!r}.")
        if key not in accepted:
            raise SpecError(
                f"{where}: {cls_name} does not accept the keyword {key!r}.{_did_you_mean(key, accepted)} "
                f"Fix the entry in {fix_key!r}.")
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            raise SpecError(
                f"{where}: parameter {key}={value!r} is a quoted string (the old repr('...') style). "
                f"Write the plain value {value[1:-1]!r}.")


def _block_arity(name):
    """(min, max) number of inputs a block takes."""
    if name in _BLOCK_SPECS:
        n = len(_BLOCK_SPECS[name].get("inputs") or [None])
        return n, n
    fn = _BLOCK_FUNCTIONS[name]
    return 1, None if getattr(fn, "multi_input", False) else 1


def _check_block_params(name, par, where, fix_key):
    if not isinstance(par, dict):
        raise SpecError(f"{where}: parameters must be a dict, got {type(par).__name__} ({par!r}). "
                        f"Fix the entry in {fix_key!r}.")
    if name in _BLOCK_SPECS:
        for cls_name, kwargs in par.items():
            cls = layer_class(cls_name)
            if cls is None:
                raise SpecError(
                    f"{where}: block {name!r} is a dict spec; its parameters are defaults per layer class "
                    f"(e.g. {{'Conv2D': {{'filters': 32}}}}), and {cls_name!r} is not a layer class."
                    f"{_did_you_mean(cls_name, _all_layer_names())}")
            _check_kwargs(cls_name, cls, kwargs, where, fix_key)
        return
    fn = _BLOCK_FUNCTIONS[name]
    params = inspect.signature(fn).parameters
    if any(v.kind == v.VAR_KEYWORD for v in params.values()):
        return
    accepted = [p for p in params if p not in ("inputs", "name")]
    for key in par:
        if key not in accepted:
            raise SpecError(f"{where}: block {name!r} does not accept the parameter {key!r}."
                            f"{_did_you_mean(key, accepted)} It takes: {', '.join(accepted) or 'nothing'}.")


def _check_inputs(spec, path):
    shapes = spec.get("inputs", [(None, None, 3)])
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise SpecError(f"{_loc(path, 'inputs')}: must be a non-empty list of input shapes such as "
                        f"[(None, None, 3)], got {shapes!r}.")
    for i, shape in enumerate(shapes):
        if not isinstance(shape, (list, tuple)) or not shape or not all(
                d is None or (_is_node(d) and d > 0) for d in shape):
            raise SpecError(f"{_loc(path, 'inputs')}, input {i}: {shape!r} is not a shape. Write a tuple "
                            f"of positive ints or None without the batch axis, e.g. (None, None, 3).")
    return len(shapes)


def _check_defaults(spec, path):
    defaults = spec.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(f"{_loc(path, 'defaults')}: must be a dict {{class name: {{kwarg: value}}}}, "
                        f"got {type(defaults).__name__}.")
    for cls_name, kwargs in defaults.items():
        cls = layer_class(cls_name)
        if cls is None:
            raise SpecError(f"{_loc(path, 'defaults')}: {cls_name!r} is not a layer class."
                            f"{_did_you_mean(cls_name, _all_layer_names())} Fix the key in 'defaults'.")
        _check_kwargs(cls_name, cls, dict(kwargs) if isinstance(kwargs, dict) else kwargs,
                      f"{_loc(path, 'defaults')}, class {cls_name!r}", "defaults")
    return defaults


def _collect_links(spec, path, n_inputs):
    """Checks every link list and returns [(code, index, inputs, out, sub, par)]."""
    links = []
    for key in spec:
        if not isinstance(key, str):
            raise SpecError(f"{path or 'spec'}: keys must be strings, got {key!r}.")
        base = key[:-4] if key.endswith(("_sub", "_par")) else key
        if key in SPEC_KEYS or base in TYPE_CODES:
            if key.endswith(("_sub", "_par")) and base not in spec:
                raise SpecError(f"{_loc(path, key)}: there is no link list {base!r} for it to describe. "
                                f"Add {base!r} or remove {key!r}.")
            continue
        choices = list(SPEC_KEYS) + [c + s for c in TYPE_CODES for s in ("", "_sub", "_par")]
        raise SpecError(f"{_loc(path, key)}: unknown key.{_did_you_mean(key, choices)} Known type codes: "
                        f"{', '.join(TYPE_CODES)}; other keys: {', '.join(SPEC_KEYS)}.")

    for code, (allowed, default_cls, multi) in TYPE_CODES.items():
        if code not in spec:
            continue
        link_list = spec[code]
        if not isinstance(link_list, (list, tuple)):
            raise SpecError(f"{_loc(path, code)}: must be a list of link tuples such as [(0, 1)], "
                            f"got {type(link_list).__name__}.")
        subs = spec.get(code + "_sub")
        pars = spec.get(code + "_par", [])
        if subs is None:
            if default_cls is None:
                raise SpecError(f"{_loc(path, code + '_sub')}: missing; links of type {code!r} need a class "
                                f"or block name each. Add '{code}_sub': [...] with {len(link_list)} names.")
            subs = [default_cls] * len(link_list)
        if not isinstance(subs, (list, tuple)):
            raise SpecError(f"{_loc(path, code + '_sub')}: must be a list of names, got {type(subs).__name__}.")
        if len(subs) != len(link_list):
            raise SpecError(f"{_loc(path, code + '_sub')}: has {len(subs)} names for {len(link_list)} links in "
                            f"{code!r}. Give exactly one class/block name per link.")
        if not isinstance(pars, (list, tuple)):
            raise SpecError(f"{_loc(path, code + '_par')}: must be a list of dicts (one per link), "
                            f"got {type(pars).__name__}.")
        if len(pars) > len(link_list):
            raise SpecError(f"{_loc(path, code + '_par')}: has {len(pars)} entries for {len(link_list)} links "
                            f"in {code!r}. Remove the extra entries (a short list means class defaults).")
        for i, link in enumerate(link_list):
            where = _loc(path, code, i)
            if not isinstance(link, (list, tuple)):
                raise SpecError(f"{where}: {link!r} is not a tuple of node indices such as (0, 1).")
            if not all(_is_node(v) for v in link):
                raise SpecError(f"{where}: {link!r} must hold integer node indices only.")
            if len(link) < 2:
                raise SpecError(f"{where}: {tuple(link)!r} has {len(link)} index; a link needs at least "
                                f"(input, output).")
            if any(v < 0 for v in link):
                raise SpecError(f"{where}: {tuple(link)!r} has a negative node index; nodes count from 0.")
            ins, out = list(link[:-1]), link[-1]
            sub = subs[i]
            par = pars[i] if i < len(pars) else {}
            if par is None:
                par = {}
            if not isinstance(sub, str):
                raise SpecError(f"{_loc(path, code + '_sub', i)}: {sub!r} must be a class or block name "
                                f"(a string), not {type(sub).__name__}.")
            if code == "block":
                _ensure_standard_blocks()
                local = spec.get("blocks", {})
                if sub not in _BLOCK_FUNCTIONS and sub not in _BLOCK_SPECS and sub not in local:
                    raise SpecError(f"{_loc(path, 'block_sub', i)}: unknown block {sub!r}."
                                    f"{_did_you_mean(sub, list_blocks() + list(local))} Register it with "
                                    f"visionfw.register_block or add it under 'blocks'.")
                if sub in local:
                    lo = hi = len(local[sub].get("inputs") or [None]) if isinstance(local[sub], dict) else 1
                    if isinstance(local[sub], dict):
                        for ck, cv in par.items():
                            cls = layer_class(ck)
                            if cls is None:
                                raise SpecError(f"{_loc(path, 'block_par', i)}: block {sub!r} is a dict spec; "
                                                f"its parameters are defaults per layer class and {ck!r} is "
                                                f"not one.{_did_you_mean(ck, _all_layer_names())}")
                            _check_kwargs(ck, cls, cv, _loc(path, "block_par", i), "block_par")
                else:
                    lo, hi = _block_arity(sub)
                    _check_block_params(sub, par, _loc(path, "block_par", i), "block_par")
                if len(ins) < lo or (hi is not None and len(ins) > hi):
                    want = f"{lo}" if lo == hi else f"at least {lo}"
                    raise SpecError(f"{where}: block {sub!r} takes {want} input(s) but the link "
                                    f"{tuple(link)!r} gives {len(ins)}. The last index is the output node.")
            else:
                if code == "actvn" and sub in ACTIVATION_NAMES:
                    par = dict(par, activation=sub)
                    sub = "Activation"
                cls = layer_class(sub)
                if cls is None:
                    hint = _did_you_mean(sub, allowed if allowed else _all_layer_names())
                    raise SpecError(f"{_loc(path, code + '_sub', i)}: unknown class {sub!r}.{hint}")
                if allowed is not None and sub not in allowed:
                    right = [c for c, (a, _, _) in TYPE_CODES.items() if a and sub in a]
                    fix = f"move the link to {right[0]!r}" if right else "use the 'layer' type code"
                    raise SpecError(f"{_loc(path, code + '_sub', i)}: {sub!r} is not a {code!r} class "
                                    f"(allowed: {', '.join(allowed)}). Fix: {fix}.")
                _check_kwargs(sub, cls, par, _loc(path, code + "_par", i), code + "_par")
                if not multi and len(ins) != 1:
                    raise SpecError(f"{where}: {sub} takes one input but the link {tuple(link)!r} gives "
                                    f"{len(ins)}. Write (input, output).")
                if code == "merge" and len(ins) < 2:
                    raise SpecError(f"{where}: a merge needs at least two inputs, got {tuple(link)!r}. "
                                    f"Write (a, b, output).")
            links.append((code, i, ins, out, sub, dict(par)))
    if not links:
        raise SpecError(f"{path or 'spec'}: has no links. Add at least one link list such as "
                        f"'convo': [(0, 1)].")
    return links


def _check_graph(links, n_inputs, outputs, path):
    created = {}
    for code, i, ins, out, sub, par in links:
        if out < n_inputs:
            raise SpecError(f"{_loc(path, code, i)}: creates node {out}, which is an input of the model "
                            f"(nodes 0..{n_inputs - 1}). Output nodes start at {n_inputs}.")
        if out in created:
            other = created[out]
            raise SpecError(f"{_loc(path, code, i)}: node {out} is created twice (also by "
                            f"{_loc('', other[0], other[1])}). Give one of them a new node number.")
        created[out] = (code, i, ins)
    top = max(created)
    missing = [n for n in range(n_inputs, top + 1) if n not in created]
    for code, i, ins, out, sub, par in links:
        for v in ins:
            if v not in created and v >= n_inputs:
                raise SpecError(f"{_loc(path, code, i)}: input node {v} is never created (no link ends in it "
                                f"and it is not a model input). Add a link that creates node {v} or fix the index.")
    if missing:
        raise SpecError(f"{path or 'spec'}: node(s) {missing} are never created; nodes must be numbered "
                        f"without gaps from {n_inputs} to {top}. Renumber the links.")

    # Cycles: depth-first search over the input edges.
    state = {}

    def visit(node, trail):
        if node < n_inputs:
            return
        if state.get(node) == 1:
            cycle = trail[trail.index(node):] + [node]
            code, i, _ = created[node]
            raise SpecError(f"{_loc(path, code, i)}: the graph has a cycle {' -> '.join(map(str, cycle))}. "
                            f"A link's inputs must be created before it; fix the indices.")
        if state.get(node) == 2:
            return
        state[node] = 1
        for v in created[node][2]:
            visit(v, trail + [node])
        state[node] = 2

    for node in sorted(created):
        visit(node, [])
    for node, (code, i, ins) in created.items():
        later = [v for v in ins if v > node]
        if later:
            raise SpecError(f"{_loc(path, code, i)}: node {node} uses node {later[0]}, which is created after "
                            f"it. Number the nodes in build order (inputs lower than outputs).")

    if outputs is None:
        outputs = [top]
    if not isinstance(outputs, (list, tuple)) or not outputs or not all(_is_node(v) for v in outputs):
        raise SpecError(f"{_loc(path, 'outputs')}: must be a non-empty list of node indices, got {outputs!r}.")
    for v in outputs:
        if v not in created and not (0 <= v < n_inputs):
            raise SpecError(f"{_loc(path, 'outputs')}: node {v} does not exist (nodes run 0..{top}).")
    reach = set()
    stack = list(outputs)
    while stack:
        v = stack.pop()
        if v in reach:
            continue
        reach.add(v)
        if v in created:
            stack.extend(created[v][2])
    dangling = sorted(n for n in created if n not in reach)
    if dangling:
        code, i, _ = created[dangling[0]]
        raise SpecError(f"{_loc(path, code, i)}: node {dangling[0]} reaches no output (dangling nodes: "
                        f"{dangling}). Remove its link, use it, or list it under 'outputs'.")
    unused_inputs = [v for v in range(n_inputs) if v not in reach]
    if unused_inputs:
        raise SpecError(f"{path or 'spec'}: model input node(s) {unused_inputs} reach no output. Use them or "
                        f"drop them from 'inputs'.")
    return list(outputs)


def validate_spec(spec, path="", _depth=0):
    """Checks a spec without building it; returns the parsed links. Raises SpecError."""
    if not isinstance(spec, dict):
        raise SpecError(f"{path or 'spec'}: a model spec must be a dict, got {type(spec).__name__}.")
    if _depth > _MAX_BLOCK_DEPTH:
        raise SpecError(f"{path}: blocks nest deeper than {_MAX_BLOCK_DEPTH} levels; a block probably "
                        f"contains itself.")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{_loc(path, 'name')}: every spec needs a non-empty string name, got {name!r}.")
    path = path or f"spec {name!r}"
    n_inputs = _check_inputs(spec, path)
    _check_defaults(spec, path)
    local_blocks = spec.get("blocks", {})
    if not isinstance(local_blocks, dict):
        raise SpecError(f"{_loc(path, 'blocks')}: must be a dict {{block name: spec}}, got "
                        f"{type(local_blocks).__name__}.")
    for bname, bspec in local_blocks.items():
        if not isinstance(bspec, dict):
            raise SpecError(f"{_loc(path, 'blocks')}, block {bname!r}: must be a dict spec.")
        validate_spec(dict(bspec, name=bspec.get("name", bname)), f"{path} > block {bname!r}", _depth + 1)
    links = _collect_links(spec, path, n_inputs)
    outputs = _check_graph(links, n_inputs, spec.get("outputs"), path)
    for code, i, ins, out, sub, par in links:
        if code == "block" and sub in _BLOCK_SPECS and sub not in local_blocks:
            if path.count(f"block {sub!r}") >= 1:
                raise SpecError(f"{_loc(path, 'block_sub', i)}: block {sub!r} contains itself.")
            bspec = _BLOCK_SPECS[sub]
            validate_spec(dict(bspec, name=bspec.get("name", sub)), f"{path} > block {sub!r}", _depth + 1)
    return links, n_inputs, outputs


# --------------------------------------------------------------------------- building


def _apply(layer_or_fn, tensors, where):
    try:
        return layer_or_fn(tensors)
    except SpecError:
        raise
    except Exception as exc:  # Keras shape errors come as ValueError/TypeError and backend errors
        raise SpecError(f"{where}: building failed: {exc}".strip()) from exc


def _build_graph(spec, tensors, prefix, path, depth, defaults_override=None):
    """Adds the spec's layers on top of ``tensors`` (its input nodes); returns its output tensors."""
    links, n_inputs, outputs = validate_spec(spec, path, depth)
    path = path or f"spec {spec['name']!r}"
    defaults = {k: dict(v) for k, v in spec.get("defaults", {}).items()}
    outer = _context.get()
    if outer is not None:
        merged = {k: dict(v) for k, v in outer["defaults"].items()}
        for k, v in defaults.items():
            merged.setdefault(k, {}).update(v)
        defaults = merged
    for k, v in (defaults_override or {}).items():
        defaults.setdefault(k, {}).update(v)
    local_blocks = spec.get("blocks", {})
    nodes = dict(enumerate(tensors))
    token = _context.set({"defaults": defaults,
                          "input_channels": outer["input_channels"] if outer else tensors[0].shape[-1]})
    try:
        for code, i, ins, out, sub, par in sorted(links, key=lambda link: link[3]):
            where = _loc(path, code, i) + f" ({sub}, nodes {tuple(ins)} -> {out})"
            args = [nodes[v] for v in ins]
            lname = f"{prefix}{code}{i}_n{out}"
            if code == "block":
                bspec = local_blocks.get(sub, _BLOCK_SPECS.get(sub))
                if bspec is not None:
                    bspec = dict(bspec, name=bspec.get("name", sub))
                    result = _build_graph(bspec, args, lname + "_", f"{path} > block {sub!r}", depth + 1, par)
                    nodes[out] = result[0] if len(result) == 1 else result
                else:
                    fn = _BLOCK_FUNCTIONS[sub]
                    nodes[out] = _apply(lambda t: fn(t, name=lname, **par), args, where)
            else:
                kwargs = _resolve_kwargs(sub, par, defaults)
                kwargs.setdefault("name", lname)
                cls = layer_class(sub)
                if sub == "Conv2D" and kwargs.get("padding") in ("replicate", "edge"):
                    cls = vf_layers.EdgePadConv2D
                try:
                    layer = cls(**kwargs)
                except Exception as exc:
                    raise SpecError(f"{where}: {sub}({kwargs}) could not be created: {exc}") from exc
                multi = TYPE_CODES[code][2]
                nodes[out] = _apply(layer, args if multi and len(args) > 1 else args[0], where)
    finally:
        _context.reset(token)
    return [nodes[v] for v in outputs]


def build_model(spec):
    """Builds the ``keras.Model`` a spec describes (validating it first)."""
    _ensure_standard_blocks()
    validate_spec(spec)
    shapes = spec.get("inputs", [(None, None, 3)])
    inputs = [keras.Input(shape=tuple(s), name=f"input_{i}") for i, s in enumerate(shapes)]
    outputs = _build_graph(spec, inputs, "", "", 0)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                       outputs if len(outputs) > 1 else outputs[0], name=spec["name"])
