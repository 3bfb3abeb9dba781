"""Running an SR model on one image: the cached forward pass, tiles, precision and self-ensemble.

* :func:`prepare_input` turns an LR image into a model's input (Y or RGB, bicubic-upscaled with
  MATLAB's bicubic for pre-upsampled models like SRCNN/VDSR), the way each evaluation protocol
  does (:mod:`visionfw.evaluate`);
* :func:`forward_fn` compiles a model once as a ``tf.function`` (shared by evaluation,
  :func:`visionfw.upscale` and :mod:`visionfw.studies.profiling`);
* :func:`super_resolve` runs one prepared image through a model, optionally in overlapping tiles
  (:func:`tiled_apply`, exact for local models with the :func:`receptive_radius` overlap) and/or
  with the x8 geometric self-ensemble (:func:`geometric_transforms`);
* :func:`with_precision` gives a bfloat16 copy of a model; :func:`infer_model_meta` probes what a
  model takes (Y or RGB, pre-upsampled or not, its scale).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from visionfw.data.image_io import to_float01
from visionfw.errors import ConfigError, DataError
from visionfw.metrics.psnr_ssim import as_hwc

if TYPE_CHECKING:
    import keras

__all__ = [
    "prepare_input",
    "PRECISIONS",
    "forward_fn",
    "forward_numpy",
    "with_precision",
    "receptive_radius",
    "tiling_is_exact",
    "tiled_apply",
    "geometric_transforms",
    "super_resolve",
    "infer_model_meta",
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


def _as_float(img):
    if img.dtype == np.uint8:
        return to_float01(img, np.float64)
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64)
    raise DataError(f"image dtype {img.dtype} unsupported; use uint8 or float in [0, 1].")


def prepare_input(
    lr: np.ndarray,
    upsampled_input: bool | dict[str, Any],
    channels: str = "y",
    scale: int | None = None,
    protocol: str = "srcnn",
) -> np.ndarray:
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

    Returns:
      The HWC float32 input.

    Raises:
      ConfigError: unknown channels or protocol; a pre-upsampled model without a scale.
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

    factor = float(scale or 0)  # only used for a pre-upsampled model, which has a scale (checked above)
    lr = as_hwc(lr)
    upscaled = False
    if upsampled_input and protocol == "edsr" and lr.dtype == np.uint8:
        lr = as_hwc(imresize_numpy(lr, factor))  # uint8 in, uint8 out, rounded per pass
        upscaled = True
    if channels == "y":
        if lr.shape[-1] == 1:
            x = _as_float(lr)
        elif protocol == "srcnn":
            x = to_float01(rgb_to_y(quantize(lr)), np.float64)
        else:
            x = rgb_to_y(_as_float(lr))
    else:
        x = _as_float(lr)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
    if upsampled_input and not upscaled:
        x = as_hwc(imresize_numpy(x, factor))
    return x.astype(np.float32)


# an HWC array -> an HWC array
Transform = Callable[[np.ndarray], np.ndarray]

# model -> its compiled forward pass; weak keys, so the cache never keeps a model alive
_FORWARD_CACHE: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def forward_fn(model: keras.Model) -> Callable[..., Any]:
    """A ``tf.function`` of ``model`` for NHWC float32 batches of any size, cached per model.

    The one compiled forward pass of the library: evaluation, upscaling and profiling (latency,
    memory) share it, so a model is traced once.

    Args:
      model: a single-input ``keras.Model``.

    Returns:
      The ``tf.function`` (input signature ``[None, None, None, channels]`` float32).

    Raises:
      ConfigError: the model has several inputs.
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


