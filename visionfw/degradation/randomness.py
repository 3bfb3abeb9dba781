"""Stateless random draws keyed on (seed, step, streams...), so a batch is reproducible from (seed, step)."""

from __future__ import annotations

import tensorflow as tf


def step_key(seed, step, *streams):
    """Stateless seed of (seed, step, streams...): distinct tuples never share a seed."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([int(seed), 0], tf.int64), tf.cast(step, tf.int64))
    return fold_key(key, *streams)


def fold_key(key, *streams):
    for s in streams:
        key = tf.random.experimental.stateless_fold_in(key, s)
    return key


def draw_uniform(key, draw, n, lo, hi):
    return tf.random.stateless_uniform([n], seed=fold_key(key, draw), minval=lo, maxval=hi)


def draw_choice(key, draw, n, k):
    return tf.random.stateless_uniform([n], seed=fold_key(key, draw), minval=0, maxval=k, dtype=tf.int32)


def draw_coin(key, draw, n, p):
    return draw_uniform(key, draw, n, 0.0, 1.0) < p
