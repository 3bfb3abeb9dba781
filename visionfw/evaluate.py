"""Benchmark evaluation of SR models with the exact protocols of the papers.

* :func:`evaluate_model` measures PSNR/SSIM (and the bicubic baseline) on benchmark sets, each image
  run by :func:`visionfw.inference.super_resolve` (cached forward pass, tiles, self-ensemble);
* :func:`format_table` / :func:`write_results_json` report them, always with the protocol.

Protocols (see :mod:`visionfw.metrics.psnr_ssim`; :func:`visionfw.inference.prepare_input` makes
the model input the way each one does):

``'srcnn'`` -- what the SRCNN/VDSR/FSRCNN MATLAB test code does: the HR image's Y is taken
    with ``rgb2ycbcr`` on uint8 (so it is rounded to uint8), scaled to [0, 1], and the LR
    input is ``imresize(Y, 1/s)`` *in float* (not the uint8 LR file); pre-upsampled models
    get ``imresize(LR, s)`` in float; the output is rounded to uint8 before PSNR.  RGB
    models get the float RGB HR downscaled in float.
``'edsr'`` -- what EDSR/RCAN code does: the LR input is the uint8 MATLAB-bicubic LR RGB
    image (``load_benchmark``'s ``lr``; pre-upsampled models get it upscaled as uint8, like
    MATLAB on uint8); PSNR on the float Y of the uint8-quantised output.

Grey images (Set14 ``bridge.png``): for Y models the grey value is Y itself (the SRCNN/VDSR
convention, both for the input and the ground truth).  For RGB models the grey image is
replicated to three channels *for the input and the ground truth alike* (what EDSR's
``set_channel`` does), and both sides then go through RGB -> Y, so the comparison stays
consistent.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionfw.console import Progress
from visionfw.data.embedded import HELDOUT
from visionfw.data.image_io import to_float01
from visionfw.errors import ConfigError, DataError
from visionfw.inference import infer_model_meta, prepare_input, super_resolve, with_precision
from visionfw.metrics.psnr_ssim import as_hwc

if TYPE_CHECKING:
    import keras

# a texture metric: fn(sr, hr) on uint8 HWC arrays -> float
TextureFn = Callable[[np.ndarray, np.ndarray], float]

__all__ = [
    "evaluate_model",
    "format_table",
    "write_results_json",
    "check_measurable",
    "texture_metric_fns",
    "resolve_eval_set",
    "load_eval_set",
    "bicubic_metrics",
    "HELDOUT",
]

# --------------------------------------------------------------------------- evaluation

# (protocol, scale, shape, sha1 of the pixels) -> the bicubic baseline's metrics
_BICUBIC_CACHE: dict[tuple[Any, ...], dict[str, float]] = {}


def resolve_eval_set(name: str | Path, data_dir: str | Path | None = None) -> str | Path:
    """Where evaluation set ``name`` comes from.

    Args:
      name: ``'heldout'`` (the photos held out of the embedded training set), a benchmark name or a folder.
      data_dir: the first folder searched for benchmark sets.

    Returns:
      The set's folder.

    Raises:
      DataError: naming every place looked in when it is not found.
    """
    if str(name) == HELDOUT:
        from visionfw.data.embedded import embedded_data_dir

        return embedded_data_dir()
    from visionfw.data.benchmarks import resolve_dataset

    return resolve_dataset(name, data_dir)


def load_eval_set(
    name: str | Path, scale: int, data_dir: str | Path | None = None, lr_dir: str | Path | None = None
) -> list[Any]:
    """The records of an evaluation set.

    Args:
      name: ``'heldout'`` (:func:`visionfw.data.embedded.heldout_records`) or a benchmark name or
        folder (:func:`visionfw.data.benchmarks.load_benchmark`).
      scale: the SR factor the LR images are made for.
      data_dir: the first folder searched for benchmark sets.
      lr_dir: read the LR images from there (not for ``'heldout'``).

    Returns:
      :class:`visionfw.data.benchmarks.BenchmarkImage` records.
    """
    if str(name) == HELDOUT:
        if lr_dir is not None:
            raise ConfigError(
                f"lr_dir does not apply to the {HELDOUT!r} set (its LR images are made with "
                "MATLAB bicubic); leave lr_dir unset."
            )
        from visionfw.data.embedded import heldout_records

        return heldout_records(scale)
    from visionfw.data.benchmarks import load_benchmark

    return load_benchmark(name, scale, data_dir=data_dir, lr_dir=lr_dir)


def bicubic_metrics(hr: np.ndarray, scale: int, protocol: str) -> dict[str, float]:
    """The bicubic baseline of one HR image, memoised on the image's content (it does not depend on the model).

    Args:
      hr: the HR image (HWC uint8).
      scale: the SR factor.
      protocol: 'srcnn' or 'edsr'.

    Returns:
      :func:`visionfw.metrics.psnr_ssim.bicubic_baseline`'s ``{'psnr', 'ssim'}``.
    """
    import hashlib

    from visionfw.metrics.psnr_ssim import bicubic_baseline

    key = (protocol, int(scale), hr.shape, hashlib.sha1(np.ascontiguousarray(hr).tobytes()).hexdigest())
    if key not in _BICUBIC_CACHE:
        if len(_BICUBIC_CACHE) > 512:
            _BICUBIC_CACHE.clear()
        _BICUBIC_CACHE[key] = bicubic_baseline(hr, scale, protocol)
    return _BICUBIC_CACHE[key]


def _save_sr(path, sr, hr, scale, channels):
    """Writes the SR result; Y outputs get the bicubic chroma of the image (as SRCNN's demo)."""
    from visionfw.data.color import rgb_to_ycbcr, ycbcr_to_rgb
    from visionfw.data.image_io import write_image
    from visionfw.data.imresize import imresize_numpy

    sr = np.clip(sr, 0.0, 1.0)
    if channels == "y" and hr.shape[-1] == 3:
        ycc = rgb_to_ycbcr(to_float01(hr, np.float64))
        ycc = imresize_numpy(imresize_numpy(ycc, 1.0 / scale), float(scale))
        ycc[..., :1] = sr
        sr = np.clip(ycbcr_to_rgb(ycc), 0.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, sr.astype(np.float32))


def check_measurable(hr: np.ndarray, scale: int, name: str) -> None:
    """Checks that the mod-cropped ``hr`` is big enough for the metrics at ``scale``.

    Args:
      hr: the mod-cropped HR image (HW or HWC).
      scale: the SR factor: ``scale`` px are shaved off each border, SSIM needs an 11x11 window in what is left.
      name: the image's name, for the message.

    Raises:
      DataError: the image is too small, with the size it needs.
    """
    need = scale * math.ceil((11 + 2 * scale) / scale)  # the smallest mod-cropped side that leaves 11 px
    if min(hr.shape[:2]) < need:
        raise DataError(
            f"Test image {name} is {hr.shape[1]}x{hr.shape[0]} (mod-cropped), too small to evaluate at "
            f"x{scale}: it needs at least {need}x{need} pixels ({scale} px are shaved off each border, "
            "SSIM needs an 11x11 window); remove it from the test set."
        )


@dataclasses.dataclass(frozen=True)
class _EvalRun:
    """What one :func:`evaluate_model` call measures with, shared by its steps."""

    model: Any
    scale: int
    protocol: str
    channels: str
    upsampled_input: bool
    tile: int | None
    tile_overlap: int | None
    self_ensemble: bool
    precision: str
    per_image: bool
    save_images: str | Path | None
    texture: dict[str, tuple[TextureFn, str]]


def _dataset_names(datasets):
    """A list of dataset names/folders from a list or one comma-separated string."""
    if isinstance(datasets, (str, Path)):
        datasets = [d.strip() for d in str(datasets).split(",") if d.strip()]
    if not datasets:
        raise ConfigError("evaluate_model: no dataset given; pass e.g. datasets=['Set5', 'Set14'].")
    return list(datasets)


def _model_inputs(model, scale, channels, upsampled_input):
    """(channels, upsampled_input): as given, else probed (:func:`infer_model_meta`), which also
    checks that an LR-input model upscales by ``scale``."""
    if channels is None or upsampled_input is None:
        meta = infer_model_meta(model)
        channels = meta["channels"] if channels is None else channels
        upsampled_input = meta["upsampled_input"] if upsampled_input is None else upsampled_input
        if not upsampled_input and meta["ratio"] != scale:
            raise ConfigError(
                f"model {model.name!r} upscales by {meta['ratio']:g} but scale={scale}; "
                "build/load the model for this scale."
            )
    if channels not in ("y", "rgb"):
        raise ConfigError(f"channels={channels!r}; use 'y' or 'rgb'.")
    return channels, upsampled_input


def _protocol_pair(run, hr, lr):
    """(HR, LR) as the protocol measures them: grey made RGB for RGB models (EDSR's set_channel);
    under 'srcnn' the LR is the float MATLAB downscale of the HR (Y or RGB), as the MATLAB test code."""
    from visionfw.data.imresize import imresize_numpy
    from visionfw.metrics.psnr_ssim import protocol_y

    if run.channels == "rgb" and hr.shape[-1] == 1:
        hr, lr = np.repeat(hr, 3, axis=-1), np.repeat(lr, 3, axis=-1)
    if run.protocol == "srcnn":
        src = protocol_y(hr, "srcnn") if run.channels == "y" else to_float01(hr, np.float64)
        lr = as_hwc(imresize_numpy(src, 1.0 / run.scale))
    return hr, lr


def _evaluate_image(run, rec, ds_name):
    """The per-image row (PSNR/SSIM, bicubic baseline, texture metrics) of one record."""
    from visionfw.metrics.psnr_ssim import evaluate_pair

    hr = as_hwc(rec.hr)
    check_measurable(hr, run.scale, f"{ds_name}/{rec.name}")
    hr, lr = _protocol_pair(run, hr, as_hwc(rec.lr))
    x = prepare_input(lr, run.upsampled_input, run.channels, run.scale, run.protocol)
    sr = super_resolve(run.model, x, tile=run.tile, tile_overlap=run.tile_overlap, self_ensemble=run.self_ensemble)
    if sr.shape[:2] != hr.shape[:2]:
        raise DataError(
            f"{ds_name}/{rec.name}: model output {sr.shape[:2]} differs from the HR size "
            f"{hr.shape[:2]} at x{run.scale}; is the model built for scale {run.scale}?"
        )
    m = evaluate_pair(sr, hr, run.scale, run.protocol)
    b = bicubic_metrics(hr, run.scale, run.protocol)
    row = {
        "name": rec.name,
        "psnr": m["psnr"],
        "ssim": m["ssim"],
        "bicubic_psnr": b["psnr"],
        "bicubic_ssim": b["ssim"],
        "gain_psnr": m["psnr"] - b["psnr"],
    }
    if run.texture:
        sr8, hr8 = _rgb_uint8(sr, hr, run.channels, run.scale)
        row.update({name: float(fn(sr8, hr8)) for name, (fn, _) in run.texture.items()})
    if run.save_images:
        _save_sr(Path(run.save_images) / ds_name / f"x{run.scale}" / f"{rec.name}.png", sr, hr, run.scale, run.channels)
    return row


def _checked_scale(protocol, scale):
    """``scale`` as an int; ConfigError for an unknown protocol or a scale below 1."""
    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"protocol={protocol!r} is unknown; use 'srcnn' (SRCNN/VDSR code) or 'edsr'.")
    scale = int(scale)
    if scale < 1:
        raise ConfigError(f"scale={scale} must be a positive integer.")
    return scale


