"""Realistic LR images for real-world SR: a seeded degradation pipeline in pure TensorFlow.

Bicubic LR images teach a model one clean degradation; real photos are blurred by unknown
kernels, resized by unknown filters, noisy and JPEG-compressed.  This module synthesises such
LR images from HR batches, inside ``tf.data`` maps or a ``tf.function`` (no Python-side
randomness, no host round trip).

Images are NHWC float32 in [0, 1] with 1 or 3 channels (the conventions of
:mod:`visionfw.data.pipeline`).  The LR output is clipped and quantised to 8 bits, so it holds
what an image file would.

Ops (each draws its parameters per image):

* ``blur``: a kernel of ``size`` x ``size`` (odd) taps, normalised to sum 1, of one of
  ``kinds``: ``iso`` (Gaussian, one sigma), ``aniso`` (Gaussian with sigmas s1, s2 along axes
  rotated by theta: covariance ``R(theta) diag(s1^2, s2^2) R(theta)^T``), ``generalized``
  (``exp(-0.5 q^beta)``, q the Mahalanobis distance squared, beta in ``gbeta``) and
  ``plateau`` (``1 / (1 + q^beta)``, beta in ``pbeta``) and ``sinc`` (the ideal circular low-pass
  of cut-off ``omega`` radians per pixel, drawn from ``omega``), as in Real-ESRGAN.  Applied as a true
  convolution (the kernel flipped, so a delta image returns the kernel) with reflect padding.
* ``down``: resize to exactly ``HR size // scale`` with a method drawn from ``methods``:
  ``nearest``, ``bilinear``, ``bicubic``, ``lanczos`` (lanczos3), ``area`` (``tf.image.resize``;
  ``antialias`` filters when shrinking) or ``matlab`` (MATLAB's bicubic,
  :func:`visionfw.data.imresize.imresize`).
* ``noise``: one of ``kinds`` per image: ``gaussian`` (std drawn from ``sigma``, in grey levels
  of 255), ``poisson`` (``scale * (Poisson(255 x) / 255 - x)``: variance ``scale^2 x / 255``,
  ``scale`` drawn from ``poisson``) or ``gaussian-poisson`` (both added); grey noise (the same
  on every channel; Poisson drawn on the BT.601 luma) with probability ``gray``.
* ``jpeg``: re-compression at a quality drawn from ``q`` (per image, ``tf.image.adjust_jpeg_quality``).

Every op has ``prob`` (the chance an image gets it; ``down`` always applies).  ``blur`` and
``noise`` have ``pool``: the chance an image takes a kernel / noise patch from a
:class:`DegradationPool` (RealSR, Ji et al. 2020) instead of a synthetic one, when the pool has
them.

Specs
-----
A :class:`DegradationSpec` is an ordered tuple of ops plus ``passes`` (the chain applied that
many times, Real-ESRGAN's second-order degradation for 2; every pass shrinks by
``scale ** (1 / passes)`` and the last lands on the exact LR size) and ``shuffle`` (each batch
runs the ops of a pass in a random order, as BSRGAN does).  As text::

    blur(sigma=0.2:3,size=15)+down(methods=bicubic|area)+noise(sigma=1:25)+jpeg(q=30:95)@passes=2,shuffle=true

``a:b`` is a range (drawn uniformly), ``a|b`` a list of choices, options after ``@``.  Passes
that differ are chains separated by ``;`` (``blur(..)+down(..);down(..)+jpeg(..)``: two passes).
Presets (:data:`PRESETS`): ``realsr`` (blur -> down -> noise -> jpeg, pool kernels/noise when
given), ``bsrgan-like`` (all kernel kinds, all resize methods, all noise kinds, shuffled;
``bsrgan-like@passes=2`` is the second-order variant) and ``realesrgan-like`` (two different
passes with sinc kernels and a final sinc filter; see :data:`PRESETS` for how it differs).  Bad
specs raise :class:`visionfw.errors.ConfigError` naming the part and the fix.

Randomness
----------
Stateless: every draw is keyed on ``(seed, step, pass, op index, draw index)`` with
``tf.random.experimental.stateless_fold_in``, so a batch is reproducible from ``(seed, step)``
alone (resumable training), and an op's draws do not depend on where a shuffle put it.

Training integration: :func:`make_degrader` ``(spec_or_name, scale, seed, pool=None)`` returns
``fn(hr_batch, step) -> lr_batch``, traceable in ``tf.function`` / ``Dataset.map``.

Pools (RealSR-style, built offline, numpy): :func:`extract_noise_pool` (flat patches of real
images, mean removed: their noise), :func:`load_kernel_pool` (user ``.npy`` kernels),
:func:`estimate_kernel` (a Gaussian-sigma estimate per image, see there; not KernelGAN),
:func:`save_pool` / :func:`load_pool` (``.npz``).

:func:`gan_fusion` is the NTIRE 2020 Real-World SR runner-up fusion of two SR outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from visionfw.data.image_io import to_float01
from visionfw.errors import ConfigError, DataError

__all__ = [
    "DegradationSpec",
    "OpSpec",
    "DegradationPool",
    "PRESETS",
    "op",
    "parse_spec",
    "spec_to_string",
    "check_fits",
    "resolve_spec",
    "make_degrader",
    "degrade",
    "make_kernels",
    "apply_kernels",
    "downscale",
    "gaussian_noise",
    "poisson_noise",
    "jpeg",
    "quantize",
    "extract_noise_pool",
    "load_kernel_pool",
    "estimate_kernel",
    "save_pool",
    "load_pool",
    "gan_fusion",
]

KERNEL_KINDS = ("iso", "aniso", "generalized", "plateau", "sinc")
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "area", "matlab")
NOISE_KINDS = ("gaussian", "poisson", "gaussian-poisson")
# Each pass is traced op by op (Real-ESRGAN and BSRGAN use 2): a million passes would trace for hours.
MAX_PASSES = 8
# Blur kernels are built per image as size x size taps (Real-ESRGAN draws 7..21).
MAX_BLUR_SIZE = 101
_TF_METHODS = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "lanczos": "lanczos3",
    "area": "area",
}
_POISSON_PEAK = 255.0  # photon count of a white pixel: one count per grey level
_LUMA = (0.299, 0.587, 0.114)  # BT.601 luma weights (grey noise)

# ----------------------------------------------------------------- spec

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
                f"degradation spec {spec_to_string(self, check=False)!r} writes {1 + len(self.later)} "
                f"chains separated by ';' but passes={self.passes}; drop the passes option (the "
                "chains are the passes)."
            )
        for chain in self.chains():
            names = [op.name for op in chain]
            if names.count("down") != 1:
                raise ConfigError(
                    f"degradation spec {spec_to_string(self, check=False)!r} has a pass with "
                    f"{names.count('down')} down ops; a pass needs exactly one (it sets the LR "
                    "size), e.g. down(methods=bicubic)."
                )

    def chains(self):
        """The op chain of every pass, in order."""
        return (self.ops,) + self.later if self.later else (self.ops,) * self.passes


def op(name, **params):
    """An :class:`OpSpec` with ``params`` checked and the rest defaulted: ``op('jpeg', q=(50, 90))``."""
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


def parse_spec(text):
    """:class:`DegradationSpec` of a preset name or a spec string (see the module docstring)."""
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


def spec_to_string(spec, check=True):
    """The canonical text of a spec (every parameter written); ``parse_spec`` reads it back equal."""
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


def resolve_spec(spec_or_name):
    """A :class:`DegradationSpec` from a spec, a preset name or a spec string."""
    if isinstance(spec_or_name, DegradationSpec):
        return spec_or_name
    return parse_spec(spec_or_name)


# ----------------------------------------------------------------- randomness


def _key(seed, step, *streams):
    """Stateless seed of (seed, step, streams...): distinct tuples never share a seed."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([int(seed), 0], tf.int64), tf.cast(step, tf.int64))
    return _fold(key, *streams)


