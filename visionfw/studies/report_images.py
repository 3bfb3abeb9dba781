"""The images of the HTML reports: which crops to show, and the crops, thumbnails and numbers of one image.

* :func:`find_windows` / :func:`choose_crops`: pure functions that pick the crops worth looking
  at (where two models differ most, where the best model gains most over bicubic);
* :func:`image_entry`: one test image's HR, bicubic and model outputs, crops and numbers, the
  images embedded as base64 PNG (:func:`png_data_uri`);
* :func:`load_eval_entries`: those entries for every image of the evaluated sets, read from the
  SR images that :func:`visionfw.evaluate.evaluate_model` saved.

:mod:`visionfw.studies.report_html` lays them out on the page.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import ConfigError

__all__ = ["BASELINE", "find_windows", "choose_crops", "crop_psnr", "png_data_uri", "image_entry", "load_eval_entries"]

BASELINE = "bicubic"
_LUMA = np.array([65.481, 128.553, 24.966]) / 255.0  # MATLAB rgb2ycbcr's Y row (offset irrelevant to errors)


# --------------------------------------------------------------------------- crops (pure)


# The reports' uint8 <-> float conversions: these two functions are the only place they happen.


def _as_rgb_float(img):
    """HxWx3 float64 in [0, 1] from HW/HWC uint8 or float (grey replicated)."""
    a = to_float01(img).astype(np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


def _luma(img):
    return _as_rgb_float(img) @ _LUMA + 16.0 / 255.0


def find_windows(
    score: np.ndarray, size: int | tuple[int, int], count: int = 1, avoid: Sequence[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """Finds the non-overlapping windows with the largest sum of a score map, best first.

    Windows are chosen greedily: the best, then the best that does not overlap it, and so on;
    none overlaps a window of the same size at the corners in ``avoid``.  Ties go to the
    top-left one.

    Args:
      score: 2-D map.
      size: ``h`` or ``(h, w)``, clipped to the map.
      count: at most this many windows.
      avoid: top-left corners of windows the found ones must not overlap.

    Returns:
      Top-left corners ``(y, x)``.

    Raises:
      ConfigError: ``score`` is not a non-empty 2-D map.
    """
    score = np.asarray(score, np.float64)
    if score.ndim != 2 or score.size == 0:
        raise ConfigError(f"find_windows: score must be a non-empty 2-D map, got shape {score.shape}.")
    h, w = np.broadcast_to(np.asarray(size), (2,)).tolist()  # h or (h, w)
    h, w = max(1, min(int(h), score.shape[0])), max(1, min(int(w), score.shape[1]))
    integral = np.zeros((score.shape[0] + 1, score.shape[1] + 1))
    integral[1:, 1:] = score.cumsum(0).cumsum(1)
    sums = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]

    def block(y, x):  # every window overlapping the one at (y, x)
        sums[max(0, y - h + 1) : y + h, max(0, x - w + 1) : x + w] = -np.inf

    for y, x in avoid:
        block(y, x)
    found = []
    for _ in range(int(count)):
        if not np.isfinite(sums).any():
            break
        y, x = (int(v) for v in np.unravel_index(int(np.argmax(sums)), sums.shape))
        found.append((y, x))
        block(y, x)
    return found


def crop_psnr(crop: np.ndarray, hr_crop: np.ndarray) -> float:
    """PSNR on Y of two crops.

    Args:
      crop: the model's crop, uint8 or float in [0, 1].
      hr_crop: the reference crop, likewise.

    Returns:
      PSNR in dB; inf when the crops are equal.
    """
    mse = float(np.mean((_luma(crop) - _luma(hr_crop)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def choose_crops(
    hr: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    size: int = 48,
    border: int = 0,
    psnr: Mapping[str, float] | None = None,
    baseline: str = BASELINE,
) -> list[dict[str, Any]]:
    """The crops of one image worth looking at.

    With two or more models: (1) the window where the worst model's error exceeds the best
    model's most, (2) the window, not overlapping (1), where the best model gains most over
    ``baseline``.  With one model: (1) its largest gain over ``baseline``, (2) its largest
    remaining error.  Errors are squared differences to ``hr`` on Y.

    Args:
      hr: the HR image.
      outputs: {name: image of the HR size}, the models' outputs and ``baseline`` (bicubic).
      size: the crops' side in HR pixels (clipped to the image).
      border: pixels shaved before scoring (as the metrics).
      psnr: {name: PSNR} that ranks the models (default: from the errors).
      baseline: the name of the baseline in ``outputs``.

    Returns:
      ``[{'y', 'x', 'h', 'w', 'why'}]`` in HR pixels.

    Raises:
      ConfigError: an output is not of the HR size, or there is no model besides the baseline.
    """
    hr_y = _luma(hr)
    b = int(border) if min(hr_y.shape) > 2 * int(border) + 1 else 0
    inner = (slice(b, hr_y.shape[0] - b), slice(b, hr_y.shape[1] - b))
    errors = {}
    for name, img in outputs.items():
        if np.asarray(img).shape[:2] != hr_y.shape:
            raise ConfigError(f"choose_crops: {name} is {np.asarray(img).shape[:2]}, the HR image {hr_y.shape}.")
        errors[name] = ((_luma(img) - hr_y) ** 2)[inner]
    models = [n for n in outputs if n != baseline]
    if not models:
        raise ConfigError("choose_crops: outputs hold no model besides the baseline.")
    quality = psnr or {n: -float(errors[n].mean()) for n in models}
    ranked = sorted(models, key=lambda n: quality[n], reverse=True)
    best, worst = ranked[0], ranked[-1]
    wanted = []
    if len(models) > 1:
        wanted.append((errors[worst] - errors[best], f"where {best} and {worst} differ most"))
    if baseline in errors:
        wanted.append((errors[baseline] - errors[best], f"largest gain of {best} over {baseline}"))
    if len(wanted) < 2:
        wanted.append((errors[best], f"largest remaining error of {best}"))
    h, w = min(size, errors[best].shape[0]), min(size, errors[best].shape[1])
    crops: list[dict[str, Any]] = []
    taken: list[tuple[int, int]] = []
    for score, why in wanted:
        corner = find_windows(score, (h, w), 1, avoid=taken)
        if not corner:
            continue
        taken.append(corner[0])
        crops.append({"y": corner[0][0] + b, "x": corner[0][1] + b, "h": h, "w": w, "why": why})
    return crops


# --------------------------------------------------------------------------- images


def _uint8_rgb(img):
    return to_uint8(_as_rgb_float(img))


def png_data_uri(img: np.ndarray) -> str:
    """Encodes an image as an inline PNG.

    Args:
      img: HW or HWC, uint8 or float in [0, 1].

    Returns:
      ``data:image/png;base64,...``.
    """
    from PIL import Image

    a = to_uint8(img)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumbnail(img, longest):
    from PIL import Image

    a = _uint8_rgb(img)
    f = min(1.0, longest / max(a.shape[:2]))
    if f < 1.0:
        size = (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f)))
        a = np.asarray(Image.fromarray(a).resize(size, Image.LANCZOS))
    return a


def image_entry(
    dataset: str,
    name: str,
    hr: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    crop_size: int = 48,
    border: int = 0,
    thumb: int = 192,
    baseline: str = BASELINE,
) -> dict[str, Any]:
    """One image of the report: its crops (:func:`choose_crops`) as HR | ``baseline`` | each
    model, each labelled with its PSNR on the crop, a thumbnail, and its numbers.

    Args:
      dataset: the image's set.
      name: the image's name.
      hr: the HR image.
      outputs: {name: image} in display order (``baseline`` included).
      metrics: {name: {'psnr', 'ssim', ...}} of the whole image (they also rank the models).
      crop_size: the crops' side in HR pixels.
      border: pixels shaved when choosing the crops.
      thumb: the thumbnail's longest side (0: no thumbnail).
      baseline: the name of the baseline in ``outputs``.

    Returns:
      ``{'dataset', 'name', 'shape', 'metrics', 'crops', 'thumb'}``; each crop holds its tiles
      (``label``, ``uri``, ``psnr``).
    """
    metrics = metrics or {}
    psnr = {n: metrics[n]["psnr"] for n in outputs if n != baseline and n in metrics} or None
    if psnr is not None and len(psnr) != len([n for n in outputs if n != baseline]):
        psnr = None
    crops = []
    order = [baseline] * (baseline in outputs) + [n for n in outputs if n != baseline]
    for c in choose_crops(hr, outputs, size=crop_size, border=border, psnr=psnr, baseline=baseline):
        box = (slice(c["y"], c["y"] + c["h"]), slice(c["x"], c["x"] + c["w"]))
        ref = np.asarray(hr)[box]
        tiles: list[dict[str, Any]] = [{"label": "HR", "uri": png_data_uri(_uint8_rgb(ref)), "psnr": None}]
        tiles += [
            {
                "label": n,
                "uri": png_data_uri(_uint8_rgb(np.asarray(outputs[n])[box])),
                "psnr": crop_psnr(np.asarray(outputs[n])[box], ref),
            }
            for n in order
        ]
        crops.append({**c, "tiles": tiles})
    return {
        "dataset": dataset,
        "name": name,
        "shape": list(np.asarray(hr).shape[:2]),
        "metrics": metrics,
        "crops": crops,
        "thumb": png_data_uri(_thumbnail(hr, thumb)) if thumb else None,
    }


def _bicubic_rgb(hr, scale):
    """What bicubic shows: the HR image (RGB) down and up again with MATLAB's bicubic, in float."""
    from visionfw.data.imresize import imresize_numpy

    x = _as_rgb_float(hr)
    return np.clip(imresize_numpy(imresize_numpy(x, 1.0 / scale), float(scale)), 0.0, 1.0)


