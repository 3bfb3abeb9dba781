"""Benchmark evaluation of SR models with the exact protocols of the papers.

* :func:`prepare_input` turns an LR image into a model's input (Y or RGB, bicubic-upscaled
  with MATLAB's bicubic for pre-upsampled models like SRCNN/VDSR);
* :func:`super_resolve` runs one image through a model with a cached ``tf.function``
  (:func:`forward_fn`, shared with :mod:`visionfw.studies.profiling`), optionally in overlapping
  tiles and/or with the x8 geometric self-ensemble;
* :func:`evaluate_model` measures PSNR/SSIM (and the bicubic baseline) on benchmark sets;
* :func:`format_table` / :func:`write_results_json` report them, always with the protocol.

Protocols (see :mod:`visionfw.metrics.psnr_ssim`):

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

import datetime
import math
import time
import weakref
from pathlib import Path

import numpy as np

from visionfw.data.embedded import HELDOUT
from visionfw.errors import ConfigError, DataError
from visionfw.metrics.psnr_ssim import as_hwc

__all__ = [
    "prepare_input",
    "forward_fn",
    "forward_numpy",
    "super_resolve",
    "receptive_radius",
    "tiling_is_exact",
    "infer_model_meta",
    "evaluate_model",
    "format_table",
    "write_results_json",
    "geometric_transforms",
    "resolve_eval_set",
    "load_eval_set",
    "bicubic_metrics",
    "HELDOUT",
]

_CONV_CLASSES = ("Conv2D", "EdgePadConv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D")
# Layers whose output at a pixel depends on the whole image: tiles cannot reproduce them exactly.
_GLOBAL_CLASSES = (
    "ChannelAttention",
    "ContrastPool",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Dense",
    "Flatten",
    "Reshape",
)


# --------------------------------------------------------------------------- input


def _as_float(img):
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64)
    raise DataError(f"image dtype {img.dtype} unsupported; use uint8 or float in [0, 1].")


def prepare_input(lr, upsampled_input, channels="y", scale=None, protocol="srcnn"):
    """The model input (float32 HWC in [0, 1]) made from an LR image.

    Args:
      lr: HW/HWC, uint8 or float in [0, 1], 1 (grey / Y) or 3 (RGB) channels.
      upsampled_input: True for SRCNN/VDSR-style models that take the image already
        bicubic-upscaled to the HR size.  May also be a spec ``meta`` dict, which then
        supplies ``channels`` and ``scale`` too.
      channels: 'y' or 'rgb', what the model takes.
      scale: the SR factor (needed when ``upsampled_input``).
      protocol: 'srcnn' -> Y of an RGB image is taken on uint8 and rounded (MATLAB
        ``rgb2ycbcr`` on uint8), upscaling in float; 'edsr' -> a uint8 image is upscaled as
        uint8 (MATLAB on uint8), Y is float (not rounded).

    A 1-channel input is taken as Y itself for Y models and replicated to RGB for RGB models.
    Pass the float Y (e.g. ``imresize(Y_hr, 1/s)``) to feed exactly what the SRCNN code feeds.
    """
    if isinstance(upsampled_input, dict):
        meta = upsampled_input
        upsampled_input = bool(meta.get("upsampled_input", False))
        channels = meta.get("channels", channels)
        scale = meta.get("scale", scale) if scale is None else scale
    if channels not in ("y", "rgb"):
        raise ConfigError(f"prepare_input: channels={channels!r}; use 'y' or 'rgb'.")
    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"prepare_input: protocol={protocol!r}; use 'srcnn' or 'edsr'.")
    if upsampled_input and not scale:
        raise ConfigError("prepare_input: a pre-upsampled model needs scale=.")
    from visionfw.data.color import rgb_to_y
    from visionfw.data.imresize import imresize_numpy
    from visionfw.metrics.psnr_ssim import quantize

    lr = as_hwc(lr)
    upscaled = False
    if upsampled_input and protocol == "edsr" and lr.dtype == np.uint8:
        lr = as_hwc(imresize_numpy(lr, float(scale)))  # uint8 in, uint8 out, rounded per pass
        upscaled = True
    if channels == "y":
        if lr.shape[-1] == 1:
            x = _as_float(lr)
        elif protocol == "srcnn":
            x = rgb_to_y(quantize(lr)).astype(np.float64) / 255.0
        else:
            x = rgb_to_y(_as_float(lr))
    else:
        x = _as_float(lr)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
    if upsampled_input and not upscaled:
        x = as_hwc(imresize_numpy(x, float(scale)))
    return x.astype(np.float32)


# --------------------------------------------------------------------------- forward pass

_FORWARD_CACHE = weakref.WeakKeyDictionary()


def forward_fn(model):
    """A ``tf.function`` of ``model`` for NHWC float32 batches of any size, cached per model.

    The one compiled forward pass of the library: evaluation and profiling (latency,
    memory) share it, so a model is traced once.
    """
    fn = _FORWARD_CACHE.get(model)
    if fn is not None:
        return fn
    import tensorflow as tf

    if len(model.inputs) != 1:
        raise ConfigError(
            f"model {model.name!r} has {len(model.inputs)} inputs; super_resolve runs single-input SR models."
        )
    channels = model.inputs[0].shape[-1]
    ref = weakref.ref(model)  # the cache must not keep the model alive

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def forward(x):
        return ref()(x, training=False)

    _FORWARD_CACHE[model] = forward
    return forward


PRECISIONS = ("float32", "bfloat16")


def with_precision(model, precision="float32"):
    """``model`` itself for ``'float32'``; for ``'bfloat16'`` a copy (same weights) that computes in
    bfloat16 with a float32 output head (:func:`visionfw.zoo.builder.set_compute_policy`).

    Measured: EDSR-baseline runs 1.8-2.2x faster on an AVX512_BF16 CPU
    (``benchmarks/inference_speed.py``); on the official weights of IMDN, LapSRN, SRCNN and VDSR
    (Set5/Set14, published protocols) it costs 0.00-0.15 dB, mean 0.027 (VDSR x4: 0.15;
    ``experiments/bf16_inference.py``), more than the 0.01 dB a reproduction is judged by, so
    float32 is the default everywhere.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}.")
    if precision == "float32":
        return model
    import keras

    from visionfw.zoo.builder import set_compute_policy

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return set_compute_policy(clone, "mixed_bfloat16")