def _evaluate_dataset(run, ds, *, data_dir, lr_dir, progress, log_every, label):
    """``(name, result)`` of one set: every image's row and the means, progress shown on ``Progress``."""
    records = load_eval_set(ds, run.scale, data_dir=data_dir, lr_dir=lr_dir if run.protocol == "edsr" else None)
    ds_name = Path(str(ds)).name if Path(str(ds)).is_dir() else str(ds)
    start = time.perf_counter()
    rows = []
    bar = Progress(len(records), f"{label} {ds_name} x{run.scale}", unit="image", enabled=progress)
    for i, rec in enumerate(records):
        bar.update(i, line=i > 0 and i % max(1, int(log_every)) == 0)
        rows.append(_evaluate_image(run, rec, ds_name))
    bar.update(len(records))
    bar.close()
    if not rows:
        raise DataError(f"dataset {ds!r} holds no images.")
    return ds_name, _dataset_summary(run, ds_name, rows, time.perf_counter() - start)


def _dataset_summary(run, ds_name, rows, seconds):
    """The result of one set: the means over ``rows``, what produced them, the rows."""
    from visionfw.metrics.psnr_ssim import protocol_description

    def mean(key):
        return float(np.mean(np.array([r[key] for r in rows], dtype=np.float64)))

    summary = {
        "dataset": ds_name,
        "scale": run.scale,
        "n_images": len(rows),
        "psnr": mean("psnr"),
        "ssim": mean("ssim"),
        "bicubic_psnr": mean("bicubic_psnr"),
        "bicubic_ssim": mean("bicubic_ssim"),
        "gain_psnr": mean("psnr") - mean("bicubic_psnr"),
        "gain_ssim": mean("ssim") - mean("bicubic_ssim"),
        "protocol": run.protocol,
        "protocol_description": protocol_description(run.protocol, run.scale),
        "channels": run.channels,
        "upsampled_input": bool(run.upsampled_input),
        "tile": run.tile,
        "self_ensemble": bool(run.self_ensemble),
        "precision": run.precision,
        "per_image": bool(run.per_image),
        "seconds": seconds,
        "images": rows,
    }
    for name, (_, how) in run.texture.items():
        summary[name] = mean(name)
        summary[f"{name}_protocol"] = how
    return summary


