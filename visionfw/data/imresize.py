"""MATLAB-compatible bicubic resize (``imresize(img, scale_or_size, 'bicubic')``).

Super-resolution results are only comparable when the low-resolution inputs are made
the way the papers made them: with MATLAB's ``imresize``.  Its bicubic differs from
PIL/OpenCV/``tf.image.resize`` in three ways, all reproduced here:

* Keys cubic kernel with ``a = -0.5``; when downscaling (scale < 1) the kernel is
  stretched by ``1/scale`` (antialiasing), so it covers ``4/scale`` input pixels and is
  scaled by ``scale`` to keep unit area.
* Output pixel ``x`` (1-based) samples the input at ``u = x/scale + 0.5*(1 - 1/scale)``;
  the ``ceil(4/scale) + 2`` nearest input indices contribute, weights are normalised
  to sum 1 per output pixel, and indices that fall outside the image are mirrored
  (``[1..n, n..1]`` repeated: symmetric padding that repeats the edge pixel).
* The two dimensions are resized one after the other, the one with the smaller scale
  first (MATLAB's ``sort(scale)``, stable, so rows first on ties).  For uint8 input
  the intermediate image is rounded (half away from zero) and clipped to uint8 between
  the passes, and again at the end.

With a scalar ``scale`` the output size is ``ceil(scale * input_size)`` and ``scale``
itself (not ``out/in``) drives the kernel, as in MATLAB; with ``output_size`` the scale
of each dimension is ``out/in``.

Two implementations share these semantics:

* :func:`imresize` -- TensorFlow.  Each pass multiplies by a banded weight matrix,
  stored as (out, taps) indices + weights: one ``tf.gather`` per tap, accumulated in tap
  order (O(out * taps) work instead of O(out * in) for a dense matmul).  The band is
  built in numpy and cached when the sizes are static, and with TF ops from dynamic
  shapes otherwise (taps looped with ``tf.while_loop`` when their number is dynamic),
  so the function works inside ``tf.function`` and ``tf.data.Dataset.map`` on images
  of varying size.
* :func:`imresize_numpy` -- float64 numpy reference that gathers the contributing
  pixels like MATLAB's ``imresizemex`` does.

Both reproduce every pixel of MATLAB's uint8 ``imresize(HR, 1/s, 'bicubic')`` LR images
of Set5/Set14 (x2, x3, x4).
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np
import tensorflow as tf

from visionfw.data.types import ImageLike
from visionfw.errors import DataError

__all__ = ["imresize", "imresize_numpy", "modcrop", "cubic_kernel", "output_shape", "contributions", "pass_order"]

_KERNEL_WIDTH = 4.0  # support of the Keys cubic kernel, in input pixels


# --------------------------------------------------------------------------- common


def cubic_kernel(x: np.ndarray | float) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), numpy float64."""
    absx = np.abs(np.asarray(x, dtype=np.float64))
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * (
        (absx > 1) & (absx <= 2)
    )


def _check_scale(scale):
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise DataError(
            f"imresize: scale={scale!r} must be one positive number "
            "(e.g. 0.5 or 1/3); pass output_size=(h, w) for other shapes."
        )
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise DataError(f"imresize: scale={scale!r} must be a positive finite number.")
    return scale


def _check_size(output_size):
    if output_size is None or len(output_size) != 2:
        raise DataError(
            f"imresize: output_size={output_size!r} must be (height, width); "
            "use None for one of them to keep the aspect ratio."
        )
    out = []
    for v in output_size:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif int(v) != v or int(v) < 1:
            raise DataError(f"imresize: output_size={output_size!r} must hold positive integers.")
        else:
            out.append(int(v))
    if out == [None, None]:
        raise DataError(
            "imresize: output_size=(None, None) leaves the size undefined; give at least one of height and width."
        )
    return out


