"""The degradation chain: passes of ops over an HR batch, and the training-time degrader."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from visionfw.data.types import TensorLike
from visionfw.degradation.ops import OP_FUNCTIONS, quantize
from visionfw.degradation.pools import DegradationPool, load_pool
from visionfw.degradation.randomness import fold_key, step_key
from visionfw.degradation.spec import DegradationSpec, resolve_spec
from visionfw.errors import ConfigError


def _pass_sizes(hw, scale, passes):
    """Target (h, w) of every pass: shrink by scale ** (1 / passes) each, the last exactly HR // scale.

    Python ints when the HR size is static (static output shapes), int32 tensors otherwise.
    """
    sizes = []
    for i in range(1, passes + 1):
        if i == passes:
            sizes.append([d // scale for d in hw])
        elif isinstance(hw[0], int) and isinstance(hw[1], int):
            sizes.append([max(1, int(round(d * scale ** (-i / passes)))) for d in hw])
        else:
            f = scale ** (-i / passes)
            sizes.append([tf.maximum(1, tf.cast(tf.round(tf.cast(d, tf.float32) * f), tf.int32)) for d in hw])
    return sizes


def _run_pass(x, ops, shuffle, key, size, pool):
    def run(j, o, x=None):
        return OP_FUNCTIONS[o.name](x, o, fold_key(key, j), size=size, pool=pool)

    if not shuffle:
        for j, o in enumerate(ops):
            x = run(j, o, x)
        return x
    # one order per batch; an op keeps its key (j) wherever it lands.  A while_loop traces each op
    # once (not once per position); x's size changes at down, hence the shape invariant.
    order = tf.argsort(tf.random.stateless_uniform([len(ops)], seed=fold_key(key, 1000)))

    def body(position, x):
        branches = [functools.partial(run, j, o, x) for j, o in enumerate(ops)]
        return position + 1, tf.switch_case(tf.gather(order, position), branches)

    invariant = tf.TensorShape([None, None, None, x.shape[-1]])
    _, x = tf.while_loop(
        lambda position, _: position < len(ops),
        body,
        (tf.constant(0), x),
        shape_invariants=(tf.TensorShape([]), invariant),
    )
    return x


def _check_batch(hr, scale):
    if hr.shape.rank != 4 or hr.shape[-1] not in (1, 3):
        raise ConfigError(f"degrade: HR batch has shape {tuple(hr.shape)}; expected NHWC with 1 or 3 channels.")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"degrade: scale={scale!r} must be a positive integer.")
    small = [d for d in hr.shape[1:3] if d is not None and d < scale]
    if small:
        raise ConfigError(
            f"degrade: HR batch of shape {tuple(hr.shape)} is smaller than scale={scale}; "
            "use HR patches of at least scale pixels (a multiple of it)."
        )


def _check_blur_fits(spec, hw, scale, pool):
    """Reflect padding needs images wider than the kernel radius: check the static sizes blur may see."""
    if not all(isinstance(d, int) for d in hw):
        return
    pool_size = 0 if pool is None or pool["kernels"] is None else pool["kernels"].shape[-1]
    sizes = [hw] + _pass_sizes(hw, scale, spec.passes)
    for p, ops in enumerate(spec.chains()):  # pass p runs on sizes[p], and on sizes[p + 1] after its down
        blurs = [o for o in ops if o.name == "blur"]
        if not blurs:
            continue
        size = max(max(o["size"], pool_size if o["pool"] > 0 else 0) for o in blurs)
        names = [o.name for o in ops]
        after_down = spec.shuffle or names.index("down") < max(i for i, n in enumerate(names) if n == "blur")
        smallest = min(min(s) for s in sizes[p : p + 1 + after_down])
        if smallest <= size // 2:
            raise ConfigError(
                f"degradation: a {size}x{size} blur kernel needs images larger than {size // 2} "
                f"pixels, but the {hw[0]}x{hw[1]} HR batch at scale {scale} gets down to {smallest} "
                "pixels where blur may run; use a larger HR patch or a smaller blur size=."
            )


def check_fits(
    spec_or_name: DegradationSpec | str,
    scale: int,
    hr_size: int | Sequence[int],
    pool: DegradationPool | dict | str | os.PathLike | None = None,
) -> None:
    """Raises ConfigError when a blur kernel of the spec (or of ``pool``) is too wide for the HR patches.

    The check :func:`make_degrader`'s function makes while tracing, made before it.

    Args:
        spec_or_name: a spec, preset name or spec string.
        scale: the SR factor.
        hr_size: the HR patch side, or (h, w).
        pool: as :func:`make_degrader` takes it (or its TF form), or None.

    Raises:
        ConfigError: naming the kernel size, the smallest image size it meets and the fix.
    """
    hw = [int(hr_size)] * 2 if isinstance(hr_size, (int, float, np.number)) else [int(d) for d in hr_size]
    tf_pool = pool if isinstance(pool, dict) or pool is None else _as_tf_pool(pool)
    _check_blur_fits(resolve_spec(spec_or_name), hw, int(scale), tf_pool)


def _as_tf_pool(pool):
    """{'noise': tensor or None, 'kernels': tensor or None} of a pool, a .npz path or None."""
    if pool is None:
        return None
    if isinstance(pool, (str, os.PathLike)):
        pool = load_pool(pool)
    noise = pool.noise if pool.noise is not None and len(pool.noise) else None
    kernels = pool.kernels if pool.kernels is not None and len(pool.kernels) else None
    return {
        "noise": None if noise is None else tf.constant(noise, tf.float32),
        "kernels": None if kernels is None else tf.constant(kernels, tf.float32),
    }


def degrade(
    hr_batch: TensorLike,
    scale: int,
    spec: DegradationSpec | str,
    seed: int,
    step: TensorLike,
    pool: DegradationPool | str | os.PathLike | None = None,
) -> tf.Tensor:
    """LR batch ``[N, H // scale, W // scale, C]`` of an HR batch; deterministic in ``(seed, step)``.

    Args:
        hr_batch: NHWC float32 in [0, 1].
        scale: the SR factor.
        spec: a :class:`DegradationSpec`, preset name or spec string.
        seed: integer seed.
        step: the training step (int or int tensor).
        pool: a :class:`DegradationPool` or ``.npz`` path (see :func:`make_degrader`).

    Returns:
        The LR batch, clipped and quantised to 8 bits.
    """
    return make_degrader(spec, scale, seed, pool)(hr_batch, step)


def make_degrader(
    spec_or_name: DegradationSpec | str,
    scale: int,
    seed: int,
    pool: DegradationPool | str | os.PathLike | None = None,
    hr_size: int | Sequence[int] | None = None,
) -> Callable[[TensorLike, TensorLike], tf.Tensor]:
    """``fn(hr_batch, step) -> lr_batch`` for training.

    ``fn`` takes an NHWC float32 batch in [0, 1] and the step (a Python int or an int tensor)
    and is pure TF with stateless randomness: call it inside ``tf.function`` or ``Dataset.map``
    (e.g. ``ds.map(lambda i, hr: (fn(hr, i), hr))`` over an enumerated dataset); the LR batch
    is clipped and quantised to 8 bits.  Build it once: each call of ``make_degrader`` traces
    anew.  JPEG and ``switch_case`` have no XLA kernels, so run it in the input pipeline (CPU),
    not inside a ``jit_compile`` train step.  The HR size must be a multiple of ``scale`` for
    ``lr * scale == hr`` (the LR size is ``HR // scale``).

    Args:
        spec_or_name: ``'realsr'``, ``'bsrgan-like'`` (options may follow,
            ``'bsrgan-like@passes=2'``), a spec string or a :class:`DegradationSpec` -- parsed
            here, so errors show before training.
        scale: positive integer SR factor.
        seed: integer seed.
        pool: a :class:`DegradationPool`, an ``.npz`` path from :func:`save_pool`, or None (then
            the ops' ``pool`` probabilities are ignored).
        hr_size: the HR patch side, or (h, w), when known: checked against the blur kernels
            here, before any tracing (an error raised while tracing reaches the caller wrapped
            in a StagingError).

    Returns:
        The degrading function.

    Raises:
        ConfigError: a bad spec, scale, seed, or a kernel too wide for ``hr_size``.
    """
    spec = resolve_spec(spec_or_name)
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ConfigError(f"degradation: scale={scale!r} must be a positive integer.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"degradation: seed={seed!r} must be an integer.")
    scale, seed, tf_pool = int(scale), int(seed), _as_tf_pool(pool)
    if hr_size is not None:
        check_fits(spec, scale, hr_size, tf_pool)

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: trace as is
    def fn(hr_batch, step):
        x = tf.convert_to_tensor(hr_batch, tf.float32)
        _check_batch(x, scale)
        hw = [x.shape[i] if x.shape[i] is not None else tf.shape(x)[i] for i in (1, 2)]
        _check_blur_fits(spec, hw, scale, tf_pool)
        for p, (ops, size) in enumerate(zip(spec.chains(), _pass_sizes(hw, scale, spec.passes))):
            x = _run_pass(x, ops, spec.shuffle, step_key(seed, step, p), size, tf_pool)
        final = [s if isinstance(s, int) else None for s in _pass_sizes(hw, scale, spec.passes)[-1]]
        return tf.ensure_shape(quantize(x), [None, *final, hr_batch.shape[-1]])

    return fn