def _fold(key, *streams):
    for s in streams:
        key = tf.random.experimental.stateless_fold_in(key, s)
    return key


def _uniform(key, draw, n, lo, hi):
    return tf.random.stateless_uniform([n], seed=_fold(key, draw), minval=lo, maxval=hi)


def _choice(key, draw, n, k):
    return tf.random.stateless_uniform([n], seed=_fold(key, draw), minval=0, maxval=k, dtype=tf.int32)


def _coin(key, draw, n, p):
    return _uniform(key, draw, n, 0.0, 1.0) < p


def _per_image(v):
    return tf.reshape(v, [-1, 1, 1, 1])


# ----------------------------------------------------------------- blur


def make_kernels(size, sigma1, sigma2=None, theta=0.0, beta=1.0, kind="gaussian", omega=math.pi / 2):
    """Kernels ``[N, size, size]`` (sum 1) for per-image parameters (scalars or ``[N]`` tensors).

    ``q = u^2 / sigma1^2 + v^2 / sigma2^2`` with ``(u, v)`` the (column, row) offset rotated by
    ``-theta``, i.e. the Gaussian's covariance is ``R(theta) diag(sigma1^2, sigma2^2) R(theta)^T``.
    ``kind``: ``'gaussian'`` ``exp(-q/2)``, ``'generalized'`` ``exp(-q^beta / 2)``, ``'plateau'``
    ``1 / (1 + q^beta)``, ``'sinc'`` (the ideal circular low-pass of cut-off ``omega`` radians per
    pixel, ``omega J1(omega r) / (2 pi r)``, as Real-ESRGAN's; the sigmas are unused), or an int
    ``[N]`` tensor picking one of those four per image (0..3 in that order).
    """
    sigma1 = tf.reshape(tf.cast(sigma1, tf.float32), [-1, 1, 1])
    sigma2 = sigma1 if sigma2 is None else tf.reshape(tf.cast(sigma2, tf.float32), [-1, 1, 1])
    theta = tf.reshape(tf.cast(theta, tf.float32), [-1, 1, 1])
    beta = tf.reshape(tf.cast(beta, tf.float32), [-1, 1, 1])
    omega = tf.reshape(tf.cast(omega, tf.float32), [-1, 1, 1])
    r = (size - 1) / 2.0
    ax = tf.linspace(-r, r, size)
    yy, xx = tf.meshgrid(ax, ax, indexing="ij")  # yy: row offset, xx: column offset
    c, s = tf.cos(theta), tf.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    q = tf.square(u / sigma1) + tf.square(v / sigma2)
    radius = tf.sqrt(tf.square(xx) + tf.square(yy))
    safe = tf.where(radius > 0, radius, 1.0)
    sinc = tf.where(
        radius > 0,
        omega * tf.math.special.bessel_j1(omega * safe) / (2 * math.pi * safe),
        tf.square(omega) / (4 * math.pi),
    )  # the limit at r = 0
    forms = {
        "gaussian": tf.exp(-0.5 * q),
        "generalized": tf.exp(-0.5 * tf.pow(q, beta)),
        "plateau": 1.0 / (1.0 + tf.pow(q, beta)),
        "sinc": sinc,
    }
    if isinstance(kind, str):
        k = forms[kind]
    else:
        kind = tf.reshape(kind, [-1, 1, 1])
        k = tf.where(
            kind == 0,
            forms["gaussian"],
            tf.where(kind == 1, forms["generalized"], tf.where(kind == 2, forms["plateau"], forms["sinc"])),
        )
    return k / tf.reduce_sum(k, axis=[1, 2], keepdims=True)


