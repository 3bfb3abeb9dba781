"""RealSR degradation pools (built offline, numpy): real noise patches and blur kernels, saved as ``.npz``."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from visionfw.data.image_io import to_float01
from visionfw.degradation.ops import LUMA_WEIGHTS, apply_kernels, make_kernels
from visionfw.errors import DataError


@dataclasses.dataclass
class DegradationPool:
    """RealSR pools: noise patches ``[M, p, p, C]`` (mean removed) and kernels ``[K, S, S]`` (sum 1)."""

    noise: np.ndarray | None = None
    kernels: np.ndarray | None = None


def _as_float_image(image):
    image = np.asarray(image)
    image = to_float01(image)
    return image[..., None] if image.ndim == 2 else image


def extract_noise_pool(
    images: Iterable[np.ndarray],
    patch: int = 32,
    var_threshold: float = 20.0,
    stride: int | None = None,
    max_patches: int | None = None,
) -> np.ndarray:
    """Noise patches of real images, each with its mean removed (RealSR).

    A ``patch`` x ``patch`` window (every ``stride`` pixels) is kept when the variance of every
    channel is below ``var_threshold``: a flat region, whose variation is mostly noise.  Grey
    images are repeated to 3 channels when the others are RGB.

    Args:
        images: HxW[xC] arrays, uint8 or float in [0, 1].
        patch: window side.
        var_threshold: in grey levels squared (8-bit scale; 20 is a std of about 4.5 levels).
        stride: window step (default ``patch``).
        max_patches: keep the lowest-variance ones.

    Returns:
        float32 ``[M, patch, patch, C]``.
    """
    stride = stride or patch
    images = [_as_float_image(im) for im in images]
    channels = max(im.shape[-1] for im in images) if images else 1
    kept, variances = [], []
    for im in images:
        im = np.repeat(im, channels, axis=-1) if im.shape[-1] != channels else im
        for y in range(0, im.shape[0] - patch + 1, stride):  # one row of windows at a time: bounded memory
            row = np.lib.stride_tricks.sliding_window_view(im[y : y + patch], (patch, patch), axis=(0, 1))
            win = row[0, ::stride].transpose(0, 2, 3, 1)  # [m, p, p, C]
            var = win.var(axis=(1, 2)).max(axis=-1) * 255.0**2
            flat = var < var_threshold
            kept.append(win[flat] - win[flat].mean(axis=(1, 2), keepdims=True))
            variances.append(var[flat])
    if not kept or not sum(len(k) for k in kept):
        return np.zeros((0, patch, patch, channels), np.float32)
    noise, var = np.concatenate(kept), np.concatenate(variances)
    if max_patches is not None and len(noise) > max_patches:
        noise = noise[np.argsort(var, kind="stable")[:max_patches]]
    return np.ascontiguousarray(noise, dtype=np.float32)


def _check_kernel(k, name):
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise DataError(
            f"kernel {name}: shape {k.shape} must be square with an odd size (e.g. 15x15) so it has a centre pixel."
        )
    if not np.all(np.isfinite(k)) or k.min() < 0 or k.sum() <= 0:
        raise DataError(
            f"kernel {name}: values must be finite and non-negative with a positive sum "
            "(a blur kernel); clip negatives before saving it."
        )
    return k / k.sum()


def load_kernel_pool(paths_or_dir: str | os.PathLike | Iterable[str | os.PathLike]) -> np.ndarray:
    """Kernels from ``.npy`` files, normalised to sum 1 and zero-padded (centred) to the largest size.

    Args:
        paths_or_dir: a folder of ``.npy`` kernels, one path, or a list of paths.  Each must
            be 2-D, square, odd-sized, finite and non-negative.

    Returns:
        float32 ``[K, S, S]``.

    Raises:
        DataError: naming the bad file.
    """
    if isinstance(paths_or_dir, (str, os.PathLike)) and Path(paths_or_dir).is_dir():
        paths = sorted(Path(paths_or_dir).glob("*.npy"))
        if not paths:
            raise DataError(
                f"kernel folder {os.fspath(paths_or_dir)!r} holds no .npy files; save kernels "
                "with numpy.save(name.npy, kernel)."
            )
    else:
        paths = [Path(paths_or_dir)] if isinstance(paths_or_dir, (str, os.PathLike)) else list(map(Path, paths_or_dir))
    if not paths:
        raise DataError("load_kernel_pool: no kernel files given; pass a folder of .npy kernels or a list of paths.")
    kernels = []
    for path in paths:
        try:
            k = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"kernel {os.fspath(path)!r}: cannot read it as .npy ({exc}).") from None
        kernels.append(_check_kernel(k, os.fspath(path)))
    size = max(k.shape[0] for k in kernels)
    padded = [np.pad(k, (size - k.shape[0]) // 2) for k in kernels]
    return np.stack(padded).astype(np.float32)


def _gradient_magnitude(y):
    gy, gx = np.gradient(y)
    return np.hypot(gx, gy)


def estimate_kernel(
    image: np.ndarray,
    size: int = 15,
    reblur: float = 1.0,
    edge_fraction: float = 0.02,
    sigma_range: tuple[float, float] = (0.2, 5.0),
) -> tuple[np.ndarray, float]:
    """An isotropic Gaussian kernel for the blur already in ``image``.

    Gradient-ratio re-blur estimate (Zhuo & Sim 2011, "Defocus map estimation from a single
    image"), not KernelGAN: an edge blurred by a Gaussian of std s has a gradient peak
    proportional to ``1 / s``; re-blurred by a known ``reblur`` std it becomes
    ``1 / sqrt(s^2 + reblur^2)``.  So with R the median ratio |grad image| / |grad re-blurred|
    over the strongest ``edge_fraction`` of the image's gradients (luma), ``s = reblur /
    sqrt(R^2 - 1)``, clipped to ``sigma_range``.  It assumes a Gaussian, isotropic, spatially
    uniform blur and sharp step edges in the scene; noise lowers the estimate.

    Args:
        image: HxW[xC], uint8 or float in [0, 1].
        size: kernel side.
        reblur: the known re-blur std.
        edge_fraction: share of the strongest gradients used.
        sigma_range: clip range of the estimate.

    Returns:
        ``(kernel [size, size], sigma)``.
    """
    image = _as_float_image(image)
    y = image[..., 0] if image.shape[-1] == 1 else image @ np.asarray(LUMA_WEIGHTS, np.float32)
    k = make_kernels(2 * int(math.ceil(4 * reblur)) + 1, reblur, kind="gaussian")
    blurred = apply_kernels(y[None, ..., None], k).numpy()[0, ..., 0]
    g, gb = _gradient_magnitude(y), _gradient_magnitude(blurred)
    border = k.shape[-1]  # reflect padding distorts the border
    g, gb = g[border:-border, border:-border], gb[border:-border, border:-border]
    edges = g >= np.quantile(g, 1.0 - edge_fraction)
    ratio = float(np.median(g[edges] / np.maximum(gb[edges], 1e-8)))
    sigma = reblur / math.sqrt(max(ratio**2 - 1.0, 1e-8))
    sigma = float(np.clip(sigma, *sigma_range))
    return make_kernels(size, sigma, kind="gaussian").numpy()[0], sigma


def save_pool(path: str | os.PathLike, pool: DegradationPool) -> Path:
    """Writes a :class:`DegradationPool` as ``.npz`` (keys ``noise``, ``kernels``; empty when absent).

    Args:
        path: the file (any suffix; parent folders are created).
        pool: the pool.

    Returns:
        ``path`` as a Path.
    """
    noise = pool.noise if pool.noise is not None else np.zeros((0, 1, 1, 1), np.float32)
    kernels = pool.kernels if pool.kernels is not None else np.zeros((0, 1, 1), np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: numpy would add .npz to other suffixes
        np.savez(fh, noise=np.asarray(noise, np.float32), kernels=np.asarray(kernels, np.float32))
    return path


def load_pool(path: str | os.PathLike) -> DegradationPool:
    """The :class:`DegradationPool` of a :func:`save_pool` file (kernels re-validated).

    Args:
        path: the ``.npz`` file.

    Returns:
        The pool.

    Raises:
        DataError: an unreadable file or wrong array shapes.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            noise, kernels = data["noise"], data["kernels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"degradation pool {os.fspath(path)!r}: cannot read it ({exc}); write it with "
            "`visionfw degradation-pool` or save_pool()."
        ) from None
    if noise.ndim != 4 or kernels.ndim != 3:
        raise DataError(
            f"degradation pool {os.fspath(path)!r}: noise must be [M,p,p,C] and kernels [K,S,S], "
            f"got {noise.shape} and {kernels.shape}."
        )
    kernels = (
        np.stack([_check_kernel(k, f"{os.fspath(path)}[{i}]") for i, k in enumerate(kernels)])
        if len(kernels)
        else kernels
    )
    return DegradationPool(
        noise=noise.astype(np.float32) if len(noise) else None,
        kernels=kernels.astype(np.float32) if len(kernels) else None,
    )
