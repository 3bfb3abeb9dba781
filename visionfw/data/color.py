"""MATLAB ``rgb2ycbcr`` / ``ycbcr2rgb`` (ITU-R BT.601, studio swing).

SR papers report PSNR on the Y channel of MATLAB's ``rgb2ycbcr``.  For RGB in [0, 1]:

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255        (in [16/255, 235/255])
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255

Functions take numpy arrays or tf tensors shaped HWC or NHWC (channels last) and
return the same kind.  Float input in [0, 1] gives float output of the same dtype (no
clipping).  uint8 input behaves like MATLAB on uint8: computed in float64 on the
[0, 255] scale, rounded half away from zero and clipped, uint8 out (so white
``[255, 255, 255]`` -> ``[235, 128, 128]``).

A single-channel image is grey: its Y is the grey value itself (:func:`to_y`), which is
what the SR literature does for Set14 ``bridge.png``; going through RGB first would give
``16/255 + 219/255 * grey`` instead.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from visionfw.data.types import ImageLike
from visionfw.errors import DataError

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y", "to_y", "RGB_TO_YCBCR_MATRIX", "YCBCR_OFFSET"]

# MATLAB's origT and origOffset, on the [0, 255] scale
RGB_TO_YCBCR_MATRIX = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
_YCBCR_TO_RGB_MATRIX = np.linalg.inv(RGB_TO_YCBCR_MATRIX)


def _is_tf(x):
    return isinstance(x, (tf.Tensor, tf.Variable))


def _check_channels(img, want, fn):
    channels = img.shape[-1]
    if len(img.shape) not in (3, 4) or channels != want:
        raise DataError(
            f"{fn}: expected an HWC or NHWC image with {want} channels, got shape "
            f"{tuple(img.shape)}; images are channels-last."
        )


def _affine(img, matrix, offset):
    """out_255 = matrix @ in_255 + offset, with pixel values on the [0, 255] scale.

    Float inputs are taken as [0, 1] and returned on [0, 1]; uint8 inputs as [0, 255],
    returned rounded (half away from zero) and clipped, as uint8.
    """
    if _is_tf(img):
        dtype = img.dtype
        integer = dtype == tf.uint8
        if not integer and not dtype.is_floating:
            raise DataError(f"colour conversion: dtype {dtype.name} unsupported; use float or uint8.")
        compute = tf.float64 if integer or dtype == tf.float64 else tf.float32
        x = tf.cast(img, compute) * (1.0 if integer else 255.0)
        y = tf.tensordot(x, tf.constant(matrix.T, dtype=compute), axes=[[-1], [0]])
        y = y + tf.constant(offset, compute)
        if integer:
            return tf.cast(tf.clip_by_value(tf.floor(y + 0.5), 0.0, 255.0), tf.uint8)
        return tf.cast(y / 255.0, dtype)
    img = np.asarray(img)
    integer = img.dtype == np.uint8
    if not integer and not np.issubdtype(img.dtype, np.floating):
        raise DataError(f"colour conversion: dtype {img.dtype} unsupported; use float or uint8.")
    x = img.astype(np.float64) * (1.0 if integer else 255.0)
    y = x @ matrix.T + offset
    if integer:
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    return (y / 255.0).astype(img.dtype)


# on the [0, 255] scale: ycbcr = M/255 @ rgb + offset;  rgb = 255 M^-1 @ (ycbcr - offset)
_FORWARD = (RGB_TO_YCBCR_MATRIX / 255.0, YCBCR_OFFSET)
_INVERSE = (_YCBCR_TO_RGB_MATRIX * 255.0, -(_YCBCR_TO_RGB_MATRIX * 255.0) @ YCBCR_OFFSET)


def rgb_to_ycbcr(img: ImageLike) -> ImageLike:
    """MATLAB ``rgb2ycbcr``.

    Args:
        img: RGB, HWC or NHWC, float in [0, 1] or uint8; numpy array or tf tensor.

    Returns:
        YCbCr of the same kind (float: Y in [16, 235] / 255; uint8: rounded).
    """
    _check_channels(img, 3, "rgb_to_ycbcr")
    return _affine(img, *_FORWARD)


def ycbcr_to_rgb(img: ImageLike) -> ImageLike:
    """MATLAB ``ycbcr2rgb``: the exact inverse of :func:`rgb_to_ycbcr` (float: no clipping).

    Args:
        img: YCbCr, HWC or NHWC, float or uint8; numpy array or tf tensor.

    Returns:
        RGB of the same kind.
    """
    _check_channels(img, 3, "ycbcr_to_rgb")
    return _affine(img, *_INVERSE)


def rgb_to_y(img: ImageLike) -> ImageLike:
    """Y of MATLAB ``rgb2ycbcr`` with the channel axis kept (shape ``[..., 1]``).

    Args:
        img: RGB, HWC or NHWC; numpy array or tf tensor.

    Returns:
        Float [0, 1] in -> float [0, 1] out (not rounded); uint8 in -> rounded uint8 out.
    """
    _check_channels(img, 3, "rgb_to_y")
    return _affine(img, _FORWARD[0][:1], _FORWARD[1][:1])


def to_y(img: ImageLike) -> ImageLike:
    """Luma for SR evaluation: 1 channel -> the image itself (grey), 3 -> :func:`rgb_to_y`.

    Args:
        img: HWC or NHWC with 1 or 3 channels.

    Returns:
        The 1-channel luma, of the input's kind.

    Raises:
        DataError: another rank or channel count.
    """
    if len(img.shape) not in (3, 4):
        raise DataError(f"to_y: expected an HWC or NHWC image, got shape {tuple(img.shape)}.")
    channels = img.shape[-1]
    if channels == 1:
        return img
    if channels == 3:
        return rgb_to_y(img)
    raise DataError(
        f"to_y: image has {channels} channels; expected 1 (grey) or 3 (RGB). "
        "Drop the alpha channel first (visionfw.data.image_io.read_image does)."
    )
