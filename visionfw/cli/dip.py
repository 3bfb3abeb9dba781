"""`visionfw dip --task=denoise|inpaint|sr --image=FILE [--mask=FILE] --steps=N --output=FILE`.

Deep Image Prior (:mod:`visionfw.dip`): an untrained hourglass fitted to the one image, no training
set.  ``--image`` is the observation (the noisy image, the image with holes, or the LR image); with
``--simulate`` it is the clean image instead and the observation is made from it (bicubic 1/scale,
Gaussian noise of ``--sigma`` grey levels, or ``--drop`` of the pixels removed), and the clean image
becomes the PSNR reference.
"""

from dataclasses import dataclass, field


@dataclass
class DipConfig:
    """The flags of `visionfw dip`."""

    task: str = field(default="sr", metadata={"help": "What to restore.", "choices": ("denoise", "inpaint", "sr")})
    image: str | None = field(
        default=None,
        metadata={"help": "The degraded image (noisy, with holes, or LR); with --simulate the clean image."},
    )
    mask: str | None = field(
        default=None, metadata={"help": "inpaint: mask image of the same size, white (1) where the pixel is known."}
    )
    output: str | None = field(default=None, metadata={"help": "Where the restored image is written (.png)."})
    reference: str | None = field(
        default=None, metadata={"help": "The clean image, for the PSNR shown while fitting (not used by the fit)."}
    )
    scale: int = field(default=4, metadata={"help": "sr: the upscaling factor."})
    steps: int = field(
        default=1000,
        metadata={"help": "Step budget (Adam updates); the paper uses 2000 for x4 SR with --model=dip_hourglass."},
    )
    model: str = field(
        default="dip_hourglass_small",
        metadata={
            "help": "Hourglass from the zoo: dip_hourglass_small (32 channels: a 128x128 x2 example in about 7 minutes "
            "on 2 CPU cores, +1.85 dB over bicubic) or dip_hourglass (the paper's, 128 channels; meant for a "
            "GPU)."
        },
    )
    input_depth: int = field(default=32, metadata={"help": "Channels of the noise input z."})
    lr: float = field(default=0.01, metadata={"help": "Adam learning rate."})
    reg_noise_std: float | None = field(
        default=None,
        metadata={"help": "Std of the per-step input perturbation (default 1/30 denoise, 0.03 sr and inpaint)."},
    )
    early_stop: bool | None = field(
        default=None,
        metadata={"help": "denoise: stop when the data term reaches the noise variance (default on for denoise)."},
    )
    noise_sigma: float | None = field(
        default=None,
        metadata={"help": "denoise: the noise std in grey levels (0-255); default: estimated from the image."},
    )
    simulate: bool = field(
        default=False,
        metadata={"help": "Treat --image as the clean image: make the observation from it and use it as reference."},
    )
    sigma: float = field(default=25.0, metadata={"help": "--simulate denoise: noise std in grey levels (0-255)."})
    drop: float = field(default=0.5, metadata={"help": "--simulate inpaint: fraction of pixels removed."})
    seed: int = field(default=0, metadata={"help": "Seed of the noise input, perturbations and weights."})
    log_every: int = field(default=50, metadata={"help": "Steps between PSNR/TensorBoard/early-stop checks."})
    tensorboard: str | None = field(
        default=None, metadata={"help": "Folder for TensorBoard scalars and images of the output (off when unset)."}
    )
    history: str | None = field(
        default=None,
        metadata={"help": "Write the run's history (step, loss, PSNR, stop step, scores) as JSON to this file."},
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar (on a terminal)."})


CONFIG = DipConfig


def run(config):
    """Runs `visionfw dip`; returns (output path, history, scores).

    ``scores`` (with a reference): ``psnr`` of the output and ``baseline`` of the observation (denoise,
    inpaint: RGB PSNR) or of its bicubic upscaling (sr: Y, ``scale`` px shaved, srcnn protocol), else {}.
    """
    from visionfw.data.image_io import read_image, write_image
    from visionfw.data.imresize import imresize
    from visionfw.dip import deep_image_prior, degrade
    from visionfw.errors import ConfigError
    from visionfw.metrics import psnr_ssim as metrics

    if not config.image or not config.output:
        raise ConfigError("dip needs --image (the degraded image, or the clean one with --simulate) and --output.")
    image = read_image(config.image)
    mask = read_image(config.mask) if config.mask else None
    reference = read_image(config.reference) if config.reference else None
    if config.simulate:
        if config.mask or config.reference:
            raise ConfigError("--simulate makes the mask and the reference itself; leave out --mask and --reference.")
        from visionfw.data.imresize import modcrop

        reference = modcrop(image, config.scale) if config.task == "sr" else image
        image, mask = degrade(
            config.task, reference, scale=config.scale, sigma=config.sigma / 255.0, drop=config.drop, seed=config.seed
        )
    out, history = deep_image_prior(
        config.task,
        image,
        mask=mask,
        scale=config.scale,
        steps=config.steps,
        reference=reference,
        model=config.model,
        input_depth=config.input_depth,
        lr=config.lr,
        reg_noise_std=config.reg_noise_std,
        early_stop=config.early_stop,
        seed=config.seed,
        log_every=config.log_every,
        progress=config.progress,
        noise_sigma=None if config.noise_sigma is None else config.noise_sigma / 255.0,
        tensorboard=config.tensorboard,
    )
    path = write_image(config.output, out)
    scores = {}
    if reference is not None and config.task == "sr":
        bicubic = imresize(image, scale=float(config.scale)).numpy().clip(0, 1)
        scores = {
            "psnr": metrics.evaluate_pair(out, reference, config.scale, "srcnn")["psnr"],
            "baseline": metrics.evaluate_pair(bicubic, reference, config.scale, "srcnn")["psnr"],
            "baseline_name": "bicubic",
            "measure": f"Y, shave {config.scale}, srcnn protocol",
        }
    elif reference is not None:
        scores = {
            "psnr": metrics.psnr(out, reference),
            "baseline": metrics.psnr(image.clip(0, 1), reference),
            "baseline_name": "the observation",
            "measure": "RGB",
        }
    if config.history:
        import json
        from pathlib import Path

        Path(config.history).parent.mkdir(parents=True, exist_ok=True)
        Path(config.history).write_text(json.dumps(dict(history, scores=scores), indent=1))
    return path, history, scores


def main(command, config):
    path, history, scores = run(config)
    done = history["steps_run"]
    stop = f", stopped early at step {history['stopped_at']}" if history["stopped_at"] else ""
    print(f"visionfw dip: wrote {path} ({config.task}, {done} steps in {history['time_s']:.1f} s{stop})")
    if history["noise_sigma"] is not None:
        print(f"noise sigma: {255 * history['noise_sigma']:.2f} grey levels")
    if scores:
        print(
            f"PSNR ({scores['measure']}): {scores['psnr']:.2f} dB; {scores['baseline_name']} "
            f"{scores['baseline']:.2f} dB ({scores['psnr'] - scores['baseline']:+.2f} dB)"
        )
    return 0


if __name__ == "__main__":  # `python -m visionfw.cli.dip --task=...` (the same as `visionfw dip ...`)
    import sys

    from visionfw.cli import common
    from visionfw.errors import VisionFWError

    try:
        sys.exit(main("dip", common.parse_args(DipConfig, ["visionfw dip"] + sys.argv[1:])[0]))
    except VisionFWError as exc:
        print(f"visionfw dip: error: {common.flag_names(str(exc), DipConfig)}", file=sys.stderr)
        sys.exit(1)
