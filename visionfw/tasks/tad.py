"""Task-aware downscaling (TAD): an autoencoder whose latent is a readable low-resolution image.

The model (see ``model_defs/tad.py``) maps an HR image to ``[SHR, SLR]``: the encoder
gives ``SLR = encoder(HR) + guide(HR)`` (guide: MATLAB bicubic ``1/s`` downscale, or
for the colour models the luma of HR), a :class:`visionfw.zoo.layers.Quantize` layer
rounds SLR to 8 bits once switched on, and the decoder restores ``SHR``.

Loss (Kim et al., ECCV 2018, with the thesis' epsilon ball)::

    loss = alpha * L1(SHR, HR) + beta * L_latent
    L_latent = mean_i [ d_i * 1(255 * d_i >= epsilon) ],   d_i = mean |SLR_i - guide_i|

``d_i`` is the per-image mean absolute deviation on the [0, 1] scale, and its
*normalised value* is ``255 * d_i``: grey levels of an 8-bit image.  So ``epsilon=10``
lets the LR image drift 10 grey levels on average from the guide before the latent
term acts; ``epsilon=0`` always applies it.

x4 and x16 are the x2 autoencoder applied recursively with the *same* weights: one
encoder sub-model called ``log2(s)`` times, then one decoder sub-model called
``log2(s)`` times (sub-models named ``encoder`` and ``decoder`` in the full model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import ConfigError, DataError
from visionfw.tasks.base import Task, hr_of, register_task
from visionfw.tasks.options import typed_options
from visionfw.zoo.layers import LUMA_WEIGHTS, Luma, Quantize  # noqa: F401  (re-exported)

__all__ = [
    "Luma",
    "latent_deviation",
    "latent_loss",
    "tad_loss",
    "TADTask",
    "set_quantization",
    "quantization_enabled",
    "set_quantize_gradient",
    "guide_for",
    "TADObjective",
    "split_model",
    "downscale",
    "upscale",
    "evaluate_tad",
    "evaluate_color_tad",
    "COLOR_PROTOCOL",
    "add_noise",
]

# --------------------------------------------------------------------------- losses


def latent_deviation(slr, guide):
    """Per-image mean |SLR - guide| on the [0, 1] scale, shape (N,)."""
    slr = tf.cast(slr, tf.float32)
    guide = tf.cast(guide, tf.float32)
    return tf.reduce_mean(tf.abs(slr - guide), axis=[1, 2, 3])


def latent_loss(slr, guide, epsilon=0.0):
    """Epsilon-ball latent loss: mean over images of ``d_i`` where ``255 * d_i >= epsilon``, else 0."""
    d = latent_deviation(slr, guide)
    active = tf.cast(d * 255.0 >= float(epsilon), tf.float32)
    return tf.reduce_mean(d * active)


def tad_loss(hr, shr, slr, guide, *, alpha=10.0, beta=1.0, epsilon=0.0):
    """``alpha * L1(SHR, HR) + beta * L_latent``; returns (loss, dict of its terms)."""
    rec = tf.reduce_mean(tf.abs(tf.cast(shr, tf.float32) - tf.cast(hr, tf.float32)))
    lat = latent_loss(slr, guide, epsilon)
    return alpha * rec + beta * lat, {"l1_hr": rec, "l_latent": lat}


def guide_for(hr, scale, latent="bicubic"):
    """The LR guide of an NHWC batch: MATLAB bicubic ``1/scale`` (float, unrounded) or the luma."""
    from visionfw.data.imresize import imresize

    if latent == "luma":
        return Luma()(tf.cast(hr, tf.float32))
    if latent != "bicubic":
        raise ConfigError(f"latent={latent!r} is unknown; use 'bicubic' or 'luma'.")
    return imresize(tf.cast(hr, tf.float32), scale=1.0 / float(scale))


# --------------------------------------------------------------------------- model helpers


def _quantizers(model):
    found = []

    def walk(layer):
        if isinstance(layer, Quantize):
            found.append(layer)
        for sub in getattr(layer, "layers", []) or []:
            walk(sub)

    walk(model)
    return found


def set_quantization(model, on):
    """Switches every Quantize layer of ``model`` on or off (its ``enabled`` variable)."""
    qs = _quantizers(model)
    if not qs:
        raise ConfigError(f"model {model.name!r} has no Quantize layer to switch.")
    for q in qs:
        q.enabled.assign(1.0 if on else 0.0)


def set_quantize_gradient(model, gradient):
    """Sets the gradient every Quantize layer of ``model`` passes back ('clipped' or 'identity',
    see :class:`visionfw.zoo.layers.Quantize`); takes effect in the next traced step."""
    if gradient not in Quantize.GRADIENTS:
        raise ConfigError(f"quantize_gradient={gradient!r} is unknown; use one of {Quantize.GRADIENTS}.")
    qs = _quantizers(model)
    if not qs:
        raise ConfigError(f"model {model.name!r} has no Quantize layer.")
    for q in qs:
        q.gradient = gradient


def quantization_enabled(model):
    """Whether the model's Quantize layers round (True only if all do)."""
    qs = _quantizers(model)
    return bool(qs) and all(float(q.enabled.numpy()) > 0.5 for q in qs)