def apply_kernels(images, kernels):
    """Convolves each image of ``[N, H, W, C]`` with its kernel (``[N, k, k]``, or ``[k, k]`` for all).

    A true convolution (kernel flipped), with reflect padding, so H and W must exceed k // 2.
    One depthwise convolution for the batch: images are folded into channels.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    kernels = tf.convert_to_tensor(kernels, tf.float32)
    shape = tf.shape(images)
    n, c = shape[0], images.shape[-1]
    if kernels.shape.rank == 2:
        kernels = tf.repeat(kernels[None], n, axis=0)
    pad = kernels.shape[-1] // 2
    x = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    hp, wp = tf.shape(x)[1], tf.shape(x)[2]
    x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, hp, wp, n * c])
    f = tf.repeat(kernels[:, ::-1, ::-1], c, axis=0)  # [n*c, k, k], image-major like x
    f = tf.transpose(f, [1, 2, 0])[..., None]
    y = tf.nn.depthwise_conv2d(x, f, [1, 1, 1, 1], "VALID")
    y = tf.reshape(y, [shape[1], shape[2], n, c])
    return tf.transpose(y, [2, 0, 1, 3])


def _pad_kernels(kernels, size):
    """Zero-pads ``[N, k, k]`` kernels (centred) to ``size`` x ``size``."""
    p = (size - kernels.shape[-1]) // 2
    return tf.pad(kernels, [[0, 0], [p, p], [p, p]]) if p else kernels


def _random_kernels(o, key, n):
    """Per-image kernels ``[n, size, size]`` of blur op ``o``."""
    kinds = [KERNEL_KINDS.index(k) for k in o["kinds"]]
    kind = tf.gather(tf.constant(kinds, tf.int32), _choice(key, 0, n, len(kinds)))
    s1 = _uniform(key, 1, n, *o["sigma"])
    s2 = tf.where(kind == 0, s1, _uniform(key, 2, n, *o["sigma"]))  # iso: one sigma
    theta = tf.where(kind == 0, 0.0, _uniform(key, 3, n, 0.0, math.pi))
    beta = tf.where(kind == 2, _uniform(key, 4, n, *o["gbeta"]), _uniform(key, 5, n, *o["pbeta"]))
    form = tf.where(kind == 2, 1, tf.where(kind == 3, 2, tf.where(kind == 4, 3, 0)))  # gauss/gen./plateau/sinc
    return make_kernels(o["size"], s1, s2, theta, beta, form, omega=_uniform(key, 9, n, *o["omega"]))


def _blur_op(x, o, key, pool, **_):
    n = tf.shape(x)[0]
    kernels = _random_kernels(o, key, n)
    pool_kernels = None if pool is None else pool.get("kernels")
    if pool_kernels is not None and o["pool"] > 0:
        size = max(o["size"], pool_kernels.shape[-1])
        picked = tf.gather(pool_kernels, _choice(key, 6, n, pool_kernels.shape[0]))
        kernels = tf.where(
            _coin(key, 7, n, o["pool"])[:, None, None], _pad_kernels(picked, size), _pad_kernels(kernels, size)
        )
    size = kernels.shape[-1]
    delta = tf.one_hot(size * size // 2, size * size, dtype=tf.float32)
    delta = tf.reshape(delta, [1, size, size])
    kernels = tf.where(_coin(key, 8, n, o["prob"])[:, None, None], kernels, delta)  # skipped: identity
    return apply_kernels(x, kernels)


# ----------------------------------------------------------------- resize


def downscale(images, size, method, antialias=True):
    """``images`` resized to ``size`` (h, w) exactly with one of :data:`RESIZE_METHODS`."""
    if method == "matlab":
        from visionfw.data.imresize import imresize

        if not all(isinstance(d, (int, np.integer)) for d in size):
            raise ConfigError(
                "down(methods=matlab) needs HR batches of a static size (fixed patches); "
                "drop matlab from methods= for images of varying size."
            )
        return imresize(images, output_size=size)
    if method not in _TF_METHODS:
        raise ConfigError(f"downscale: method {method!r} unknown; use one of {', '.join(RESIZE_METHODS)}.")
    smooth = antialias and method not in ("nearest", "area")  # area averages anyway
    return tf.image.resize(images, size, method=_TF_METHODS[method], antialias=smooth)


def _down_op(x, o, key, size, **_):
    methods = o["methods"]
    outs = [downscale(x, size, m, o["antialias"]) for m in methods]
    if len(outs) == 1:
        return outs[0]
    pick = _choice(key, 0, tf.shape(x)[0], len(outs))
    return tf.gather(tf.stack(outs, axis=1), pick, batch_dims=1)  # one method per image


# ----------------------------------------------------------------- noise


def _luma(x):
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(_LUMA, tf.float32), axis=-1, keepdims=True)


def gaussian_noise(images, sigma, gray, seed):
    """Noise (not the noisy image) of std ``sigma`` (``[N]``, on [0, 1]); ``gray`` ``[N]`` bool:
    one field for all channels."""
    shape = tf.shape(images)
    colour = tf.random.stateless_normal(shape, seed=_fold(seed, 0))
    grey = tf.random.stateless_normal(tf.concat([shape[:3], [1]], 0), seed=_fold(seed, 1))
    noise = tf.where(_per_image(gray), grey, colour)
    return noise * _per_image(sigma)


def poisson_noise(images, scale, gray, seed):
    """Noise ``scale * (Poisson(255 x) / 255 - x)`` per pixel (variance ``scale^2 x / 255``);
    ``gray`` images draw it on the BT.601 luma, the same for all channels."""
    x = tf.clip_by_value(images, 0.0, 1.0)

    def draw(v, s):
        counts = tf.random.stateless_poisson(tf.shape(v), seed=s, lam=v * _POISSON_PEAK, dtype=tf.float32)
        return counts / _POISSON_PEAK - v

    colour = draw(x, _fold(seed, 0))
    grey = draw(_luma(x), _fold(seed, 1))
    noise = tf.where(_per_image(gray), grey, colour)
    return noise * _per_image(scale)


def _match_channels(noise, channels):
    """Pool noise (1 or 3 channels) for images of ``channels`` channels."""
    if noise.shape[-1] == channels:
        return noise
    return _luma(noise) if channels == 1 else tf.repeat(noise, channels, axis=-1)


def _pool_noise(x, patches, key):
    """A random pool patch per image, tiled (from a random offset) to the image size."""
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    p = patches.shape[1]
    picked = _match_channels(tf.gather(patches, _choice(key, 10, n, patches.shape[0])), x.shape[-1])
    reps = [1, h // p + 2, w // p + 2, 1]
    offset = tf.random.stateless_uniform([2], seed=_fold(key, 11), minval=0, maxval=p, dtype=tf.int32)
    return tf.tile(picked, reps)[:, offset[0] : offset[0] + h, offset[1] : offset[1] + w]


def _noise_op(x, o, key, pool, **_):
    n = tf.shape(x)[0]
    kinds = [NOISE_KINDS.index(k) for k in o["kinds"]]
    kind = tf.gather(tf.constant(kinds, tf.int32), _choice(key, 0, n, len(kinds)))
    gray = _coin(key, 1, n, o["gray"])
    sigma = _uniform(key, 2, n, *o["sigma"]) / 255.0
    scale = _uniform(key, 3, n, *o["poisson"])
    noise = gaussian_noise(x, sigma * tf.cast(kind != 1, tf.float32), gray, _fold(key, 4)) + poisson_noise(
        x, scale * tf.cast(kind != 0, tf.float32), gray, _fold(key, 5)
    )
    patches = None if pool is None else pool.get("noise")
    if patches is not None and o["pool"] > 0:
        noise = tf.where(_per_image(_coin(key, 6, n, o["pool"])), _pool_noise(x, patches, key), noise)
    noise = noise * _per_image(tf.cast(_coin(key, 7, n, o["prob"]), tf.float32))
    return tf.clip_by_value(x + noise, 0.0, 1.0)


# ----------------------------------------------------------------- jpeg


def jpeg(images, quality):
    """Each image JPEG-encoded at its quality (``[N]`` int) and decoded; [0, 1] float32 out."""
    images = tf.clip_by_value(tf.convert_to_tensor(images, tf.float32), 0.0, 1.0)
    quality = tf.cast(quality, tf.int32)

    def one(args):
        image, q = args
        out = tf.image.adjust_jpeg_quality(image, q)
        return tf.ensure_shape(tf.cast(out, tf.float32), image.shape)

    spec = tf.TensorSpec(images.shape[1:], tf.float32)
    return tf.map_fn(one, (images, quality), fn_output_signature=spec)


def _jpeg_op(x, o, key, **_):
    n = tf.shape(x)[0]
    lo, hi = o["q"]
    q = tf.cast(tf.floor(_uniform(key, 0, n, lo, hi + 1.0 - 1e-3)), tf.int32)  # integers lo..hi
    out = jpeg(x, tf.clip_by_value(q, int(lo), int(hi)))
    return tf.where(_per_image(_coin(key, 1, n, o["prob"])), out, x)


def quantize(images):
    """Clipped to [0, 1] and rounded to 8 bits (what an image file holds)."""
    return tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0) / 255.0


_OPS = {"blur": _blur_op, "down": _down_op, "noise": _noise_op, "jpeg": _jpeg_op}


# ----------------------------------------------------------------- the chain


def _pass_sizes(hw, scale, passes):
    """Target (h, w) of every pass: shrink by scale ** (1 / passes) each, the last exactly HR // scale.

    Python ints when the HR size is static (static output shapes), int32 tensors otherwise.
    """
    sizes = []
    for i in range(1, passes + 1):
        if i == passes:
            sizes.append([d // scale for d in hw])
        elif isinstance(hw[0], int) and isinstance(hw[1], int):
            sizes.append([max(1, int(round(d * scale ** (-i / passes)))) for d in hw])
        else:
            f = scale ** (-i / passes)
            sizes.append([tf.maximum(1, tf.cast(tf.round(tf.cast(d, tf.float32) * f), tf.int32)) for d in hw])
    return sizes


def _run_pass(x, ops, shuffle, key, size, pool):
    def run(j, o, x=None):
        return _OPS[o.name](x, o, _fold(key, j), size=size, pool=pool)

    if not shuffle:
        for j, o in enumerate(ops):
            x = run(j, o, x)
        return x
    # one order per batch; an op keeps its key (j) wherever it lands.  A while_loop traces each op
    # once (not once per position); x's size changes at down, hence the shape invariant.
    order = tf.argsort(tf.random.stateless_uniform([len(ops)], seed=_fold(key, 1000)))

    def body(position, x):
        branches = [functools.partial(run, j, o, x) for j, o in enumerate(ops)]
        return position + 1, tf.switch_case(tf.gather(order, position), branches)

    invariant = tf.TensorShape([None, None, None, x.shape[-1]])
    _, x = tf.while_loop(
        lambda position, _: position < len(ops),
        body,
        (tf.constant(0), x),
        shape_invariants=(tf.TensorShape([]), invariant),
    )
    return x


def _check_batch(hr, scale):
    if hr.shape.rank != 4 or hr.shape[-1] not in (1, 3):
        raise ConfigError(f"degrade: HR batch has shape {tuple(hr.shape)}; expected NHWC with 1 or 3 channels.")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"degrade: scale={scale!r} must be a positive integer.")
    small = [d for d in hr.shape[1:3] if d is not None and d < scale]
    if small:
        raise ConfigError(
            f"degrade: HR batch of shape {tuple(hr.shape)} is smaller than scale={scale}; "
            "use HR patches of at least scale pixels (a multiple of it)."
        )


def _check_blur_fits(spec, hw, scale, pool):
    """Reflect padding needs images wider than the kernel radius: check the static sizes blur may see."""
    if not all(isinstance(d, int) for d in hw):
        return
    pool_size = 0 if pool is None or pool["kernels"] is None else pool["kernels"].shape[-1]
    sizes = [hw] + _pass_sizes(hw, scale, spec.passes)
    for p, ops in enumerate(spec.chains()):  # pass p runs on sizes[p], and on sizes[p + 1] after its down
        blurs = [o for o in ops if o.name == "blur"]
        if not blurs:
            continue
        size = max(max(o["size"], pool_size if o["pool"] > 0 else 0) for o in blurs)
        names = [o.name for o in ops]
        after_down = spec.shuffle or names.index("down") < max(i for i, n in enumerate(names) if n == "blur")
        smallest = min(min(s) for s in sizes[p : p + 1 + after_down])
        if smallest <= size // 2:
            raise ConfigError(
                f"degradation: a {size}x{size} blur kernel needs images larger than {size // 2} "
                f"pixels, but the {hw[0]}x{hw[1]} HR batch at scale {scale} gets down to {smallest} "
                "pixels where blur may run; use a larger HR patch or a smaller blur size=."
            )


def check_fits(spec_or_name, scale, hr_size, pool=None):
    """Raises ConfigError when a blur kernel of the spec (or of ``pool``, as :func:`make_degrader`
    takes it) is too wide for HR patches of ``hr_size`` (a side, or (h, w)) at ``scale``: the
    check :func:`make_degrader`'s function makes while tracing, made before it."""
    hw = [int(hr_size)] * 2 if np.isscalar(hr_size) else [int(d) for d in hr_size]
    tf_pool = pool if isinstance(pool, dict) or pool is None else _as_tf_pool(pool)
    _check_blur_fits(resolve_spec(spec_or_name), hw, int(scale), tf_pool)


