"""Stateless batch order and augmentation shared by the training datasets (folders and HDF5 patches)."""

from __future__ import annotations

import tensorflow as tf

from visionfw.errors import ConfigError


def dihedral(images, flip_w, flip_h, transpose=None):
    """Per-example flips and transposition (square patches only) of a batch; bools [B].

    The three together give all 8 flips/90-degree rotations.
    """

    def pick(mask, changed, x):
        return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), changed, x)

    images = pick(flip_w, tf.reverse(images, axis=[2]), images)
    images = pick(flip_h, tf.reverse(images, axis=[1]), images)
    if transpose is not None:
        images = pick(transpose, tf.transpose(images, [0, 2, 1, 3]), images)
    return images


def seed_pair(seed, stream, counter):
    """Stateless seed for one (stream, counter): distinct streams never share seeds."""
    base = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), stream)
    return tf.random.experimental.stateless_fold_in(base, counter)


SHUFFLE_STREAM, PATCH_STREAM = 1, 2


def index_stream(num_items, per_item, shuffle, seed, start, repeat):
    """Dataset of (global index, item index) from global position ``start`` on.

    Epoch e is ``per_item`` copies of ``range(num_items)``, permuted with a seed that
    depends only on (seed, e): any position can be reached without replaying.
    """
    epoch_len = num_items * per_item
    start_epoch = start // epoch_len
    if repeat is not None and start_epoch >= repeat:
        raise ConfigError(
            f"start_step is past the end of the data ({repeat} epoch(s) of "
            f"{epoch_len} patches); lower start_step or raise repeat."
        )
    base = tf.tile(tf.range(num_items, dtype=tf.int64), [per_item])

    @tf.autograph.experimental.do_not_convert
    def epoch_items(epoch):
        items = base
        if shuffle:
            keys = tf.random.stateless_uniform([epoch_len], seed=seed_pair(seed, SHUFFLE_STREAM, epoch))
            items = tf.gather(base, tf.argsort(keys, stable=True))
        return tf.data.Dataset.from_tensor_slices(items)

    epochs = tf.data.Dataset.counter(start_epoch) if repeat is None else tf.data.Dataset.range(start_epoch, repeat)
    items = epochs.flat_map(epoch_items)
    counter = tf.data.Dataset.counter(start_epoch * epoch_len)
    ds = tf.data.Dataset.zip((counter, items))
    return ds.skip(start - start_epoch * epoch_len)


def finish_dataset(ds, prefetch):
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    return ds.prefetch(prefetch) if prefetch else ds