def load_eval_entries(
    sources: Mapping[str, str],
    scale: int,
    sr_dirs: Mapping[str, str | Path],
    metrics: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    data_dir: str | None = None,
    crop_size: int = 48,
) -> list[dict[str, Any]]:
    """:func:`image_entry` dicts for every image of the sets, read from the SR images that
    :func:`visionfw.evaluate.evaluate_model` saved (``save_images``).

    Args:
      sources: {set name: name or folder}.
      scale: SR factor.
      sr_dirs: {model: folder holding ``<set>/x<scale>/<image>.png``}.
      metrics: {model: {set: [per-image rows of evaluate_model]}} (bicubic's numbers are taken
        from those rows).
      data_dir: first root of the data search path.
      crop_size: the crops' side in HR pixels.

    Returns:
      One entry per image, set by set.

    Raises:
      DataError: a model's output image is missing.
    """
    from visionfw.data.image_io import read_image_uint8
    from visionfw.errors import DataError
    from visionfw.evaluate import load_eval_set

    entries = []
    for ds, source in sources.items():
        for rec in load_eval_set(source, scale, data_dir=data_dir):
            outputs = {BASELINE: _bicubic_rgb(rec.hr, scale)}
            numbers = {}
            for model, folder in sr_dirs.items():
                path = Path(folder) / ds / f"x{scale}" / f"{rec.name}.png"
                if not path.is_file():
                    raise DataError(
                        f"report: {model}'s output {path} is missing; run the evaluation again with the report on."
                    )
                outputs[model] = read_image_uint8(path)
                row = next((r for r in metrics.get(model, {}).get(ds, ()) if r["name"] == rec.name), None)
                if row is not None:
                    numbers[model] = dict(row)
                    numbers.setdefault(BASELINE, {"psnr": row["bicubic_psnr"], "ssim": row["bicubic_ssim"]})
            entries.append(image_entry(ds, rec.name, rec.hr, outputs, numbers, crop_size=crop_size, border=scale))
    return entries
