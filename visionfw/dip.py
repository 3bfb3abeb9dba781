"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018): restore one image with no training set.

An untrained hourglass ``f_theta`` (``model_defs/hourglass.py``) maps a fixed noise tensor ``z`` to an
image; its weights are fitted to the one degraded observation ``x_hat``, and the structure of the
network makes natural images easier to reach than noise:

    denoise   min || f(z) - x_hat ||^2                 stopped early (below)
    inpaint   min || (f(z) - x_hat) * m ||^2            m = 1 where the pixel is known
    sr        min || d(f(z)) - x_hat ||^2               d = MATLAB bicubic 1/scale (differentiable TF)

Every step perturbs the input, ``z + reg_noise_std * N(0, 1)`` (the paper's regulariser), and runs as
one compiled ``tf.function`` (forward, loss, gradient, Adam update, output average).

Early stopping for denoising (the paper fixes an iteration count per image): the discrepancy
principle.  The clean image itself is at mean squared distance ``sigma^2`` from the noisy one, so the
run stops at the first step where the data term falls to ``discrepancy * sigma^2``: from there on the
network starts fitting the noise.  ``noise_sigma`` is the noise level on the [0, 1] scale; left out,
it is estimated from the image (median absolute Haar diagonal detail / 0.6745, Donoho and Johnstone).

    from visionfw.dip import deep_image_prior
    out, history = deep_image_prior("sr", lr_image, scale=4, steps=2000, reference=hr_image)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import ConfigError, DataError

__all__ = ["TASKS", "DEFAULTS", "deep_image_prior", "degrade", "estimate_noise_sigma", "as_float_image"]

TASKS = ("denoise", "inpaint", "sr")
# The authors' notebooks: Adam 0.01; input perturbation 1/30 (denoising) or 0.03 (SR, inpainting).
# Their denoising run also averages the outputs (weight 0.99) over 3000 fixed steps; with early
# stopping the average lags far behind the output it stops at (measured: 19 vs 34 dB), so it is off.
DEFAULTS = {"denoise": {"reg_noise_std": 1.0 / 30.0}, "inpaint": {"reg_noise_std": 0.03}, "sr": {"reg_noise_std": 0.03}}


def as_float_image(image, what="image"):
    """An image path, uint8 or float array as float32 HWC in [0, 1]."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from visionfw.data.image_io import read_image

        image = read_image(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise DataError(f"{what}: expected an HW or HWC image with 1 or 3 channels, got shape {arr.shape}.")
    arr = arr[..., :3] if arr.shape[-1] == 4 else arr
    if arr.dtype == np.uint8:
        return to_float01(arr)
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{what}: dtype {arr.dtype} unsupported; pass uint8 or float in [0, 1].")
    return arr.astype(np.float32)


def estimate_noise_sigma(image):
    """White Gaussian noise level of ``image`` (float [0, 1]): median |HH| / 0.6745 of the Haar diagonal
    detail (each detail coefficient of pure noise has the noise's standard deviation), channel mean."""
    x = as_float_image(image).astype(np.float64)
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    if h < 2 or w < 2:
        raise DataError(f"estimate_noise_sigma: image of shape {x.shape} is too small (needs 2x2).")
    x = x[:h, :w]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.mean([np.median(np.abs(hh[..., c])) / 0.6745 for c in range(x.shape[-1])]))


def degrade(task, clean, scale=4, sigma=25.0 / 255.0, drop=0.5, seed=0):
    """A synthetic observation of ``clean`` for ``task``: ``(observation, mask or None)``.

    sr: MATLAB bicubic ``1/scale`` of the uint8 image (the benchmark LR; ``clean`` is mod-cropped first);
    denoise: plus white Gaussian noise of std ``sigma`` (not clipped); inpaint: a random fraction
    ``drop`` of the pixels removed (set to 0), mask 1 where kept.
    """
    from visionfw.data.imresize import imresize, modcrop

    x = as_float_image(clean, "clean")
    rng = np.random.default_rng(seed)
    if task == "sr":
        hr = modcrop(to_uint8(x), int(scale))
        return to_float01(imresize(hr, scale=1.0 / int(scale)).numpy()), None
    if task == "denoise":
        return (x + rng.normal(0.0, sigma, x.shape)).astype(np.float32), None
    if task == "inpaint":
        mask = (rng.random(x.shape[:2] + (1,)) >= drop).astype(np.float32)
        return x * mask, mask
    raise ConfigError(f"task={task!r} is unknown; use one of {', '.join(TASKS)}.")


def _check(task, image, mask, scale, steps):
    """``(x_hat, mask or None, (h, w) of the output)`` of checked inputs; ConfigError / DataError otherwise."""
    if task not in TASKS:
        raise ConfigError(f"task={task!r} is unknown; use one of {', '.join(TASKS)}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer.")
    x_hat = as_float_image(image)
    h, w = x_hat.shape[:2]
    if task == "sr":
        if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
            raise ConfigError(f"scale={scale!r}: super-resolution needs an integer scale >= 2.")
        h, w = h * int(scale), w * int(scale)
    m = None
    if task == "inpaint":
        if mask is None:
            raise ConfigError("task='inpaint' needs mask= (an image or array, 1/white where the pixel is known).")
        m = as_float_image(mask, "mask")
        if m.shape[:2] != x_hat.shape[:2]:
            raise DataError(
                f"mask of size {m.shape[:2]} does not match the image {x_hat.shape[:2]}; "
                "pass a mask of the image's size."
            )
        m = (m.mean(axis=-1, keepdims=True) > 0.5).astype(np.float32)
    elif mask is not None:
        raise ConfigError(f"mask= is only used by task='inpaint', not {task!r}; leave it out.")
    return x_hat, m, (h, w)


@dataclasses.dataclass(frozen=True)
class _Problem:
    """The checked inputs of one fit: the observation, its mask, the output size, the reference."""

    task: str
    x_hat: np.ndarray
    mask: np.ndarray | None
    size: tuple[int, int]
    scale: Any  # an int >= 2 for 'sr'; unused otherwise
    reference: np.ndarray | None


def _problem(task, image, mask, scale, steps, reference):
    """The :class:`_Problem` of the arguments; DataError when the reference is not of the output's size."""
    x_hat, m, size = _check(task, image, mask, scale, steps)
    ref = None
    if reference is not None:
        ref = as_float_image(reference, "reference")
        if ref.shape[:2] != size:
            raise DataError(
                f"reference of size {ref.shape[:2]} does not match the output size {size}; "
                "mod-crop the reference to a multiple of the scale."
            )
    return _Problem(task, x_hat, m, size, scale, ref)


def _perturbation(task, reg_noise_std, smoothing):
    """The std of the per-step input perturbation (the task's default when None); checks ``smoothing``."""
    if smoothing is not None and not 0.0 <= float(smoothing) < 1.0:
        raise ConfigError(f"smoothing={smoothing!r} must be in [0, 1) or None.")
    return DEFAULTS[task]["reg_noise_std"] if reg_noise_std is None else float(reg_noise_std)


def _stopping_rule(task, early_stop, noise_sigma, x_hat):
    """``(early_stop, noise_sigma)``: on by default for denoising, sigma estimated when not given."""
    early_stop = (task == "denoise") if early_stop is None else bool(early_stop)
    if early_stop and task != "denoise":
        raise ConfigError(f"early_stop is the denoising stopping rule; task={task!r} runs its step budget.")
    if early_stop and noise_sigma is None:
        noise_sigma = estimate_noise_sigma(x_hat)
    return early_stop, noise_sigma


def _build_hourglass(model, model_kwargs, input_depth, channels):
    """``(spec, keras model)`` of the zoo name or spec dict ``model``."""
    from visionfw.zoo.builder import build_model
    from visionfw.zoo.registry import get_spec

    if isinstance(model, dict):
        if model_kwargs:
            raise ConfigError("model_kwargs apply to a zoo name; write them into the spec dict instead.")
        spec = model
    else:
        spec = get_spec(
            model, **dict({"in_channels": int(input_depth), "out_channels": int(channels)}, **(model_kwargs or {}))
        )
    return spec, build_model(spec)


@dataclasses.dataclass
class _Fit:
    """One fit: the problem, the network and its spec, the compiled step and the output average."""

    problem: _Problem
    net: Any
    spec: dict[str, Any]
    step: Callable[[], tuple[Any, Any]]
    avg: Any


def _compile_fit(problem, net, spec, *, input_depth, lr, reg, smoothing, seed):
    """The :class:`_Fit` whose ``step()`` runs one Adam update on the data term of the task."""
    import keras
    import tensorflow as tf

    from visionfw.data.imresize import imresize

    task, x_hat, m, scale = problem.task, problem.x_hat, problem.mask, problem.scale
    h, w = problem.size
    multiple = int(spec.get("meta", {}).get("multiple_of", 1))
    # the net sees a noise field padded up to a multiple of 2^levels; its output is cropped back
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    rng = np.random.default_rng(int(seed))
    z = tf.constant(rng.uniform(0.0, 0.1, (1, ph, pw, int(input_depth))).astype(np.float32))
    target = tf.constant(x_hat[None])
    weight = tf.constant(m[None]) if m is not None else None
    gen = tf.random.Generator.from_seed(int(seed))
    opt = keras.optimizers.Adam(learning_rate=float(lr))
    opt.build(net.trainable_variables)
    avg = tf.Variable(tf.zeros((1, h, w, x_hat.shape[-1])), trainable=False) if smoothing is not None else None
    first = tf.Variable(True, trainable=False)

    def data_term(out):
        if task == "sr":
            return tf.reduce_mean(tf.square(imresize(out, scale=1.0 / int(scale)) - target))
        if task == "inpaint":
            return tf.reduce_mean(tf.square((out - target) * weight))
        return tf.reduce_mean(tf.square(out - target))

    @tf.function
    def step():
        z_in = z + reg * gen.normal(tf.shape(z)) if reg > 0 else z
        with tf.GradientTape() as tape:
            out = net(z_in, training=True)[:, :h, :w, :]
            loss = data_term(out)
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply(grads, net.trainable_variables)
        if avg is not None:
            s = tf.where(first, 0.0, float(smoothing))  # the average starts at the first output
            avg.assign(s * avg + (1.0 - s) * out)
            first.assign(False)
        return loss, out

    return _Fit(problem, net, spec, step, avg)


def _new_history(task, noise_sigma, scale, steps):
    return {
        "task": task,
        "step": [],
        "loss": [],
        "psnr": [],
        "psnr_avg": [],
        "stopped_at": None,
        "noise_sigma": noise_sigma if task == "denoise" else None,
        "scale": int(scale) if task == "sr" else 1,
        "steps_budget": int(steps),
    }


def _record(history, fit, k, loss_v, out, writer):
    """Appends step ``k`` to the history (and TensorBoard); returns ``(psnr, psnr of the average)``."""
    import tensorflow as tf

    from visionfw.metrics import psnr_ssim as metrics

    ref = fit.problem.reference
    current = np.clip(out.numpy()[0], 0.0, 1.0)
    averaged = np.clip(fit.avg.numpy()[0], 0.0, 1.0) if fit.avg is not None else None
    p = metrics.psnr(current, ref) if ref is not None else None
    pa = metrics.psnr(averaged, ref) if ref is not None and averaged is not None else None
    history["step"].append(k)
    history["loss"].append(loss_v)
    history["psnr"].append(p)
    history["psnr_avg"].append(pa)
    if writer is not None:
        with writer.as_default():
            tf.summary.scalar("dip/loss", loss_v, step=k)
            if p is not None:
                tf.summary.scalar("dip/psnr", p, step=k)
            if pa is not None:
                tf.summary.scalar("dip/psnr_avg", pa, step=k)
            tf.summary.image("dip/output", current[None], step=k)
            if averaged is not None:
                tf.summary.image("dip/output_avg", averaged[None], step=k)
    return p, pa


def _run_steps(fit, history, bar, *, steps, log_every, writer, lr, stop_below):
    """Runs up to ``steps`` updates, logging every ``log_every``; stops early once the data term is at
    most ``stop_below`` (None: never).  Returns ``(steps run, last output)``."""
    out = None
    done = 0
    for k in range(1, steps + 1):
        loss, out = fit.step()
        done = k
        if k == 1:  # the first step traces the graph: rate and ETA count from the second
            bar.update(1)
            bar.restart_clock()
            bar.update(1, line=True, loss=f"{float(loss.numpy()):.3g}")
        if k % log_every and k != steps:
            continue
        loss_v = float(loss.numpy())
        if not math.isfinite(loss_v):
            raise DataError(f"deep_image_prior: the loss became {loss_v} at step {k}; lower lr (now {lr}).")
        p, pa = _record(history, fit, k, loss_v, out, writer)
        post = {"loss": f"{loss_v:.3g}"}
        if p is not None:
            post["psnr"] = f"{(pa if pa is not None else p):.2f}"
        bar.update(k, line=True, **post)
        if stop_below is not None and loss_v <= stop_below:
            history["stopped_at"] = k
            break
    return done, out


def _run_fit(fit, history, *, steps, log_every, progress, tensorboard, lr, stop_below):
    """Runs the fit with its progress line and bar and the TensorBoard log; returns the last output and
    adds ``steps_run``, ``time_s`` and ``steps_per_sec`` to the history."""
    import tensorflow as tf

    from visionfw.console import Progress, say

    x_hat, (h, w) = fit.problem.x_hat, fit.problem.size
    writer = tf.summary.create_file_writer(str(tensorboard)) if tensorboard else None
    label = f"dip {fit.problem.task}"
    if progress:  # the first line at once: what runs, and how big it is
        say(
            f"{label}: fitting {fit.spec.get('name', 'the hourglass')} ({fit.net.count_params():,} parameters) "
            f"to a {x_hat.shape[1]}x{x_hat.shape[0]} image, output {w}x{h}, {steps} steps; a line every "
            f"{log_every} steps when the output is not a terminal"
        )
    bar = Progress(steps, label, enabled=progress)
    t0 = time.perf_counter()
    done, out = _run_steps(
        fit, history, bar, steps=steps, log_every=log_every, writer=writer, lr=lr, stop_below=stop_below
    )
    elapsed = time.perf_counter() - t0
    bar.close()
    if writer is not None:
        writer.flush()
    history.update(steps_run=done, time_s=elapsed, steps_per_sec=done / max(elapsed, 1e-9))
    return out


def deep_image_prior(
    task: str,
    image: Any,
    *,
    mask: Any = None,
    scale: int = 4,
    steps: int = 2000,
    reference: Any = None,
    model: str | dict[str, Any] = "dip_hourglass",
    model_kwargs: dict[str, Any] | None = None,
    input_depth: int = 32,
    lr: float = 0.01,
    reg_noise_std: float | None = None,
    smoothing: float | None = None,
    early_stop: bool | None = None,
    noise_sigma: float | None = None,
    discrepancy: float = 1.0,
    seed: int = 0,
    log_every: int = 50,
    progress: bool = True,
    tensorboard: str | Path | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fits an untrained hourglass to one degraded image; returns ``(output, history)``.

    Args:
      task: 'denoise', 'inpaint' or 'sr'.
      image: the observation (path, uint8 or float HWC/HW array): the noisy image, the image with holes,
        or the LR image.
      mask: inpainting only; 1 (white) where the pixel is known.
      scale: SR factor; the output is ``scale`` times the LR size.
      steps: the step budget (Adam updates).
      reference: the clean image, for the PSNR in the history and the progress bar only.
      model, model_kwargs: a zoo hourglass (``dip_hourglass``, ``dip_hourglass_small``) and its options,
        or a spec dict (its input must have ``input_depth`` channels, its output the image's).
      input_depth: channels of the noise input z (uniform in [0, 0.1)).
      lr: Adam learning rate.
      reg_noise_std: std of the per-step input perturbation (default: 1/30 denoise, 0.03 otherwise).
      smoothing: output average ``avg = s * avg + (1 - s) * out``, returned instead of the last output
        (default None: off; the authors' denoising notebook uses 0.99 without early stopping).
      early_stop: denoising only (default on there): stop at the first logged step whose data term is
        below ``discrepancy * noise_sigma^2``; checked every ``log_every`` steps.
      noise_sigma: the noise std on the [0, 1] scale (default: estimated from the image).
      discrepancy: the factor of the stopping rule.
      seed: seed of the noise input, the perturbations and the weights.
      log_every: steps between history entries (PSNR, TensorBoard, early-stopping checks).
      progress: a first line saying what runs, then a live bar on a terminal, else a plain line after
        the first step and every ``log_every`` steps (loss, PSNR with a reference, rate, ETA).
      tensorboard: a log folder for TensorBoard scalars and images, or None.

    Returns:
      ``(image, history)``: the HxWxC float32 output in [0, 1], and a dict with lists ``step``, ``loss``,
      ``psnr``/``psnr_avg`` (None without a reference) and ``stopped_at`` (the early-stopping step, else
      None), ``steps_run``, ``noise_sigma`` (denoise), ``time_s``, ``steps_per_sec``.

    Raises:
      ConfigError: an unknown task, bad options or a mask where none applies.
      DataError: images of mismatched sizes, or a loss that diverges.
    """
    import keras

    problem = _problem(task, image, mask, scale, steps, reference)
    reg = _perturbation(task, reg_noise_std, smoothing)
    early_stop, noise_sigma = _stopping_rule(task, early_stop, noise_sigma, problem.x_hat)
    keras.utils.set_random_seed(int(seed))
    spec, net = _build_hourglass(model, model_kwargs, input_depth, problem.x_hat.shape[-1])
    fit = _compile_fit(problem, net, spec, input_depth=input_depth, lr=lr, reg=reg, smoothing=smoothing, seed=seed)
    history = _new_history(task, noise_sigma, scale, steps)
    out = _run_fit(
        fit,
        history,
        steps=int(steps),
        log_every=max(1, int(log_every)),
        progress=progress,
        tensorboard=tensorboard,
        lr=lr,
        stop_below=float(discrepancy) * float(noise_sigma) ** 2 if early_stop else None,
    )
    result = fit.avg.numpy()[0] if fit.avg is not None else out.numpy()[0]
    return np.clip(result, 0.0, 1.0).astype(np.float32), history