def evaluate_model(
    model: keras.Model,
    datasets: str | Path | Sequence[str | Path],
    scale: int,
    *,
    protocol: str = "srcnn",
    data_dir: str | Path | None = None,
    channels: str | None = None,
    upsampled_input: bool | None = None,
    per_image: bool = False,
    save_images: str | Path | None = None,
    tile: int | None = None,
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    progress: bool = True,
    lr_dir: str | Path | None = None,
    log_every: int = 25,
    progress_label: str = "evaluate",
    texture_metrics: Sequence[str] | str | dict[str, TextureFn] = (),
    precision: str = "float32",
) -> dict[str, dict[str, Any]]:
    """PSNR/SSIM of ``model`` on benchmark sets under ``protocol``, with the bicubic baseline.

    Args:
      model: a ``keras.Model`` with loaded weights.
      datasets: names ('Set5', 'Set14', ..., or 'heldout': photos held out of the embedded
        training set), folders, or one comma-separated string.
      scale: SR factor (the border shaved is ``scale`` px).
      protocol: 'srcnn' or 'edsr' (module docstring).
      data_dir: where the sets are (see :func:`visionfw.data.benchmarks.resolve_dataset`).
      channels, upsampled_input: what the model takes; default from
        :func:`visionfw.inference.infer_model_meta` (pass them from the spec's meta when known).
      per_image: also list every image in :func:`format_table` (the results always hold them).
      save_images: folder; SR images go to ``<dir>/<dataset>/x<scale>/<name>.png``.
      tile, tile_overlap, self_ensemble: see :func:`visionfw.inference.super_resolve`.
      progress, log_every, progress_label: progress on stderr (:class:`visionfw.console.Progress`): a
        live bar on a terminal, else a line every ``log_every`` images and at the end of each set.
      lr_dir: 'edsr' protocol only: read LR images from there instead of making them.
      texture_metrics: also measure ``'niqe'`` (no-reference, :mod:`visionfw.metrics.niqe`) and/or
        ``'lpips'`` / ``'lpips_vgg'`` (:mod:`visionfw.metrics.lpips`, needs its weights) on the uint8 RGB
        output with ``scale`` px shaved; or ``{name: fn(sr, hr) -> float}`` (uint8 HWC arrays).
        Each result then holds ``<name>`` and ``<name>_protocol``; lower is better for all three.
      precision: ``'float32'`` or ``'bfloat16'`` (the model computes in bfloat16 with a float32
        head, :func:`visionfw.inference.with_precision`); the metrics are computed in float64 either way.

    Returns:
      ``{dataset: {'psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim', 'gain_psnr', 'gain_ssim',
      'n_images', 'images': [per image], 'protocol', 'protocol_description', 'scale', 'channels',
      'upsampled_input', 'seconds', ...}}`` (PSNR in dB, means over images).

    Raises:
      ConfigError: an unknown protocol or channels, a bad scale, no dataset, a model of another scale.
      DataError: a set that is missing or empty, an image too small to measure.
    """
    scale = _checked_scale(protocol, scale)
    names = _dataset_names(datasets)
    channels, upsampled_input = _model_inputs(model, scale, channels, upsampled_input)
    run = _EvalRun(
        model=with_precision(model, precision),
        scale=scale,
        protocol=protocol,
        channels=channels,
        upsampled_input=bool(upsampled_input),
        tile=tile,
        tile_overlap=tile_overlap,
        self_ensemble=bool(self_ensemble),
        precision=precision,
        per_image=bool(per_image),
        save_images=save_images,
        texture=texture_metric_fns(texture_metrics, scale),
    )
    shown = {"progress": progress, "log_every": log_every, "label": progress_label}
    return dict(_evaluate_dataset(run, ds, data_dir=data_dir, lr_dir=lr_dir, **shown) for ds in names)


