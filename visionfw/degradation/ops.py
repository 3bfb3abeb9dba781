"""The degradation ops (blur, down, noise, jpeg) as batched TensorFlow functions, and their random-parameter forms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from visionfw.data.types import TensorLike
from visionfw.degradation.randomness import draw_choice, draw_coin, draw_uniform, fold_key
from visionfw.degradation.spec import KERNEL_KINDS, NOISE_KINDS, RESIZE_METHODS
from visionfw.errors import ConfigError

_TF_METHODS = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "bicubic": "bicubic",
    "lanczos": "lanczos3",
    "area": "area",
}
_POISSON_PEAK = 255.0  # photon count of a white pixel: one count per grey level
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601 luma weights (grey noise)


def _per_image(v):
    return tf.reshape(v, [-1, 1, 1, 1])


# ----------------------------------------------------------------- blur


def make_kernels(
    size: int,
    sigma1: TensorLike,
    sigma2: TensorLike | None = None,
    *,
    theta: TensorLike = 0.0,
    beta: TensorLike = 1.0,
    kind: str | TensorLike = "gaussian",
    omega: TensorLike = math.pi / 2,
) -> tf.Tensor:
    """Kernels ``[N, size, size]`` (sum 1) for per-image parameters (scalars or ``[N]`` tensors).

    ``q = u^2 / sigma1^2 + v^2 / sigma2^2`` with ``(u, v)`` the (column, row) offset rotated by
    ``-theta``, i.e. the Gaussian's covariance is ``R(theta) diag(sigma1^2, sigma2^2) R(theta)^T``.

    Args:
        size: taps per side (odd).
        sigma1: std along the first (rotated) axis.
        sigma2: std along the second axis (None: ``sigma1``, isotropic).
        theta: rotation in radians.
        beta: shape exponent of ``'generalized'`` and ``'plateau'``.
        kind: ``'gaussian'`` ``exp(-q/2)``, ``'generalized'`` ``exp(-q^beta / 2)``, ``'plateau'``
            ``1 / (1 + q^beta)``, ``'sinc'`` (the ideal circular low-pass of cut-off ``omega``
            radians per pixel, ``omega J1(omega r) / (2 pi r)``, as Real-ESRGAN's; the sigmas are
            unused), or an int ``[N]`` tensor picking one of those four per image (0..3 in that order).
        omega: the sinc cut-off.

    Returns:
        float32 ``[N, size, size]`` kernels, each summing to 1.
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


def apply_kernels(images: TensorLike, kernels: TensorLike) -> tf.Tensor:
    """Convolves each image of ``[N, H, W, C]`` with its kernel.

    A true convolution (kernel flipped), with reflect padding, so H and W must exceed k // 2.
    One depthwise convolution for the batch: images are folded into channels.

    Args:
        images: float ``[N, H, W, C]``.
        kernels: ``[N, k, k]``, or ``[k, k]`` for all images.

    Returns:
        float32 ``[N, H, W, C]``.
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
    kind = tf.gather(tf.constant(kinds, tf.int32), draw_choice(key, 0, n, len(kinds)))
    s1 = draw_uniform(key, 1, n, *o["sigma"])
    s2 = tf.where(kind == 0, s1, draw_uniform(key, 2, n, *o["sigma"]))  # iso: one sigma
    theta = tf.where(kind == 0, 0.0, draw_uniform(key, 3, n, 0.0, math.pi))
    beta = tf.where(kind == 2, draw_uniform(key, 4, n, *o["gbeta"]), draw_uniform(key, 5, n, *o["pbeta"]))
    form = tf.where(kind == 2, 1, tf.where(kind == 3, 2, tf.where(kind == 4, 3, 0)))  # gauss/gen./plateau/sinc
    omega = draw_uniform(key, 9, n, *o["omega"])
    return make_kernels(o["size"], s1, s2, theta=theta, beta=beta, kind=form, omega=omega)


def _blur_op(x, o, key, pool, **_):
    n = tf.shape(x)[0]
    kernels = _random_kernels(o, key, n)
    pool_kernels = None if pool is None else pool.get("kernels")
    if pool_kernels is not None and o["pool"] > 0:
        size = max(o["size"], pool_kernels.shape[-1])
        picked = tf.gather(pool_kernels, draw_choice(key, 6, n, pool_kernels.shape[0]))
        kernels = tf.where(
            draw_coin(key, 7, n, o["pool"])[:, None, None], _pad_kernels(picked, size), _pad_kernels(kernels, size)
        )
    size = kernels.shape[-1]
    delta = tf.one_hot(size * size // 2, size * size, dtype=tf.float32)
    delta = tf.reshape(delta, [1, size, size])
    kernels = tf.where(draw_coin(key, 8, n, o["prob"])[:, None, None], kernels, delta)  # skipped: identity
    return apply_kernels(x, kernels)


# ----------------------------------------------------------------- resize


def downscale(images: TensorLike, size: Sequence, method: str, antialias: bool = True) -> tf.Tensor:
    """``images`` resized to ``size`` (h, w) exactly with one of :data:`RESIZE_METHODS`.

    Args:
        images: float NHWC batch.
        size: (h, w), ints or int tensors (``'matlab'`` needs ints).
        method: one of :data:`RESIZE_METHODS`.
        antialias: filter when shrinking (bilinear, bicubic, lanczos).

    Returns:
        The resized batch.
    """
    if method == "matlab":
        from visionfw.data.imresize import imresize

        if not all(isinstance(d, (int, np.integer)) for d in size):
            raise ConfigError(
                "down(methods=matlab) needs HR batches of a static size (fixed patches); "
                "drop matlab from methods= for images of varying size."
            )
        return imresize(images, output_size=tuple(size))
    if method not in _TF_METHODS:
        raise ConfigError(f"downscale: method {method!r} unknown; use one of {', '.join(RESIZE_METHODS)}.")
    smooth = antialias and method not in ("nearest", "area")  # area averages anyway
    return tf.image.resize(images, size, method=_TF_METHODS[method], antialias=smooth)


def _down_op(x, o, key, size, **_):
    methods = o["methods"]
    outs = [downscale(x, size, m, o["antialias"]) for m in methods]
    if len(outs) == 1:
        return outs[0]
    pick = draw_choice(key, 0, tf.shape(x)[0], len(outs))
    return tf.gather(tf.stack(outs, axis=1), pick, batch_dims=1)  # one method per image


# ----------------------------------------------------------------- noise


def _luma(x):
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(LUMA_WEIGHTS, tf.float32), axis=-1, keepdims=True)


def gaussian_noise(images: tf.Tensor, sigma: tf.Tensor, gray: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Gaussian noise (not the noisy image) for a batch.

    Args:
        images: NHWC batch (gives the shape).
        sigma: ``[N]`` std on the [0, 1] scale.
        gray: ``[N]`` bool: one noise field for all channels.
        seed: stateless seed (shape [2]).

    Returns:
        The noise, shaped like ``images``.
    """
    shape = tf.shape(images)
    colour = tf.random.stateless_normal(shape, seed=fold_key(seed, 0))
    grey = tf.random.stateless_normal(tf.concat([shape[:3], [1]], 0), seed=fold_key(seed, 1))
    noise = tf.where(_per_image(gray), grey, colour)
    return noise * _per_image(sigma)