def split_model(model, times=1):
    """(encoder, decoder) Keras models sharing ``model``'s weights.

    ``times`` is the number of recursions (``log2(scale)`` for aetad; 1 for x2 and colour).
    The encoder includes nothing after SLR (no quantisation: files are 8-bit anyway).
    """
    try:
        enc = model.get_layer("encoder")
        dec = model.get_layer("decoder")
    except ValueError as exc:
        raise ConfigError(
            f"model {model.name!r} has no 'encoder'/'decoder' sub-models; build it from "
            "visionfw.model_defs.tad (e.g. visionfw.get_model('aetad_skip2'))."
        ) from exc
    x_in = keras.Input(shape=enc.inputs[0].shape[1:])
    x = x_in
    for _ in range(times):
        x = enc(x)
    encoder = keras.Model(x_in, x, name=f"{model.name}_encoder")
    y_in = keras.Input(shape=dec.inputs[0].shape[1:])
    y = y_in
    for _ in range(times):
        y = dec(y)
    decoder = keras.Model(y_in, y, name=f"{model.name}_decoder")
    return encoder, decoder


def _batch(img):
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3:
        return img[None], True
    if img.ndim == 4:
        return img, False
    raise DataError(f"expected an HWC or NHWC float image, got shape {img.shape}.")


def downscale(encoder: Any, hr: Any) -> np.ndarray:
    """Task-aware LR of ``hr``, quantised to 8 bits like a stored PNG.

    Args:
        encoder: The TAD encoder (:func:`split_model`).
        hr: An HWC or NHWC float image (batch) in [0, 1].

    Returns:
        The LR image(s), float32 in [0, 1] on the 8-bit grid, with ``hr``'s rank.
    """
    x, single = _batch(hr)
    lr = np.asarray(encoder(x, training=False))
    lr = to_float01(to_uint8(lr))
    return lr[0] if single else lr


def upscale(decoder: Any, lr: Any) -> np.ndarray:
    """Restored HR from a task-aware LR image.

    Args:
        decoder: The TAD decoder (:func:`split_model`).
        lr: An HWC or NHWC float image (batch) in [0, 1].

    Returns:
        The HR image(s), float32 clipped to [0, 1], with ``lr``'s rank.
    """
    x, single = _batch(lr)
    hr = np.clip(np.asarray(decoder(x, training=False)), 0.0, 1.0)
    return (hr[0] if single else hr).astype(np.float32)


def add_noise(img, sigma, seed=0):
    """``img`` plus white Gaussian noise of std ``sigma`` (on the [0, 1] scale), not clipped."""
    rng = np.random.default_rng(seed)
    return (np.asarray(img, np.float32) + rng.normal(0.0, sigma, np.shape(img))).astype(np.float32)


