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

import contextlib
import contextvars
import inspect
import sys
import weakref
from fractions import Fraction
from typing import NamedTuple

from visionfw.errors import SpecError
from visionfw.zoo.parts import (
    _BLOCK_FUNCTIONS,
    _BLOCK_SPECS,
    REGISTER_HINT,
    _accepted_kwargs,
    _all_layer_names,
    _context,
    _did_you_mean,
    _resolve_kwargs,
    check_layer_values,
    edge_padded,
    input_channels,
    layer_class,
    list_blocks,
    make_layer,
    register_block,
    register_layer,
)

__all__ = [
    "TYPE_CODES",
    "ALIASES",
    "Link",
    "ParsedSpec",
    "validate_spec",
    "build",
    "build_model",
    "allow_graph_depth",
    "defer_validation",
    "register_block",
    "list_blocks",
    "make_layer",
    "layer_class",
    "input_channels",
    "register_layer",
    "creation_order",
]

# Link type -> (classes it accepts, default class when '<type>_sub' is left out,
# whether it takes several inputs).  The words are the canonical names; the original
# "Vision Framework" five-letter codes are aliases (ALIASES) and build the same model.
TYPE_CODES = {
    "conv": (
        ("Conv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D", "EdgePadConv2D", "Conv1D", "Conv3D"),
        "Conv2D",
        False,
    ),
    "act": (("PReLU", "LeakyReLU", "ELU", "ReLU", "Softmax", "Activation"), None, False),
    "activation": (("Activation",), "Activation", False),
    "norm": (("BatchNormalization", "LayerNormalization", "GroupNormalization"), "BatchNormalization", False),
    "merge": (("Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum"), None, True),
    "block": ((), None, True),
    "shuffle": (("PixelShuffle", "PixelUnshuffle"), "PixelShuffle", False),
    "upsample": (("UpSampling2D", "BicubicResize", "Interpolate"), "UpSampling2D", False),
    "pool": (("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"), None, False),
    "pad": (("ZeroPadding2D", "Cropping2D"), "ZeroPadding2D", False),
    "dense": (("Dense",), "Dense", False),
    "dropout": (("Dropout",), "Dropout", False),
    "spatial_dropout": (("SpatialDropout2D",), "SpatialDropout2D", False),
    "flatten": (("Flatten",), "Flatten", False),
    "reshape": (("Reshape",), "Reshape", False),
    "weighted_sum": (("WeightedSum",), "WeightedSum", True),
    # Beyond the original format: any Keras or visionfw layer by class name
    # (MeanShift, Scale, ChannelAttention, Quantize, ...).
    "layer": (None, None, True),
}
# The original format's five-letter codes -> the words above.
ALIASES = {
    "convo": "conv",
    "aactv": "act",
    "actvn": "activation",
    "btnrm": "norm",
    "pslyr": "shuffle",
    "usmpl": "upsample",
    "poolg": "pool",
    "zpdng": "pad",
    "drpot": "dropout",
    "spdrp": "spatial_dropout",
    "flttn": "flatten",
    "reshp": "reshape",
    "wsuml": "weighted_sum",
}
# Activation names accepted directly in 'actvn_sub' (shorthand for Activation(name)).
ACTIVATION_NAMES = (
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "linear",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "leaky_relu",
    "relu6",
    "mish",
)
SPEC_KEYS = ("name", "inputs", "outputs", "defaults", "blocks", "meta")
_MAX_BLOCK_DEPTH = 16
# Links one spec (or block spec) may hold, refused before anything is checked or built: Keras creates
# each layer in Python (5000 took 143 s on a loaded 2-core machine; 20000 would take many minutes).
MAX_SPEC_LINKS = 5000