def _as_tf_pool(pool):
    """{'noise': tensor or None, 'kernels': tensor or None} of a pool, a .npz path or None."""
    if pool is None:
        return None
    if isinstance(pool, (str, os.PathLike)):
        pool = load_pool(pool)
    noise = pool.noise if pool.noise is not None and len(pool.noise) else None
    kernels = pool.kernels if pool.kernels is not None and len(pool.kernels) else None
    return {
        "noise": None if noise is None else tf.constant(noise, tf.float32),
        "kernels": None if kernels is None else tf.constant(kernels, tf.float32),
    }


def degrade(hr_batch, scale, spec, seed, step, pool=None):
    """LR batch ``[N, H // scale, W // scale, C]`` of an HR batch (NHWC float32 in [0, 1]).

    Deterministic in ``(seed, step)``; ``spec``: a :class:`DegradationSpec`, preset name or spec
    string; ``pool``: a :class:`DegradationPool` or ``.npz`` path (see :func:`make_degrader`).
    """
    return make_degrader(spec, scale, seed, pool)(hr_batch, step)


def make_degrader(spec_or_name, scale, seed, pool=None, hr_size=None):
    """``fn(hr_batch, step) -> lr_batch`` for training.

    ``spec_or_name``: ``'realsr'``, ``'bsrgan-like'`` (options may follow, ``'bsrgan-like@passes=2'``),
    a spec string or a :class:`DegradationSpec` -- parsed here, so errors show before training.
    ``pool``: a :class:`DegradationPool`, an ``.npz`` path from :func:`save_pool`, or None (then the
    ops' ``pool`` probabilities are ignored).  ``fn`` takes an NHWC float32 batch in [0, 1] and the
    step (a Python int or an int tensor) and is pure TF with stateless randomness: call it inside
    ``tf.function`` or ``Dataset.map`` (e.g. ``ds.map(lambda i, hr: (fn(hr, i), hr))`` over an
    enumerated dataset); the LR batch is clipped and quantised to 8 bits.  Build it once: each
    call of ``make_degrader`` traces anew.  JPEG and ``switch_case`` have no XLA kernels, so run it
    in the input pipeline (CPU), not inside a ``jit_compile`` train step.  The HR size must be a
    multiple of ``scale`` for ``lr * scale == hr`` (the LR size is ``HR // scale``).  ``hr_size``
    (the HR patch side, or (h, w)), when known, is checked against the blur kernels here, before
    any tracing: an error raised while tracing reaches the caller wrapped in a StagingError.
    """
    spec = resolve_spec(spec_or_name)
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"degradation: scale={scale!r} must be a positive integer.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"degradation: seed={seed!r} must be an integer.")
    scale, seed, tf_pool = int(scale), int(seed), _as_tf_pool(pool)
    if hr_size is not None:
        check_fits(spec, scale, hr_size, tf_pool)

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: trace as is
    def fn(hr_batch, step):
        x = tf.convert_to_tensor(hr_batch, tf.float32)
        _check_batch(x, scale)
        hw = [x.shape[i] if x.shape[i] is not None else tf.shape(x)[i] for i in (1, 2)]
        _check_blur_fits(spec, hw, scale, tf_pool)
        for p, (ops, size) in enumerate(zip(spec.chains(), _pass_sizes(hw, scale, spec.passes))):
            x = _run_pass(x, ops, spec.shuffle, _key(seed, step, p), size, tf_pool)
        final = [s if isinstance(s, int) else None for s in _pass_sizes(hw, scale, spec.passes)[-1]]
        return tf.ensure_shape(quantize(x), [None, *final, hr_batch.shape[-1]])

    return fn