def forward_numpy(model, batch):
    """The model's (first) output for an NHWC batch, fetched to the host as numpy."""
    out = forward_fn(model)(np.ascontiguousarray(batch, dtype=np.float32))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out.numpy()


def _run(model, image):
    return forward_numpy(model, image[None])[0]


def receptive_radius(model):
    """Upper bound (in input pixels) on how far an output pixel's inputs reach.

    Computed from the kernel sizes: the sum over every convolution of
    ``ceil((k - 1) * dilation / 2)`` per axis (max of the two), transposed convolutions
    counted with ``ceil(k / 2)``.  Convolutions that run after an upsampling layer (at
    the HR resolution) are counted at full size although they reach only ``1/scale`` as
    far in input pixels, so this over-estimates -- the safe side for tiling.  Every call
    counts: a layer whose weights are shared (DRRN's recursive units, TAD's recursions) adds
    its reach once per call, and parallel branches add up (over-estimates again).  Layers
    inside nested models are included; MATLAB bicubic layers add 3.
    """
    import keras

    radius = 0
    by_depth = getattr(model, "_nodes_by_depth", None)  # functional models: one node per layer call
    calls = [node.operation for depth in sorted(by_depth) for node in by_depth[depth]] if by_depth else model.layers
    for layer in calls:
        if isinstance(layer, keras.Model):
            radius += receptive_radius(layer)
            continue
        cls = type(layer).__name__
        if cls in _CONV_CLASSES:
            ks = layer.kernel_size
            dil = getattr(layer, "dilation_rate", (1,) * len(ks))
            if cls == "Conv2DTranspose":
                radius += max(math.ceil(k / 2) for k in ks)
            else:
                radius += max(math.ceil((k - 1) * d / 2) for k, d in zip(ks, dil))
        elif cls == "BicubicResize":
            radius += 3
        elif cls in ("MaxPooling2D", "AveragePooling2D"):
            radius += max(layer.pool_size)
    return int(radius)