def output_shape(
    in_hw: tuple[int, int], scale: float | None = None, output_size: tuple[int | None, int | None] | None = None
) -> tuple[int, int, float, float]:
    """(out_h, out_w, scale_h, scale_w) for static input size ``in_hw``, MATLAB's rules."""
    if (scale is None) == (output_size is None):
        raise DataError("imresize: give exactly one of scale= and output_size=.")
    in_h, in_w = int(in_hw[0]), int(in_hw[1])
    if scale is not None:
        s = _check_scale(scale)
        return math.ceil(s * in_h), math.ceil(s * in_w), s, s
    out_h, out_w = _check_size(output_size)
    if out_h is None:  # MATLAB [NaN w]: keep the aspect ratio
        s = out_w / in_w
        return math.ceil(s * in_h), out_w, s, s
    if out_w is None:
        s = out_h / in_h
        return out_h, math.ceil(s * in_w), s, s
    return out_h, out_w, out_h / in_h, out_w / in_w


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: 0-based mirrored input indices and weights, (out, P)."""
    kernel_scale = min(scale, 1.0)  # antialiasing only when shrinking
    kernel_width = _KERNEL_WIDTH / kernel_scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    if scale < 1.0:
        weights = scale * cubic_kernel(scale * (u[:, None] - idx))
    else:
        weights = cubic_kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric padding: [1..n, n..1] repeated
    zero_based = np.mod(idx.astype(np.int64) - 1, 2 * in_len)
    zero_based = np.where(zero_based < in_len, zero_based, 2 * in_len - 1 - zero_based)
    keep = np.any(weights != 0, axis=0)  # MATLAB drops all-zero columns
    return zero_based[:, keep], weights[:, keep]


@functools.lru_cache(maxsize=256)
def _cached_contributions(in_len, out_len, scale):
    idx, w = contributions(in_len, out_len, scale)
    idx = idx.astype(np.int32)
    idx.setflags(write=False)
    w.setflags(write=False)
    return idx, w


def pass_order(scale_h: float, scale_w: float) -> tuple[int, int]:
    """Dimension order of MATLAB's stable ``sort(scale)``: 0 = rows, 1 = columns."""
    return (1, 0) if scale_w < scale_h else (0, 1)


def modcrop(image: ImageLike, scale: int) -> ImageLike:
    """Crop height and width down to multiples of ``scale`` (top-left corner kept).

    Args:
        image: numpy array or tf tensor shaped HW, HWC or NHWC.
        scale: positive integer.

    Returns:
        The cropped image (a slice of the input).
    """
    scale = int(scale)
    if scale < 1:
        raise DataError(f"modcrop: scale={scale} must be a positive integer.")
    rank = len(image.shape)
    if rank not in (2, 3, 4):
        raise DataError(f"modcrop: image of shape {tuple(image.shape)} must be HW, HWC or NHWC.")
    h_axis = 0 if rank in (2, 3) else 1
    if isinstance(image, np.ndarray):
        h, w = image.shape[h_axis], image.shape[h_axis + 1]
    else:
        shape = tf.shape(image)
        h, w = shape[h_axis], shape[h_axis + 1]
    h, w = h - h % scale, w - w % scale
    if rank == 4:
        return image[:, :h, :w]
    return image[:h, :w]


# --------------------------------------------------------------------------- numpy


def _round_clip(x, dtype):
    info = np.iinfo(dtype)
    # MATLAB rounds half away from zero; values below 0 are clipped anyway
    return np.clip(np.floor(x + 0.5), info.min, info.max)


# float64 values in one strip's temporaries (4 MB each): what bounds the memory of a pass
_STRIP_VALUES = 1 << 19


