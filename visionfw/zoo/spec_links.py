"""Reading a spec's link lists: every ``<type>`` / ``<type>_sub`` / ``<type>_par`` triple becomes
:class:`~visionfw.zoo.spec_format.Link` tuples, each checked against the class or block it names."""

from __future__ import annotations

import inspect
from typing import Any

from visionfw.errors import SpecError
from visionfw.registries import did_you_mean
from visionfw.zoo.parts import (
    BLOCKS,
    REGISTER_HINT,
    accepted_kwargs,
    all_layer_names,
    check_layer_values,
    layer_class,
)
from visionfw.zoo.spec_format import ACTIVATION_NAMES, ALIASES, SPEC_KEYS, TYPE_CODES, Link, is_node, link_keys, loc

__all__ = ["check_kwargs", "collect_links"]


def check_kwargs(cls_name: str, cls: type, kwargs: Any, where: str, fix_key: str) -> None:
    """Raises SpecError unless ``kwargs`` is a dict of keywords that ``cls`` accepts, with plain values.

    Args:
        cls_name: the class name the spec wrote.
        cls: the layer class.
        kwargs: the spec's parameters for it.
        where: what the message starts with.
        fix_key: the spec key the fix goes into.
    """
    if not isinstance(kwargs, dict):
        raise SpecError(
            f"{where}: parameters must be a dict of keyword arguments, got "
            f"{type(kwargs).__name__} ({kwargs!r}). Fix: write e.g. {{'filters': 64}} "
            f"in {fix_key!r}, or {{}} for the class defaults."
        )
    accepted = accepted_kwargs(cls)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise SpecError(f"{where}: parameter names must be strings, got {key!r}.")
        if key not in accepted:
            raise SpecError(
                f"{where}: {cls_name} does not accept the keyword {key!r}.{did_you_mean(key, accepted)} "
                f"Fix the entry in {fix_key!r}."
            )
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            raise SpecError(
                f"{where}: parameter {key}={value!r} is a quoted string (the old repr('...') style). "
                f"Write the plain value {value[1:-1]!r}."
            )
    check_layer_values(cls_name, kwargs, where)


def _block_arity(block: Any) -> tuple[int, int | None]:
    """(min, max) number of inputs a block (a dict spec or a function) takes."""
    if isinstance(block, dict):
        n = len(block.get("inputs") or [None])
        return n, n
    return 1, None if getattr(block, "multi_input", False) else 1


def _check_block_params(name: str, block: Any, par: Any, where: str, fix_key: str) -> None:
    if not isinstance(par, dict):
        raise SpecError(
            f"{where}: parameters must be a dict, got {type(par).__name__} ({par!r}). Fix the entry in {fix_key!r}."
        )
    if isinstance(block, dict):
        for cls_name, kwargs in par.items():
            cls = layer_class(cls_name)
            if cls is None:
                raise SpecError(
                    f"{where}: block {name!r} is a dict spec; its parameters are defaults per layer class "
                    f"(e.g. {{'Conv2D': {{'filters': 32}}}}), and {cls_name!r} is not a layer class."
                    f"{did_you_mean(cls_name, all_layer_names())}"
                )
            check_kwargs(cls_name, cls, kwargs, where, fix_key)
        return
    params = inspect.signature(block).parameters
    if any(v.kind == v.VAR_KEYWORD for v in params.values()):
        return
    accepted = [p for p in params if p not in ("inputs", "name")]
    for key in par:
        if key not in accepted:
            raise SpecError(
                f"{where}: block {name!r} does not accept the parameter {key!r}."
                f"{did_you_mean(key, accepted)} It takes: {', '.join(accepted) or 'nothing'}."
            )


def _check_keys(spec: dict, path: str) -> None:
    """Every key is a link type (word or alias, with its _sub/_par) or one of :data:`SPEC_KEYS`."""
    known = set(TYPE_CODES) | set(ALIASES)
    for key in spec:
        if not isinstance(key, str):
            raise SpecError(f"{path or 'spec'}: keys must be strings, got {key!r}.")
        base = key[:-4] if key.endswith(("_sub", "_par")) else key
        if key in SPEC_KEYS or base in known:
            if key.endswith(("_sub", "_par")) and base not in spec:
                raise SpecError(
                    f"{loc(path, key)}: there is no link list {base!r} for it to describe. "
                    f"Add {base!r} or remove {key!r}."
                )
            continue
        # suggest in the spec's own style: five-letter codes for a dict written with them
        style = ALIASES if any(k in ALIASES for k in spec) else TYPE_CODES
        choices = list(SPEC_KEYS) + [c + s for c in style for s in ("", "_sub", "_par")]
        raise SpecError(
            f"{loc(path, key)}: unknown key.{did_you_mean(key, choices)} Link types: "
            f"{', '.join(TYPE_CODES)} (or the original codes {', '.join(ALIASES)}); other keys: "
            f"{', '.join(SPEC_KEYS)}."
        )