# Set while the registry writes a spec that is about to be built (and so validated) anyway.
_deferred = contextvars.ContextVar("visionfw_validation_deferred", default=False)
# While build() runs: the output tensors of the links in the order they are built (nested blocks too).
_trace = contextvars.ContextVar("visionfw_build_trace", default=None)
# model -> its layers (ids) in the order the spec created them; see creation_order()
_CREATION_ORDER = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def defer_validation():
    """Inside this block :meth:`visionfw.Graph.spec` skips validation: the build will do it, once."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def validation_deferred():
    return _deferred.get()


def _standard_blocks():
    """Registers the standard blocks (``visionfw.zoo.blocks``) on first use; they load Keras."""
    from visionfw.zoo import blocks  # noqa: F401


@register_block("tad_apply")
def tad_apply(inputs, name, spec, times=1, role=None):
    """Builds ``spec`` once as a sub-model named ``role`` and applies it ``times`` times.

    Every application shares the sub-model's weights: this is how TAD x4/x16 reuse the x2
    encoder and decoder (the sub-model is called on its own output).
    """
    if not isinstance(spec, dict):
        raise SpecError(f"block 'tad_apply' ({name}): 'spec' must be a dict spec, got {type(spec).__name__}.")
    if int(times) < 1:
        raise SpecError(f"block 'tad_apply' ({name}): times={times} must be at least 1.")
    sub = build_model(dict(spec, name=role or spec["name"]))
    x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    for _ in range(int(times)):
        x = sub(x)
    return x


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
        raise SpecError(
            f"{where}: parameters must be a dict of keyword arguments, got "
            f"{type(kwargs).__name__} ({kwargs!r}). Fix: write e.g. {{'filters': 64}} "
            f"in {fix_key!r}, or {{}} for the class defaults."
        )
    accepted = _accepted_kwargs(cls)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise SpecError(f"{where}: parameter names must be strings, got {key!r}.")
        if key not in accepted:
            raise SpecError(
                f"{where}: {cls_name} does not accept the keyword {key!r}.{_did_you_mean(key, accepted)} "
                f"Fix the entry in {fix_key!r}."
            )
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            raise SpecError(
                f"{where}: parameter {key}={value!r} is a quoted string (the old repr('...') style). "
                f"Write the plain value {value[1:-1]!r}."
            )
    check_layer_values(cls_name, kwargs, where)


def _block_arity(name):
    """(min, max) number of inputs a block takes."""
    if name in _BLOCK_SPECS:
        n = len(_BLOCK_SPECS[name].get("inputs") or [None])
        return n, n
    fn = _BLOCK_FUNCTIONS[name]
    return 1, None if getattr(fn, "multi_input", False) else 1


def _check_block_params(name, par, where, fix_key, dict_block=False):
    if not isinstance(par, dict):
        raise SpecError(
            f"{where}: parameters must be a dict, got {type(par).__name__} ({par!r}). Fix the entry in {fix_key!r}."
        )
    if dict_block or name in _BLOCK_SPECS:
        for cls_name, kwargs in par.items():
            cls = layer_class(cls_name)
            if cls is None:
                raise SpecError(
                    f"{where}: block {name!r} is a dict spec; its parameters are defaults per layer class "
                    f"(e.g. {{'Conv2D': {{'filters': 32}}}}), and {cls_name!r} is not a layer class."
                    f"{_did_you_mean(cls_name, _all_layer_names())}"
                )
            _check_kwargs(cls_name, cls, kwargs, where, fix_key)
        return
    fn = _BLOCK_FUNCTIONS[name]
    params = inspect.signature(fn).parameters
    if any(v.kind == v.VAR_KEYWORD for v in params.values()):
        return
    accepted = [p for p in params if p not in ("inputs", "name")]
    for key in par:
        if key not in accepted:
            raise SpecError(
                f"{where}: block {name!r} does not accept the parameter {key!r}."
                f"{_did_you_mean(key, accepted)} It takes: {', '.join(accepted) or 'nothing'}."
            )


def _check_name_and_size(spec, name, path):
    """A name Keras accepts, and at most :data:`MAX_SPEC_LINKS` links (counted before any is checked)."""
    if "/" in name:
        raise SpecError(
            f"{_loc(path, 'name')}: {name!r} contains '/', which Keras refuses in model and layer "
            f"names. Use another character, e.g. {name.replace('/', '_')!r}."
        )
    count = sum(len(spec[key]) for key in link_keys(spec).values() if isinstance(spec[key], (list, tuple)))
    if count > MAX_SPEC_LINKS:
        raise SpecError(
            f"{path}: has {count} links; a spec may hold at most {MAX_SPEC_LINKS} (Keras creates "
            "every layer in Python, a few milliseconds each). Repeat a block spec under 'blocks' for "
            "deep stacks."
        )


def _check_inputs(spec, path):
    shapes = spec.get("inputs", [(None, None, 3)])
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise SpecError(
            f"{_loc(path, 'inputs')}: must be a non-empty list of input shapes such as "
            f"[(None, None, 3)], got {shapes!r}."
        )
    for i, shape in enumerate(shapes):
        if (
            not isinstance(shape, (list, tuple))
            or not shape
            or not all(d is None or (_is_node(d) and d > 0) for d in shape)
        ):
            raise SpecError(
                f"{_loc(path, 'inputs')}, input {i}: {shape!r} is not a shape. Write a tuple "
                f"of positive ints or None without the batch axis, e.g. (None, None, 3)."
            )
    return len(shapes)


def _check_defaults(spec, path):
    defaults = spec.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(
            f"{_loc(path, 'defaults')}: must be a dict {{class name: {{kwarg: value}}}}, got {type(defaults).__name__}."
        )
    for cls_name, kwargs in defaults.items():
        cls = layer_class(cls_name)
        if cls is None:
            raise SpecError(
                f"{_loc(path, 'defaults')}: {cls_name!r} is not a layer class."
                f"{_did_you_mean(cls_name, _all_layer_names())} Fix the key in 'defaults'. "
                f"{REGISTER_HINT}"
            )
        _check_kwargs(
            cls_name,
            cls,
            dict(kwargs) if isinstance(kwargs, dict) else kwargs,
            f"{_loc(path, 'defaults')}, class {cls_name!r}",
            "defaults",
        )
    return defaults


class Link(NamedTuple):
    """One parsed link: its canonical type, the key the spec wrote it under, index, nodes, class and kwargs.

    ``share`` is the node whose link's layer (or block) this link calls again, with the same weights.
    """

    code: str
    key: str
    index: int
    ins: list
    out: int
    sub: str
    par: dict
    share: int | None = None


def link_keys(spec):
    """{canonical type: the key the spec uses for it (a word or its five-letter alias)}."""
    found = {}
    for key in spec:
        code = ALIASES.get(key, key) if isinstance(key, str) else None
        if code in TYPE_CODES:
            if code in found:
                raise SpecError(
                    f"spec {spec.get('name')!r}: keys {found[code]!r} and {key!r} both hold "
                    f"{code!r} links ({key!r} is the original format's name for it). Put all "
                    f"of them under one key."
                )
            found[code] = key
    return found


def _collect_links(spec, path, n_inputs):
    """Checks every link list and returns the links as :class:`Link` tuples."""
    links = []
    keys = link_keys(spec)
    known = set(TYPE_CODES) | set(ALIASES)
    for key in spec:
        if not isinstance(key, str):
            raise SpecError(f"{path or 'spec'}: keys must be strings, got {key!r}.")
        base = key[:-4] if key.endswith(("_sub", "_par")) else key
        if key in SPEC_KEYS or base in known:
            if key.endswith(("_sub", "_par")) and base not in spec:
                raise SpecError(
                    f"{_loc(path, key)}: there is no link list {base!r} for it to describe. "
                    f"Add {base!r} or remove {key!r}."
                )
            continue
        # suggest in the spec's own style: five-letter codes for a dict written with them
        style = ALIASES if any(k in ALIASES for k in spec) else TYPE_CODES
        choices = list(SPEC_KEYS) + [c + s for c in style for s in ("", "_sub", "_par")]
        raise SpecError(
            f"{_loc(path, key)}: unknown key.{_did_you_mean(key, choices)} Link types: "
            f"{', '.join(TYPE_CODES)} (or the original codes {', '.join(ALIASES)}); other keys: "
            f"{', '.join(SPEC_KEYS)}."
        )

    for code, (allowed, default_cls, multi) in TYPE_CODES.items():
        if code not in keys:
            continue
        key = keys[code]
        link_list = spec[key]
        if not isinstance(link_list, (list, tuple)):
            raise SpecError(
                f"{_loc(path, key)}: must be a list of link tuples such as [(0, 1)], got {type(link_list).__name__}."
            )
        subs = spec.get(key + "_sub")
        pars = spec.get(key + "_par", [])
        if subs is None:
            if default_cls is None:
                raise SpecError(
                    f"{_loc(path, key + '_sub')}: missing; links of type {key!r} need a class "
                    f"or block name each. Add '{key}_sub': [...] with {len(link_list)} names."
                )
            subs = [default_cls] * len(link_list)
        if not isinstance(subs, (list, tuple)):
            raise SpecError(f"{_loc(path, key + '_sub')}: must be a list of names, got {type(subs).__name__}.")
        if len(subs) != len(link_list):
            raise SpecError(
                f"{_loc(path, key + '_sub')}: has {len(subs)} names for {len(link_list)} links in "
                f"{key!r}. Give exactly one class/block name per link."
            )
        if not isinstance(pars, (list, tuple)):
            raise SpecError(
                f"{_loc(path, key + '_par')}: must be a list of dicts (one per link), got {type(pars).__name__}."
            )
        if len(pars) > len(link_list):
            raise SpecError(
                f"{_loc(path, key + '_par')}: has {len(pars)} entries for {len(link_list)} links "
                f"in {key!r}. Remove the extra entries (a short list means class defaults)."
            )
        for i, link in enumerate(link_list):
            where = _loc(path, key, i)
            if not isinstance(link, (list, tuple)):
                raise SpecError(f"{where}: {link!r} is not a tuple of node indices such as (0, 1).")
            if not all(_is_node(v) for v in link):
                raise SpecError(f"{where}: {link!r} must hold integer node indices only.")
            if len(link) < 2:
                raise SpecError(
                    f"{where}: {tuple(link)!r} has {len(link)} index; a link needs at least (input, output)."
                )
            if any(v < 0 for v in link):
                raise SpecError(f"{where}: {tuple(link)!r} has a negative node index; nodes count from 0.")
            ins, out = list(link[:-1]), link[-1]
            sub = subs[i]
            par = pars[i] if i < len(pars) else {}
            if par is None:
                par = {}
            if not isinstance(sub, str):
                raise SpecError(
                    f"{_loc(path, key + '_sub', i)}: {sub!r} must be a class or block name "
                    f"(a string), not {type(sub).__name__}."
                )
            share = None
            if isinstance(par, dict) and "share" in par:
                # weight sharing: the link calls an earlier link's layer or block again
                par = dict(par)
                share = par.pop("share")
                if not _is_node(share):
                    raise SpecError(
                        f"{_loc(path, key + '_par', i)}: share={share!r} must be the node number of "
                        f"an earlier {key!r} link whose weights this link reuses."
                    )
                if par:
                    raise SpecError(
                        f"{_loc(path, key + '_par', i)}: a link that shares node {share}'s weights "
                        f"takes its parameters from that link; remove {sorted(par)}."
                    )
            if code == "block":
                _check_block_link(spec, path, key, i, link, ins, sub, par)
            else:
                if code in ("act", "activation") and sub in ACTIVATION_NAMES:
                    par = dict(par, activation=sub)
                    sub = "Activation"
                cls = layer_class(sub)
                if cls is None:
                    hint = _did_you_mean(sub, allowed if allowed else _all_layer_names())
                    raise SpecError(f"{_loc(path, key + '_sub', i)}: unknown class {sub!r}.{hint} {REGISTER_HINT}")
                if allowed is not None and sub not in allowed:
                    right = [c for c, (a, _, _) in TYPE_CODES.items() if a and sub in a]
                    fix = f"move the link to {right[0]!r}" if right else "use the 'layer' link type"
                    raise SpecError(
                        f"{_loc(path, key + '_sub', i)}: {sub!r} is not a {key!r} class "
                        f"(allowed: {', '.join(allowed)}). Fix: {fix}."
                    )
                _check_kwargs(sub, cls, par, _loc(path, key + "_par", i), key + "_par")
                if sub == "UpSampling2D" and par.get("interpolation", "nearest") != "nearest":
                    # Keras resizes with a Python-side size: it fails on the first input of unknown size
                    mode = par["interpolation"]
                    fix = (
                        f"g.upsample(x, 'Interpolate', scale={par.get('size', 2)}, mode='bilinear') (PyTorch's "
                        "F.interpolate, align_corners=False; align_corners=True is an option)"
                        if mode == "bilinear"
                        else "use 'nearest', or 'Interpolate' (bilinear or nearest)"
                    )
                    raise SpecError(
                        f"{_loc(path, key + '_par', i)}: UpSampling2D(interpolation={mode!r}) fails on "
                        f"inputs of unknown size. Fix: {fix}."
                    )
                if not multi and len(ins) != 1:
                    raise SpecError(
                        f"{where}: {sub} takes one input but the link {tuple(link)!r} gives "
                        f"{len(ins)}. Write (input, output)."
                    )
                if code == "merge" and len(ins) < 2:
                    raise SpecError(
                        f"{where}: a merge needs at least two inputs, got {tuple(link)!r}. Write (a, b, output)."
                    )
            links.append(Link(code, key, i, ins, out, sub, dict(par), share))
    if not links:
        raise SpecError(f"{path or 'spec'}: has no links. Add at least one link list such as 'conv': [(0, 1)].")
    return links


def _check_block_link(spec, path, key, i, link, ins, sub, par):
    local = spec.get("blocks", {})
    if sub not in _BLOCK_FUNCTIONS and sub not in _BLOCK_SPECS and sub not in local:
        raise SpecError(
            f"{_loc(path, key + '_sub', i)}: unknown block {sub!r}."
            f"{_did_you_mean(sub, list_blocks() + list(local))} Register it with "
            f"visionfw.register_block or add it under 'blocks'."
        )
    if sub in local:
        lo = hi = len(local[sub].get("inputs") or [None]) if isinstance(local[sub], dict) else 1
        if isinstance(local[sub], dict):
            _check_block_params(sub, par, _loc(path, key + "_par", i), key + "_par", dict_block=True)
    else:
        lo, hi = _block_arity(sub)
        _check_block_params(sub, par, _loc(path, key + "_par", i), key + "_par")
    if len(ins) < lo or (hi is not None and len(ins) > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}"
        raise SpecError(
            f"{_loc(path, key, i)}: block {sub!r} takes {want} input(s) but the link "
            f"{tuple(link)!r} gives {len(ins)}. The last index is the output node."
        )


def _check_graph(links, n_inputs, outputs, path):
    # Every check here is linear in the number of links, whatever the node numbers are:
    # a spec from someone else must not be able to make validation allocate per node index.
    created = {}
    for link in links:
        if link.out < n_inputs:
            raise SpecError(
                f"{_loc(path, link.key, link.index)}: creates node {link.out}, which is an input "
                f"of the model (nodes 0..{n_inputs - 1}). Output nodes start at {n_inputs}."
            )
        if link.out in created:
            other = created[link.out]
            raise SpecError(
                f"{_loc(path, link.key, link.index)}: node {link.out} is created twice (also by "
                f"{_loc('', other.key, other.index)}). Give one of them a new node number."
            )
        created[link.out] = link
    top = max(created)
    for link in links:
        for v in link.ins:
            if v not in created and v >= n_inputs:
                raise SpecError(
                    f"{_loc(path, link.key, link.index)}: input node {v} is never created (no link "
                    f"ends in it and it is not a model input). Add a link that creates node {v} "
                    f"or fix the index."
                )
    for link in links:
        if link.share is None:
            continue
        where = _loc(path, link.key + "_par", link.index)
        target = created.get(link.share)
        if target is None or link.share >= link.out:
            raise SpecError(
                f"{where}: share={link.share} must name a node created before node {link.out} by a "
                f"link whose weights this one reuses."
            )
        if (target.code, target.sub) != (link.code, link.sub):
            raise SpecError(
                f"{where}: share={link.share}: node {link.share} is a {target.sub!r} "
                f"{target.key!r} link; only a {link.sub!r} {link.key!r} link can be shared here."
            )
        if target.share is not None:
            raise SpecError(
                f"{where}: share={link.share}: node {link.share} itself shares node {target.share}; "
                f"write share={target.share}."
            )
        if len(target.ins) != len(link.ins):
            raise SpecError(
                f"{where}: share={link.share}: node {link.share} takes {len(target.ins)} input(s), "
                f"this link gives {len(link.ins)}."
            )
    if top - n_inputs + 1 != len(created):
        ordered = sorted(created)
        missing, expected = [], n_inputs
        for node in ordered:
            if node != expected:
                missing.append(expected if node == expected + 1 else f"{expected}..{node - 1}")
                if len(missing) == 5:
                    break
            expected = node + 1
        raise SpecError(
            f"{path or 'spec'}: node(s) [{', '.join(map(str, missing))}] are never created; nodes "
            f"must be numbered without gaps from {n_inputs} to {top}. Renumber the links."
        )

    # Cycles and forward references: with gap-free numbering, a link whose inputs are all lower
    # than its output node cannot be part of a cycle, so one pass finds both.
    for node in sorted(created):
        link = created[node]
        if node in link.ins:
            raise SpecError(
                f"{_loc(path, link.key, link.index)}: the graph has a cycle {node} -> {node} "
                f"(the link uses its own output). A link's inputs must be created before it."
            )
        later = [v for v in link.ins if v > node]
        if later:
            raise SpecError(
                f"{_loc(path, link.key, link.index)}: node {node} uses node {later[0]}, which is "
                f"created after it (a cycle or a forward reference). Number the nodes in build "
                f"order (inputs lower than outputs)."
            )

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
            stack.extend(created[v].ins)
    dangling = sorted(n for n in created if n not in reach)
    if dangling:
        link = created[dangling[0]]
        raise SpecError(
            f"{_loc(path, link.key, link.index)}: node {dangling[0]} reaches no output (dangling "
            f"nodes: {dangling[:20]}). Remove its link, use it, or list it under 'outputs'."
        )
    unused_inputs = [v for v in range(n_inputs) if v not in reach]
    if unused_inputs:
        raise SpecError(
            f"{path or 'spec'}: model input node(s) {unused_inputs} reach no output. Use them or "
            f"drop them from 'inputs'."
        )
    return list(outputs)


class ParsedSpec(NamedTuple):
    """What validation learns about a spec: its links (in build order), input count and outputs."""

    links: list
    n_inputs: int
    outputs: list


def validate_spec(spec, path="", _depth=0, _seen=None):
    """Checks a spec without building it (nested dict blocks too); returns a :class:`ParsedSpec`.

    Raises SpecError naming the key, the link and the fix.  ``_seen`` collects the parsed
    result of every (sub)spec by identity, so one build validates each of them once.
    """
    if not isinstance(spec, dict):
        raise SpecError(f"{path or 'spec'}: a model spec must be a dict, got {type(spec).__name__}.")
    _standard_blocks()
    if _depth > _MAX_BLOCK_DEPTH:
        raise SpecError(f"{path}: blocks nest deeper than {_MAX_BLOCK_DEPTH} levels; a block probably contains itself.")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{_loc(path, 'name')}: every spec needs a non-empty string name, got {name!r}.")
    path = path or f"spec {name!r}"
    _check_name_and_size(spec, name, path)
    n_inputs = _check_inputs(spec, path)
    _check_defaults(spec, path)
    local_blocks = spec.get("blocks", {})
    if not isinstance(local_blocks, dict):
        raise SpecError(
            f"{_loc(path, 'blocks')}: must be a dict {{block name: spec}}, got {type(local_blocks).__name__}."
        )
    seen = {} if _seen is None else _seen
    for bname, bspec in local_blocks.items():
        if not isinstance(bspec, dict):
            raise SpecError(f"{_loc(path, 'blocks')}, block {bname!r}: must be a dict spec.")
        if id(bspec) not in seen:
            seen[id(bspec)] = validate_spec(
                dict(bspec, name=bspec.get("name", bname)), f"{path} > block {bname!r}", _depth + 1, seen
            )
    links = _collect_links(spec, path, n_inputs)
    outputs = _check_graph(links, n_inputs, spec.get("outputs"), path)
    for link in links:
        if link.code == "block" and link.sub in _BLOCK_SPECS and link.sub not in local_blocks:
            if path.count(f"block {link.sub!r}") >= 1:
                raise SpecError(f"{_loc(path, link.key + '_sub', link.index)}: block {link.sub!r} contains itself.")
            bspec = _BLOCK_SPECS[link.sub]
            if id(bspec) not in seen:
                seen[id(bspec)] = validate_spec(
                    dict(bspec, name=bspec.get("name", link.sub)), f"{path} > block {link.sub!r}", _depth + 1, seen
                )
    parsed = ParsedSpec(sorted(links, key=lambda link: link.out), n_inputs, outputs)
    seen[id(spec)] = parsed
    return parsed


# --------------------------------------------------------------------------- building


def _apply(layer_or_fn, tensors, where):
    try:
        return layer_or_fn(tensors)
    except SpecError:
        raise
    except Exception as exc:  # Keras shape errors come as ValueError/TypeError and backend errors
        raise SpecError(f"{where}: building failed: {exc}".strip()) from exc


def _block_outputs(link, args, lname, path, seen, local_blocks, where):
    """The output tensor(s) of a block link (a function block or a dict spec) applied to ``args``."""
    raw = local_blocks.get(link.sub, _BLOCK_SPECS.get(link.sub))
    if raw is not None:
        bspec = dict(raw, name=raw.get("name", link.sub))
        sub_path = f"{path} > block {link.sub!r}"
        sub_parsed = seen.get(id(raw)) or validate_spec(bspec, sub_path, 1, seen)
        result = _build_graph(bspec, sub_parsed, args, lname + "_", sub_path, seen, link.par)
        return result[0] if len(result) == 1 else result
    fn = _BLOCK_FUNCTIONS[link.sub]
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
} | set(TYPE_CODES["merge"][0])
_CONVS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "EdgePadConv2D", "Conv2DTranspose")


def _pair(value):
    """An int or a 2-tuple of positive ints as (h, w), else None."""
    if _is_node(value) and value > 0:
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_node(v) and v > 0 for v in value):
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


def _build_graph(spec, parsed, tensors, prefix, path, seen, defaults_override=None):
    """Adds the spec's layers on top of ``tensors`` (its input nodes); returns its output tensors."""
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
    token = _context.set(
        {"defaults": defaults, "input_channels": outer["input_channels"] if outer else tensors[0].shape[-1]}
    )
    shared = {link.share for link in parsed.links if link.share is not None}
    made = {}  # node -> the layer or sub-model that a later link shares
    sizes = {i: (i, Fraction(1), Fraction(1)) for i in range(len(tensors))}  # see _spatial_size
    try:
        for link in parsed.links:
            code, i, ins, out, sub, par = link.code, link.index, link.ins, link.out, link.sub, link.par
            where = _loc(path, link.key, i) + f" ({sub}, nodes {tuple(ins)} -> {out})"
            args = [nodes[v] for v in ins]
            lname = f"{prefix}{code}{i}_n{out}"
            if link.share is not None:
                nodes[out] = _apply(made[link.share], args if len(args) > 1 else args[0], where)
            elif code == "block" and out in shared:
                # a shared block becomes one sub-model, called by every link that shares it
                import keras

                sub_inputs = [keras.Input(shape=tuple(a.shape[1:]), name=f"{lname}_in{k}") for k, a in enumerate(args)]
                result = _block_outputs(link, sub_inputs, lname, path, seen, local_blocks, where)
                allow_graph_depth(_layer_calls_behind(result))
                made[out] = keras.Model(sub_inputs if len(sub_inputs) > 1 else sub_inputs[0], result, name=lname)
                nodes[out] = _apply(made[out], args if len(args) > 1 else args[0], where)
            elif code == "block":
                nodes[out] = _block_outputs(link, args, lname, path, seen, local_blocks, where)
            else:
                kwargs = _resolve_kwargs(sub, par, defaults)
                kwargs.setdefault("name", lname)
                cls = edge_padded(sub, layer_class(sub), kwargs)
                _check_link_shapes(link, kwargs, args, sizes, where)
                same_sizes = len({sizes.get(v) for v in ins}) == 1
                sizes[out] = _spatial_size(sub, kwargs, sizes.get(ins[0])) if same_sizes else None
                try:
                    layer = cls(**kwargs)
                except Exception as exc:
                    raise SpecError(f"{where}: {sub}({kwargs}) could not be created: {exc}") from exc
                multi = TYPE_CODES[code][2]
                made[out] = layer
                nodes[out] = _apply(layer, args if multi and len(args) > 1 else args[0], where)
            trace = _trace.get()
            if trace is not None:
                trace.append(nodes[out])
    finally:
        _context.reset(token)
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


