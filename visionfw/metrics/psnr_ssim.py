"""PSNR / SSIM exactly as the super-resolution literature reports them.

Two evaluation protocols are in use, and they differ by up to ~0.01 dB on Set5:

``"srcnn"`` (SRCNN, VDSR, FSRCNN MATLAB test code)
    The HR image is converted to Y with MATLAB ``rgb2ycbcr`` on the uint8 RGB image, so Y
    is rounded to uint8, then scaled to [0, 1] (a grey image's Y is the grey value
    itself).  Bicubic down- and up-scaling (MATLAB ``imresize``) run in *float* on that Y
    -- the LR image is not quantised -- and the network / bicubic output is rounded to
    uint8 before PSNR.  Reproduces the published bicubic Set5 33.66/30.39/28.42 and
    Set14 30.24/27.55/26.00 (x2/x3/x4) within 0.01 dB (33.661/30.392/28.421,
    30.232/27.541/26.000).  Downscaling the uint8 Y in uint8 (MATLAB rounds between
    passes) instead gives ~0.01-0.03 dB less; leaving the output unrounded gives more.

``"edsr"`` (EDSR, RCAN and most later PyTorch code)
    uint8 RGB in; the LR image is MATLAB ``imresize`` of the uint8 RGB HR (uint8, the
    usual ``LR_bicubic`` files); bicubic / model run on RGB; the output is quantised to
    uint8 RGB; PSNR on the float Y of the quantised result (not rounded to uint8).
    Bicubic Set5: 33.673/30.403/28.429.

Both shave ``scale`` pixels from every border before PSNR and SSIM, and average the
per-image float64 PSNR over a dataset.  SSIM is the Wang et al. ``ssim_index.m``: 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255 on [0, 255] values, 'valid'
filtering, mean of the SSIM map; 3-channel inputs average the per-channel SSIM.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from visionfw.data import image_io
from visionfw.data.color import rgb_to_y
from visionfw.data.imresize import imresize_numpy, modcrop
from visionfw.errors import DataError

__all__ = [
    "to_float01",
    "psnr",
    "ssim",
    "shave",
    "quantize",
    "protocol_y",
    "evaluate_pair",
    "protocol_description",
    "bicubic_baseline",
    "mean_metrics",
    "PROTOCOLS",
]

PROTOCOLS = ("srcnn", "edsr")
_CHANNELS = ("y", "rgb")


def to_float01(img: ArrayLike) -> np.ndarray:
    """An image as float64 in [0, 1] (:func:`visionfw.data.image_io.to_float01` in float64, the precision the
    protocols' decimals need).

    Args:
      img: uint8, uint16 or float array.

    Returns:
      The float64 array, same shape.
    """
    return image_io.to_float01(np.asarray(img), np.float64)


def _same_shape(a, b, fn):
    if a.shape != b.shape:
        raise DataError(
            f"{fn}: images differ in shape {a.shape} vs {b.shape}; crop or resize "
            "the SR output to the HR size (see visionfw.data.imresize.modcrop)."
        )


def psnr(a: ArrayLike, b: ArrayLike, max_val: float = 1.0) -> float:
    """PSNR in dB (float64).

    Args:
      a: an image, float in [0, ``max_val``] or uint8 (scaled to [0, 1] first).
      b: the other image, same shape.
      max_val: the peak value of float images.

    Returns:
      The PSNR in dB; ``inf`` if the images are equal.
    """
    a, b = to_float01(a), to_float01(b)
    _same_shape(a, b, "psnr")
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(max_val**2 / mse))


def _gaussian_1d(size=11, sigma=1.5):
    # fspecial('gaussian') is the outer product of this vector with itself (no value of
    # the 11x11, sigma 1.5 window is small enough for fspecial to zero it)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img, g):
    """2-D 'valid' correlation with the separable window outer(g, g)."""
    k = g.size
    rows = np.lib.stride_tricks.sliding_window_view(img, k, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ g


def _box_downsample(img, f):
    """ssim.m's automatic downsampling: f x f mean (imfilter 'symmetric', 'same'), keep every f-th."""
    centre = (f + 1) // 2  # MATLAB's kernel centre, 1-based
    before, after = centre - 1, f - centre
    padded = np.pad(img, ((before, after), (before, after)), mode="symmetric")
    win = np.lib.stride_tricks.sliding_window_view(padded, (f, f))
    return win.mean(axis=(-2, -1))[::f, ::f]


def _ssim_2d(a, b, downsample):
    if downsample:
        f = max(1, round(min(a.shape) / 256))
        if f > 1:
            a, b = _box_downsample(a, f), _box_downsample(b, f)
    if min(a.shape) < 11:
        raise DataError(
            f"ssim: image of size {a.shape} is smaller than the 11x11 window "
            "(after shaving the border); use larger images."
        )
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_1d()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a * mu_a
    var_b = _filter_valid(b * b, g) - mu_b * mu_b
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(a: ArrayLike, b: ArrayLike, max_val: float = 1.0, downsample: bool = False) -> float:
    """MATLAB-compatible SSIM (Wang et al. ``ssim_index.m``), float64.

    Float images in [0, ``max_val``] (uint8 ones are taken as [0, 255]) are scaled to [0, 255] and
    compared with L = 255.

    Args:
      a: an HW or HWC image.
      b: the other image, same shape.
      max_val: the peak value of float images.
      downsample: add the automatic ``max(1, round(min(H,W)/256))`` box downsampling of the later
        ``ssim.m`` (2009); the SR literature does not use it.

    Returns:
      The SSIM; with 3 channels the mean of the per-channel SSIM.
    """
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    a255 = a_arr.astype(np.float64) if a_arr.dtype == np.uint8 else to_float01(a_arr) * (255.0 / max_val)
    b255 = b_arr.astype(np.float64) if b_arr.dtype == np.uint8 else to_float01(b_arr) * (255.0 / max_val)
    _same_shape(a255, b255, "ssim")
    if a255.ndim == 2:
        return _ssim_2d(a255, b255, downsample)
    if a255.ndim != 3:
        raise DataError(f"ssim: images must be HW or HWC, got shape {a255.shape}.")
    return float(np.mean([_ssim_2d(a255[..., c], b255[..., c], downsample) for c in range(a255.shape[-1])]))


def shave(img: Any, border: int) -> Any:
    """Drops ``border`` pixels from each side of H and W.

    Args:
      img: an HW, HWC or NHWC image (numpy or tf).
      border: pixels to drop per side, >= 0.

    Returns:
      The cropped image, same kind.
    """
    border = int(border)
    if border < 0:
        raise DataError(f"shave: border={border} must be >= 0.")
    if border == 0:
        return img
    rank = len(img.shape)
    if rank in (2, 3):
        return img[border:-border, border:-border]
    if rank == 4:
        return img[:, border:-border, border:-border]
    raise DataError(f"shave: image of shape {tuple(img.shape)} must be HW, HWC or NHWC.")


def quantize(img: ArrayLike) -> np.ndarray:
    """A [0, 1] float image rounded to uint8 as MATLAB does: ``floor(x * 255 + 0.5)``, clipped to [0, 255].

    :func:`visionfw.data.image_io.to_uint8` under the metrics' name.

    Args:
      img: float in [0, 1], or uint8 (returned as it is).

    Returns:
      The uint8 image.
    """
    return image_io.to_uint8(np.asarray(img))


def _check_protocol(protocol, channel="y"):
    if protocol not in PROTOCOLS:
        raise DataError(f"protocol={protocol!r} is unknown; use one of {PROTOCOLS}.")
    if channel not in _CHANNELS:
        raise DataError(f"channel={channel!r} is unknown; use one of {_CHANNELS}.")


def as_hwc(img: ArrayLike) -> np.ndarray:
    """One image as an HWC array (HW grey gets a channel axis); DataError unless 1 or 3 channels."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise DataError(f"expected an HW or HWC image with 1 or 3 channels, got shape {img.shape}.")
    return img


def protocol_y(img: ArrayLike, protocol: str) -> np.ndarray:
    """Y channel the way ``protocol`` computes it.

    The image is first quantised to uint8 (uint8 images stay as they are).  1 channel:
    the grey value itself.  3 channels: ``"srcnn"`` -> MATLAB ``rgb2ycbcr`` on uint8, so Y
    is rounded to uint8, then /255; ``"edsr"`` -> float Y of the uint8 RGB, not rounded.

    Args:
      img: HW/HWC, float in [0, 1] or uint8, 1 or 3 channels.
      protocol: "srcnn" or "edsr".

    Returns:
      (H, W, 1) float64 in [0, 1].
    """
    _check_protocol(protocol)
    q = as_hwc(quantize(as_hwc(img)))
    if q.shape[-1] == 1:
        return to_float01(q)
    if protocol == "srcnn":
        return to_float01(rgb_to_y(q))
    return rgb_to_y(to_float01(q))


def protocol_description(protocol: str, scale: int, channel: str = "y") -> str:
    """One line stating how a number was measured (every reported metric carries one).

    Args:
      protocol: "srcnn" or "edsr".
      scale: the SR factor (the border shaved).
      channel: "y" or "rgb".

    Returns:
      The line.
    """
    _check_protocol(protocol, channel)
    space = "Y (BT.601, MATLAB rgb2ycbcr)" if channel == "y" else "RGB"
    detail = (
        "uint8 Y in, float bicubic, output rounded to uint8"
        if protocol == "srcnn"
        else "uint8 RGB in, output quantised to uint8 RGB, float Y"
    )
    return (
        f"{space}, shave {int(scale)} px, MATLAB bicubic, {protocol} protocol "
        f"({detail}); SSIM: Wang et al. 11x11 Gaussian, L=255"
    )


def evaluate_pair(
    sr: ArrayLike, hr: ArrayLike, scale: int, protocol: str = "srcnn", channel: str = "y"
) -> dict[str, Any]:
    """PSNR/SSIM of one SR result against its HR image under ``protocol``.

    Args:
      sr: the model (or bicubic) output, HW/HWC, float in [0, 1] or uint8; it is
        quantised to uint8 first (both protocols do).  Under ``channel="y"`` it may be
        1-channel Y (what SRCNN-style models output) or 3-channel RGB.
      hr: ground truth, HW/HWC uint8 (or float [0, 1]), RGB or grey, same H and W as sr.
      scale: SR factor; also the border shaved before measuring.
      protocol: "srcnn" or "edsr" (see the module docstring).
      channel: "y" (luma, as in the papers) or "rgb" (all channels; protocol then only
        affects the description).

    Returns:
      ``dict(psnr=float dB, ssim=float, protocol=description string)``.

    Raises:
      DataError: unknown protocol or channel, or images that differ in size or channels.
    """
    _check_protocol(protocol, channel)
    sr_img, hr_img = as_hwc(sr), as_hwc(hr)
    if sr_img.shape[:2] != hr_img.shape[:2]:
        raise DataError(
            f"evaluate_pair: SR size {sr_img.shape[:2]} differs from HR size "
            f"{hr_img.shape[:2]}; mod-crop the HR image (modcrop(hr, {scale})) first."
        )
    if channel == "y":
        sr_eval, hr_eval = protocol_y(sr_img, protocol), protocol_y(hr_img, protocol)
    else:
        if sr_img.shape[-1] != hr_img.shape[-1]:
            raise DataError(
                f"evaluate_pair: channel='rgb' needs the same channels, got {sr_img.shape[-1]} (SR) vs "
                f"{hr_img.shape[-1]} (HR)."
            )
        sr_eval = to_float01(quantize(sr_img))
        hr_eval = to_float01(quantize(hr_img))
    sr_eval, hr_eval = shave(sr_eval, scale), shave(hr_eval, scale)
    return dict(
        psnr=psnr(sr_eval, hr_eval),
        ssim=ssim(sr_eval, hr_eval),
        protocol=protocol_description(protocol, scale, channel),
    )


def bicubic_baseline(hr_uint8: ArrayLike, scale: int, protocol: str = "srcnn", channel: str = "y") -> dict[str, Any]:
    """PSNR/SSIM of MATLAB-bicubic ``up(down(hr))`` for one image under ``protocol``.

    The HR image is mod-cropped to a multiple of ``scale``.  ``"srcnn"``: uint8 Y / 255 is
    down- and up-scaled in float64 (no rounding of the LR image), then the output is
    rounded to uint8.  ``"edsr"``: the uint8 RGB image is down- and up-scaled as uint8
    (MATLAB rounds after every pass), Y taken in float afterwards.

    Args:
      hr_uint8: the HR image, HW/HWC uint8.
      scale: the SR factor (also the border shaved).
      protocol: "srcnn" or "edsr".
      channel: "y" or "rgb".

    Returns:
      :func:`evaluate_pair`'s dict for the bicubic output.
    """
    _check_protocol(protocol, channel)
    hr = modcrop(as_hwc(np.asarray(hr_uint8)), scale)
    if protocol == "srcnn" and channel == "y":
        y = protocol_y(hr, "srcnn")
        up = imresize_numpy(imresize_numpy(y, 1.0 / scale), float(scale))
    else:
        up = imresize_numpy(imresize_numpy(quantize(hr), 1.0 / scale), float(scale))
    return evaluate_pair(up, hr, scale, protocol, channel)


def mean_metrics(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Dataset-level means of per-image :func:`evaluate_pair` results (PSNR averaged in dB, float64).

    Args:
      results: the per-image dicts; every one must carry the same protocol description.

    Returns:
      ``dict(psnr=..., ssim=..., count=N, protocol=...)``.

    Raises:
      DataError: no results, or results measured under different protocols.
    """
    results = list(results)
    if not results:
        raise DataError("mean_metrics: no results to average; the dataset was empty.")
    protocols = {r["protocol"] for r in results}
    if len(protocols) != 1:
        raise DataError(f"mean_metrics: results measured under different protocols {sorted(protocols)}.")
    return dict(
        psnr=float(np.mean(np.array([r["psnr"] for r in results], dtype=np.float64))),
        ssim=float(np.mean(np.array([r["ssim"] for r in results], dtype=np.float64))),
        count=len(results),
        protocol=protocols.pop(),
    )
