"""The degradation spec language: ops, their parameters, presets, parsing and canonical text."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np

from visionfw.errors import ConfigError

KERNEL_KINDS = ("iso", "aniso", "generalized", "plateau", "sinc")
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "area", "matlab")
NOISE_KINDS = ("gaussian", "poisson", "gaussian-poisson")
# Each pass is traced op by op (Real-ESRGAN and BSRGAN use 2): a million passes would trace for hours.
MAX_PASSES = 8
# Blur kernels are built per image as size x size taps (Real-ESRGAN draws 7..21).
MAX_BLUR_SIZE = 101


# op -> {param: (kind, default, allowed choices)}; the order here is the canonical text order
_SCHEMA = {
    "blur": {
        "sigma": ("range", (0.2, 3.0), None),
        "size": ("odd", 15, None),
        "kinds": ("choices", ("iso", "aniso"), KERNEL_KINDS),
        "gbeta": ("range", (0.5, 4.0), None),
        "pbeta": ("range", (1.0, 2.0), None),
        "omega": ("range", (math.pi / 3, math.pi), None),
        "prob": ("prob", 1.0, None),
        "pool": ("prob", 0.0, None),
    },
    "down": {"methods": ("choices", RESIZE_METHODS[:5], RESIZE_METHODS), "antialias": ("bool", True, None)},
    "noise": {
        "sigma": ("range", (1.0, 25.0), None),
        "poisson": ("range", (0.05, 3.0), None),
        "kinds": ("choices", ("gaussian",), NOISE_KINDS),
        "gray": ("prob", 0.4, None),
        "prob": ("prob", 1.0, None),
        "pool": ("prob", 0.0, None),
    },
    "jpeg": {"q": ("range", (30.0, 95.0), None), "prob": ("prob", 1.0, None)},
}
_EXAMPLE = "blur(sigma=0.2:3,size=15)+down(methods=bicubic|area)+noise(sigma=1:25)+jpeg(q=30:95)"


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One op: its name and every parameter (defaults filled in), in canonical order."""

    name: str
    params: tuple  # ((key, value), ...)

    def __getitem__(self, key):
        return dict(self.params)[key]


@dataclasses.dataclass(frozen=True)
class DegradationSpec:
    """The ordered ops of one pass, how many passes, and whether each batch shuffles the order.

    ``later``: the op chains of passes 2, 3, ... when they differ from the first (Real-ESRGAN's
    second order uses narrower ranges and a final sinc filter); ``passes`` is then their count
    plus one.  Without it every pass runs ``ops``.
    """

    ops: tuple
    passes: int = 1
    shuffle: bool = False
    later: tuple = ()

    def __post_init__(self):
        # tuples: a list would break equality and hashing
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "later", tuple(tuple(chain) for chain in self.later))
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or not 1 <= self.passes <= MAX_PASSES:
            raise ConfigError(
                f"degradation spec option passes={self.passes!r} must be a positive integer, at "
                f"most {MAX_PASSES} (2: second-order degradation)."
            )
        if self.later and self.passes == 1:
            object.__setattr__(self, "passes", 1 + len(self.later))
        elif self.later and self.passes != 1 + len(self.later):
            raise ConfigError(
                f"degradation spec {spec_to_string(self)!r} writes {1 + len(self.later)} "
                f"chains separated by ';' but passes={self.passes}; drop the passes option (the "
                "chains are the passes)."
            )
        for chain in self.chains():
            names = [op.name for op in chain]
            if names.count("down") != 1:
                raise ConfigError(
                    f"degradation spec {spec_to_string(self)!r} has a pass with "
                    f"{names.count('down')} down ops; a pass needs exactly one (it sets the LR "
                    "size), e.g. down(methods=bicubic)."
                )

    def chains(self) -> tuple[tuple[OpSpec, ...], ...]:
        """The op chain of every pass, in order."""
        return (self.ops,) + self.later if self.later else (self.ops,) * self.passes


def op(name: str, **params: Any) -> OpSpec:
    """An :class:`OpSpec` with ``params`` checked and the rest defaulted: ``op('jpeg', q=(50, 90))``.

    Args:
        name: ``'blur'``, ``'down'``, ``'noise'`` or ``'jpeg'``.
        **params: the op's parameters (ranges as numbers or (low, high), choices as str or tuples).

    Returns:
        The op with every parameter, in canonical order.

    Raises:
        ConfigError: an unknown op or parameter, or a bad value.
    """
    schema = _op_schema(name, f"{name}(...)")
    for key in params:
        if key not in schema:
            raise ConfigError(f"degradation op {name}: unknown parameter {key!r}; use one of {', '.join(schema)}.")
    values = []
    for key, (kind, default, allowed) in schema.items():
        value = params.get(key, default)
        values.append((key, _check_value(name, key, kind, value, allowed)))
    return OpSpec(name, tuple(values))