def tiling_is_exact(model):
    """False when a layer mixes the whole image (RCAN's channel attention, global pooling):
    tiled inference then differs from whole-image inference (like RCAN's own ``chop``)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not tiling_is_exact(layer):
                return False
        elif type(layer).__name__ in _GLOBAL_CLASSES:
            return False
    return True


def tiled_apply(run, image, tile, overlap, name="model"):
    """``run`` (HWC -> HWC, an integer upscale) applied to ``image`` in ``tile x tile`` pieces, each
    with ``overlap`` pixels of context that is cropped away after; the edge tiles are smaller.

    Tile shapes vary at the edges on purpose: ``forward_fn`` is traced once for every shape, and
    a new shape's first call cost under 5% more than a repeat (oneDNN primitive creation), while
    same-size windows shifted inwards would compute 1.8x the pixels of a 2040x1356 x4 image's
    tiles (``benchmarks/inference_speed.py``).  Shared by :func:`super_resolve` and the
    benchmarks' onnxruntime / PyTorch runners.
    """
    h, w = image.shape[:2]
    out = None
    ratio = None
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            cy0, cy1 = max(0, y0 - overlap), min(h, y1 + overlap)
            cx0, cx1 = max(0, x0 - overlap), min(w, x1 + overlap)
            piece = run(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]))
            if ratio is None:
                ratio = piece.shape[0] // (cy1 - cy0)
                if ratio < 1 or piece.shape[0] != ratio * (cy1 - cy0) or piece.shape[1] != ratio * (cx1 - cx0):
                    raise DataError(
                        f"tiled inference: model {name!r} maps a {cy1 - cy0}x{cx1 - cx0} "
                        f"tile to {piece.shape[0]}x{piece.shape[1]}, not an integer upscale; "
                        "run it without tile=."
                    )
                out = np.zeros((h * ratio, w * ratio, piece.shape[-1]), np.float32)
            r = ratio
            out[y0 * r : y1 * r, x0 * r : x1 * r] = piece[
                (y0 - cy0) * r : (y1 - cy0) * r, (x0 - cx0) * r : (x1 - cx0) * r
            ]
    return out


def geometric_transforms():
    """The 8 (forward, inverse) pairs of the dihedral group (rot90 x flip) on HWC arrays."""
    pairs = []
    for k in range(4):
        for flip in (False, True):

            def fwd(x, k=k, flip=flip):
                y = np.rot90(x, k, axes=(0, 1))
                return y[:, ::-1] if flip else y

            def inv(y, k=k, flip=flip):
                y = y[:, ::-1] if flip else y
                return np.rot90(y, -k, axes=(0, 1))

            pairs.append((fwd, inv))
    return pairs


def super_resolve(model, image, tile=None, tile_overlap=None, self_ensemble=False, progress=None):
    """The model's output (float32 HWC, not clipped) for one prepared input image (HWC).

    Args:
      model: a single-input ``keras.Model``.
      image: HWC float in [0, 1] (see :func:`prepare_input`); NHWC with N = 1 also accepted.
      tile: when set, run in ``tile x tile`` input tiles (the last ones smaller); for
        LR-input models the output tiles are ``scale`` times larger.
      tile_overlap: input pixels of context added around each tile (cropped away after);
        default :func:`receptive_radius`, which makes the result equal whole-image
        inference up to float round-off for models where :func:`tiling_is_exact`.
      self_ensemble: average the outputs over the 8 flips/rotations (EDSR's "+").
      progress: ``fn(done, total)`` called after each forward pass (tiles times ensemble passes).
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise DataError(f"super_resolve: one image at a time, got a batch of {image.shape[0]}.")
        image = image[0]
    if image.ndim != 3:
        raise DataError(f"super_resolve: image of shape {image.shape} must be HWC.")
    want = model.inputs[0].shape[-1]
    if want is not None and image.shape[-1] != want:
        raise DataError(
            f"super_resolve: model {model.name!r} takes {want} channel(s), the image has "
            f"{image.shape[-1]}; use prepare_input(..., channels={'y' if want == 1 else 'rgb'!r})."
        )
    if tile is not None:
        tile = int(tile)
        if tile < 1:
            raise ConfigError(f"tile={tile} must be a positive number of input pixels.")
        overlap = receptive_radius(model) if tile_overlap is None else int(tile_overlap)
        if overlap < 0:
            raise ConfigError(f"tile_overlap={overlap} must be >= 0.")

    whole = tile is None or (image.shape[0] <= tile and image.shape[1] <= tile)
    passes = (1 if whole else math.ceil(image.shape[0] / tile) * math.ceil(image.shape[1] / tile)) * (
        8 if self_ensemble else 1
    )
    done = [0]

    def run(x):
        y = _run(model, x)
        if progress is not None:
            done[0] += 1
            progress(done[0], passes)
        return y

    def once(x):
        if whole:
            return run(x)
        return tiled_apply(run, x, tile, overlap, name=model.name)

    if not self_ensemble:
        return once(image)
    total = None
    for fwd, inv in geometric_transforms():
        y = inv(once(np.ascontiguousarray(fwd(image))))
        total = y.astype(np.float64) if total is None else total + y
    return (total / 8.0).astype(np.float32)


def infer_model_meta(model, probe=12):
    """{'channels', 'upsampled_input', 'ratio'} of a model from its input and a probe run.

    Input channels 1 -> 'y', 3 -> 'rgb'; the output of a ``probe x probe`` zero image has
    the input's size -> pre-upsampled (``ratio`` 1), else ``ratio`` = output / input size.
    """
    channels = model.inputs[0].shape[-1]
    if channels not in (1, 3):
        raise ConfigError(f"model {model.name!r} takes {channels} channels; SR evaluation needs 1 (Y) or 3 (RGB).")
    out = _run(model, np.zeros((probe, probe, channels), np.float32))
    ratio = out.shape[0] / probe
    return {"channels": "y" if channels == 1 else "rgb", "upsampled_input": out.shape[0] == probe, "ratio": ratio}


# --------------------------------------------------------------------------- evaluation

_BICUBIC_CACHE = {}


def resolve_eval_set(name, data_dir=None):
    """Where evaluation set ``name`` comes from: ``'heldout'`` (the photos held out of the
    embedded training set), a benchmark name or a folder; DataError naming every place looked
    in when it is not found."""
    if str(name) == HELDOUT:
        from visionfw.data.embedded import embedded_data_dir

        return embedded_data_dir()
    from visionfw.data.benchmarks import resolve_dataset

    return resolve_dataset(name, data_dir)


def load_eval_set(name, scale, data_dir=None, lr_dir=None):
    """The :class:`visionfw.data.benchmarks.BenchmarkImage` records of an evaluation set:
    ``'heldout'`` (:func:`visionfw.data.embedded.heldout_records`) or a benchmark name or
    folder (:func:`visionfw.data.benchmarks.load_benchmark`)."""
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


def bicubic_metrics(hr, scale, protocol):
    """The bicubic baseline of one HR image (:func:`visionfw.metrics.psnr_ssim.bicubic_baseline`),
    memoised on the image's content (it does not depend on the model)."""
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
        ycc = rgb_to_ycbcr(hr.astype(np.float64) / 255.0)
        ycc = imresize_numpy(imresize_numpy(ycc, 1.0 / scale), float(scale))
        ycc[..., :1] = sr
        sr = np.clip(ycbcr_to_rgb(ycc), 0.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, sr.astype(np.float32))


def check_measurable(hr, scale, name):
    """DataError when the mod-cropped ``hr`` is too small for the metrics at ``scale``: ``scale`` px are
    shaved off each border and SSIM needs an 11x11 window in what is left."""
    need = scale * math.ceil((11 + 2 * scale) / scale)  # the smallest mod-cropped side that leaves 11 px
    if min(hr.shape[:2]) < need:
        raise DataError(
            f"Test image {name} is {hr.shape[1]}x{hr.shape[0]} (mod-cropped), too small to evaluate at "
            f"x{scale}: it needs at least {need}x{need} pixels ({scale} px are shaved off each border, "
            "SSIM needs an 11x11 window); remove it from the test set."
        )


def evaluate_model(
    model,
    datasets,
    scale,
    protocol="srcnn",
    data_dir=None,
    channels=None,
    upsampled_input=None,
    per_image=False,
    save_images=None,
    tile=None,
    tile_overlap=None,
    self_ensemble=False,
    progress=True,
    lr_dir=None,
    log_every=25,
    progress_label="evaluate",
    texture_metrics=(),
    precision="float32",
):
    """PSNR/SSIM of ``model`` on benchmark sets under ``protocol``, with the bicubic baseline.

    Args:
      model: a ``keras.Model`` with loaded weights.
      datasets: names ('Set5', 'Set14', ..., or 'heldout': photos held out of the embedded
        training set), folders, or one comma-separated string.
      scale: SR factor (the border shaved is ``scale`` px).
      protocol: 'srcnn' or 'edsr' (module docstring).
      data_dir: where the sets are (see :func:`visionfw.data.benchmarks.resolve_dataset`).
      channels, upsampled_input: what the model takes; default from
        :func:`infer_model_meta` (pass them from the spec's meta when known).
      per_image: also list every image in :func:`format_table` (the results always hold them).
      save_images: folder; SR images go to ``<dir>/<dataset>/x<scale>/<name>.png``.
      tile, tile_overlap, self_ensemble: see :func:`super_resolve`.
      progress: show progress on stderr (:class:`visionfw.console.Progress`): a live bar on a
        terminal, else a plain line every ``log_every`` images and at the end of each set;
        ``progress_label`` starts its title.
      lr_dir: 'edsr' protocol only: read LR images from there instead of making them.
      texture_metrics: also measure ``'niqe'`` (no-reference, :mod:`visionfw.metrics.niqe`) and/or
        ``'lpips'`` / ``'lpips_vgg'`` (:mod:`visionfw.metrics.lpips`, needs its weights) on the uint8 RGB
        output with ``scale`` px shaved; or ``{name: fn(sr, hr) -> float}`` (uint8 HWC arrays).
        Each result then holds ``<name>`` and ``<name>_protocol``; lower is better for all three.
      precision: ``'float32'`` or ``'bfloat16'`` (the model computes in bfloat16 with a float32
        head, :func:`with_precision`); the metrics are computed in float64 either way.

    Returns ``{dataset: {'psnr', 'ssim', 'bicubic_psnr', 'bicubic_ssim', 'gain_psnr',
    'gain_ssim', 'n_images', 'images': [per image], 'protocol', 'protocol_description',
    'scale', 'channels', 'upsampled_input', 'seconds', ...}}`` (PSNR in dB, means over images).
    """
    from visionfw.console import Progress
    from visionfw.data.imresize import imresize_numpy
    from visionfw.metrics.psnr_ssim import evaluate_pair, protocol_description, protocol_y

    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"protocol={protocol!r} is unknown; use 'srcnn' (SRCNN/VDSR code) or 'edsr'.")
    scale = int(scale)
    if scale < 1:
        raise ConfigError(f"scale={scale} must be a positive integer.")
    if isinstance(datasets, (str, Path)):
        datasets = [d.strip() for d in str(datasets).split(",") if d.strip()]
    if not datasets:
        raise ConfigError("evaluate_model: no dataset given; pass e.g. datasets=['Set5', 'Set14'].")
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
    description = protocol_description(protocol, scale)
    texture = texture_metric_fns(texture_metrics, scale)
    model = with_precision(model, precision)
    results = {}
    for ds in datasets:
        records = load_eval_set(ds, scale, data_dir=data_dir, lr_dir=lr_dir if protocol == "edsr" else None)
        ds_name = Path(str(ds)).name if Path(str(ds)).is_dir() else str(ds)
        start = time.perf_counter()
        rows = []
        bar = Progress(len(records), f"{progress_label} {ds_name} x{scale}", unit="image", enabled=progress)
        for i, rec in enumerate(records):
            bar.update(i, line=i > 0 and i % max(1, int(log_every)) == 0)
            hr = as_hwc(rec.hr)
            check_measurable(hr, scale, f"{ds_name}/{rec.name}")
            lr = as_hwc(rec.lr)
            if channels == "rgb" and hr.shape[-1] == 1:  # EDSR's set_channel: grey -> 3 equal channels
                hr, lr = np.repeat(hr, 3, axis=-1), np.repeat(lr, 3, axis=-1)
            if protocol == "srcnn":
                src = protocol_y(hr, "srcnn") if channels == "y" else hr.astype(np.float64) / 255.0
                lr = as_hwc(imresize_numpy(src, 1.0 / scale))  # float LR, as the MATLAB test code
            x = prepare_input(lr, upsampled_input, channels, scale, protocol)
            sr = super_resolve(model, x, tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)
            if sr.shape[:2] != hr.shape[:2]:
                raise DataError(
                    f"{ds_name}/{rec.name}: model output {sr.shape[:2]} differs from the HR size "
                    f"{hr.shape[:2]} at x{scale}; is the model built for scale {scale}?"
                )
            m = evaluate_pair(sr, hr, scale, protocol)
            b = bicubic_metrics(hr, scale, protocol)
            rows.append(
                {
                    "name": rec.name,
                    "psnr": m["psnr"],
                    "ssim": m["ssim"],
                    "bicubic_psnr": b["psnr"],
                    "bicubic_ssim": b["ssim"],
                    "gain_psnr": m["psnr"] - b["psnr"],
                }
            )
            if texture:
                sr8, hr8 = _rgb_uint8(sr, hr, channels, scale)
                rows[-1].update({name: float(fn(sr8, hr8)) for name, (fn, _) in texture.items()})
            if save_images:
                _save_sr(Path(save_images) / ds_name / f"x{scale}" / f"{rec.name}.png", sr, hr, scale, channels)
        bar.update(len(records))
        bar.close()
        if not rows:
            raise DataError(f"dataset {ds!r} holds no images.")

        def mean(key, rows=rows):
            return float(np.mean(np.array([r[key] for r in rows], dtype=np.float64)))

        results[ds_name] = {
            "dataset": ds_name,
            "scale": scale,
            "n_images": len(rows),
            "psnr": mean("psnr"),
            "ssim": mean("ssim"),
            "bicubic_psnr": mean("bicubic_psnr"),
            "bicubic_ssim": mean("bicubic_ssim"),
            "gain_psnr": mean("psnr") - mean("bicubic_psnr"),
            "gain_ssim": mean("ssim") - mean("bicubic_ssim"),
            "protocol": protocol,
            "protocol_description": description,
            "channels": channels,
            "upsampled_input": bool(upsampled_input),
            "tile": tile,
            "self_ensemble": bool(self_ensemble),
            "precision": precision,
            "per_image": bool(per_image),
            "seconds": time.perf_counter() - start,
            "images": rows,
        }
        for name, (_, how) in texture.items():
            results[ds_name][name] = mean(name)
            results[ds_name][f"{name}_protocol"] = how
    return results


