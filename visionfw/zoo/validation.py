"""Checking a spec before a layer is built: :func:`validate_spec` raises
:class:`visionfw.errors.SpecError` naming the key, the link index and the fix."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from visionfw.errors import SpecError
from visionfw.registries import did_you_mean
from visionfw.zoo.parts import BLOCKS, REGISTER_HINT, all_layer_names, layer_class
from visionfw.zoo.spec_format import MAX_BLOCK_DEPTH, MAX_SPEC_LINKS, Link, ParsedSpec, is_node, link_keys, loc
from visionfw.zoo.spec_links import check_kwargs, collect_links

__all__ = ["defer_validation", "validate_spec", "validation_deferred"]

# Set while the registry writes a spec that is about to be built (and so validated) anyway.
_deferred = contextvars.ContextVar("visionfw_validation_deferred", default=False)


@contextlib.contextmanager
def defer_validation() -> Iterator[None]:
    """Inside this block :meth:`visionfw.Graph.spec` skips validation: the build will do it, once."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def validation_deferred() -> bool:
    """Whether validation is deferred here (see :func:`defer_validation`)."""
    return _deferred.get()


def _check_name_and_size(spec: dict, name: str, path: str) -> None:
    """A name Keras accepts, and at most :data:`MAX_SPEC_LINKS` links (counted before any is checked)."""
    if "/" in name:
        raise SpecError(
            f"{loc(path, 'name')}: {name!r} contains '/', which Keras refuses in model and layer "
            f"names. Use another character, e.g. {name.replace('/', '_')!r}."
        )
    count = sum(len(spec[key]) for key in link_keys(spec).values() if isinstance(spec[key], (list, tuple)))
    if count > MAX_SPEC_LINKS:
        raise SpecError(
            f"{path}: has {count} links; a spec may hold at most {MAX_SPEC_LINKS} (Keras creates "
            "every layer in Python, a few milliseconds each). Repeat a block spec under 'blocks' for "
            "deep stacks."
        )


def _check_inputs(spec: dict, path: str) -> int:
    shapes = spec.get("inputs", [(None, None, 3)])
    if not isinstance(shapes, (list, tuple)) or not shapes:
        raise SpecError(
            f"{loc(path, 'inputs')}: must be a non-empty list of input shapes such as "
            f"[(None, None, 3)], got {shapes!r}."
        )
    for i, shape in enumerate(shapes):
        if (
            not isinstance(shape, (list, tuple))
            or not shape
            or not all(d is None or (is_node(d) and d > 0) for d in shape)
        ):
            raise SpecError(
                f"{loc(path, 'inputs')}, input {i}: {shape!r} is not a shape. Write a tuple "
                f"of positive ints or None without the batch axis, e.g. (None, None, 3)."
            )
    return len(shapes)


def _check_defaults(spec: dict, path: str) -> None:
    defaults = spec.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SpecError(
            f"{loc(path, 'defaults')}: must be a dict {{class name: {{kwarg: value}}}}, got {type(defaults).__name__}."
        )
    for cls_name, kwargs in defaults.items():
        cls = layer_class(cls_name)
        if cls is None:
            raise SpecError(
                f"{loc(path, 'defaults')}: {cls_name!r} is not a layer class."
                f"{did_you_mean(cls_name, all_layer_names())} Fix the key in 'defaults'. "
                f"{REGISTER_HINT}"
            )
        where = f"{loc(path, 'defaults')}, class {cls_name!r}"
        check_kwargs(cls_name, cls, dict(kwargs) if isinstance(kwargs, dict) else kwargs, where, "defaults")


# --------------------------------------------------------------------------- the graph of the links
# Every check here is linear in the number of links, whatever the node numbers are:
# a spec from someone else must not be able to make validation allocate per node index.