# ----------------------------------------------------------------- pools (offline, numpy)


@dataclasses.dataclass
class DegradationPool:
    """RealSR pools: noise patches ``[M, p, p, C]`` (mean removed) and kernels ``[K, S, S]`` (sum 1)."""

    noise: np.ndarray | None = None
    kernels: np.ndarray | None = None


def _as_float_image(image):
    image = np.asarray(image)
    image = to_float01(image)
    return image[..., None] if image.ndim == 2 else image


def extract_noise_pool(images, patch=32, var_threshold=20.0, stride=None, max_patches=None):
    """Noise patches of real images: ``[M, patch, patch, C]`` float32, each with its mean removed.

    A ``patch`` x ``patch`` window (every ``stride`` pixels, default ``patch``) is kept when the
    variance of every channel is below ``var_threshold`` in grey levels squared (8-bit scale; 20
    is a std of about 4.5 levels): a flat region, whose variation is mostly noise (RealSR).  Grey
    images are repeated to 3 channels when the others are RGB.  ``max_patches``: keep the
    lowest-variance ones.
    """
    stride = stride or patch
    images = [_as_float_image(im) for im in images]
    channels = max(im.shape[-1] for im in images) if images else 1
    kept, variances = [], []
    for im in images:
        im = np.repeat(im, channels, axis=-1) if im.shape[-1] != channels else im
        for y in range(0, im.shape[0] - patch + 1, stride):  # one row of windows at a time: bounded memory
            row = np.lib.stride_tricks.sliding_window_view(im[y : y + patch], (patch, patch), axis=(0, 1))
            win = row[0, ::stride].transpose(0, 2, 3, 1)  # [m, p, p, C]
            var = win.var(axis=(1, 2)).max(axis=-1) * 255.0**2
            flat = var < var_threshold
            kept.append(win[flat] - win[flat].mean(axis=(1, 2), keepdims=True))
            variances.append(var[flat])
    if not kept or not sum(len(k) for k in kept):
        return np.zeros((0, patch, patch, channels), np.float32)
    noise, var = np.concatenate(kept), np.concatenate(variances)
    if max_patches is not None and len(noise) > max_patches:
        noise = noise[np.argsort(var, kind="stable")[:max_patches]]
    return np.ascontiguousarray(noise, dtype=np.float32)