def texture_metric_fns(metrics, scale):
    """``{name: (fn(sr_uint8, hr_uint8) -> float, protocol text)}`` for :func:`evaluate_model`."""
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if isinstance(metrics, dict):
        return {name: (fn, f"{name} (user function, uint8 RGB, shave {scale} px)") for name, fn in metrics.items()}
    out = {}
    for name in metrics or ():
        if name == "niqe":
            from visionfw.metrics.niqe import load_pristine_model, niqe, niqe_protocol

            model = load_pristine_model()
            out[name] = (
                lambda sr, hr, model=model: niqe(sr, model),
                f"NIQE (lower is better): {niqe_protocol(model)}; on the SR output, shave {scale} px",
            )
        elif name in ("lpips", "lpips_alex", "lpips_vgg"):
            from visionfw.metrics.lpips import LPIPS

            metric = LPIPS("vgg" if name == "lpips_vgg" else "alex")
            out[name] = (
                lambda sr, hr, metric=metric: metric.distance(sr, hr),
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


def format_table(results, per_image=None):
    """A Markdown table (one row per dataset, optionally per image) with the protocol line; NIQE /
    LPIPS columns (``evaluate_model(texture_metrics=...)``) follow, each with its own protocol line."""
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


def write_results_json(path, results, model_name, weights_path, scale, protocol, extra=None):
    """Writes the results with what produced them (model, weights sha256, protocol) as JSON."""
    import visionfw
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.studies.reports import write_json
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
    return write_json(path, payload)
