"""The in-memory patch cache of the training pipeline: whole images prepared once, cropped by gathers."""

from __future__ import annotations

import concurrent.futures
import sys
import warnings

import numpy as np
import tensorflow as tf

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import DataError


def _progress(iterable, total, desc):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False)


def map_threads(fn, items, threads, desc):
    # numpy releases the GIL in its inner loops, so threads help here too
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(threads, len(items)))) as pool:
        return list(_progress(pool.map(fn, items), len(items), desc))


def quantize_to_cache(image, cache_dtype):
    if cache_dtype == "uint8":
        return to_uint8(image)
    return np.ascontiguousarray(image, dtype=np.float32)


class FlatCache:
    """Images of one role (HR, LR, upscaled LR) concatenated into one flat tensor."""

    def __init__(self, images):
        self.channels = int(images[0].shape[-1])
        # pixels, each a row of C values: one gather index per pixel, not per value
        sizes = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.int64)
        # int32 indices gather faster; only caches over 2 G values need int64
        self.index_dtype = tf.int32 if sizes.sum() < 2**31 - 1 else tf.int64
        np_dtype = self.index_dtype.as_numpy_dtype
        self.offsets = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np_dtype))
        self.heights = tf.constant(np.array([im.shape[0] for im in images], dtype=np_dtype))
        self.widths = tf.constant(np.array([im.shape[1] for im in images], dtype=np_dtype))
        self.flat = tf.constant(self._concatenate(images, int(sizes.sum())))

    def _concatenate(self, images, total):
        """All pixels as one (total, C) array: one copy at most (none for one contiguous image)."""
        if len(images) == 1 and images[0].flags.c_contiguous:
            return images[0].reshape(-1, self.channels)
        flat = np.empty((total, self.channels), images[0].dtype)
        at = 0
        for im in images:
            n = im.shape[0] * im.shape[1]
            flat[at : at + n].reshape(im.shape)[...] = im
            at += n
        return flat

    def crop(self, image_idx, ys, xs, size, flips=None):
        """Patches ``[B, size, size, C]`` at (ys, xs) of images ``image_idx`` ([B] ints).

        ``flips``: None or bools ``(flip_w, flip_h, transpose)``, each [B]; the patch is
        transposed, flipped upside down, then left-right (the 8 dihedral transforms).
        The transform goes into the gather indices, so it costs nothing extra.
        """
        dt = self.index_dtype
        image_idx, ys, xs = (tf.cast(v, dt) for v in (image_idx, ys, xs))
        ar = tf.range(size, dtype=dt)
        shape = tf.stack([tf.shape(ys, out_type=dt)[0], size, size])
        rows = tf.broadcast_to(ar[None, :, None], shape)  # source row of each output pixel
        cols = tf.broadcast_to(ar[None, None, :], shape)
        if flips is not None:
            flip_w, flip_h, transpose = (tf.reshape(f, [-1, 1, 1]) for f in flips)
            rows, cols = tf.where(transpose, cols, rows), tf.where(transpose, rows, cols)
            rows = tf.where(flip_h, size - 1 - rows, rows)
            cols = tf.where(flip_w, size - 1 - cols, cols)
        row_len = tf.gather(self.widths, image_idx)
        pix = (
            tf.gather(self.offsets, image_idx)[:, None, None]
            + (ys[:, None, None] + rows) * row_len[:, None, None]
            + (xs[:, None, None] + cols)
        )
        return tf.gather(self.flat, pix)


def resize_whole(image, scale):
    """Build-time resize of one whole image: the float64 numpy MATLAB bicubic.

    It gathers only the contributing taps, so it is far faster on big images than the
    dense-matrix TF version; uint8 in -> MATLAB-rounded uint8 out.
    """
    from visionfw.data.imresize import imresize_numpy

    return imresize_numpy(image, scale=scale)


def downscale_whole(image, scale):
    lr = resize_whole(image, 1.0 / scale)
    h, w = image.shape[0] // scale, image.shape[1] // scale
    if lr.shape[:2] != (h, w):  # never for mod-cropped images (ceil(n/s) == n/s)
        raise DataError(
            f"Downscaling a {image.shape[1]}x{image.shape[0]} image by {scale} gave "
            f"{lr.shape[1]}x{lr.shape[0]}; expected {w}x{h}."
        )
    return lr


def build_caches(config, names, hr, lr):
    """Mod-crop, pair/downscale, drop too-small images; returns the caches dict."""
    s, p = config.scale, config.lr_patch
    hr_p = p * s
    keep_hr, keep_lr, small = [], [], []
    for i, (name, img) in enumerate(zip(names, hr)):
        if lr is not None:
            lr_img = lr[i]
            h, w = lr_img.shape[:2]
            if (
                img.shape[0] < h * s
                or img.shape[1] < w * s
                or img.shape[0] >= (h + 1) * s
                or img.shape[1] >= (w + 1) * s
            ):
                raise DataError(
                    f"LR image for {name!r} is {w}x{h} (w x h) but the HR image is "
                    f"{img.shape[1]}x{img.shape[0]}; at scale {s} the LR must be the HR "
                    "size divided by the scale (rounded down). Check lr_source and scale."
                )
            img = img[: h * s, : w * s]
        else:
            img = img[: img.shape[0] - img.shape[0] % s, : img.shape[1] - img.shape[1] % s]
        if img.shape[0] < hr_p or img.shape[1] < hr_p:
            small.append(f"{name} ({img.shape[1]}x{img.shape[0]})")
            continue
        keep_hr.append(img)  # a view: the flat cache makes the one copy
        if lr is not None:
            keep_lr.append(lr[i])
    if small:
        shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
        msg = (
            f"{len(small)} training image(s) smaller than one {hr_p}x{hr_p} HR patch "
            f"(lr_patch {p} x scale {s}): {shown}"
        )
        if not keep_hr:
            raise DataError(f"No usable training image: {msg}. Lower lr_patch or use larger images.")
        warnings.warn(f"Skipping {msg}; {len(keep_hr)} image(s) are used.", stacklevel=3)

    caches = {}
    if config.patch_order == "downscale_then_crop":
        threads = config.num_read_threads
        if lr is None:
            keep_lr = map_threads(lambda im: downscale_whole(im, s), keep_hr, threads, "downscaling")
        if config.upsample_input:
            # upscale the whole LR image once, as SRCNN/VDSR's training code does (in float);
            # channel by channel, so the float temporaries are those of one channel
            def upscale(img):
                out = None
                for ch in range(img.shape[-1]):
                    plane = img[..., ch : ch + 1]
                    f = to_float01(plane)
                    up = quantize_to_cache(resize_whole(f, s), config.cache_dtype)
                    if out is None:
                        out = np.empty(up.shape[:2] + (img.shape[-1],), up.dtype)
                    out[..., ch : ch + 1] = up
                return out

            caches["lr_up"] = FlatCache(map_threads(upscale, keep_lr, threads, "upscaling"))
        else:
            caches["lr"] = FlatCache(keep_lr)
        del keep_lr
    caches["hr"] = FlatCache(keep_hr)
    return caches, len(keep_hr)