# --------------------------------------------------------------------------- objective and trainer task


class TADObjective:
    """TAD loss for any loop: ``compute_loss(model, batch, training) -> (loss, metrics)``.

    ``batch`` is an NHWC float HR batch in [0, 1] (or a dict with ``'hr'``, or an (lr, hr) pair).
    :meth:`on_step` switches SLR quantisation on once ``step >= quantize_from``.
    """

    def __init__(
        self,
        scale=2,
        *,
        alpha=10.0,
        beta=1.0,
        epsilon=0.0,
        quantize_from=None,
        latent="bicubic",
        quantize_gradient="clipped",
    ):
        if alpha < 0 or beta < 0 or epsilon < 0:
            raise ConfigError(f"TAD loss: alpha={alpha}, beta={beta}, epsilon={epsilon} must be >= 0.")
        if latent not in ("bicubic", "luma"):
            raise ConfigError(f"TAD loss: latent={latent!r} is unknown; use 'bicubic' or 'luma'.")
        if quantize_gradient not in Quantize.GRADIENTS:
            raise ConfigError(
                f"TAD: quantize_gradient={quantize_gradient!r} is unknown; use one of {Quantize.GRADIENTS}."
            )
        self.quantize_gradient = quantize_gradient
        self.scale = int(scale)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.epsilon = float(epsilon)
        self.quantize_from = quantize_from
        self.latent = latent

    def on_step(self, model, step):
        if self.quantize_from is not None:
            # a Python attribute read when the step is traced: set before the first step
            if any(q.gradient != self.quantize_gradient for q in _quantizers(model)):
                set_quantize_gradient(model, self.quantize_gradient)
            want = step >= self.quantize_from
            if want != quantization_enabled(model):
                set_quantization(model, want)

    def compute_loss(self, model, batch, training):
        hr = tf.cast(hr_of(batch), tf.float32)
        shr, slr = model(hr, training=training)
        guide = guide_for(hr, self.scale, self.latent)
        loss, terms = tad_loss(hr, shr, slr, guide, alpha=self.alpha, beta=self.beta, epsilon=self.epsilon)
        mse = tf.reduce_mean(tf.square(tf.clip_by_value(tf.cast(shr, tf.float32), 0.0, 1.0) - hr))
        terms["psnr_hr"] = -10.0 * tf.math.log(mse + 1e-12) / math.log(10.0)
        return loss, terms