def texture_metric_fns(
    metrics: Sequence[str] | str | dict[str, TextureFn] | None, scale: int
) -> dict[str, tuple[TextureFn, str]]:
    """The texture metrics of :func:`evaluate_model` as functions.

    Args:
      metrics: names (``'niqe'``, ``'lpips'``, ``'lpips_alex'``, ``'lpips_vgg'``; a list or one
        comma-separated string), or ``{name: fn(sr_uint8, hr_uint8) -> float}``.
      scale: the SR factor (the pixels shaved, said in the protocol text).

    Returns:
      ``{name: (fn(sr_uint8, hr_uint8) -> float, protocol text)}``.

    Raises:
      ConfigError: an unknown metric name.
    """
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if isinstance(metrics, dict):
        return {name: (fn, f"{name} (user function, uint8 RGB, shave {scale} px)") for name, fn in metrics.items()}
    out: dict[str, tuple[TextureFn, str]] = {}
    for name in metrics or ():
        if name == "niqe":
            from visionfw.metrics.niqe import load_pristine_model, niqe, niqe_protocol

            model = load_pristine_model()

            def niqe_score(sr: np.ndarray, hr: np.ndarray, model: Any = model) -> float:
                return niqe(sr, model)

            out[name] = (
                niqe_score,
                f"NIQE (lower is better): {niqe_protocol(model)}; on the SR output, shave {scale} px",
            )
        elif name in ("lpips", "lpips_alex", "lpips_vgg"):
            from visionfw.metrics.lpips import LPIPS

            metric = LPIPS("vgg" if name == "lpips_vgg" else "alex")

            def lpips_distance(sr: np.ndarray, hr: np.ndarray, metric: Any = metric) -> float:
                return metric.distance(sr, hr)

            out[name] = (
                lpips_distance,
                f"LPIPS (lower is better): {metric.protocol}; SR vs HR, shave {scale} px",
            )
        else:
            raise ConfigError(f"texture metric {name!r} is unknown; use niqe, lpips (alex) or lpips_vgg.")
    return out