def _op_schema(name, part):
    if name not in _SCHEMA:
        raise ConfigError(
            f"degradation spec part {part!r}: unknown op {name!r}; use one of {', '.join(_SCHEMA)} (e.g. {_EXAMPLE})."
        )
    return _SCHEMA[name]


def _check_value(name, key, kind, value, allowed):
    where = f"degradation op {name}({key}=...)"
    if kind == "range":
        value = (value, value) if np.isscalar(value) else tuple(value)
        if len(value) != 2:
            raise ConfigError(f"{where}: {value!r} must be a number or a (low, high) pair.")
        lo, hi = float(value[0]), float(value[1])
        if not lo <= hi or lo < 0 or (key in ("sigma",) and name == "blur" and lo <= 0):
            raise ConfigError(
                f"{where}: range {lo:g}:{hi:g} must be low:high with 0 <= low <= high"
                f"{' and low > 0' if name == 'blur' else ''}."
            )
        if key == "omega" and not (lo > 0 and hi <= math.pi + 1e-6):
            raise ConfigError(
                f"{where}: sinc cut-off {lo:g}:{hi:g} must lie in (0, pi] radians per pixel, e.g. "
                "omega=1.0472:3.1416 (pi/3:pi, Real-ESRGAN's)."
            )
        if key == "q" and not (lo >= 1 and hi <= 100):
            raise ConfigError(f"{where}: JPEG quality {lo:g}:{hi:g} must lie in 1..100, e.g. q=30:95.")
        return (lo, hi)
    if kind == "odd":
        if (
            isinstance(value, bool)
            or int(value) != value
            or int(value) < 3
            or int(value) % 2 == 0
            or int(value) > MAX_BLUR_SIZE
        ):
            raise ConfigError(
                f"{where}: kernel size {value!r} must be an odd integer from 3 to {MAX_BLUR_SIZE}, e.g. size=15."
            )
        return int(value)
    if kind == "prob":
        if isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{where}: {value!r} must be a probability in [0, 1].")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} must be true or false.")
        return value
    values = (value,) if isinstance(value, str) else tuple(value)
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ConfigError(
            f"{where}: {'|'.join(map(str, bad)) or 'nothing'} not allowed; choose among {'|'.join(allowed)}."
        )
    return values


_PART = re.compile(r"^\s*([a-z_-]+)\s*(?:\((.*)\))?\s*$", re.S)


def _parse_value(name, key, text, kind, allowed, part):
    text = text.strip()
    try:
        if kind == "range":
            bits = text.split(":")
            if len(bits) > 2:
                raise ValueError
            value = tuple(float(b) for b in bits) * (3 - len(bits))  # 'v' -> (v, v)
        elif kind == "odd":
            value = int(text)
        elif kind == "prob":
            value = float(text)
        elif kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            value = text.lower() in ("true", "1")
        else:
            value = tuple(t.strip() for t in text.split("|"))
    except ValueError:
        form = {
            "range": "a number or low:high",
            "odd": "an odd integer",
            "prob": "a number in [0, 1]",
            "bool": "true or false",
        }[kind]
        raise ConfigError(f"degradation spec part {part!r}: {key}={text!r} must be {form}.") from None
    return value


def _parse_op(part):
    m = _PART.match(part)
    if not m:
        raise ConfigError(f"degradation spec part {part!r} is not name(key=value,...); e.g. {_EXAMPLE}.")
    name, body = m.group(1), (m.group(2) or "").strip()
    schema = _op_schema(name, part)
    params = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        if "=" not in item:
            raise ConfigError(f"degradation spec part {part!r}: {item!r} is not key=value.")
        key, text = (s.strip() for s in item.split("=", 1))
        if key not in schema:
            raise ConfigError(
                f"degradation spec part {part!r}: unknown parameter {key!r}; {name} takes {', '.join(schema)}."
            )
        kind, _, allowed = schema[key]
        params[key] = _parse_value(name, key, text, kind, allowed, part)
    return op(name, **params)


def _parse_options(text):
    options = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = (s.strip() for s in item.partition("="))
        if key == "passes" and value.isdigit() and len(value) <= 9:  # int() of a huge digit string fails
            options["passes"] = int(value)
        elif key == "shuffle" and value.lower() in ("true", "false", "1", "0"):
            options["shuffle"] = value.lower() in ("true", "1")
        else:
            raise ConfigError(
                f"degradation spec option {item!r}: options are passes=N (1 <= N <= {MAX_PASSES}) "
                "and shuffle=true|false, e.g. realsr@passes=2."
            )
    return options


