"""Robustness of TAD x2 to noise on the stored LR image, for several epsilon-ball radii.

For each epsilon, trains ``aetad_very_small`` on T91 through the one training loop
(``TrainConfig(task='tad')``, the same budget for all), then stores the 8-bit SLR of every
Set5 image, adds white Gaussian noise of std sigma (on the [0, 1] scale, unclipped) and
decodes.  Reports HR PSNR (Y, EDSR protocol, shave 2) per sigma, the relative PSNR loss at the
largest sigma, and writes a PSNR-vs-sigma PNG plot.

    python experiments/tad_robustness.py --epsilons=0,10 --steps=250 --out=/tmp/tad_robustness
    python experiments/tad_robustness.py --steps=4 --batch=2 --patch=16 --out=/tmp/tad_smoke   # a smoke run
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="aetad_very_small")
    ap.add_argument("--epsilons", default="0,10")
    ap.add_argument("--sigmas", default="0,0.01,0.02,0.05,0.08,0.11")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="HR patch size")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None, help="first root of the data search path")
    ap.add_argument("--out", default="tad_robustness", help="output folder (runs, JSON, PNG)")
    args = ap.parse_args()

    import keras
    import tad_runs

    from visionfw.tasks import tad
    from visionfw.train import train

    test = tad_runs.hr_images("Set5", 2, args.data_dir)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "config": vars(args),
        "protocol": "Set5 x2, HR PSNR on Y (BT.601 studio swing), EDSR protocol, shave 2; "
        "noise N(0, sigma^2) added to the 8-bit SLR on the [0, 1] scale, not clipped",
        "runs": {},
    }
    for eps in epsilons:
        t0 = time.time()
        run = train(
            tad_runs.train_config(
                args.model,
                out / "runs" / f"epsilon{eps:g}",
                args.steps,
                args.batch,
                args.patch,
                args.lr,
                args.seed,
                data_dir=args.data_dir,
                task="tad",
                task_options={"epsilon": eps, "quantize_from": args.steps // 2},
            )
        )
        model = keras.saving.load_model(run["model_path"], safe_mode=True)
        curve = []
        lr_psnr = None
        for sigma in sigmas:
            r = tad.evaluate_tad(model, test, 2, noise_sigma=sigma, seed=args.seed)
            curve.append(r["psnr"])
            lr_psnr = r["lr_psnr"]
        loss = 100.0 * (curve[0] - curve[-1]) / curve[0]
        results["runs"][str(eps)] = {
            "psnr": curve,
            "lr_psnr": lr_psnr,
            "loss_percent_at_max_sigma": loss,
            "train_seconds": time.time() - t0,
        }
        print(
            f"epsilon {eps:g}: PSNR {[round(c, 2) for c in curve]} dB over sigma {sigmas}; "
            f"loss at sigma {sigmas[-1]}: {loss:.1f}%; LR vs bicubic {lr_psnr:.2f} dB",
            flush=True,
        )
    (out / "tad_robustness.json").write_text(json.dumps(results, indent=2))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for eps, r in results["runs"].items():
        ax.plot(sigmas, r["psnr"], marker="o", label=f"epsilon = {float(eps):g}")
    ax.set_xlabel("noise sigma on the LR image ([0, 1] scale)")
    ax.set_ylabel("Set5 x2 PSNR (Y, dB)")
    ax.set_title(f"TAD {args.model}: robustness to LR noise")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "tad_robustness.png", dpi=120)
    print(f"wrote {out / 'tad_robustness.json'} and {out / 'tad_robustness.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