def _rgb_uint8(sr, hr, channels, scale):
    """The uint8 RGB output and HR with ``scale`` px shaved (a Y model's output is measured as grey)."""
    from visionfw.metrics.psnr_ssim import quantize, shave

    sr8 = quantize(np.clip(np.asarray(sr, np.float64), 0.0, 1.0))
    hr8 = as_hwc(hr)
    if sr8.shape[-1] == 1:
        sr8 = np.repeat(sr8, 3, axis=-1)
    if hr8.shape[-1] == 1:
        hr8 = np.repeat(hr8, 3, axis=-1)
    return shave(sr8, scale), shave(hr8, scale)


def format_table(results: dict[str, dict[str, Any]], per_image: bool | None = None) -> str:
    """A Markdown table of :func:`evaluate_model`'s results, with the protocol line.

    NIQE / LPIPS columns (``evaluate_model(texture_metrics=...)``) follow, each with its own protocol line.

    Args:
      results: what :func:`evaluate_model` returns.
      per_image: also a row per image; default each result's own ``per_image``.

    Returns:
      The table (one row per dataset), a blank line and the protocol lines.
    """
    texture = list(
        dict.fromkeys(
            k[: -len("_protocol")] for r in results.values() for k in r if k.endswith("_protocol") and k != "protocol"
        )
    )

    def cells(r):
        return "".join(f" {r[name]:.4f} |" if name in r else " - |" for name in texture)

    lines = [
        "| dataset | scale | images | PSNR (dB) | SSIM | bicubic PSNR | bicubic SSIM | gain (dB) |"
        + "".join(f" {name.upper()} |" for name in texture),
        "|---|---|---|---|---|---|---|---|" + "---|" * len(texture),
    ]
    descriptions = []
    for name, r in results.items():
        lines.append(
            f"| {name} | x{r['scale']} | {r['n_images']} | {r['psnr']:.3f} | {r['ssim']:.4f} | "
            f"{r['bicubic_psnr']:.3f} | {r['bicubic_ssim']:.4f} | {r['gain_psnr']:+.3f} |" + cells(r)
        )
        show = r.get("per_image", False) if per_image is None else per_image
        if show:
            for row in r["images"]:
                lines.append(
                    f"| {name}/{row['name']} | x{r['scale']} | 1 | {row['psnr']:.3f} | "
                    f"{row['ssim']:.4f} | {row['bicubic_psnr']:.3f} | {row['bicubic_ssim']:.4f} | "
                    f"{row['gain_psnr']:+.3f} |" + cells(row)
                )
        if r["protocol_description"] not in descriptions:
            descriptions.append(r["protocol_description"])
    extras = []
    for r in results.values():
        if r.get("self_ensemble"):
            extras.append("x8 self-ensemble")
        if r.get("tile"):
            extras.append(f"tiled ({r['tile']} px)")
        if r.get("precision", "float32") != "float32":
            extras.append(f"model computed in {r['precision']} (float32 head)")
    lines.append("")
    lines.extend(f"Protocol: {d}" + (f"; {', '.join(sorted(set(extras)))}" if extras else "") for d in descriptions)
    for name in texture:
        how = next(r[f"{name}_protocol"] for r in results.values() if f"{name}_protocol" in r)
        lines.append(f"{name.upper()}: {how}")
    return "\n".join(lines)


