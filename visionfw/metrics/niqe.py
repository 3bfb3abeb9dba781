"""NIQE, the no-reference "Naturalness Image Quality Evaluator" (Mittal, Soundararajan, Bovik 2013).

The features follow the authors' MATLAB release (``computequality.m``, ``estimatemodelparam.m``,
``computefeature.m``, ``estimateggdparam.m``, ``estimateaggdparam.m``):

* the image is taken as uint8 (float [0, 1] input is quantised, like ``imread`` output) and
  turned grey with MATLAB ``rgb2gray`` (0.298936 R + 0.587043 G + 0.114021 B, rounded to uint8);
  ``grey="y"`` uses the BT.601 Y of ``rgb2ycbcr`` instead (what BasicSR's NIQE does) -- the
  protocol string says which;
* cropped to whole 96x96 patches; MSCN coefficients ``(I - mu) / (sigma + 1)`` on the 0-255
  scale, mu and sigma from a 7x7 Gaussian window (sigma 7/6) with replicate padding;
* per patch and scale, 18 features: the GGD fit (shape, variance) of the MSCN coefficients and
  the AGGD fit (shape, mean, left variance, right variance) of their products with the
  horizontal, vertical and two diagonal neighbours (``circshift`` within the patch);
* two scales, the second on MATLAB ``imresize(I, 0.5)`` (bicubic, antialiased) with 48x48
  patches: 36 features per patch;
* the test image's patches are fitted with a multivariate Gaussian (mean, covariance) and
  ``NIQE = sqrt((mu1 - mu2)^T pinv((S1 + S2) / 2) (mu1 - mu2))`` against the pristine model.

The pristine model (fitted on the patches sharper than 0.75 of each image's sharpest patch,
sharpness = mean local sigma) is NOT the authors' ``modelparameters.mat``, which is not
available here.  The default, ``visionfw/data/niqe_pristine_t91_bsd200.npz``, was computed by
``python -m visionfw.metrics.niqe --fit`` from the HR images of T91 and BSD200, so **its values are not
comparable to the NIQE numbers in papers** (every protocol string says so).  Pass the authors'
file (``load_pristine_model("modelparameters.mat")``) to get comparable numbers.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gamma as _gamma

from visionfw.errors import DataError, WeightsError

__all__ = [
    "NIQEModel",
    "niqe",
    "evaluate_niqe",
    "niqe_protocol",
    "niqe_features",
    "fit_pristine_model",
    "load_pristine_model",
    "default_model_path",
    "mscn",
    "ggd_fit",
    "aggd_fit",
    "rgb2gray",
    "PATCH",
    "SHARPNESS_THRESHOLD",
]

PATCH = 96
SHARPNESS_THRESHOLD = 0.75
_SCALES = 2
_GREYS = ("rgb2gray", "y")
_GAM = np.arange(200, 10001) / 1000.0  # MATLAB 0.2:0.001:10, built from integers to avoid drift
# E[x^2] / E|x|^2 of a GGD of shape g (estimateggdparam.m) and its inverse-like AGGD ratio
_R_GGD = _gamma(1 / _GAM) * _gamma(3 / _GAM) / _gamma(2 / _GAM) ** 2
_R_AGGD = _gamma(2 / _GAM) ** 2 / (_gamma(1 / _GAM) * _gamma(3 / _GAM))
# neighbour shifts of computefeature.m, as circshift (rows, cols)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_DEFAULT_FILE = "niqe_pristine_t91_bsd200.npz"


# --------------------------------------------------------------------------- statistics


def ggd_fit(x: ArrayLike) -> tuple[float, float]:
    """Shape and variance of a zero-mean generalised Gaussian (``estimateggdparam.m``).

    Moment matching of ``E[x^2] / E|x|^2`` on MATLAB's grid 0.2:0.001:10 (the nearest grid
    point, first on ties).

    Args:
      x: samples (any shape).

    Returns:
      ``(shape, variance)``; Gaussian -> 2, Laplacian -> 1.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    var = np.mean(x * x)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = var / np.mean(np.abs(x)) ** 2
    return float(_nearest(_R_GGD, rho, squared=False)), float(var)


