"""Image-quality metrics: PSNR / SSIM with the literature's exact protocols
(:mod:`~visionfw.metrics.psnr_ssim`), and the no-reference NIQE (:mod:`~visionfw.metrics.niqe`) and learned
LPIPS (:mod:`~visionfw.metrics.lpips`)."""

from visionfw.metrics.psnr_ssim import (  # noqa: F401  (the package's public names)
    PROTOCOLS,
    bicubic_baseline,
    evaluate_pair,
    mean_metrics,
    protocol_description,
    protocol_y,
    psnr,
    quantize,
    shave,
    ssim,
    to_float01,
)

__all__ = [
    "psnr",
    "ssim",
    "shave",
    "quantize",
    "protocol_y",
    "evaluate_pair",
    "protocol_description",
    "bicubic_baseline",
    "mean_metrics",
    "PROTOCOLS",
    "to_float01",
]