def write_results_json(
    path: str | Path,
    results: dict[str, Any],
    *,
    model_name: str | None,
    weights_path: str | Path | None,
    scale: int | str,
    protocol: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes the results with what produced them (model, weights sha256, protocol) as JSON.

    Args:
      path: the JSON file.
      results: what :func:`evaluate_model` returns (or several runs of it, keyed by set).
      model_name: the model's name.
      weights_path: the weights file (its sha256 is recorded), or None.
      scale: the SR factor, or several as ``'2,3,4'``.
      protocol: 'srcnn' or 'edsr'.
      extra: more top-level fields.

    Returns:
      The written path.
    """
    import visionfw
    from visionfw.files import write_file_atomic
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.weights.formats import file_sha256

    payload = {
        "model": model_name,
        "weights": str(weights_path) if weights_path else None,
        "weights_sha256": file_sha256(weights_path) if weights_path else None,
        "scale": scale,
        "protocol": protocol,
        "protocol_description": protocol_description(
            protocol, scale if isinstance(scale, int) else int(str(scale).split(",")[0])
        ),
        "visionfw_version": visionfw.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
    }
    if extra:
        payload.update(extra)
    # written here, not with studies.reports.write_json: evaluation sits below the studies layer
    text = json.dumps(payload, indent=2, default=float).encode()
    return Path(write_file_atomic(path, lambda fh: fh.write(text)))
