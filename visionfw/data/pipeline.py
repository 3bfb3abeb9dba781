"""Training input pipeline: random aligned (LR, HR) patches as a ``tf.data.Dataset``.

Design
------
* Images are decoded once (threads), converted to the training channels and cached
  in memory as one flat uint8 (default) or float32 buffer per role (HR, LR), with
  per-image offsets and sizes.  A patch is cut with one ``tf.gather`` of computed
  indices, so the cost of a crop is the patch size, not the image size, and a whole
  batch is cut in one vectorised map call.
* Order: every epoch is a permutation of ``patches_per_image`` copies of the image
  indices (exact shuffle, no buffer).  All randomness is stateless and keyed on the
  seed, the epoch (for the permutation) and the index of the batch's first patch (for
  crop positions and augmentation).  The same seed gives the same batches whatever
  the parallelism, and ``start_step`` jumps to any batch without computing the ones
  before it (resumable training).
* ``patch_order='downscale_then_crop'``: each HR image is mod-cropped to a multiple
  of the scale and downscaled once, at build time, with MATLAB's bicubic; LR crop at
  (y, x) pairs with HR crop at (y*s, x*s).  ``'crop_then_downscale'``: an HR patch is
  cut anywhere and downscaled on its own (border pixels of the LR patch then see
  mirrored, not real, neighbours).
* Augmentation (8 flips/90-degree rotations) is folded into the gather indices, the
  same for the LR and HR crop; with crop_then_downscale the HR patch is transformed
  first and then downscaled, so LR is always exactly the bicubic of the target.
* With the uint8 cache the bicubic LR is made like MATLAB's ``imresize`` of a uint8
  image (rounded between and after the passes) and Y like ``rgb2ycbcr`` of uint8
  (rounded); with ``cache_dtype='float32'`` nothing is rounded.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from visionfw.data.batching import PATCH_STREAM, finish_dataset, index_stream, seed_pair
from visionfw.data.color import rgb_to_y
from visionfw.data.h5_dataset import make_h5_dataset
from visionfw.data.image_io import list_images, read_image, read_image_uint8, to_float01, to_uint8
from visionfw.data.imresize import imresize
from visionfw.data.patch_cache import build_caches, map_threads
from visionfw.errors import ConfigError, DataError

__all__ = ["TrainDataConfig", "make_train_dataset", "skip_batches", "load_train_images", "AUTOTUNE"]

AUTOTUNE = tf.data.AUTOTUNE
_log = logging.getLogger(__name__)

_CHANNELS = ("rgb", "y")
_PATCH_ORDERS = ("downscale_then_crop", "crop_then_downscale")
_CACHE_DTYPES = ("uint8", "float32")


# ----------------------------------------------------------------- decoding


def _read_image(path, as_uint8=False, max_pixels=None):
    """HxWxC image of a file: uint8 (16-bit rounded to 8) or float32 in [0, 1]; DataError for
    an image over ``max_pixels`` pixels (None: image_io's default), from its header."""
    read = read_image_uint8 if as_uint8 else read_image
    return read(path, max_pixels=max_pixels)


def _to_y(image):
    """Y of MATLAB rgb2ycbcr of an HxWx3 numpy image (uint8 in -> rounded uint8 out)."""
    return np.asarray(rgb_to_y(image))


# ----------------------------------------------------------------- configuration


@dataclasses.dataclass
class TrainDataConfig:
    """How to make training batches.  See the module docstring for the semantics.

    Attributes:
      source: folder of HR images, an HDF5 patch file (``.h5``/``.hdf5``, handed to
        :func:`make_h5_dataset`), or None for the embedded scikit-image photos.
      scale: integer SR factor s.
      lr_patch: LR patch size p; the HR patch is p*s.
      batch_size: patches per batch.
      channels: ``'rgb'`` (grey images repeated) or ``'y'`` (luma; grey used as is).
      lr_source: ``'bicubic'`` (MATLAB bicubic of the HR image) or a folder of LR
        images named ``name.ext``, ``namex{s}.ext`` or ``nameX{s}.ext`` for HR ``name.*``.
      patch_order: ``'downscale_then_crop'`` or ``'crop_then_downscale'`` (bicubic only).
      augment: random flips and 90-degree rotations (the same for LR and HR).
      patches_per_image: patches taken from every image per epoch.
      repeat: number of epochs, or None for an endless dataset.
      shuffle: permute the image order every epoch (a full permutation, not a buffer).
      seed: seed of every random choice.
      upsample_input: bicubic-upscale the LR patch to the HR size (SRCNN/VDSR-style
        models).  With downscale_then_crop the whole LR image is upscaled once and
        cropped, as the SRCNN/VDSR training code does.
      cache_dtype: ``'uint8'`` (4x less memory, MATLAB uint8 rounding) or ``'float32'``.
      num_parallel_calls, prefetch: tf.data knobs (AUTOTUNE by default).
      num_read_threads: threads decoding image files at build time.
      embedded_holdout: with ``source=None`` only: leave out the embedded photos held out for
        validation (:data:`visionfw.data.embedded.EMBEDDED_HELDOUT`, the ``'heldout'`` set).
      max_image_pixels: refuse (DataError naming the file) a training image whose header
        claims more pixels than this, before decoding it; None: 80 M
        (:data:`visionfw.data.image_io.DEFAULT_MAX_IMAGE_PIXELS`).  Memory: building the
        cache of one image peaks at a few times its uint8 size (about 10 bytes per pixel
        for RGB), plus the cache itself.
    """

    source: str | None = None
    scale: int = 2
    lr_patch: int = 32
    batch_size: int = 16
    channels: str = "rgb"
    lr_source: str = "bicubic"
    patch_order: str = "downscale_then_crop"
    augment: bool = True
    patches_per_image: int = 8
    repeat: int | None = None
    shuffle: bool = True
    seed: int = 0
    upsample_input: bool = False
    cache_dtype: str = "uint8"
    num_parallel_calls: int = AUTOTUNE
    prefetch: int = AUTOTUNE
    num_read_threads: int = 8
    embedded_holdout: bool = False
    max_image_pixels: int | None = None

    def __post_init__(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"TrainDataConfig.{name}={v!r} must be a positive integer.")

        for name in ("scale", "lr_patch", "batch_size", "patches_per_image", "num_read_threads"):
            positive_int(name)
        if self.repeat is not None:
            positive_int("repeat")
        if self.max_image_pixels is not None:
            positive_int("max_image_pixels")
        if self.channels not in _CHANNELS:
            raise ConfigError(f"TrainDataConfig.channels={self.channels!r} must be one of {_CHANNELS}.")
        if self.patch_order not in _PATCH_ORDERS:
            raise ConfigError(f"TrainDataConfig.patch_order={self.patch_order!r} must be one of {_PATCH_ORDERS}.")
        if self.cache_dtype not in _CACHE_DTYPES:
            raise ConfigError(f"TrainDataConfig.cache_dtype={self.cache_dtype!r} must be one of {_CACHE_DTYPES}.")
        if not isinstance(self.lr_source, (str, os.PathLike)):
            raise ConfigError(f"TrainDataConfig.lr_source={self.lr_source!r} must be 'bicubic' or a folder path.")
        if self.lr_source != "bicubic" and self.patch_order != "downscale_then_crop":
            raise ConfigError(
                "TrainDataConfig: patch_order='crop_then_downscale' makes the LR "
                f"patch by bicubic, so it cannot use lr_source={str(self.lr_source)!r}; "
                "use patch_order='downscale_then_crop' with an LR folder."
            )
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ConfigError(f"TrainDataConfig.seed={self.seed!r} must be an integer.")
        if self.embedded_holdout and self.source is not None:
            raise ConfigError(
                "TrainDataConfig.embedded_holdout leaves photos out of the embedded set; it does "
                f"not apply to source={str(self.source)!r}. Drop it or leave source unset."
            )

    @property
    def hr_patch(self) -> int:
        """The HR patch side, ``lr_patch * scale``."""
        return self.lr_patch * self.scale


# ----------------------------------------------------------------- loading


def _read_all(paths, config):
    """Decoded and prepared (cache dtype, training channels) images of ``paths``.

    Each worker converts its image as soon as it is decoded, so only the prepared copy of
    an image outlives its decoding.
    """
    as_uint8 = config.cache_dtype == "uint8"

    def load(path):
        raw = _read_image(path, as_uint8, config.max_image_pixels)
        return _prepare(raw, config.channels, config.cache_dtype, os.path.basename(path))

    # PIL decodes with the GIL released, so threads give a real speed-up
    return map_threads(load, paths, config.num_read_threads, "decoding images")


def _folder_images(folder, what):
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{what}: folder {folder!r} does not exist; pass an existing folder of images.")
    paths = list(list_images(folder))
    if not paths:
        raise DataError(
            f"{what}: folder {folder!r} holds no images (png/jpg/bmp/tif...); point it at a folder of training images."
        )
    return [os.fspath(p) for p in paths]


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _pair_lr(hr_paths, lr_folder, scale):
    """LR path for every HR path: stem, stem+'x{s}' or stem+'X{s}' (DIV2K naming)."""
    by_stem = {}
    for p in _folder_images(lr_folder, "TrainDataConfig.lr_source"):
        by_stem.setdefault(_stem(p), p)
    pairs, missing = [], []
    for hr in hr_paths:
        stem = _stem(hr)
        for cand in (stem, f"{stem}x{scale}", f"{stem}X{scale}"):
            if cand in by_stem:
                pairs.append(by_stem[cand])
                break
        else:
            missing.append(os.path.basename(hr))
    if missing:
        raise DataError(
            f"TrainDataConfig.lr_source: no LR image in {os.fspath(lr_folder)!r} for "
            f"{len(missing)} HR image(s) {missing[:10]}; LR files must be named "
            f"'name.ext' or 'namex{scale}.ext' after HR 'name.ext'."
        )
    return pairs


def _prepare(image, channels, cache_dtype, name):
    """uint8 or float [0, 1] HxW[xC] -> cache dtype, training channels.

    Quantised to uint8 before the Y conversion so Y is MATLAB's rgb2ycbcr of the uint8
    image (rounded), as in the SRCNN/VDSR training code.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise DataError(f"Image {name!r} has shape {image.shape}; expected HxW, HxWx1 or HxWx3.")
    image = to_uint8(image) if cache_dtype == "uint8" else to_float01(image)
    if channels == "rgb":
        image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    elif image.shape[-1] == 3:
        image = _rows_in_strips(_to_y, image)  # grey images are their own Y
    return np.ascontiguousarray(image)


_STRIP_PIXELS = 1 << 18


def _rows_in_strips(fn, image):
    """``fn(image)`` for a per-pixel ``fn``, computed a strip of rows at a time (its float64
    temporaries are then a few MB, not several times the image)."""
    rows = max(1, _STRIP_PIXELS // max(1, image.shape[1]))
    if image.shape[0] <= rows:
        return fn(image)
    first = fn(image[:rows])
    out = np.empty((image.shape[0],) + first.shape[1:], first.dtype)
    out[:rows] = first
    for top in range(rows, image.shape[0], rows):
        out[top : top + rows] = fn(image[top : top + rows])
    return out


def load_train_images(config: TrainDataConfig) -> tuple[list[str], list[np.ndarray], list[np.ndarray] | None]:
    """Decode the training images of ``config`` (no LR generation yet).

    Args:
        config: the training data options.

    Returns:
        ``(names, hr, lr)``: the image names and lists of HxWxC arrays in the cache dtype with
        the training channels (``lr`` is None for ``lr_source='bicubic'``).
    """
    if config.source is None:
        from visionfw.data.embedded import EMBEDDED_HELDOUT, EMBEDDED_NAMES, embedded_images

        names = [n for n in EMBEDDED_NAMES if not (config.embedded_holdout and n in EMBEDDED_HELDOUT)]
        hr = [
            _prepare(im, config.channels, config.cache_dtype, n)
            for im, n in zip(embedded_images(None, names=names), names)
        ]
        return names, hr, None
    else:
        hr_paths = _folder_images(config.source, "TrainDataConfig.source")
        names = [os.path.basename(p) for p in hr_paths]
        lr_paths = None
        if config.lr_source != "bicubic":
            lr_paths = _pair_lr(hr_paths, config.lr_source, config.scale)
        hr = _read_all(hr_paths, config)
        lr = _read_all(lr_paths, config) if lr_paths else None
    return names, hr, lr


# ----------------------------------------------------------------- batch making


def _to_float(x):
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0  # same rounding as numpy x / 255
    return tf.cast(x, tf.float32)


def _batch_fn(config, caches):
    s, p, bsz = config.scale, config.lr_patch, config.batch_size
    hr_p = p * s
    hr_cache = caches["hr"]
    c = hr_cache.channels

    @tf.autograph.experimental.do_not_convert  # plain Python branches on the config only
    def make(gidx, image_idx):
        u = tf.random.stateless_uniform([bsz, 5], seed=seed_pair(config.seed, PATCH_STREAM, gidx[0]), dtype=tf.float64)
        flips = tuple(tf.unstack(u[:, 2:] < 0.5, axis=1)) if config.augment else None
        heights = tf.cast(tf.gather(hr_cache.heights, image_idx), tf.float64)
        widths = tf.cast(tf.gather(hr_cache.widths, image_idx), tf.float64)
        if config.patch_order == "downscale_then_crop":
            # positions on the LR grid, so the HR crop starts at a multiple of s
            ry, rx = tf.floor(heights / s) - p + 1, tf.floor(widths / s) - p + 1
        else:
            ry, rx = heights - hr_p + 1, widths - hr_p + 1
        ys = tf.cast(tf.minimum(tf.floor(u[:, 0] * ry), ry - 1), tf.int64)
        xs = tf.cast(tf.minimum(tf.floor(u[:, 1] * rx), rx - 1), tf.int64)

        if config.patch_order == "downscale_then_crop":
            # the same flips on both crops keep them aligned
            hr = hr_cache.crop(image_idx, ys * s, xs * s, hr_p, flips)
            if config.upsample_input:
                lr = caches["lr_up"].crop(image_idx, ys * s, xs * s, hr_p, flips)
            else:
                lr = caches["lr"].crop(image_idx, ys, xs, p, flips)
        else:
            # augment the HR patch, then downscale it: the LR is always the bicubic of
            # exactly the target the model sees
            hr = hr_cache.crop(image_idx, ys, xs, hr_p, flips)
            lr = imresize(hr, scale=1.0 / s)  # uint8 in -> MATLAB uint8 rounding
            if config.upsample_input:
                lr = imresize(_to_float(lr), scale=s)
        lr_size = hr_p if config.upsample_input else p
        lr = tf.ensure_shape(_to_float(lr), [bsz, lr_size, lr_size, c])
        hr = tf.ensure_shape(_to_float(hr), [bsz, hr_p, hr_p, c])
        return lr, hr

    return make


def make_train_dataset(config: TrainDataConfig, start_step: int = 0) -> tf.data.Dataset:
    """``tf.data.Dataset`` of ``(lr, hr)`` float32 NHWC batches in [0, 1].

    Args:
      config: a :class:`TrainDataConfig`.  A ``source`` ending in ``.h5``/``.hdf5`` is
        read with :func:`visionfw.data.h5_dataset.make_h5_dataset` (its patches are used as
        stored: scale, lr_patch, lr_source, patch_order, upsample_input and
        patches_per_image do not apply; channels must match the file).
      start_step: index of the first batch to yield.  Batch k of a dataset built with
        ``start_step=n`` equals batch n+k of one built with ``start_step=0`` (same config,
        including batch_size); no skipped batch is computed.

    Returns:
      The dataset.  Shapes: hr ``[B, p*s, p*s, C]``; lr ``[B, p, p, C]`` (``[B, p*s, p*s, C]``
      with ``upsample_input``).  C is 3 for ``'rgb'``, 1 for ``'y'``.

    Raises:
      ConfigError: a bad config or start_step.  DataError: unusable images.
    """
    if not isinstance(config, TrainDataConfig):
        raise ConfigError(f"make_train_dataset: config must be a TrainDataConfig, got {type(config).__name__}.")
    if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or start_step < 0:
        raise ConfigError(f"make_train_dataset: start_step={start_step!r} must be an integer >= 0.")
    if config.source is not None and str(config.source).lower().endswith((".h5", ".hdf5")):
        return make_h5_dataset(
            config.source,
            config.batch_size,
            shuffle=config.shuffle,
            seed=config.seed,
            repeat=config.repeat,
            augment=config.augment,
            start_step=start_step,
            channels=1 if config.channels == "y" else 3,
            num_parallel_calls=config.num_parallel_calls,
            prefetch=config.prefetch,
        )
    names, hr, lr = load_train_images(config)
    caches, n_images = build_caches(config, names, hr, lr)
    del hr, lr
    per_image = config.patches_per_image
    _log.info("training data: %d images, %d patches per epoch", n_images, n_images * per_image)
    ds = index_stream(
        n_images, per_image, config.shuffle, int(config.seed), int(start_step) * config.batch_size, config.repeat
    )
    ds = ds.batch(config.batch_size, drop_remainder=True)
    ds = ds.map(_batch_fn(config, caches), num_parallel_calls=config.num_parallel_calls, deterministic=True)
    return finish_dataset(ds, config.prefetch)


def skip_batches(dataset: tf.data.Dataset, n: int) -> tf.data.Dataset:
    """Drop the first ``n`` batches of any dataset (computes them; prefer ``start_step``).

    Args:
        dataset: any dataset.
        n: batches to drop, an integer >= 0.

    Returns:
        The dataset without its first ``n`` elements.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"skip_batches: n={n!r} must be an integer >= 0.")
    return dataset.skip(int(n))