class TADTask(Task):
    """``visionfw train --task=tad``: the TAD autoencoder with :class:`TADObjective`.

    Options come from ``config.task_options`` (a dict; alpha, beta, epsilon, quantize_from,
    quantize_gradient, and max_loss_growth: stop when a logged loss exceeds this many times the
    lowest logged so far, default 3, 0 = never),
    the HR patch is ``config.lr_patch * scale``, patches come from the shared input pipeline
    (``config.train_data``, or the embedded photos).  The model's Quantize layer is switched
    on by :meth:`begin_step`.  The loss terms are logged as ``train_<term>``.
    """

    name = "tad"
    metric_names = ("l1_hr", "l_latent", "psnr_hr")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        opts = typed_options(
            getattr(config, "task_options", None),
            {
                "alpha": float,
                "beta": float,
                "epsilon": float,
                "quantize_from": (int, type(None)),
                "quantize_gradient": str,
                "max_loss_growth": float,
            },
            "tad",
        )
        growth = opts.pop("max_loss_growth", 3.0)
        self.max_loss_growth = float(growth) if growth else 0.0
        self._lowest_loss = math.inf
        self._model = None
        scale = int(getattr(config, "scale", 2) or 2)
        latent = "bicubic"
        if getattr(config, "model", None):
            meta = self.meta
            latent = meta.get("latent", "bicubic")
            scale = int(meta.get("scale", scale)) or 1
        self.objective = TADObjective(scale=scale, latent=latent, **opts)

    def build_model(self, dtype_policy: str | None = None) -> Any:
        """The TAD autoencoder (kept: :meth:`begin_step` switches its quantisation)."""
        self._model = super().build_model(dtype_policy)
        return self._model

    def begin_step(self, step: int) -> None:
        """Switches SLR quantisation on once ``step >= quantize_from``."""
        if self._model is not None:
            self.objective.on_step(self._model, int(step))

    def check_loss(self, step: int, loss: float) -> str | None:
        """Stops the run when a logged loss exceeds ``max_loss_growth`` times the lowest one so far."""
        if self.max_loss_growth and loss > self.max_loss_growth * self._lowest_loss:
            return (
                f"the TAD loss exploded ({loss:.4g}, more than {self.max_loss_growth:g} times its lowest "
                f"logged value {self._lowest_loss:.4g}). Lower lr, or keep quantize_gradient=clipped; "
                "task option max_loss_growth=0 turns this check off."
            )
        self._lowest_loss = min(self._lowest_loss, float(loss))
        return None

    def make_dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """HR patches of ``lr_patch * scale`` pixels, as ``(hr,)`` tuples."""
        return self.hr_patch_dataset(int(self.config.lr_patch) * max(1, self.objective.scale), start_step)

    def compute_loss(self, model: Any, batch: Any, training: bool) -> tuple[Any, dict[str, Any]]:
        """The TAD loss and its terms (:meth:`TADObjective.compute_loss`)."""
        return self.objective.compute_loss(model, batch, training)

    def validate(self, model: Any) -> dict[str, Any]:
        """:func:`evaluate_tad` on each of ``config.val_data``: ``{set: {psnr, ssim, bicubic_psnr,
        lr_psnr}}`` plus ``'protocol'``."""
        from visionfw.evaluate import load_eval_set

        out, scale = {}, self.objective.scale
        times = int(self.meta.get("recursions", 1))
        for name in list(getattr(self.config, "val_data", None) or []):
            records = load_eval_set(name, max(scale, 1), getattr(self.config, "data_dir", None))
            hr = [rec.hr for rec in records]
            if self.objective.latent == "luma":  # colour TAD: RGB restored from one grey channel
                r = evaluate_color_tad(model, hr)
                out[name] = {k: r[k] for k in ("psnr", "ssim", "grey_psnr", "latent_psnr")}
            else:
                r = evaluate_tad(model, hr, scale, times=times)
                out[name] = {k: r[k] for k in ("psnr", "ssim", "bicubic_psnr", "lr_psnr")}
            out["protocol"] = r["protocol"]
        return out


register_task("tad", TADTask)


# --------------------------------------------------------------------------- evaluation


def _as_rgb(img_uint8):
    img = np.asarray(img_uint8)
    if img.ndim == 2:
        img = img[..., None]
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def _back_to_channels(out, like):
    """Grey HR images (Set14 bridge) go in as 3 equal channels; their output is the channel mean."""
    if np.asarray(like).ndim == 2 or np.asarray(like).shape[-1] == 1:
        return out.mean(axis=-1, keepdims=True)
    return out