def allow_graph_depth(layer_calls):
    """Raises Python's recursion limit (never lowers it) so that Keras can walk a graph of
    ``layer_calls`` layer calls: Keras makes a Model -- when it is built, cloned or loaded -- by a
    recursive walk, one Python frame per layer on the longest path, and a chain of ~1000 layers hits
    Python's default limit.  The limit stays raised while the process may walk that model again.
    The walk calls itself from Python, which since Python 3.11 takes no C stack per call."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    needed = 1000 + depth + 2 * int(layer_calls)
    if needed > sys.getrecursionlimit():
        sys.setrecursionlimit(needed)


def build(spec):
    """Validates ``spec`` once and builds it: returns ``(keras.Model, ParsedSpec)``."""
    import keras

    seen = {}
    parsed = validate_spec(spec, _seen=seen)
    shapes = spec.get("inputs", [(None, None, 3)])
    inputs = [keras.Input(shape=tuple(s), name=f"input_{i}") for i, s in enumerate(shapes)]
    trace = []
    token = _trace.set(trace)
    try:
        outputs = _build_graph(spec, parsed, inputs, "", "", seen)
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


def creation_order(model):
    """Ids of ``model``'s layers (nested ones too) in the order its spec created them, or None for a
    model not built by :func:`build_model` (e.g. loaded from a ``.keras`` file).

    Keras lists ``model.layers`` by graph depth, which differs from the written order as soon as
    branches meet; the weights importer pairs unnamed PyTorch modules in this order instead."""
    return _CREATION_ORDER.get(model)


def build_model(spec):
    """Builds the ``keras.Model`` a spec describes (validating it first, once)."""
    return build(spec)[0]


def set_compute_policy(model, dtype_policy):
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