def _link_lists(spec: dict, path: str, key: str, default_cls: str | None) -> tuple[list, list, list]:
    """The link tuples under ``key`` with their class names (``_sub``) and parameters (``_par``)."""
    link_list = spec[key]
    if not isinstance(link_list, (list, tuple)):
        raise SpecError(
            f"{loc(path, key)}: must be a list of link tuples such as [(0, 1)], got {type(link_list).__name__}."
        )
    subs = spec.get(key + "_sub")
    pars = spec.get(key + "_par", [])
    if subs is None:
        if default_cls is None:
            raise SpecError(
                f"{loc(path, key + '_sub')}: missing; links of type {key!r} need a class "
                f"or block name each. Add '{key}_sub': [...] with {len(link_list)} names."
            )
        subs = [default_cls] * len(link_list)
    if not isinstance(subs, (list, tuple)):
        raise SpecError(f"{loc(path, key + '_sub')}: must be a list of names, got {type(subs).__name__}.")
    if len(subs) != len(link_list):
        raise SpecError(
            f"{loc(path, key + '_sub')}: has {len(subs)} names for {len(link_list)} links in "
            f"{key!r}. Give exactly one class/block name per link."
        )
    if not isinstance(pars, (list, tuple)):
        raise SpecError(
            f"{loc(path, key + '_par')}: must be a list of dicts (one per link), got {type(pars).__name__}."
        )
    if len(pars) > len(link_list):
        raise SpecError(
            f"{loc(path, key + '_par')}: has {len(pars)} entries for {len(link_list)} links "
            f"in {key!r}. Remove the extra entries (a short list means class defaults)."
        )
    return list(link_list), list(subs), list(pars) + [{}] * (len(link_list) - len(pars))


def _check_link_tuple(link: Any, where: str) -> None:
    if not isinstance(link, (list, tuple)):
        raise SpecError(f"{where}: {link!r} is not a tuple of node indices such as (0, 1).")
    if not all(is_node(v) for v in link):
        raise SpecError(f"{where}: {link!r} must hold integer node indices only.")
    if len(link) < 2:
        raise SpecError(f"{where}: {tuple(link)!r} has {len(link)} index; a link needs at least (input, output).")
    if any(v < 0 for v in link):
        raise SpecError(f"{where}: {tuple(link)!r} has a negative node index; nodes count from 0.")


def _split_share(par: Any, where: str, key: str) -> tuple[Any, int | None]:
    """``par`` without ``share`` and the node it shares (weight sharing: the link calls an earlier
    link's layer or block again), or ``(par, None)``."""
    if not (isinstance(par, dict) and "share" in par):
        return par, None
    par = dict(par)
    share = par.pop("share")
    if not is_node(share):
        raise SpecError(
            f"{where}: share={share!r} must be the node number of an earlier {key!r} link whose weights "
            f"this link reuses."
        )
    if par:
        raise SpecError(
            f"{where}: a link that shares node {share}'s weights takes its parameters from that link; "
            f"remove {sorted(par)}."
        )
    return par, share


def _check_block_link(spec: dict, path: str, link: Link) -> None:
    """The block exists (registered or local) and takes the link's parameters and inputs."""
    key, i, sub = link.key, link.index, link.sub
    local = spec.get("blocks", {})
    if sub in local:
        block = local[sub]
        lo, hi = _block_arity(block) if isinstance(block, dict) else (1, 1)
        if isinstance(block, dict):
            _check_block_params(sub, block, link.par, loc(path, key + "_par", i), key + "_par")
    else:
        block = BLOCKS.lookup(sub, where=loc(path, key + "_sub", i), also=list(local))
        lo, hi = _block_arity(block)
        _check_block_params(sub, block, link.par, loc(path, key + "_par", i), key + "_par")
    n = len(link.ins)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}"
        raise SpecError(
            f"{loc(path, key, i)}: block {sub!r} takes {want} input(s) but the link "
            f"{(*link.ins, link.out)!r} gives {n}. The last index is the output node."
        )


