"""Pixel losses and weighted mixes parsed from strings such as ``"0.8*l1+0.2*charbonnier"``.

Every loss is the mean over all elements of the batch, computed in float32 (inputs of
a mixed-precision model are cast up first), so the value does not depend on the
batch size and a replica's loss divided by the replica count sums to the global mean.
"""
from __future__ import annotations

import re

import tensorflow as tf

from visionfw.errors import ConfigError

__all__ = ["l1", "l2", "charbonnier", "LOSSES", "WeightedLoss", "parse_loss"]

CHARBONNIER_EPS = 1e-3


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


LOSSES = {"l1": l1, "mae": l1, "l2": l2, "mse": l2, "charbonnier": charbonnier}

_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*$")


class WeightedLoss:
    """``sum_i w_i * loss_i(y_true, y_pred)``; ``terms`` is a list of (weight, name)."""

    def __init__(self, terms):
        self.terms = [(float(w), str(n).lower()) for w, n in terms]
        for _, name in self.terms:
            if name not in LOSSES:
                raise ConfigError(f"loss {name!r} is unknown; use one of {sorted(LOSSES)} "
                                  "or a mix like '0.8*l1+0.2*charbonnier'.")

    def __call__(self, y_true, y_pred):
        total = None
        for weight, name in self.terms:
            value = LOSSES[name](y_true, y_pred)
            value = value if weight == 1.0 else weight * value
            total = value if total is None else total + value
        return total

    def __repr__(self):
        return "+".join(n if w == 1.0 else f"{w:g}*{n}" for w, n in self.terms)


def parse_loss(spec):
    """A :class:`WeightedLoss` from ``"l1"``, ``"mse"``, ``"0.8*l1+0.2*charbonnier"``...

    A callable is returned unchanged (custom losses ``fn(y_true, y_pred) -> scalar``).
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"--loss={spec!r}: give a loss name or a mix like '0.8*l1+0.2*charbonnier'.")
    terms = []
    for part in spec.split("+"):
        m = _TERM.match(part)
        if not m:
            raise ConfigError(f"--loss={spec!r}: cannot read the term {part.strip()!r}; write "
                              "terms as 'name' or 'weight*name' joined by '+'.")
        terms.append((float(m.group(1)) if m.group(1) else 1.0, m.group(2)))
    return WeightedLoss(terms)
