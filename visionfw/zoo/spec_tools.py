"""Spec utilities: JSON round trip, a printed summary, and a DOT (graphviz) export."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from visionfw.errors import SpecError
from visionfw.zoo.builder import build
from visionfw.zoo.spec_format import ALIASES, TYPE_CODES
from visionfw.zoo.validation import validate_spec


def _to_jsonable(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise SpecError(
        f"{where}: value {value!r} of type {type(value).__name__} cannot be written as JSON. "
        "Use plain Python values (str, int, float, bool, None, lists, dicts) in specs."
    )


def spec_to_json(spec: dict, indent: int | None = None) -> str:
    """The spec as a JSON string (tuples become lists; :func:`spec_from_json` restores them).

    Args:
        spec: a spec dict (validated first).
        indent: JSON indentation (None: one line).

    Returns:
        The JSON text.

    Raises:
        SpecError: the spec is invalid or holds a value JSON cannot write.
    """
    validate_spec(spec)
    return json.dumps(_to_jsonable(spec, "spec"), indent=indent)


def _restore(spec: dict) -> dict:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in TYPE_CODES or key in ALIASES:
            out[key] = [tuple(link) for link in value]
        elif key in ("inputs",):
            out[key] = [tuple(shape) for shape in value]
        elif key == "blocks":
            out[key] = {name: _restore(b) for name, b in value.items()}
        else:
            out[key] = value
    return out


def spec_from_json(text: str | bytes | dict) -> dict:
    """Parses a JSON spec back into a spec dict with tuple links and shapes.

    Args:
        text: the JSON text (or a dict already loaded from it).

    Returns:
        The spec dict, validated.

    Raises:
        SpecError: not JSON, not an object, or not a valid spec.
    """
    try:
        data = json.loads(text) if isinstance(text, (str, bytes)) else text
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec_from_json: not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise SpecError("spec_from_json: the JSON must hold an object (a spec dict).")
    spec = _restore(data)
    validate_spec(spec)
    return spec


def describe(spec: dict, print_fn: Callable[[str], Any] | None = print) -> str:
    """A table of every link: node, link, class or block, output shape and parameter count.

    Args:
        spec: the spec dict (it is built, once).
        print_fn: where the table goes (None: nowhere).

    Returns:
        The table's text.

    Raises:
        SpecError: the spec is invalid or does not build.
    """
    model, parsed = build(spec)
    rows = [("node", "link", "class/block", "output shape", "params")]
    for i, shape in enumerate(spec.get("inputs", [(None, None, 3)])):
        rows.append((str(i), "input", "Input", str((None,) + tuple(shape)), "0"))
    for link in parsed.links:
        # a link's layers are named '<type><index>_n<node>' (or the name its parameters give),
        # plus '_<part>' inside blocks
        own = link.par.get("name") or f"{link.code}{link.index}_n{link.out}"
        owned = [ly for ly in model.layers if ly.name == own or ly.name.startswith(own + "_")]
        shape = "?"
        if owned:
            try:
                shape = str(tuple(owned[-1].output.shape))
            except (AttributeError, ValueError):
                shape = "?"
        sub = link.sub if link.share is None else f"{link.sub} (shares node {link.share})"
        rows.append(
            (
                str(link.out),
                f"{link.key}[{link.index}] {tuple(link.ins)}",
                sub,
                shape,
                f"{sum(ly.count_params() for ly in owned):,}",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines = [
        f"Model {spec['name']!r}: {model.count_params():,} parameters "
        f"({sum(int(w.numpy().size) for w in model.trainable_weights):,} trainable), outputs "
        f"{parsed.outputs}"
    ]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text


def spec_to_dot(spec: dict) -> str:
    """The spec's graph as graphviz DOT text (render with ``dot -Tpng``).

    Args:
        spec: the spec dict (validated first).

    Returns:
        The DOT text.

    Raises:
        SpecError: the spec is invalid.
    """
    links, n_inputs, outputs = validate_spec(spec)
    lines = [f'digraph "{spec["name"]}" {{', "  rankdir=TB;", '  node [shape=box, fontname="Helvetica"];']
    for i in range(n_inputs):
        lines.append(f'  n{i} [label="{i}: input", shape=ellipse];')
    for link in links:
        code, idx, ins, out, sub = link.key, link.index, link.ins, link.out, link.sub
        label = f"{out}: {sub}\\n{code}[{idx}]"
        style = ", peripheries=2" if out in outputs else ""
        lines.append(f'  n{out} [label="{label}"{style}];')
        for v in ins:
            lines.append(f"  n{v} -> n{out};")
    lines.append("}")
    return "\n".join(lines)
