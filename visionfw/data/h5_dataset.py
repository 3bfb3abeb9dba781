"""Training batches from SRCNN-style HDF5 patch files."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from visionfw.data.batching import PATCH_STREAM, dihedral, finish_dataset, index_stream, seed_pair
from visionfw.errors import ConfigError, DataError

AUTOTUNE = tf.data.AUTOTUNE
_KEYS = ("data", "label")

__all__ = ["make_h5_dataset"]


def _h5_layout(shape, key, path):
    """'nhwc' or 'nchw' for a 4-D array; channel count 1 or 3 decides."""
    if len(shape) != 4:
        raise DataError(
            f"HDF5 {path!r}: dataset {key!r} has shape {shape}; expected 4-D patches "
            "(N, H, W, C) or (N, C, H, W), C = 1 or 3."
        )
    if shape[-1] in (1, 3):
        return "nhwc"
    if shape[1] in (1, 3):
        # MATLAB writes column-major, so h5py sees (N, C, W, H): H and W swapped for
        # both data and label, which keeps them aligned (a transposition augmentation)
        return "nchw"
    raise DataError(
        f"HDF5 {path!r}: dataset {key!r} of shape {shape} has no channel axis of size 1 or 3 (first or last after N)."
    )


def _h5_divisor(dtype, sample_max):
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    # some tools store floats in [0, 255]
    return 255.0 if sample_max > 1.5 else 1.0


@dataclasses.dataclass
class _H5Contents:
    """What a checked HDF5 patch file holds: per key ('data', 'label') its layout, dtype, divisor and
    NHWC patch shape; the arrays (NHWC) when the file fits in memory."""

    count: int
    layout: dict
    dtype: dict
    divisor: dict
    shape: dict
    in_memory: bool
    arrays: dict


def _check_arguments(path, batch_size, start_step):
    if not os.path.isfile(path):
        raise DataError(f"HDF5 training file {path!r} does not exist.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"make_h5_dataset: batch_size={batch_size!r} must be a positive integer.")
    if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or start_step < 0:
        raise ConfigError(f"make_h5_dataset: start_step={start_step!r} must be an integer >= 0.")


def _read_contents(path, max_memory_bytes):
    """Checks the file's datasets and pairing; loads them (NHWC) when they fit in ``max_memory_bytes``."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"HDF5 training file {path!r} cannot be opened: {exc}") from exc
    with f:
        missing = [k for k in _KEYS if k not in f]
        if missing:
            raise DataError(
                f"HDF5 {path!r} lacks dataset(s) {missing} (has {list(f.keys())}); "
                "expected 'data' (LR input) and 'label' (HR target)."
            )
        layout, dtype, divisor = {}, {}, {}
        for key in _KEYS:
            ds = f[key]
            layout[key] = _h5_layout(ds.shape, key, path)
            sample = ds[: min(ds.shape[0], 64)]
            dtype[key] = ds.dtype
            divisor[key] = _h5_divisor(ds.dtype, float(np.max(sample)) if ds.shape[0] else 0.0)
        n = f["data"].shape[0]
        if f["label"].shape[0] != n:
            raise DataError(
                f"HDF5 {path!r}: 'data' has {n} patches but 'label' has "
                f"{f['label'].shape[0]}; they must pair one to one."
            )
        if n == 0:
            raise DataError(f"HDF5 {path!r} holds no patches.")
        in_memory = sum(f[k].size * f[k].dtype.itemsize for k in _KEYS) <= max_memory_bytes
        shape, arrays = {}, {}
        for key in _KEYS:
            shp = f[key].shape
            shape[key] = shp[1:] if layout[key] == "nhwc" else (shp[2], shp[3], shp[1])
            if in_memory:
                arrays[key] = _to_nhwc(f[key][()], layout[key])
    return _H5Contents(n, layout, dtype, divisor, shape, in_memory, arrays)


def _to_nhwc(arr, layout):
    return np.ascontiguousarray(np.transpose(arr, (0, 2, 3, 1)) if layout == "nchw" else arr)


def _check_fits_request(path, contents, channels, batch_size, repeat):
    for key in _KEYS:
        if channels is not None and contents.shape[key][-1] != channels:
            raise DataError(
                f"HDF5 {path!r}: {key!r} has {contents.shape[key][-1]} channel(s) but {channels} "
                "are expected; set channels ('y' = 1, 'rgb' = 3) to match the file."
            )
    if contents.count < batch_size and repeat is not None:
        raise DataError(f"HDF5 {path!r} holds {contents.count} patches, fewer than batch_size={batch_size}.")


