"""Pixel losses and weighted mixes parsed from strings such as ``"0.8*l1+0.2*charbonnier"``.

A term may carry one numeric option in brackets: ``lp(0.5)`` is the mean of ``|error|^0.5``
(BSR's hybrid objective ``l2+0.1*l1+0.01*lp``; plain ``lp`` uses ``p = LP_DEFAULT_P``).

Every loss is the mean over all elements of the batch, computed in float32 (inputs of
a mixed-precision model are cast up first), so the value does not depend on the
batch size and a replica's loss divided by the replica count sums to the global mean.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import tensorflow as tf

from visionfw.errors import ConfigError

__all__ = ["l1", "l2", "charbonnier", "lp", "LOSSES", "WeightedLoss", "parse_loss"]

CHARBONNIER_EPS = 1e-3
# BSR (Kong et al., ITU Kaleidoscope 2020) names an Lp term beside L1 and L2 but the text we
# could read (the abstract) gives no p; 0.5 is our choice: a sub-L1 norm that weighs the many
# small errors of flat regions more than L1 does.  Write lp(p) for another value.
LP_DEFAULT_P = 0.5
# For p < 1 the slope p|e|^(p-1) is unbounded at e = 0; shifting by eps caps it at p*eps^(p-1).
LP_EPS = 1e-3


def _f32(y_true, y_pred):
    return tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)


def l1(y_true, y_pred):
    """Mean absolute error."""
    y_true, y_pred = _f32(y_true, y_pred)
    return tf.reduce_mean(tf.abs(y_pred - y_true))


def l2(y_true, y_pred):
    """Mean squared error (SRCNN, VDSR, SRResNet)."""
    y_true, y_pred = _f32(y_true, y_pred)
    return tf.reduce_mean(tf.square(y_pred - y_true))


def charbonnier(y_true, y_pred, eps=CHARBONNIER_EPS):
    """Mean of sqrt(d^2 + eps^2), a differentiable L1 (LapSRN uses eps=1e-3)."""
    y_true, y_pred = _f32(y_true, y_pred)
    return tf.reduce_mean(tf.sqrt(tf.square(y_pred - y_true) + eps * eps))


def lp(y_true, y_pred, p=LP_DEFAULT_P):
    """Mean of |error|^p.  For p < 1 it is ``(|e| + eps)^p - eps^p`` (eps = LP_EPS): 0 at e = 0 and a
    bounded slope there; for p >= 1 it is exact (p = 1 is L1, p = 2 is L2)."""
    p = float(p)
    if not p > 0:
        raise ConfigError(f"loss lp({p:g}): p must be > 0, e.g. lp(0.5).")
    y_true, y_pred = _f32(y_true, y_pred)
    err = tf.abs(y_pred - y_true)
    if p < 1.0:
        return tf.reduce_mean(tf.pow(err + LP_EPS, p) - LP_EPS**p)
    return tf.reduce_mean(tf.pow(err, p))


LOSSES = {"l1": l1, "mae": l1, "l2": l2, "mse": l2, "charbonnier": charbonnier, "lp": lp}
# losses that take one numeric option, written name(value), and its keyword
_OPTION = {"lp": "p", "charbonnier": "eps"}

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_TERM = re.compile(
    rf"^\s*(?:({_NUMBER})\s*\*\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*"
    rf"(?:\(\s*(?:([a-zA-Z_]+)\s*=\s*)?({_NUMBER})\s*\))?\s*$"
)


class WeightedLoss:
    """``sum_i w_i * loss_i(y_true, y_pred)``; ``terms`` is a list of (weight, name) or
    (weight, name, option) with the option of ``lp`` (p) or ``charbonnier`` (eps)."""

    def __init__(self, terms):
        self.terms, self.options = [], []
        for term in terms:
            weight, name = float(term[0]), str(term[1]).lower()
            option = term[2] if len(term) > 2 else None
            if name not in LOSSES:
                raise ConfigError(
                    f"loss {name!r} is unknown; use one of {sorted(LOSSES)} or a mix like '0.8*l1+0.2*charbonnier'."
                )
            if option is not None and name not in _OPTION:
                raise ConfigError(
                    f"loss {name}({option:g}) takes no option; only "
                    f"{', '.join(f'{k}({v})' for k, v in _OPTION.items())} do."
                )
            if name == "lp" and option is not None and not float(option) > 0:
                raise ConfigError(f"loss lp({option:g}): p must be > 0, e.g. lp(0.5).")
            self.terms.append((weight, name))
            self.options.append(None if option is None else float(option))

    def __call__(self, y_true, y_pred):
        total = None
        for (weight, name), option in zip(self.terms, self.options):
            kwargs = {} if option is None else {_OPTION[name]: option}
            value = LOSSES[name](y_true, y_pred, **kwargs)
            value = value if weight == 1.0 else weight * value
            total = value if total is None else total + value
        return total

    def __repr__(self):
        parts = []
        for (w, n), o in zip(self.terms, self.options):
            name = n if o is None else f"{n}({o:g})"
            parts.append(name if w == 1.0 else f"{w:g}*{name}")
        return "+".join(parts)


def parse_loss(spec: str | Callable) -> Callable:
    """The loss of a spec string.

    Args:
        spec: ``"l1"``, ``"mse"``, ``"0.8*l1+0.2*charbonnier"``, ``"l2+0.1*l1+0.01*lp(0.5)"``...,
            or a callable (a custom loss ``fn(y_true, y_pred) -> scalar``).

    Returns:
        A :class:`WeightedLoss`, or ``spec`` unchanged when it is callable.

    Raises:
        ConfigError: An empty spec or an unknown term.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"loss={spec!r}: give a loss name or a mix like '0.8*l1+0.2*charbonnier'.")
    terms = []
    for part in spec.split("+"):
        m = _TERM.match(part)
        if not m:
            raise ConfigError(
                f"loss={spec!r}: cannot read the term {part.strip()!r}; write "
                "terms as 'name', 'weight*name' or 'weight*name(option)' joined by '+'."
            )
        weight, name, key, option = m.groups()
        if key is not None and key != _OPTION.get(name.lower()):
            want = f"{name}({_OPTION[name.lower()]}=...)" if name.lower() in _OPTION else f"plain {name}"
            raise ConfigError(f"loss={spec!r}: {name} has no option {key!r}; write {want}.")
        terms.append((float(weight) if weight else 1.0, name, float(option) if option else None))
    return WeightedLoss(terms)