def _resize_axis_np(x, axis, in_len, out_len, scale, out_dtype):
    """One pass along ``axis``: ``out = sum_k w[:, k] * x[idx[:, k]]`` in float64.

    The taps are accumulated one after the other in tap order, which is the order numpy's
    ``sum`` over the tap axis of the whole gathered array used, so results are the same to
    the bit; the gathered pixels are converted to float64 a strip of output lines at a time,
    so the memory is the output plus a few MB whatever the image size.  An integer
    ``out_dtype`` gets MATLAB's rounding and clipping (exact: the values are integers).
    """
    idx, w = contributions(in_len, out_len, scale)
    moved = np.moveaxis(x, axis, 0)  # (in, ...), a view
    rest = moved.shape[1:]
    out = np.empty((out_len,) + rest, dtype=out_dtype)
    strip = max(1, _STRIP_VALUES // max(1, math.prod(rest)))
    integer = np.issubdtype(out_dtype, np.integer)
    for start in range(0, out_len, strip):
        stop = min(out_len, start + strip)
        weights = w[start:stop].reshape((stop - start, w.shape[1]) + (1,) * len(rest))
        acc = moved[idx[start:stop, 0]] * weights[:, 0]
        for k in range(1, w.shape[1]):
            acc += moved[idx[start:stop, k]] * weights[:, k]
        out[start:stop] = _round_clip(acc, out_dtype) if integer else acc
    return np.moveaxis(out, 0, axis)


def imresize_numpy(
    image: np.ndarray, scale: float | None = None, output_size: tuple[int | None, int | None] | None = None
) -> np.ndarray:
    """Pure numpy (float64) MATLAB ``imresize(image, scale_or_size, 'bicubic')``.

    Memory: the output and the intermediate image (in the input's integer dtype, float64
    for float input) plus a few MB of float64 strips; the input is never copied to float64.

    Args:
        image: HW, HWC or NHWC array.  uint8/uint16 in -> same dtype out (rounded half away
            from zero and clipped after each pass); float in -> same float dtype out, not clipped.
        scale: one positive number; the output size is ``ceil(scale * size)``.
        output_size: ``(height, width)`` instead of ``scale`` (either may be None).

    Returns:
        The resized array, of the input's rank and dtype.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3, 4):
        raise DataError(f"imresize_numpy: image of shape {image.shape} must be HW, HWC or NHWC.")
    h_axis = 1 if image.ndim == 4 else 0
    in_h, in_w = image.shape[h_axis], image.shape[h_axis + 1]
    out_h, out_w, s_h, s_w = output_shape((in_h, in_w), scale, output_size)
    integer = np.issubdtype(image.dtype, np.integer)
    if integer and image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"imresize_numpy: dtype {image.dtype} unsupported; use uint8, uint16 or float.")
    if not integer and not np.issubdtype(image.dtype, np.floating):
        raise DataError(f"imresize_numpy: dtype {image.dtype} unsupported; use uint8, uint16 or float.")
    # between the passes: the rounded integers (exact in the input dtype) or float64
    between = image.dtype if integer else np.float64
    sizes = {0: (in_h, out_h, s_h), 1: (in_w, out_w, s_w)}
    first, second = pass_order(s_h, s_w)
    x = _resize_axis_np(image, h_axis + first, *sizes[first], between)
    return _resize_axis_np(x, h_axis + second, *sizes[second], image.dtype)


# --------------------------------------------------------------------------- TensorFlow


def _cubic_tf(x):
    absx = tf.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    zero = tf.zeros_like(absx)
    near = tf.where(absx <= 1, 1.5 * absx3 - 2.5 * absx2 + 1.0, zero)
    far = tf.where((absx > 1) & (absx <= 2), -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0, zero)
    return near + far


def _contributions_tf(in_len, out_len, scale):
    """:func:`contributions` with TF ops from (possibly symbolic) scalars.

    Returns 0-based mirrored indices (out, P) int32 and float64 weights (out, P); P depends on
    ``scale`` and may be dynamic.  All-zero columns are kept (they add exact zeros).
    """
    in_len = tf.cast(in_len, tf.int64)
    out_len = tf.cast(out_len, tf.int64)
    scale = tf.cast(scale, tf.float64)
    kernel_scale = tf.minimum(scale, 1.0)
    kernel_width = _KERNEL_WIDTH / kernel_scale
    x = tf.range(1, out_len + 1, dtype=tf.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = tf.floor(u - kernel_width / 2.0)
    taps = tf.cast(tf.math.ceil(kernel_width), tf.int64) + 2
    idx = left[:, None] + tf.range(taps, dtype=tf.float64)[None, :]
    # kernel_scale == 1 when enlarging, so this is MATLAB's h(x) in both cases
    weights = kernel_scale * _cubic_tf(kernel_scale * (u[:, None] - idx))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    zero_based = tf.math.floormod(tf.cast(idx, tf.int64) - 1, 2 * in_len)
    zero_based = tf.where(zero_based < in_len, zero_based, 2 * in_len - 1 - zero_based)
    return tf.cast(zero_based, tf.int32), weights


def _resize_axis_tf(x, idx, weights, dim):
    """Banded resize of NHWC ``x`` along H (dim 0) or W (dim 1).

    ``out = sum_k weights[:, k] * x[idx[:, k]]``: one gather per kernel tap, accumulated in
    tap order like MATLAB's ``imresizemex`` (cheap: O(out * taps), not O(out * in)).
    """
    axis = dim + 1
    bcast = [1, -1, 1, 1] if dim == 0 else [1, 1, -1, 1]
    weights = tf.cast(weights, x.dtype)

    def term(k):
        return tf.gather(x, idx[:, k], axis=axis) * tf.reshape(weights[:, k], bcast)

    taps = weights.shape[1]
    if taps is not None:  # static number of taps: unrolled
        acc = term(0)
        for k in range(1, taps):
            acc = acc + term(k)
        return acc
    _, acc = tf.while_loop(
        lambda k, _: k < tf.shape(weights)[1], lambda k, a: (k + 1, a + term(k)), (tf.constant(1), term(0))
    )
    return acc


def _finish_pass(x, integer_max):
    if integer_max is None:
        return x
    return tf.clip_by_value(tf.floor(x + 0.5), 0.0, integer_max)


def imresize(
    images: ImageLike, scale: float | None = None, output_size: tuple[int | None, int | None] | None = None
) -> tf.Tensor:
    """MATLAB ``imresize(images, scale_or_size, 'bicubic')`` with TensorFlow ops.

    Works eagerly, in ``tf.function`` and in ``tf.data.Dataset.map`` with unknown image sizes.

    Args:
      images: tf.Tensor or numpy array, HWC or NHWC (HW also accepted).  uint8 in ->
        uint8 out, rounded half away from zero and clipped between the passes and at the
        end, exactly like MATLAB (computed in float64).  float32 in -> float32 out, neither
        rounded nor clipped (computed in float32); float64 -> float64.
      scale: one positive number (e.g. ``1/3``); output size is ``ceil(scale * size)``.
      output_size: ``(height, width)`` instead of ``scale``; either may be None to keep the
        aspect ratio.  Exactly one of ``scale``/``output_size`` must be given.

    Returns:
      A tf.Tensor of the input's rank and dtype.
    """
    if (scale is None) == (output_size is None):
        raise DataError("imresize: give exactly one of scale= and output_size=.")
    if scale is not None:
        scale = _check_scale(scale)
    else:
        output_size = _check_size(output_size)
    x = tf.convert_to_tensor(images)
    rank = x.shape.rank
    if rank not in (2, 3, 4):
        raise DataError(f"imresize: images of shape {x.shape} must be HW, HWC or NHWC.")
    in_dtype = x.dtype
    if in_dtype in (tf.uint8, tf.uint16):
        compute, integer_max = tf.float64, float(in_dtype.max)
    elif in_dtype in (tf.float16, tf.bfloat16, tf.float32):
        compute, integer_max = tf.float32, None
    elif in_dtype == tf.float64:
        compute, integer_max = tf.float64, None
    else:
        raise DataError(f"imresize: dtype {in_dtype.name} unsupported; use uint8, uint16 or float.")
    if rank == 2:
        x = x[None, :, :, None]
    elif rank == 3:
        x = x[None]
    x = tf.cast(x, compute)

    static_h, static_w = x.shape[1], x.shape[2]
    if static_h is not None and static_w is not None:
        out_h, out_w, s_h, s_w = output_shape((static_h, static_w), scale, output_size)
        bands = (_cached_contributions(static_h, out_h, s_h), _cached_contributions(static_w, out_w, s_w))
        first, second = pass_order(s_h, s_w)
        # eagerly, one graph call is ~2x cheaper than dispatching every per-tap op
        run = _two_passes_graph if tf.executing_eagerly() else _two_passes
        x = run(x, tuple(bands[first]), tuple(bands[second]), first, integer_max)
    else:
        x = _imresize_dynamic(x, scale, output_size, compute, integer_max)

    x = tf.cast(x, in_dtype)
    if rank == 2:
        return x[0, :, :, 0]
    if rank == 3:
        return x[0]
    return x


def _two_passes(x, band_a, band_b, first_dim, integer_max):
    """Resizes along ``first_dim`` with ``band_a`` (indices, weights), then along the other axis with ``band_b``."""
    x = _finish_pass(_resize_axis_tf(x, *band_a, first_dim), integer_max)
    return _finish_pass(_resize_axis_tf(x, *band_b, 1 - first_dim), integer_max)


# shapes are relaxed after the first retrace, so eager calls on new sizes reuse the graph
_two_passes_graph = tf.function(_two_passes, reduce_retracing=True)


def _imresize_dynamic(x, scale, output_size, compute, integer_max):
    shape = tf.shape(x)
    in_h, in_w = shape[1], shape[2]
    f_h, f_w = tf.cast(in_h, tf.float64), tf.cast(in_w, tf.float64)
    if scale is not None:
        s_h = s_w = tf.constant(scale, tf.float64)
        out_h = tf.cast(tf.math.ceil(scale * f_h), tf.int32)
        out_w = tf.cast(tf.math.ceil(scale * f_w), tf.int32)
    else:
        want_h, want_w = output_size
        if want_h is None:
            s_h = s_w = want_w / f_w
            out_h, out_w = tf.cast(tf.math.ceil(s_h * f_h), tf.int32), tf.constant(want_w)
        elif want_w is None:
            s_h = s_w = want_h / f_h
            out_h, out_w = tf.constant(want_h), tf.cast(tf.math.ceil(s_w * f_w), tf.int32)
        else:
            s_h, s_w = want_h / f_h, want_w / f_w
            out_h, out_w = tf.constant(want_h), tf.constant(want_w)
    band_h = _contributions_tf(in_h, out_h, s_h)
    band_w = _contributions_tf(in_w, out_w, s_w)

    def rows_first():
        y = _finish_pass(_resize_axis_tf(x, *band_h, 0), integer_max)
        return _finish_pass(_resize_axis_tf(y, *band_w, 1), integer_max)

    def cols_first():
        y = _finish_pass(_resize_axis_tf(x, *band_w, 1), integer_max)
        return _finish_pass(_resize_axis_tf(y, *band_h, 0), integer_max)

    if scale is not None:  # equal scales: rows first, like MATLAB's stable sort
        return rows_first()
    return tf.cond(s_w < s_h, cols_first, rows_first)