def _patch_fetcher(path, contents):
    """``fetch(indices) -> (data, label)``: gathers from memory, or reads the file per batch."""
    if contents.in_memory:
        consts = {k: tf.constant(v) for k, v in contents.arrays.items()}

        def fetch(idx):
            return tf.gather(consts["data"], idx), tf.gather(consts["label"], idx)

        return fetch

    def read(idx):
        import h5py

        # h5py wants increasing, unique indices; a batch may straddle two epochs
        uniq, inverse = np.unique(idx, return_inverse=True)
        with h5py.File(path, "r") as fh:
            return tuple(_to_nhwc(fh[key][uniq][inverse], contents.layout[key]) for key in _KEYS)

    def fetch(idx):
        dtypes = [tf.as_dtype(contents.dtype[k]) for k in _KEYS]
        d, lab = tf.numpy_function(read, [idx], dtypes, stateful=False)
        return d, lab

    return fetch


def _batch_maker(fetch, contents, batch_size, augment, seed):
    """``make(global indices, patch indices) -> (data, label)`` float32 batches, augmented when asked."""
    square = all(contents.shape[k][0] == contents.shape[k][1] for k in _KEYS)

    @tf.autograph.experimental.do_not_convert
    def make(gidx, idx):
        data, label = fetch(idx)
        data = tf.cast(data, tf.float32) / contents.divisor["data"]
        label = tf.cast(label, tf.float32) / contents.divisor["label"]
        if augment:
            u = tf.random.stateless_uniform([batch_size, 3], seed=seed_pair(seed, PATCH_STREAM, gidx[0]))
            bits = u < 0.5
            turn = bits[:, 2] if square else None
            data = dihedral(data, bits[:, 0], bits[:, 1], turn)
            label = dihedral(label, bits[:, 0], bits[:, 1], turn)
        data = tf.ensure_shape(data, [batch_size, *contents.shape["data"]])
        label = tf.ensure_shape(label, [batch_size, *contents.shape["label"]])
        return data, label

    return make


def make_h5_dataset(
    path: str | os.PathLike,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    repeat: int | None = None,
    augment: bool = False,
    start_step: int = 0,
    channels: int | None = None,
    num_parallel_calls: int = AUTOTUNE,
    prefetch: int = AUTOTUNE,
    max_memory_bytes: int = 2 * 1024**3,
) -> tf.data.Dataset:
    """Batches ``(data, label)`` from an SRCNN-style HDF5 patch file.

    The file holds ``data`` (LR, possibly pre-upsampled) and ``label`` (HR) patches,
    NHWC or MATLAB/Caffe NCHW (told apart by the channel axis being 1 or 3), float or
    uint8 (uint8 and floats above 1.5 are divided by 255).  Files up to
    ``max_memory_bytes`` are loaded into memory; larger ones are read per batch.

    Args:
      path: the ``.h5`` / ``.hdf5`` file.
      batch_size: patches per batch.
      shuffle, seed, repeat, start_step: as in
        :func:`visionfw.data.pipeline.make_train_dataset` (one epoch = every patch once).
      augment: random flips (and transpositions for square patches), same for both.
      channels: expected channel count (1 or 3) or None to accept what the file has.
      num_parallel_calls, prefetch: tf.data knobs.
      max_memory_bytes: load the file into memory up to this size.

    Returns:
      A dataset of float32 NHWC ``(data, label)`` batches of ``batch_size``.

    Raises:
      DataError: a missing or unreadable file, missing or unpaired datasets, a channel mismatch.
      ConfigError: a bad ``batch_size`` or ``start_step``.
    """
    path = os.fspath(path)
    _check_arguments(path, batch_size, start_step)
    contents = _read_contents(path, max_memory_bytes)
    _check_fits_request(path, contents, channels, batch_size, repeat)
    make = _batch_maker(_patch_fetcher(path, contents), contents, batch_size, augment, seed)
    ds = index_stream(contents.count, 1, shuffle, int(seed), int(start_step) * batch_size, repeat)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(make, num_parallel_calls=num_parallel_calls if contents.in_memory else 1, deterministic=True)
    return finish_dataset(ds, prefetch)
