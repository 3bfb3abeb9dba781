"""`visionfw degradation-pool`: build a RealSR noise/kernel pool (``.npz``) for degraded training.

    visionfw degradation-pool --source=real_photos/ --out=pool.npz
    visionfw degradation-pool --source=real_photos/ --out=pool.npz --kernels=my_kernels/ --estimate_kernels

Noise patches are the flat windows of the --source images, mean removed; kernels are the
``.npy`` files of --kernels and, with --estimate_kernels, one Gaussian estimated per source
image (see :func:`visionfw.degradation.estimate_kernel`).  Train with it through
:func:`visionfw.degradation.make_degrader` (``pool=pool.npz``).
"""

from dataclasses import dataclass, field


@dataclass
class DegradationPoolConfig:
    """The flags of `visionfw degradation-pool`."""

    source: str = field(metadata={"help": "Folder of real-world images whose noise (and blur) to collect."})
    out: str = field(metadata={"help": "The pool file to write (.npz)."})
    kernels: str | None = field(
        default=None,
        metadata={"help": "Folder of .npy blur kernels (2-D, odd size, non-negative; normalised on load) to add."},
    )
    estimate_kernels: bool = field(
        default=False,
        metadata={
            "help": "Also add one isotropic Gaussian kernel per source image, its sigma estimated from the "
            "gradient ratio to a re-blurred copy (not KernelGAN)."
        },
    )
    patch: int = field(default=32, metadata={"help": "Noise patch size in pixels."})
    stride: int | None = field(default=None, metadata={"help": "Step between noise windows (default: --patch)."})
    var_threshold: float = field(
        default=20.0,
        metadata={"help": "Keep windows whose per-channel variance is below this, in 8-bit grey levels squared."},
    )
    max_patches: int | None = field(default=None, metadata={"help": "Keep at most this many (the flattest)."})
    kernel_size: int = field(default=15, metadata={"help": "Size of the estimated kernels (odd)."})


CONFIG = DegradationPoolConfig


def main(command: str, config: DegradationPoolConfig) -> int:
    """Builds the pool ``config`` describes and writes it to ``config.out``.

    Args:
        command: the command name, for messages.
        config: the parsed flags.

    Returns:
        The exit status (0).
    """
    import numpy as np

    from visionfw import degradation
    from visionfw.data.image_io import list_images, read_image
    from visionfw.errors import ConfigError

    if config.patch < 2 or (config.stride is not None and config.stride < 1):
        raise ConfigError(f"--patch={config.patch} must be >= 2 and --stride >= 1.")
    if config.var_threshold <= 0:
        raise ConfigError(f"--var_threshold={config.var_threshold:g} must be positive (grey levels squared).")
    if config.kernel_size < 3 or config.kernel_size % 2 == 0:
        raise ConfigError(f"--kernel_size={config.kernel_size} must be odd and >= 3.")
    images = [read_image(p) for p in list_images(config.source)]
    noise = degradation.extract_noise_pool(
        images,
        patch=config.patch,
        var_threshold=config.var_threshold,
        stride=config.stride,
        max_patches=config.max_patches,
    )
    found: list[np.ndarray] = []
    sigmas = []
    if config.kernels:
        found.extend(degradation.load_kernel_pool(config.kernels))
    if config.estimate_kernels:
        for image in images:
            kernel, sigma = degradation.estimate_kernel(image, size=config.kernel_size)
            found.append(kernel)
            sigmas.append(sigma)
    kernels = None
    if found:
        size = max(k.shape[0] for k in found)
        kernels = np.stack([np.pad(k, (size - k.shape[0]) // 2) for k in found])
    pool = degradation.DegradationPool(noise=noise if len(noise) else None, kernels=kernels)
    path = degradation.save_pool(config.out, pool)
    print(
        f"{path}: {len(noise)} noise patches of {config.patch}x{config.patch} from {len(images)} images "
        f"(variance < {config.var_threshold:g}), {len(found)} kernels"
    )
    if sigmas:
        print(
            f"estimated Gaussian sigmas: min {min(sigmas):.2f}, median {float(np.median(sigmas)):.2f}, "
            f"max {max(sigmas):.2f}"
        )
    if not len(noise):
        print("warning: no window was flat enough; raise --var_threshold or lower --patch.")
    return 0
