"""Realistic LR images for real-world SR: a seeded degradation pipeline in pure TensorFlow.

Bicubic LR images teach a model one clean degradation; real photos are blurred by unknown
kernels, resized by unknown filters, noisy and JPEG-compressed.  This package synthesises such
LR images from HR batches, inside ``tf.data`` maps or a ``tf.function`` (no Python-side
randomness, no host round trip).

Images are NHWC float32 in [0, 1] with 1 or 3 channels (the conventions of
:mod:`visionfw.data.pipeline`).  The LR output is clipped and quantised to 8 bits, so it holds
what an image file would.

Ops (each draws its parameters per image):

* ``blur``: a kernel of ``size`` x ``size`` (odd) taps, normalised to sum 1, of one of
  ``kinds``: ``iso`` (Gaussian, one sigma), ``aniso`` (Gaussian with sigmas s1, s2 along axes
  rotated by theta: covariance ``R(theta) diag(s1^2, s2^2) R(theta)^T``), ``generalized``
  (``exp(-0.5 q^beta)``, q the Mahalanobis distance squared, beta in ``gbeta``) and
  ``plateau`` (``1 / (1 + q^beta)``, beta in ``pbeta``) and ``sinc`` (the ideal circular low-pass
  of cut-off ``omega`` radians per pixel, drawn from ``omega``), as in Real-ESRGAN.  Applied as a true
  convolution (the kernel flipped, so a delta image returns the kernel) with reflect padding.
* ``down``: resize to exactly ``HR size // scale`` with a method drawn from ``methods``:
  ``nearest``, ``bilinear``, ``bicubic``, ``lanczos`` (lanczos3), ``area`` (``tf.image.resize``;
  ``antialias`` filters when shrinking) or ``matlab`` (MATLAB's bicubic,
  :func:`visionfw.data.imresize.imresize`).
* ``noise``: one of ``kinds`` per image: ``gaussian`` (std drawn from ``sigma``, in grey levels
  of 255), ``poisson`` (``scale * (Poisson(255 x) / 255 - x)``: variance ``scale^2 x / 255``,
  ``scale`` drawn from ``poisson``) or ``gaussian-poisson`` (both added); grey noise (the same
  on every channel; Poisson drawn on the BT.601 luma) with probability ``gray``.
* ``jpeg``: re-compression at a quality drawn from ``q`` (per image, ``tf.image.adjust_jpeg_quality``).

Every op has ``prob`` (the chance an image gets it; ``down`` always applies).  ``blur`` and
``noise`` have ``pool``: the chance an image takes a kernel / noise patch from a
:class:`DegradationPool` (RealSR, Ji et al. 2020) instead of a synthetic one, when the pool has
them.

Specs
-----
A :class:`DegradationSpec` is an ordered tuple of ops plus ``passes`` (the chain applied that
many times, Real-ESRGAN's second-order degradation for 2; every pass shrinks by
``scale ** (1 / passes)`` and the last lands on the exact LR size) and ``shuffle`` (each batch
runs the ops of a pass in a random order, as BSRGAN does).  As text::

    blur(sigma=0.2:3,size=15)+down(methods=bicubic|area)+noise(sigma=1:25)+jpeg(q=30:95)@passes=2,shuffle=true

``a:b`` is a range (drawn uniformly), ``a|b`` a list of choices, options after ``@``.  Passes
that differ are chains separated by ``;`` (``blur(..)+down(..);down(..)+jpeg(..)``: two passes).
Presets (:data:`PRESETS`): ``realsr`` (blur -> down -> noise -> jpeg, pool kernels/noise when
given), ``bsrgan-like`` (all kernel kinds, all resize methods, all noise kinds, shuffled;
``bsrgan-like@passes=2`` is the second-order variant) and ``realesrgan-like`` (two different
passes with sinc kernels and a final sinc filter; see :data:`PRESETS` for how it differs).  Bad
specs raise :class:`visionfw.errors.ConfigError` naming the part and the fix.

Randomness
----------
Stateless: every draw is keyed on ``(seed, step, pass, op index, draw index)`` with
``tf.random.experimental.stateless_fold_in``, so a batch is reproducible from ``(seed, step)``
alone (resumable training), and an op's draws do not depend on where a shuffle put it.

Training integration: :func:`make_degrader` ``(spec_or_name, scale, seed, pool=None)`` returns
``fn(hr_batch, step) -> lr_batch``, traceable in ``tf.function`` / ``Dataset.map``.

Pools (RealSR-style, built offline, numpy): :func:`extract_noise_pool` (flat patches of real
images, mean removed: their noise), :func:`load_kernel_pool` (user ``.npy`` kernels),
:func:`estimate_kernel` (a Gaussian-sigma estimate per image, see there; not KernelGAN),
:func:`save_pool` / :func:`load_pool` (``.npz``).

:func:`gan_fusion` is the NTIRE 2020 Real-World SR runner-up fusion of two SR outputs.
"""

from visionfw.degradation.degrader import check_fits, degrade, make_degrader
from visionfw.degradation.fusion import gan_fusion
from visionfw.degradation.ops import (
    apply_kernels,
    downscale,
    gaussian_noise,
    jpeg,
    make_kernels,
    poisson_noise,
    quantize,
)
from visionfw.degradation.pools import (
    DegradationPool,
    estimate_kernel,
    extract_noise_pool,
    load_kernel_pool,
    load_pool,
    save_pool,
)
from visionfw.degradation.spec import (
    KERNEL_KINDS,
    MAX_BLUR_SIZE,
    MAX_PASSES,
    NOISE_KINDS,
    PRESETS,
    RESIZE_METHODS,
    DegradationSpec,
    OpSpec,
    op,
    parse_spec,
    resolve_spec,
    spec_to_string,
)

__all__ = [
    "DegradationSpec",
    "OpSpec",
    "DegradationPool",
    "PRESETS",
    "KERNEL_KINDS",
    "RESIZE_METHODS",
    "NOISE_KINDS",
    "MAX_PASSES",
    "MAX_BLUR_SIZE",
    "op",
    "parse_spec",
    "spec_to_string",
    "check_fits",
    "resolve_spec",
    "make_degrader",
    "degrade",
    "make_kernels",
    "apply_kernels",
    "downscale",
    "gaussian_noise",
    "poisson_noise",
    "jpeg",
    "quantize",
    "extract_noise_pool",
    "load_kernel_pool",
    "estimate_kernel",
    "save_pool",
    "load_pool",
    "gan_fusion",
]