def with_precision(model: keras.Model, precision: str = "float32") -> keras.Model:
    """``model`` itself for ``'float32'``; for ``'bfloat16'`` a copy (same weights) that computes in
    bfloat16 with a float32 output head (:func:`visionfw.zoo.builder.set_compute_policy`).

    Measured: EDSR-baseline runs 1.8-2.2x faster on an AVX512_BF16 CPU
    (``benchmarks/inference_speed.py``); on the official weights of IMDN, LapSRN, SRCNN and VDSR
    (Set5/Set14, published protocols) it costs 0.00-0.15 dB, mean 0.027 (VDSR x4: 0.15;
    ``experiments/bf16_inference.py``), more than the 0.01 dB a reproduction is judged by, so
    float32 is the default everywhere.

    Args:
      model: a ``keras.Model``.
      precision: one of :data:`PRECISIONS`.

    Returns:
      ``model`` or its bfloat16 copy.

    Raises:
      ConfigError: an unknown precision.
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


def forward_numpy(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    """The model's (first) output for an NHWC batch, fetched to the host as numpy.

    Args:
      model: a single-input ``keras.Model``.
      batch: NHWC, cast to float32.

    Returns:
      The NHWC output (the first one for a model with several outputs).
    """
    out = forward_fn(model)(np.ascontiguousarray(batch, dtype=np.float32))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out.numpy()


def _forward_one(model, image):
    """The model's output for one HWC image."""
    return forward_numpy(model, image[None])[0]


def receptive_radius(model: keras.Model) -> int:
    """Upper bound (in input pixels) on how far an output pixel's inputs reach.

    Computed from the kernel sizes: the sum over every convolution of
    ``ceil((k - 1) * dilation / 2)`` per axis (max of the two), transposed convolutions
    counted with ``ceil(k / 2)``.  Convolutions that run after an upsampling layer (at
    the HR resolution) are counted at full size although they reach only ``1/scale`` as
    far in input pixels, so this over-estimates -- the safe side for tiling.  Every call
    counts: a layer whose weights are shared (DRRN's recursive units, TAD's recursions) adds
    its reach once per call, and parallel branches add up (over-estimates again).  Layers
    inside nested models are included; MATLAB bicubic layers add 3.

    Args:
      model: a ``keras.Model``.

    Returns:
      The radius in input pixels.
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


def tiling_is_exact(model: keras.Model) -> bool:
    """Whether tiled inference equals whole-image inference for ``model``.

    Args:
      model: a ``keras.Model``.

    Returns:
      False when a layer mixes the whole image (RCAN's channel attention, global pooling): tiled
      inference then differs from whole-image inference (like RCAN's own ``chop``).
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not tiling_is_exact(layer):
                return False
        elif type(layer).__name__ in _GLOBAL_CLASSES:
            return False
    return True


def tiled_apply(
    run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, overlap: int, name: str = "model"
) -> np.ndarray:
    """``run`` (HWC -> HWC, an integer upscale) applied to ``image`` in ``tile x tile`` pieces, each
    with ``overlap`` pixels of context that is cropped away after; the edge tiles are smaller.

    Tile shapes vary at the edges on purpose: ``forward_fn`` is traced once for every shape, and
    a new shape's first call cost under 5% more than a repeat (oneDNN primitive creation), while
    same-size windows shifted inwards would compute 1.8x the pixels of a 2040x1356 x4 image's
    tiles (``benchmarks/inference_speed.py``).  Shared by :func:`super_resolve` and the
    benchmarks' onnxruntime / PyTorch runners.

    Args:
      run: HWC float32 -> HWC float32, the output an integer multiple of the input's size.
      image: HWC float32.
      tile: input pixels per tile side.
      overlap: input pixels of context around each tile.
      name: the model's name, for the error message.

    Returns:
      The HWC float32 output of the whole image.

    Raises:
      DataError: ``run`` is not an integer upscale.
    """
    h, w = image.shape[:2]
    out = np.zeros((0, 0, 0), np.float32)
    ratio = 0  # output pixels per input pixel, measured on the first tile
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            cy0, cy1 = max(0, y0 - overlap), min(h, y1 + overlap)
            cx0, cx1 = max(0, x0 - overlap), min(w, x1 + overlap)
            piece = run(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]))
            if not ratio:
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


def geometric_transforms() -> list[tuple[Transform, Transform]]:
    """The 8 (forward, inverse) pairs of the dihedral group (rot90 x flip) on HWC arrays.

    Returns:
      A list of 8 ``(forward, inverse)`` functions, the identity first.
    """
    pairs: list[tuple[Transform, Transform]] = []
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


