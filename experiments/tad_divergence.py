"""The late TAD divergence and its fix: the same x2 run with either Quantize gradient.

``aetad_very_small`` on T91 at x2: 10*L1(SHR, HR) + L_latent (epsilon ball 10), Adam lr 2e-4 halved at
3/4 of the steps, batch 16, 48 px HR patches, SLR quantised to 8 bits from half the steps on,
Set5 validated every ``--val_every`` steps (Y PSNR, EDSR protocol, shave 2, SLR stored as 8 bits).

``--quantize_gradient=identity`` is the old straight-through estimator (gradient 1 also where SLR
lies outside [0, 1] and the clip makes it inert): measured here, Set5 peaks at 37.62 dB (step 1050),
SLR drifts to values in the thousands, the loss climbs 0.24 -> 2.63 and Set5 ends at 12.67 dB.
``clipped`` (the default) passes the clip's own gradient: Set5 climbs to 38.70 dB at step 1500.
Besides PSNR, each validation prints how far the encoder's SLR strays outside
[0, 1] on Set5 (the share of values more than half a grey level outside, and the extreme value).

    python experiments/tad_divergence.py --quantize_gradient=identity --workdir=/tmp/tad_div_identity
    python experiments/tad_divergence.py --workdir=/tmp/tad_div_clipped

Both runs are the same until quantisation starts: copying the first run's workdir at that step and
resuming it with the other gradient (resume is automatic) saves half the compute.
"""

import argparse
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def slr_range(model, hr_images, times=1):
    """(share of SLR values more than half a grey level outside [0, 1], min SLR, max SLR) over images."""
    import numpy as np

    from visionfw.tasks.tad import split_model

    encoder, _ = split_model(model, times)
    out, total, lo, hi = 0, 0, np.inf, -np.inf
    for hr in hr_images:
        slr = np.asarray(encoder(np.asarray(hr, np.float32)[None] / 255.0, training=False))
        out += int(np.sum((slr < -0.5 / 255) | (slr > 1 + 0.5 / 255)))
        total += slr.size
        lo, hi = min(lo, float(slr.min())), max(hi, float(slr.max()))
    return out / total, lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="aetad_very_small")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="HR patch size")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--epsilon", type=float, default=10.0)
    ap.add_argument("--quantize_gradient", default="clipped", choices=("clipped", "identity"))
    ap.add_argument("--val_every", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None, help="first root of the data search path")
    ap.add_argument("--workdir", default="experiments/results/tad_divergence")
    args = ap.parse_args()

    import tad_runs

    from visionfw.tasks import tad
    from visionfw.tasks.base import register_task
    from visionfw.train import train

    set5 = tad_runs.hr_images("Set5", 2, args.data_dir)
    ranges = []

    class TracedTAD(tad.TADTask):
        """TAD that also records how far SLR strays outside [0, 1] at each validation."""

        def validate(self, model):
            ranges.append(slr_range(model, set5))
            return super().validate(model)

    register_task("tad_traced", TracedTAD)
    config = tad_runs.train_config(
        args.model,
        args.workdir,
        args.steps,
        args.batch,
        args.patch,
        args.lr,
        args.seed,
        data_dir=args.data_dir,
        task="tad_traced",
        task_options={
            "alpha": 10.0,
            "beta": 1.0,
            "epsilon": args.epsilon,
            "quantize_from": args.steps // 2,
            "quantize_gradient": args.quantize_gradient,
        },
    )
    config.val_data, config.val_every, config.log_every = ["Set5"], args.val_every, args.val_every // 2
    config.ckpt_every, config.resume = args.val_every, "auto"
    try:
        result = train(config)
    except Exception as exc:  # a stopped run still has its log: print the curve it reached
        print(f"training stopped: {exc}", flush=True)
        result = {}
    with open(Path(args.workdir) / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    print(f"quantize_gradient={args.quantize_gradient}: step, loss, Set5 PSNR, SLR outside [0,1] (share, min, max)")
    # a resumed run traced only the validations since it resumed: they belong to the last rows
    val_steps = [int(r["step"]) for r in rows if r.get("val_Set5_psnr")]
    traced = dict(zip(val_steps[len(val_steps) - len(ranges) :], ranges))
    for r in rows:
        line = f"{int(r['step']):5d}  loss {float(r['loss']):.4f}"
        if r.get("val_Set5_psnr"):
            line += f"  Set5 {float(r['val_Set5_psnr']):.2f} dB"
        if int(r["step"]) in traced:
            share, lo, hi = traced[int(r["step"])]
            line += f"  out {100 * share:.3f}% [{lo:.3f}, {hi:.3f}]"
        print(line)
    if result.get("best_psnr") is not None:
        print(
            f"best Set5 {result['best_psnr']:.2f} dB at step {result['best_step']}; final {result['val_psnr']:.2f} dB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