def _created_nodes(links: list[Link], n_inputs: int, path: str) -> dict[int, Link]:
    """{node: the link that creates it}; each node created once, none of them an input."""
    created: dict[int, Link] = {}
    for link in links:
        if link.out < n_inputs:
            raise SpecError(
                f"{loc(path, link.key, link.index)}: creates node {link.out}, which is an input "
                f"of the model (nodes 0..{n_inputs - 1}). Output nodes start at {n_inputs}."
            )
        if link.out in created:
            other = created[link.out]
            raise SpecError(
                f"{loc(path, link.key, link.index)}: node {link.out} is created twice (also by "
                f"{loc('', other.key, other.index)}). Give one of them a new node number."
            )
        created[link.out] = link
    for link in links:
        for v in link.ins:
            if v not in created and v >= n_inputs:
                raise SpecError(
                    f"{loc(path, link.key, link.index)}: input node {v} is never created (no link "
                    f"ends in it and it is not a model input). Add a link that creates node {v} "
                    f"or fix the index."
                )
    return created


def _check_shares(links: list[Link], created: dict[int, Link], path: str) -> None:
    """A link that shares weights names an earlier link of its own type and class, with as many inputs."""
    for link in links:
        if link.share is None:
            continue
        where = loc(path, link.key + "_par", link.index)
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


def _check_numbering(created: dict[int, Link], n_inputs: int, path: str) -> None:
    """Nodes numbered without gaps, every link's inputs lower than its output (so no cycle)."""
    top = max(created)
    if top - n_inputs + 1 != len(created):
        missing: list[int | str] = []
        expected = n_inputs
        for node in sorted(created):
            if node != expected:
                missing.append(expected if node == expected + 1 else f"{expected}..{node - 1}")
                if len(missing) == 5:
                    break
            expected = node + 1
        raise SpecError(
            f"{path or 'spec'}: node(s) [{', '.join(map(str, missing))}] are never created; nodes "
            f"must be numbered without gaps from {n_inputs} to {top}. Renumber the links."
        )
    # with gap-free numbering, a link whose inputs are all lower than its output node cannot be
    # part of a cycle, so one pass finds cycles and forward references both
    for node in sorted(created):
        link = created[node]
        if node in link.ins:
            raise SpecError(
                f"{loc(path, link.key, link.index)}: the graph has a cycle {node} -> {node} "
                f"(the link uses its own output). A link's inputs must be created before it."
            )
        later = [v for v in link.ins if v > node]
        if later:
            raise SpecError(
                f"{loc(path, link.key, link.index)}: node {node} uses node {later[0]}, which is "
                f"created after it (a cycle or a forward reference). Number the nodes in build "
                f"order (inputs lower than outputs)."
            )


def _checked_outputs(created: dict[int, Link], n_inputs: int, outputs: object, path: str) -> list[int]:
    """The output nodes (default: the highest), each existing, and every node and input reaching one."""
    top = max(created)
    if outputs is None:
        outputs = [top]
    if not isinstance(outputs, (list, tuple)) or not outputs or not all(is_node(v) for v in outputs):
        raise SpecError(f"{loc(path, 'outputs')}: must be a non-empty list of node indices, got {outputs!r}.")
    for v in outputs:
        if v not in created and not (0 <= v < n_inputs):
            raise SpecError(f"{loc(path, 'outputs')}: node {v} does not exist (nodes run 0..{top}).")
    reach: set[int] = set()
    stack = list(outputs)
    while stack:
        v = stack.pop()
        if v not in reach:
            reach.add(v)
            stack.extend(created[v].ins if v in created else ())
    dangling = sorted(n for n in created if n not in reach)
    if dangling:
        link = created[dangling[0]]
        raise SpecError(
            f"{loc(path, link.key, link.index)}: node {dangling[0]} reaches no output (dangling "
            f"nodes: {dangling[:20]}). Remove its link, use it, or list it under 'outputs'."
        )
    unused_inputs = [v for v in range(n_inputs) if v not in reach]
    if unused_inputs:
        raise SpecError(
            f"{path or 'spec'}: model input node(s) {unused_inputs} reach no output. Use them or "
            f"drop them from 'inputs'."
        )
    return list(outputs)