def _check_kernel(k, name):
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise DataError(
            f"kernel {name}: shape {k.shape} must be square with an odd size (e.g. 15x15) so it has a centre pixel."
        )
    if not np.all(np.isfinite(k)) or k.min() < 0 or k.sum() <= 0:
        raise DataError(
            f"kernel {name}: values must be finite and non-negative with a positive sum "
            "(a blur kernel); clip negatives before saving it."
        )
    return k / k.sum()


def load_kernel_pool(paths_or_dir):
    """Kernels ``[K, S, S]`` float32 from ``.npy`` files (a folder of them, or a list of paths).

    Each must be 2-D, square, odd-sized, finite and non-negative; it is normalised to sum 1 and
    zero-padded (centred) to the largest size.  Raises DataError naming the bad file.
    """
    if isinstance(paths_or_dir, (str, os.PathLike)) and Path(paths_or_dir).is_dir():
        paths = sorted(Path(paths_or_dir).glob("*.npy"))
        if not paths:
            raise DataError(
                f"kernel folder {os.fspath(paths_or_dir)!r} holds no .npy files; save kernels "
                "with numpy.save(name.npy, kernel)."
            )
    else:
        paths = [Path(paths_or_dir)] if isinstance(paths_or_dir, (str, os.PathLike)) else list(map(Path, paths_or_dir))
    if not paths:
        raise DataError("load_kernel_pool: no kernel files given; pass a folder of .npy kernels or a list of paths.")
    kernels = []
    for path in paths:
        try:
            k = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"kernel {os.fspath(path)!r}: cannot read it as .npy ({exc}).") from None
        kernels.append(_check_kernel(k, os.fspath(path)))
    size = max(k.shape[0] for k in kernels)
    padded = [np.pad(k, (size - k.shape[0]) // 2) for k in kernels]
    return np.stack(padded).astype(np.float32)


def _gradient_magnitude(y):
    gy, gx = np.gradient(y)
    return np.hypot(gx, gy)


def estimate_kernel(image, size=15, reblur=1.0, edge_fraction=0.02, sigma_range=(0.2, 5.0)):
    """An isotropic Gaussian kernel ``[size, size]`` for the blur already in ``image``.

    Gradient-ratio re-blur estimate (Zhuo & Sim 2011, "Defocus map estimation from a single
    image"), not KernelGAN: an edge blurred by a Gaussian of std s has a gradient peak
    proportional to ``1 / s``; re-blurred by a known ``reblur`` std it becomes
    ``1 / sqrt(s^2 + reblur^2)``.  So with R the median ratio |grad image| / |grad re-blurred|
    over the strongest ``edge_fraction`` of the image's gradients (luma), ``s = reblur /
    sqrt(R^2 - 1)``, clipped to ``sigma_range``.  It assumes a Gaussian, isotropic, spatially
    uniform blur and sharp step edges in the scene; noise lowers the estimate.
    """
    image = _as_float_image(image)
    y = image[..., 0] if image.shape[-1] == 1 else image @ np.asarray(_LUMA, np.float32)
    k = make_kernels(2 * int(math.ceil(4 * reblur)) + 1, reblur, kind="gaussian")
    blurred = apply_kernels(y[None, ..., None], k).numpy()[0, ..., 0]
    g, gb = _gradient_magnitude(y), _gradient_magnitude(blurred)
    border = k.shape[-1]  # reflect padding distorts the border
    g, gb = g[border:-border, border:-border], gb[border:-border, border:-border]
    edges = g >= np.quantile(g, 1.0 - edge_fraction)
    ratio = float(np.median(g[edges] / np.maximum(gb[edges], 1e-8)))
    sigma = reblur / math.sqrt(max(ratio**2 - 1.0, 1e-8))
    sigma = float(np.clip(sigma, *sigma_range))
    return make_kernels(size, sigma, kind="gaussian").numpy()[0], sigma


def save_pool(path, pool):
    """Writes a :class:`DegradationPool` as ``.npz`` (keys ``noise``, ``kernels``; empty when absent)."""
    noise = pool.noise if pool.noise is not None else np.zeros((0, 1, 1, 1), np.float32)
    kernels = pool.kernels if pool.kernels is not None else np.zeros((0, 1, 1), np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: numpy would add .npz to other suffixes
        np.savez(fh, noise=np.asarray(noise, np.float32), kernels=np.asarray(kernels, np.float32))
    return path


def load_pool(path):
    """The :class:`DegradationPool` of a :func:`save_pool` file (kernels re-validated)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            noise, kernels = data["noise"], data["kernels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"degradation pool {os.fspath(path)!r}: cannot read it ({exc}); write it with "
            "`visionfw degradation-pool` or save_pool()."
        ) from None
    if noise.ndim != 4 or kernels.ndim != 3:
        raise DataError(
            f"degradation pool {os.fspath(path)!r}: noise must be [M,p,p,C] and kernels [K,S,S], "
            f"got {noise.shape} and {kernels.shape}."
        )
    kernels = (
        np.stack([_check_kernel(k, f"{os.fspath(path)}[{i}]") for i, k in enumerate(kernels)])
        if len(kernels)
        else kernels
    )
    return DegradationPool(
        noise=noise.astype(np.float32) if len(noise) else None,
        kernels=kernels.astype(np.float32) if len(kernels) else None,
    )


# ----------------------------------------------------------------- fusion


def gan_fusion(y_r, y_s, a, b, gamma):
    """NTIRE 2020 Real-World SR runner-up fusion, per image of NHWC batches:
    ``a * y_r + b * y_s`` where the median of ``y_r``'s luma is below ``gamma``, else ``y_r``.

    Luma: MATLAB ``rgb2ycbcr`` Y (BT.601, [16, 235] / 255) of RGB, the image itself when grey
    (:func:`visionfw.data.color.to_y`); the median of an even count is the mean of the middle two.
    """
    from visionfw.data.color import to_y

    y_r = tf.convert_to_tensor(y_r, tf.float32)
    y_s = tf.convert_to_tensor(y_s, tf.float32)
    luma = tf.reshape(to_y(y_r), [tf.shape(y_r)[0], -1])
    ranked = tf.sort(luma, axis=-1)
    count = tf.shape(ranked)[1]
    median = 0.5 * (tf.gather(ranked, (count - 1) // 2, axis=1) + tf.gather(ranked, count // 2, axis=1))
    fused = a * y_r + b * y_s
    return tf.where(_per_image(median < gamma), fused, y_r)