def _single_image(model, image):
    """``image`` as float32 HWC with the channels ``model`` takes; DataError otherwise."""
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
    return image


def _tile_overlap(model, tile, tile_overlap):
    """The checked overlap in input pixels (default :func:`receptive_radius`)."""
    if tile < 1:
        raise ConfigError(f"tile={tile} must be a positive number of input pixels.")
    overlap = receptive_radius(model) if tile_overlap is None else int(tile_overlap)
    if overlap < 0:
        raise ConfigError(f"tile_overlap={overlap} must be >= 0.")
    return overlap


def _ensemble_average(once, image):
    """The mean of ``once`` over the 8 flips/rotations of ``image``, each output turned back."""
    total = None
    for fwd, inv in geometric_transforms():
        y = inv(once(np.ascontiguousarray(fwd(image)))).astype(np.float64)
        total = y if total is None else total + y
    return (total / 8.0).astype(np.float32)


def super_resolve(
    model: keras.Model,
    image: np.ndarray,
    tile: int | None = None,
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The model's output (float32 HWC, not clipped) for one prepared input image (HWC).

    Args:
      model: a single-input ``keras.Model``.
      image: HWC float in [0, 1] (see :func:`prepare_input`); NHWC with N = 1
        also accepted.
      tile: when set, run in ``tile x tile`` input tiles (the last ones smaller); for
        LR-input models the output tiles are ``scale`` times larger.
      tile_overlap: input pixels of context added around each tile (cropped away after);
        default :func:`receptive_radius`, which makes the result equal whole-image
        inference up to float round-off for models where :func:`tiling_is_exact`.
      self_ensemble: average the outputs over the 8 flips/rotations (EDSR's "+").
      progress: ``fn(done, total)`` called after each forward pass (tiles times ensemble passes).

    Returns:
      The HWC float32 output.

    Raises:
      DataError: a batch, a non-HWC image or the wrong number of channels.
      ConfigError: a tile or overlap out of range.
    """
    image = _single_image(model, image)
    overlap = 0
    if tile is not None:
        tile = int(tile)
        overlap = _tile_overlap(model, tile, tile_overlap)
    whole = tile is None or (image.shape[0] <= tile and image.shape[1] <= tile)
    tiles = 1 if whole else math.ceil(image.shape[0] / tile) * math.ceil(image.shape[1] / tile)
    passes = tiles * (8 if self_ensemble else 1)
    done = 0

    def run(x):
        nonlocal done
        y = _forward_one(model, x)
        if progress is not None:
            done += 1
            progress(done, passes)
        return y

    def once(x):
        if whole:
            return run(x)
        return tiled_apply(run, x, tile, overlap, name=model.name)

    return _ensemble_average(once, image) if self_ensemble else once(image)


def infer_model_meta(model: keras.Model, probe: int = 12) -> dict[str, Any]:
    """{'channels', 'upsampled_input', 'ratio'} of a model from its input and a probe run.

    Input channels 1 -> 'y', 3 -> 'rgb'; the output of a ``probe x probe`` zero image has
    the input's size -> pre-upsampled (``ratio`` 1), else ``ratio`` = output / input size.

    Args:
      model: a single-input SR ``keras.Model``.
      probe: the side of the zero image it is run on.

    Returns:
      ``{'channels': 'y' | 'rgb', 'upsampled_input': bool, 'ratio': float}``.

    Raises:
      ConfigError: the model takes neither 1 nor 3 channels.
    """
    channels = model.inputs[0].shape[-1]
    if channels not in (1, 3):
        raise ConfigError(f"model {model.name!r} takes {channels} channels; SR evaluation needs 1 (Y) or 3 (RGB).")
    out = _forward_one(model, np.zeros((probe, probe, channels), np.float32))
    ratio = out.shape[0] / probe
    return {"channels": "y" if channels == 1 else "rgb", "upsampled_input": out.shape[0] == probe, "ratio": ratio}