def aggd_fit(x: ArrayLike) -> tuple[float, float, float, float]:
    """Shape, mean, left and right variance of an asymmetric GGD (``estimateaggdparam.m`` and
    the mean of ``computefeature.m``).

    Args:
      x: samples (any shape).

    Returns:
      ``(shape, mean, left_var, right_var)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        left = math.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else math.nan
        right = math.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else math.nan
        g = left / right
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x * x)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _nearest(_R_AGGD, rnorm, squared=True)
    mean = (right - left) * (_gamma(2 / alpha) / _gamma(1 / alpha)) * math.sqrt(_gamma(1 / alpha) / _gamma(3 / alpha))
    return float(alpha), float(mean), left * left, right * right


def _nearest(table, value, squared):
    """MATLAB ``[~, i] = min(abs(value - table))``: NaN input -> the first grid point, like MATLAB."""
    if not np.isfinite(value):
        return _GAM[0]
    d = (table - value) ** 2 if squared else np.abs(value - table)
    return _GAM[int(np.argmin(d))]


# --------------------------------------------------------------------------- image side


def rgb2gray(img: ArrayLike) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 RGB image.

    Args:
      img: HWC uint8 RGB (channels past the third are ignored).

    Returns:
      The HW uint8 grey image (rounded half away from zero).
    """
    img = np.asarray(img)
    w = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    return np.clip(np.floor(img[..., :3].astype(np.float64) @ w + 0.5), 0, 255).astype(np.uint8)


def _grey255(img, grey):
    """HW float64 0-255 grey image from HW/HWC uint8 or float [0, 1] input (quantised first)."""
    from visionfw.data.color import rgb_to_y
    from visionfw.metrics.psnr_ssim import as_hwc, quantize

    if grey not in _GREYS:
        raise DataError(f"niqe: grey={grey!r} is unknown; use one of {_GREYS}.")
    q = as_hwc(quantize(as_hwc(img)))
    if q.shape[-1] == 1:
        return q[..., 0].astype(np.float64)
    g = rgb2gray(q) if grey == "rgb2gray" else rgb_to_y(q)[..., 0]
    return g.astype(np.float64)


def _gauss_window():
    # fspecial('gaussian', 7, 7/6) normalised: separable as the outer product of this vector
    x = np.arange(7, dtype=np.float64) - 3.0
    g = np.exp(-(x * x) / (2.0 * (7.0 / 6.0) ** 2))
    return g / g.sum()


def _filter_replicate(img, g):
    """imfilter(img, outer(g, g), 'replicate') ('same' size, correlation)."""
    r = g.size // 2
    padded = np.pad(img, r, mode="edge")
    rows = np.lib.stride_tricks.sliding_window_view(padded, g.size, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, g.size, axis=1) @ g


