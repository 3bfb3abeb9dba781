"""`visionfw train --model=NAME --scale=S [--train_data=DIR] [--val_data=Set5] ...`.

One flag per :class:`visionfw.train.TrainConfig` field (`visionfw train --help`).  Unset
optimisation flags come from the model family's paper preset (:mod:`visionfw.train.presets`);
every flag overrides its preset value.  The first Ctrl-C (or SIGTERM) writes a checkpoint of
the step reached and stops; the same command resumes from it.
"""

from __future__ import annotations

from visionfw.train.config import TrainConfig

CONFIG = TrainConfig


def _val_line(name, r):
    """``val Set5: PSNR ... (bicubic ..., gain ...)``; a baseline that is not a number is left out."""
    import math

    line = f"val {name}: PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}"
    bicubic = r.get("bicubic_psnr")
    if bicubic is not None and math.isfinite(bicubic):
        line += f"  (bicubic {bicubic:.3f} dB, gain {r['psnr'] - bicubic:+.3f} dB)"
    if r.get("lr_psnr") is not None:  # TAD: how close the LR image stays to bicubic's
        line += f"  LR vs bicubic LR {r['lr_psnr']:.2f} dB"
    return line


def main(command: str, config: TrainConfig) -> int:
    """``visionfw train``: trains, prints the model path and the validation; returns the exit status."""
    from visionfw.train import train

    result = train(config)
    if result["already_complete"]:
        print(
            f"visionfw train: {result['workdir']} is already complete at step {result['steps']} "
            "(use --steps=M to continue or a new --workdir)"
        )
        print(f"model: {result['model_path']}")
        return 0
    print(
        f"model: {result['model_path']}  ({result['steps']} steps, {result['time_s']:.1f} s, "
        f"{result['steps_per_sec']:.2f} steps/s this session)"
    )
    for name, r in result["val"].items():
        print(_val_line(name, r))
    if result["protocol"]:
        print(f"protocol: {result['protocol']}")
    if result["best_psnr"] is not None:
        print(f"best val PSNR {result['best_psnr']:.3f} dB at step {result['best_step']}")
    return 0