def poisson_noise(images: tf.Tensor, scale: tf.Tensor, gray: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Noise ``scale * (Poisson(255 x) / 255 - x)`` per pixel (variance ``scale^2 x / 255``).

    Args:
        images: NHWC batch in [0, 1] (clipped first).
        scale: ``[N]`` noise scale.
        gray: ``[N]`` bool: drawn on the BT.601 luma, the same for all channels.
        seed: stateless seed (shape [2]).

    Returns:
        The noise, shaped like ``images``.
    """
    x = tf.clip_by_value(images, 0.0, 1.0)

    def draw(v, s):
        counts = tf.random.stateless_poisson(tf.shape(v), seed=s, lam=v * _POISSON_PEAK, dtype=tf.float32)
        return counts / _POISSON_PEAK - v

    colour = draw(x, fold_key(seed, 0))
    grey = draw(_luma(x), fold_key(seed, 1))
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
    picked = _match_channels(tf.gather(patches, draw_choice(key, 10, n, patches.shape[0])), x.shape[-1])
    reps = [1, h // p + 2, w // p + 2, 1]
    offset = tf.random.stateless_uniform([2], seed=fold_key(key, 11), minval=0, maxval=p, dtype=tf.int32)
    return tf.tile(picked, reps)[:, offset[0] : offset[0] + h, offset[1] : offset[1] + w]


def _noise_op(x, o, key, pool, **_):
    n = tf.shape(x)[0]
    kinds = [NOISE_KINDS.index(k) for k in o["kinds"]]
    kind = tf.gather(tf.constant(kinds, tf.int32), draw_choice(key, 0, n, len(kinds)))
    gray = draw_coin(key, 1, n, o["gray"])
    sigma = draw_uniform(key, 2, n, *o["sigma"]) / 255.0
    scale = draw_uniform(key, 3, n, *o["poisson"])
    noise = gaussian_noise(x, sigma * tf.cast(kind != 1, tf.float32), gray, fold_key(key, 4)) + poisson_noise(
        x, scale * tf.cast(kind != 0, tf.float32), gray, fold_key(key, 5)
    )
    patches = None if pool is None else pool.get("noise")
    if patches is not None and o["pool"] > 0:
        noise = tf.where(_per_image(draw_coin(key, 6, n, o["pool"])), _pool_noise(x, patches, key), noise)
    noise = noise * _per_image(tf.cast(draw_coin(key, 7, n, o["prob"]), tf.float32))
    return tf.clip_by_value(x + noise, 0.0, 1.0)


# ----------------------------------------------------------------- jpeg


def jpeg(images: TensorLike, quality: TensorLike) -> tf.Tensor:
    """Each image JPEG-encoded at its quality and decoded.

    Args:
        images: float NHWC batch (clipped to [0, 1]).
        quality: ``[N]`` int qualities 1..100.

    Returns:
        float32 batch in [0, 1].
    """
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
    q = tf.cast(tf.floor(draw_uniform(key, 0, n, lo, hi + 1.0 - 1e-3)), tf.int32)  # integers lo..hi
    out = jpeg(x, tf.clip_by_value(q, int(lo), int(hi)))
    return tf.where(_per_image(draw_coin(key, 1, n, o["prob"])), out, x)


def quantize(images: TensorLike) -> tf.Tensor:
    """Clipped to [0, 1] and rounded to 8 bits (what an image file holds), as float."""
    return tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0) / 255.0


OP_FUNCTIONS = {"blur": _blur_op, "down": _down_op, "noise": _noise_op, "jpeg": _jpeg_op}
