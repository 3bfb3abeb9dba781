"""Stateless random draws keyed on (seed, step, streams...), so a batch is reproducible from (seed, step)."""

from __future__ import annotations

import tensorflow as tf

from visionfw.data.types import TensorLike


def step_key(seed: int, step: TensorLike, *streams: int) -> tf.Tensor:
    """Stateless seed of (seed, step, streams...): distinct tuples never share a seed."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([int(seed), 0], tf.int64), tf.cast(step, tf.int64))
    return fold_key(key, *streams)


def fold_key(key: tf.Tensor, *streams: TensorLike) -> tf.Tensor:
    """``key`` with ``streams`` folded in, one after the other."""
    for s in streams:
        key = tf.random.experimental.stateless_fold_in(key, s)
    return key


def draw_uniform(key: tf.Tensor, draw: int, n: TensorLike, lo: float, hi: float) -> tf.Tensor:
    """``[n]`` uniform floats in [lo, hi) of draw number ``draw`` under ``key``."""
    return tf.random.stateless_uniform([n], seed=fold_key(key, draw), minval=lo, maxval=hi)


def draw_choice(key: tf.Tensor, draw: int, n: TensorLike, k: int) -> tf.Tensor:
    """``[n]`` int32 choices among ``k`` of draw number ``draw`` under ``key``."""
    return tf.random.stateless_uniform([n], seed=fold_key(key, draw), minval=0, maxval=k, dtype=tf.int32)


def draw_coin(key: tf.Tensor, draw: int, n: TensorLike, p: float) -> tf.Tensor:
    """``[n]`` bools, each true with probability ``p``, of draw number ``draw`` under ``key``."""
    return draw_uniform(key, draw, n, 0.0, 1.0) < p