def evaluate_tad(
    model: Any,
    hr_images: Iterable[np.ndarray],
    scale: int,
    *,
    times: int = 1,
    protocol: str = "edsr",
    noise_sigma: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """TAD on uint8 HR images: SLR stored as 8 bits (+ optional noise), then decoded.

    Args:
        model: A TAD autoencoder (encoder then decoder).
        hr_images: uint8 HR images (HW or HWC); each is cropped to a multiple of ``scale``.
        scale: The downscaling factor.
        times: How many times the autoencoder applies its down/up pair (:func:`split_model`).
        protocol: ``'edsr'`` or ``'srcnn'`` (:mod:`visionfw.metrics.psnr_ssim`).
        noise_sigma: Std of white Gaussian noise added to the SLR (on the [0, 1] scale).
        seed: The noise's seed.

    Returns:
        ``psnr``, ``ssim``: HR metrics under ``protocol`` on Y with ``scale`` px shaved;
        ``bicubic_psnr``: the same for MATLAB bicubic down- then up-scaling (the baseline TAD has
        to beat), without noise; ``lr_psnr``: RGB PSNR of the 8-bit SLR against 8-bit MATLAB
        bicubic of HR, no shave; ``protocol``: the description.
    """
    from visionfw.data.imresize import imresize_numpy, modcrop
    from visionfw.evaluate import bicubic_metrics
    from visionfw.metrics import psnr_ssim as metrics

    encoder, decoder = split_model(model, times)
    results, lr_psnrs, bicubic = [], [], []
    for hr in hr_images:
        hr = modcrop(np.asarray(hr), scale)
        x = to_float01(_as_rgb(hr))
        slr = downscale(encoder, x)
        bic = to_float01(imresize_numpy(_as_rgb(hr), 1.0 / scale), np.float64)
        lr_psnrs.append(metrics.psnr(slr.astype(np.float64), bic))
        if noise_sigma > 0:
            slr = add_noise(slr, noise_sigma, seed)
        out = _back_to_channels(upscale(decoder, slr), hr)
        results.append(metrics.evaluate_pair(out, hr, scale, protocol=protocol, channel="y"))
        bicubic.append(bicubic_metrics(hr, scale, protocol)["psnr"])
    mean = metrics.mean_metrics(results)
    mean["lr_psnr"] = float(np.mean(lr_psnrs))
    mean["bicubic_psnr"] = float(np.mean(bicubic))
    return mean


COLOR_PROTOCOL = (
    "grey latent stored as an 8-bit image, decoded; PSNR and SSIM on RGB of the uint8 output against "
    "the uint8 HR, no shave; images without colour (all channels equal) left out"
)


def _has_colour(img_uint8):
    img = np.asarray(img_uint8)
    return (
        img.ndim == 3
        and img.shape[-1] == 3
        and not (np.all(img[..., 0] == img[..., 1]) and np.all(img[..., 1] == img[..., 2]))
    )


def evaluate_color_tad(model, hr_images):
    """Colour TAD (a model with a one-channel luma-guided latent) on uint8 RGB images.

    Each image's grey latent is stored as 8 bits and decoded to RGB.  Returns dict(psnr, ssim: of
    the decoded RGB under :data:`COLOR_PROTOCOL`; grey_psnr: the same PSNR for the plain 8-bit luma
    ``0.299 R + 0.587 G + 0.114 B`` replicated to three channels, the reference a colour decoder has to
    beat; latent_psnr: PSNR of the 8-bit latent against that 8-bit luma (how readable the grey image
    is); count; skipped: images left out as they have no colour (Set14's bridge and man: their grey
    image already is the image); protocol).
    """
    from visionfw.metrics import psnr_ssim as metrics

    encoder, decoder = split_model(model, 1)
    rgb, grey, latent, ssims, skipped = [], [], [], [], 0
    for hr in hr_images:
        if not _has_colour(hr):
            skipped += 1
            continue
        truth = to_float01(np.asarray(hr), np.float64)
        x = truth.astype(np.float32)
        code = downscale(encoder, x)
        out = to_float01(to_uint8(upscale(decoder, code)), np.float64)
        code = to_float01(to_uint8(code), np.float64)
        luma = to_float01(to_uint8(truth @ np.asarray(LUMA_WEIGHTS)), np.float64)[..., None]
        rgb.append(metrics.psnr(out, truth))
        ssims.append(metrics.ssim(out, truth))
        grey.append(metrics.psnr(np.repeat(luma, 3, axis=-1), truth))
        latent.append(metrics.psnr(code, luma))
    if not rgb:
        raise DataError("evaluate_color_tad: no colour image to evaluate (every image was grey).")
    return dict(
        psnr=float(np.mean(rgb)),
        ssim=float(np.mean(ssims)),
        grey_psnr=float(np.mean(grey)),
        latent_psnr=float(np.mean(latent)),
        count=len(rgb),
        skipped=skipped,
        protocol=COLOR_PROTOCOL,
    )