def parse_spec(text: str) -> DegradationSpec:
    """:class:`DegradationSpec` of a preset name or a spec string (see :mod:`visionfw.degradation`).

    Args:
        text: a preset (:data:`PRESETS`) or a chain such as ``blur(sigma=0.2:3)+down()``, options after ``@``.

    Returns:
        The spec.

    Raises:
        ConfigError: naming the bad part and the fix.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"degradation spec {text!r} is empty; use a preset ({', '.join(PRESETS)}) or a chain such as {_EXAMPLE}."
        )
    chain, _, options = text.strip().partition("@")
    chain = chain.strip()
    if chain in PRESETS:
        base = parse_spec(PRESETS[chain])
    else:
        chains = [tuple(_parse_op(p) for p in _split_chain(c.strip())) for c in chain.split(";")]
        base = DegradationSpec(chains[0], later=tuple(chains[1:]))
    return dataclasses.replace(base, **_parse_options(options))


def _split_chain(chain):
    """'a(..)+b' -> ['a(..)', 'b'], splitting on '+' outside parentheses only."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(chain):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "+" and depth == 0:
            parts.append(chain[start:i])
            start = i + 1
    parts.append(chain[start:])
    if depth != 0 or any(not p.strip() for p in parts):
        raise ConfigError(
            f"degradation spec {chain!r}: unbalanced parentheses or an empty op between '+'; write e.g. {_EXAMPLE}."
        )
    return parts


def _format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return "|".join(value)
    if isinstance(value, tuple):
        return f"{_format_number(value[0])}:{_format_number(value[1])}"
    return _format_number(value) if isinstance(value, float) else str(value)


def _format_number(v):
    """Short (``0.2``, ``3``) where that reads back exactly, else every digit (``pi / 3``)."""
    short = f"{v:g}"
    return short if float(short) == v else repr(float(v))


def spec_to_string(spec: DegradationSpec) -> str:
    """The canonical text of a spec (every parameter written); ``parse_spec`` reads it back equal.

    Args:
        spec: the spec.

    Returns:
        The spec string.
    """
    ops = ";".join(
        "+".join(f"{o.name}({','.join(f'{k}={_format_value(v)}' for k, v in o.params)})" for o in chain)
        for chain in (spec.ops,) + spec.later
    )
    options = [f"passes={spec.passes}"] if spec.passes != 1 and not spec.later else []
    options += ["shuffle=true"] if spec.shuffle else []
    return ops + ("@" + ",".join(options) if options else "")


PRESETS = {
    # RealSR (Ji et al. 2020): estimated kernels and collected noise when a pool is given
    "realsr": "blur(sigma=0.2:3,size=15,kinds=iso|aniso,pool=1)+down(methods=bicubic)"
    "+noise(sigma=1:25,pool=1)+jpeg(q=30:95)",
    # BSRGAN (Zhang et al. 2021): every kernel kind, resize method and noise kind, in random order
    "bsrgan-like": "blur(sigma=0.2:3,size=15,kinds=iso|aniso|generalized|plateau,prob=0.9)"
    "+down(methods=nearest|bilinear|bicubic|lanczos|area)"
    "+noise(sigma=1:25,poisson=0.05:3,kinds=gaussian|poisson|gaussian-poisson)"
    "+jpeg(q=30:95)@shuffle=true",
    # Real-ESRGAN (Wang et al. 2021, the x4plus training options): two different passes, sinc kernels,
    # a final sinc filter (ringing/overshoot) with probability 0.8.  Differences: kernel kinds are
    # drawn uniformly (Real-ESRGAN weights them), the size is fixed at 21 (Real-ESRGAN draws 7..21),
    # and each pass shrinks by sqrt(scale) (Real-ESRGAN resizes up/down/keep at random, then to the LR size).
    "realesrgan-like": "blur(sigma=0.2:3,size=21,kinds=iso|aniso|generalized|plateau|sinc)"
    "+down(methods=bilinear|bicubic|area)"
    "+noise(sigma=1:30,poisson=0.05:3,kinds=gaussian|poisson,gray=0.4)+jpeg(q=30:95);"
    "blur(sigma=0.2:1.5,size=21,kinds=iso|aniso|generalized|plateau|sinc,prob=0.8)"
    "+down(methods=bilinear|bicubic|area)"
    "+noise(sigma=1:25,poisson=0.05:2.5,kinds=gaussian|poisson,gray=0.4)"
    "+blur(size=21,kinds=sinc,prob=0.8)+jpeg(q=30:95)",
}


def resolve_spec(spec_or_name: DegradationSpec | str) -> DegradationSpec:
    """A :class:`DegradationSpec` from a spec, a preset name or a spec string."""
    if isinstance(spec_or_name, DegradationSpec):
        return spec_or_name
    return parse_spec(spec_or_name)