def mscn(img255: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients and local sigma of a grey image.

    Args:
      img255: HW image with values in [0, 255].

    Returns:
      ``((I - mu) / (sigma + 1), sigma)``, both HW float64.
    """
    img = np.asarray(img255, dtype=np.float64)
    g = _gauss_window()
    mu = _filter_replicate(img, g)
    sigma = np.sqrt(np.abs(_filter_replicate(img * img, g) - mu * mu))
    return (img - mu) / (sigma + 1.0), sigma


def _patch_features(m):
    """The 18 features of computefeature.m for one patch of MSCN coefficients."""
    shape, var = ggd_fit(m)
    feats = [shape, var]
    for shift in _SHIFTS:
        feats += aggd_fit(m * np.roll(m, shift, axis=(0, 1)))
    return feats


def _blocks(arr, size):
    """Non-overlapping size x size blocks, in MATLAB blkproc's column-major order."""
    rows, cols = arr.shape[0] // size, arr.shape[1] // size
    return [arr[r * size : (r + 1) * size, c * size : (c + 1) * size] for c in range(cols) for r in range(rows)]


def niqe_features(img: ArrayLike, grey: str = "rgb2gray", crop_border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch NIQE features of one image.

    Args:
      img: HW/HWC, uint8 or float [0, 1] (quantised to uint8 first).
      grey: how RGB becomes grey: 'rgb2gray' (MATLAB's) or 'y' (BT.601 luma).
      crop_border: pixels dropped from each side first.

    Returns:
      ``(features, sharpness)``: (n_patches, 36) float64 and (n_patches,) mean local sigma of each
      first-scale patch.

    Raises:
      DataError: the image holds no whole 96x96 patch, or ``grey`` is unknown.
    """
    from visionfw.data.imresize import imresize_numpy

    im = _grey255(img, grey)
    if crop_border:
        im = im[crop_border:-crop_border, crop_border:-crop_border]
    rows, cols = im.shape[0] // PATCH, im.shape[1] // PATCH
    if rows == 0 or cols == 0:
        raise DataError(
            f"niqe: image of {im.shape[0]}x{im.shape[1]} (after cropping) is smaller than one {PATCH}x{PATCH} patch."
        )
    im = im[: rows * PATCH, : cols * PATCH]
    per_scale, sharpness = [], np.empty(0)
    for scale in range(1, _SCALES + 1):
        m, sigma = mscn(im)
        size = PATCH // scale
        per_scale.append(np.array([_patch_features(b) for b in _blocks(m, size)]))
        if scale == 1:
            sharpness = np.array([b.mean() for b in _blocks(sigma, size)])
        im = imresize_numpy(im, 0.5)
    return np.concatenate(per_scale, axis=1), sharpness


def _mvg(features):
    """nanmean / nancov (rows with a NaN dropped from the covariance), MATLAB style."""
    mu = np.nanmean(features, axis=0)
    rows = features[~np.isnan(features).any(axis=1)]
    cov = np.cov(rows, rowvar=False) if len(rows) > 1 else np.zeros((features.shape[1],) * 2)
    return mu, cov


# --------------------------------------------------------------------------- pristine model


@dataclass
class NIQEModel:
    """A pristine multivariate Gaussian: ``mu`` (36,), ``cov`` (36, 36) and where it came from."""

    mu: np.ndarray
    cov: np.ndarray
    source: str
    grey: str = "rgb2gray"
    comparable: bool = False  # True only for the authors' modelparameters.mat
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.mu = np.asarray(self.mu, dtype=np.float64).ravel()
        self.cov = np.asarray(self.cov, dtype=np.float64)
        n = 2 * 18
        if self.mu.shape != (n,) or self.cov.shape != (n, n):
            raise WeightsError(
                f"NIQE model {self.source}: mu has shape {self.mu.shape} and cov {self.cov.shape}; "
                f"expected ({n},) and ({n}, {n})."
            )

    def save(self, path: str | Path) -> Path:
        """Writes the model as a small .npz (mu, cov, and text metadata).

        Args:
          path: the .npz file to write.

        Returns:
          ``path`` as a Path.
        """
        np.savez(
            path,
            mu=self.mu,
            cov=self.cov,
            source=np.array(self.source),
            grey=np.array(self.grey),
            **{f"info_{k}": np.array(v) for k, v in self.info.items()},  # type: ignore[arg-type]
        )
        return Path(path)


def fit_pristine_model(
    images: Iterable[Any],
    grey: str = "rgb2gray",
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
    source: str | None = None,
) -> NIQEModel:
    """The pristine MVG of ``estimatemodelparam.m`` from pristine images.

    Args:
      images: arrays (HW/HWC, uint8 or float [0, 1]) or image paths; those with no whole 96x96 patch
        are skipped.
      grey: how RGB becomes grey ('rgb2gray' or 'y').
      sharpness_threshold: from each image only the patches with sharpness > this x its sharpest
        patch's are kept.
      source: where the model comes from, for its protocol line; default says how many images.

    Returns:
      The :class:`NIQEModel`.

    Raises:
      DataError: no image held a whole patch.
    """
    from visionfw.data.image_io import read_image_uint8

    kept, used, skipped = [], 0, 0
    for item in images:
        img = read_image_uint8(item) if isinstance(item, (str, Path)) else item
        try:
            feats, sharp = niqe_features(img, grey)
        except DataError:
            skipped += 1
            continue
        kept.append(feats[sharp > sharpness_threshold * sharp.max()])
        used += 1
    if not kept:
        raise DataError("fit_pristine_model: no image held a whole 96x96 patch; give larger pristine images.")
    features = np.concatenate(kept)
    mu, cov = _mvg(features)
    info = dict(images=used, skipped=skipped, patches=len(features), sharpness_threshold=sharpness_threshold)
    return NIQEModel(mu, cov, source or f"fitted on {used} images", grey=grey, info=info)


def default_model_path() -> Path:
    """The shipped pristine model (T91 + BSD200 HR images), a file inside the package.

    Returns:
      Its path.
    """
    return Path(__file__).resolve().parents[1] / "data" / _DEFAULT_FILE


def load_pristine_model(path: str | Path | None = None) -> NIQEModel:
    """A pristine NIQE model from a file.

    Args:
      path: None -> the shipped T91+BSD200 model; ``.npz`` -> one written by :meth:`NIQEModel.save`;
        ``.mat`` -> the authors' ``modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``).

    Returns:
      The :class:`NIQEModel`.

    Raises:
      WeightsError: the file is missing or holds no model.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        extra = (
            " The package data is missing from this install; reinstall visionfw or refit it with "
            "`python -m visionfw.metrics.niqe --fit DIR ... --out FILE`."
            if path == default_model_path()
            else ""
        )
        raise WeightsError(f"NIQE pristine model {path} not found.{extra}")
    if path.suffix.lower() == ".mat":
        return _load_mat(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            info = {k[5:]: data[k].item() for k in data.files if k.startswith("info_")}
            return NIQEModel(data["mu"], data["cov"], str(data["source"]), grey=str(data["grey"]), info=info)
    except (KeyError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: not a NIQE model .npz (needs mu, cov, source, grey): {exc}") from exc


def _load_mat(path):
    from visionfw.weights.formats import read_mat

    mat = read_mat(path)
    missing = [k for k in ("mu_prisparam", "cov_prisparam") if k not in mat]
    if missing:
        raise WeightsError(
            f"{path}: variables {missing} missing; expected the NIQE authors' modelparameters.mat "
            "(mu_prisparam 1x36, cov_prisparam 36x36)."
        )
    return NIQEModel(
        mat["mu_prisparam"],
        mat["cov_prisparam"],
        f"authors' modelparameters.mat ({path.name})",
        grey="rgb2gray",
        comparable=True,
    )


# --------------------------------------------------------------------------- the metric


def niqe(
    img: ArrayLike, model: NIQEModel | str | Path | None = None, grey: str | None = None, crop_border: int = 0
) -> float:
    """NIQE of one image (lower = more natural).

    Args:
      img: HW/HWC, uint8 or float [0, 1], RGB or grey, at least 96x96 after ``crop_border``.
      model: a :class:`NIQEModel`, a path for :func:`load_pristine_model`, or None (the shipped
        T91+BSD200 model: values not comparable to papers').
      grey: 'rgb2gray' or 'y'; default the model's.
      crop_border: pixels dropped from each side first.

    Returns:
      The NIQE value.
    """
    model = model if isinstance(model, NIQEModel) else load_pristine_model(model)
    feats, _ = niqe_features(img, grey or model.grey, crop_border)
    mu, cov = _mvg(feats)
    d = model.mu - mu
    return float(np.sqrt(d @ np.linalg.pinv((model.cov + cov) / 2.0) @ d))


def niqe_protocol(model: NIQEModel, grey: str | None = None, crop_border: int = 0) -> str:
    """One line stating how a NIQE value was measured.

    Args:
      model: the pristine model used.
      grey: the grey conversion used; default the model's.
      crop_border: the pixels dropped from each side.

    Returns:
      The line, saying whether the values compare to published ones.
    """
    grey = grey or model.grey
    how = "MATLAB rgb2gray (uint8)" if grey == "rgb2gray" else "Y (BT.601, MATLAB rgb2ycbcr)"
    note = (
        "comparable to published NIQE"
        if model.comparable
        else "NOT comparable to published NIQE values (not the authors' modelparameters.mat)"
    )
    return (
        f"NIQE (Mittal et al. 2013, authors' MATLAB features): uint8 in, {how}, shave {int(crop_border)} px, "
        f"96x96 patches, 2 scales; pristine model: {model.source}; {note}"
    )


def evaluate_niqe(
    img: ArrayLike, model: NIQEModel | str | Path | None = None, grey: str | None = None, crop_border: int = 0
) -> dict[str, Any]:
    """NIQE of one image with its protocol line.

    Args:
      img: as for :func:`niqe`.
      model: as for :func:`niqe`.
      grey: as for :func:`niqe`.
      crop_border: as for :func:`niqe`.

    Returns:
      ``dict(niqe=float, protocol=description)``.
    """
    model = model if isinstance(model, NIQEModel) else load_pristine_model(model)
    return dict(niqe=niqe(img, model, grey, crop_border), protocol=niqe_protocol(model, grey, crop_border))


# --------------------------------------------------------------------------- command line


def _image_files(folders):
    from visionfw.data.image_io import list_images

    files = []
    for folder in folders:
        files += list_images(folder)
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m visionfw.metrics.niqe", description="Score images with NIQE, or fit a pristine NIQE model."
    )
    parser.add_argument("paths", nargs="*", help="images to score (or, with --fit, folders of pristine images)")
    parser.add_argument("--fit", action="store_true", help="fit a pristine model from the folders given")
    parser.add_argument("--out", default=str(default_model_path()), help="where --fit writes the model (.npz)")
    parser.add_argument("--name", default=None, help="source description stored in the fitted model")
    parser.add_argument("--model", default=None, help="pristine model to score with (.npz or modelparameters.mat)")
    parser.add_argument(
        "--grey",
        default=None,
        choices=_GREYS,
        help="greyscale conversion (fit: default rgb2gray; scoring: default the model's)",
    )
    args = parser.parse_args(argv)
    if args.fit:
        files = _image_files(args.paths)
        name = args.name or "HR images of " + " + ".join(Path(p).name for p in args.paths)
        model = fit_pristine_model(files, grey=args.grey or "rgb2gray", source=name)
        model.save(args.out)
        print(f"wrote {args.out}: {model.info}")
        return 0
    model = load_pristine_model(args.model)
    for path in args.paths:
        from visionfw.data.image_io import read_image_uint8

        print(f"{path}\t{niqe(read_image_uint8(path), model, args.grey):.4f}")
    print(niqe_protocol(model, args.grey))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