def _check_upsampling(par: dict, where: str) -> None:
    """Keras' UpSampling2D resizes with a Python-side size: it fails on the first input of unknown size."""
    mode = par.get("interpolation", "nearest")
    if mode == "nearest":
        return
    fix = (
        f"g.upsample(x, 'Interpolate', scale={par.get('size', 2)}, mode='bilinear') (PyTorch's "
        "F.interpolate, align_corners=False; align_corners=True is an option)"
        if mode == "bilinear"
        else "use 'nearest', or 'Interpolate' (bilinear or nearest)"
    )
    raise SpecError(f"{where}: UpSampling2D(interpolation={mode!r}) fails on inputs of unknown size. Fix: {fix}.")


def _layer_link(path: str, link: Link) -> Link:
    """Checks a layer link (class, parameters, input count); returns it with activation names resolved."""
    code, key, i, sub, par = link.code, link.key, link.index, link.sub, link.par
    allowed, _, multi = TYPE_CODES[code]
    if code in ("act", "activation") and sub in ACTIVATION_NAMES:
        par, sub = dict(par, activation=sub), "Activation"
    cls = layer_class(sub)
    if cls is None:
        hint = did_you_mean(sub, allowed if allowed else all_layer_names())
        raise SpecError(f"{loc(path, key + '_sub', i)}: unknown class {sub!r}.{hint} {REGISTER_HINT}")
    if allowed is not None and sub not in allowed:
        right = [c for c, (a, _, _) in TYPE_CODES.items() if a and sub in a]
        fix = f"move the link to {right[0]!r}" if right else "use the 'layer' link type"
        raise SpecError(
            f"{loc(path, key + '_sub', i)}: {sub!r} is not a {key!r} class (allowed: {', '.join(allowed)}). Fix: {fix}."
        )
    check_kwargs(sub, cls, par, loc(path, key + "_par", i), key + "_par")
    if sub == "UpSampling2D":
        _check_upsampling(par, loc(path, key + "_par", i))
    written = (*link.ins, link.out)
    if not multi and len(link.ins) != 1:
        raise SpecError(
            f"{loc(path, key, i)}: {sub} takes one input but the link {written!r} gives "
            f"{len(link.ins)}. Write (input, output)."
        )
    if code == "merge" and len(link.ins) < 2:
        raise SpecError(
            f"{loc(path, key, i)}: a merge needs at least two inputs, got {written!r}. Write (a, b, output)."
        )
    return link._replace(sub=sub, par=dict(par))


def _links_of_type(spec: dict, path: str, code: str, key: str) -> list[Link]:
    """The checked links of one link type, written under ``key``."""
    _, default_cls, _ = TYPE_CODES[code]
    links = []
    for i, (written, sub, par) in enumerate(zip(*_link_lists(spec, path, key, default_cls))):
        _check_link_tuple(written, loc(path, key, i))
        if not isinstance(sub, str):
            raise SpecError(
                f"{loc(path, key + '_sub', i)}: {sub!r} must be a class or block name "
                f"(a string), not {type(sub).__name__}."
            )
        par, share = _split_share({} if par is None else par, loc(path, key + "_par", i), key)
        link = Link(code, key, i, list(written[:-1]), written[-1], sub, par, share)
        if code == "block":
            _check_block_link(spec, path, link)
            links.append(link._replace(par=dict(par)))
        else:
            links.append(_layer_link(path, link))
    return links


def collect_links(spec: dict, path: str) -> list[Link]:
    """Checks every key and link list of ``spec`` and returns its links.

    Args:
        spec: the spec dict.
        path: where the spec is (``"spec 'EDSR' > block 'x'"``), the start of every message.

    Returns:
        The :class:`Link` tuples, grouped by link type (in the order of ``TYPE_CODES``).

    Raises:
        SpecError: naming the key, the link and the fix.
    """
    _check_keys(spec, path)
    keys = link_keys(spec)
    links = []
    for code in TYPE_CODES:
        if code in keys:
            links += _links_of_type(spec, path, code, keys[code])
    if not links:
        raise SpecError(f"{path or 'spec'}: has no links. Add at least one link list such as 'conv': [(0, 1)].")
    return links