def check_graph(links: list[Link], n_inputs: int, outputs: object, path: str) -> list[int]:
    """Checks the graph the links make and returns its output nodes.

    Args:
        links: the spec's links (see :func:`~visionfw.zoo.spec_links.collect_links`).
        n_inputs: how many input nodes the spec has.
        outputs: the spec's ``'outputs'`` (None: the highest node).
        path: where the spec is, the start of every message.

    Returns:
        The output nodes.

    Raises:
        SpecError: a node created twice or never, a gap in the numbering, a cycle, a bad share, a
            node or input that reaches no output.
    """
    created = _created_nodes(links, n_inputs, path)
    _check_shares(links, created, path)
    _check_numbering(created, n_inputs, path)
    return _checked_outputs(created, n_inputs, outputs, path)


def _validate_blocks(spec: dict, path: str, depth: int, seen: dict) -> None:
    """Validates the spec's local dict blocks, once each."""
    local_blocks = spec.get("blocks", {})
    if not isinstance(local_blocks, dict):
        raise SpecError(
            f"{loc(path, 'blocks')}: must be a dict {{block name: spec}}, got {type(local_blocks).__name__}."
        )
    for bname, bspec in local_blocks.items():
        if not isinstance(bspec, dict):
            raise SpecError(f"{loc(path, 'blocks')}, block {bname!r}: must be a dict spec.")
        if id(bspec) not in seen:
            seen[id(bspec)] = validate_spec(
                dict(bspec, name=bspec.get("name", bname)), f"{path} > block {bname!r}", _depth=depth + 1, _seen=seen
            )


def _validate_registered_blocks(links: list[Link], local_blocks: dict, path: str, depth: int, seen: dict) -> None:
    """Validates the registered dict-spec blocks the links use, once each; a block may not contain itself."""
    for link in links:
        bspec = BLOCKS.get(link.sub)
        if link.code != "block" or link.sub in local_blocks or not isinstance(bspec, dict):
            continue
        if path.count(f"block {link.sub!r}") >= 1:
            raise SpecError(f"{loc(path, link.key + '_sub', link.index)}: block {link.sub!r} contains itself.")
        if id(bspec) not in seen:
            seen[id(bspec)] = validate_spec(
                dict(bspec, name=bspec.get("name", link.sub)),
                f"{path} > block {link.sub!r}",
                _depth=depth + 1,
                _seen=seen,
            )


def validate_spec(spec: dict, path: str = "", *, _depth: int = 0, _seen: dict | None = None) -> ParsedSpec:
    """Checks a spec without building it (nested dict blocks too).

    Args:
        spec: the spec dict.
        path: where the spec is, for nested blocks (``"spec 'X' > block 'y'"``); '' for a model.

    Returns:
        The :class:`~visionfw.zoo.spec_format.ParsedSpec`: links in build order, input count, outputs.

    Raises:
        SpecError: naming the key, the link and the fix.

    ``_seen`` collects the parsed result of every (sub)spec by identity, so one build validates each
    of them once.
    """
    if not isinstance(spec, dict):
        raise SpecError(f"{path or 'spec'}: a model spec must be a dict, got {type(spec).__name__}.")
    BLOCKS.load()
    if _depth > MAX_BLOCK_DEPTH:
        raise SpecError(f"{path}: blocks nest deeper than {MAX_BLOCK_DEPTH} levels; a block probably contains itself.")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{loc(path, 'name')}: every spec needs a non-empty string name, got {name!r}.")
    path = path or f"spec {name!r}"
    _check_name_and_size(spec, name, path)
    n_inputs = _check_inputs(spec, path)
    _check_defaults(spec, path)
    seen = {} if _seen is None else _seen
    _validate_blocks(spec, path, _depth, seen)
    links = collect_links(spec, path)
    outputs = check_graph(links, n_inputs, spec.get("outputs"), path)
    _validate_registered_blocks(links, spec.get("blocks", {}), path, _depth, seen)
    parsed = ParsedSpec(sorted(links, key=lambda link: link.out), n_inputs, outputs)
    seen[id(spec)] = parsed
    return parsed
