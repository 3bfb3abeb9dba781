"""Does training on synthetic real-world degradations help on degraded photos?

Trains the same network with the same budget and seeds twice through the library's loop
(:func:`visionfw.train.train`) on T91:

(a) on bicubic LR (the default pipeline);
(b) with ``--degradation`` (``--train_degradation``, default the ``realsr`` preset: random iso/aniso
    Gaussian blur sigma 0.2-3, bicubic down, Gaussian noise 1-25 grey levels, JPEG q 30-95).

Both are tested on Set5 (and Set14) degraded with a held-out setting (``--test_degradation``):
a Gaussian blur of sigma 1.6 (15 taps), a Lanczos downscale (a method (b) never saw), colour noise
of 8 grey levels and JPEG at quality 55, drawn once per image with a fixed seed so (a) and (b) see the same LR images.
Score:
PSNR/SSIM on Y (BT.601, MATLAB rgb2ycbcr) of the uint8-rounded output, ``scale`` px shaved (the
edsr protocol's measure on a non-bicubic LR), and the bicubic upscaling of the same LR as a floor.

    python experiments/realsr_degradation.py --seeds=0,1,2 --steps=1500
    python experiments/realsr_degradation.py --train_degradation=realesrgan-like \
        --out=experiments/results/realesrgan_degradation
    python experiments/realsr_degradation.py --seeds=0 --steps=10 --out=/tmp/realsr_smoke   # smoke run

Writes ``<out>/summary.md`` / ``summary.json``; finished runs are reused.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TEST_DEGRADATION = "blur(sigma=1.6:1.6,size=15,kinds=iso)+down(methods=lanczos)+noise(sigma=8:8,gray=0)+jpeg(q=55:55)"
TEST_SEED = 2024


def degraded_test_set(name, scale, spec, data_dir=None):
    """[(image name, HR uint8, LR float32 in [0, 1])] of benchmark ``name`` under ``spec``."""
    import numpy as np

    from visionfw.data.benchmarks import load_benchmark
    from visionfw.degradation import make_degrader

    degrade = make_degrader(spec, scale, TEST_SEED)
    out = []
    for i, item in enumerate(load_benchmark(name, scale, data_dir=data_dir)):
        hr = (
            item.hr
            if item.hr.ndim == 3 and item.hr.shape[-1] == 3
            else np.repeat(item.hr.reshape(*item.hr.shape[:2], 1), 3, axis=-1)
        )  # grey photos (Set14) as RGB
        lr = degrade(hr[None].astype(np.float32) / 255.0, i)
        out.append((item.name, hr, np.asarray(lr)[0]))
    return out


def score(model, test_set, scale, channels="rgb"):
    """Mean PSNR/SSIM of ``model`` and of bicubic on ``test_set`` (Y, shave = scale)."""
    import numpy as np

    from visionfw.data.imresize import imresize_numpy
    from visionfw.inference import super_resolve
    from visionfw.metrics.psnr_ssim import evaluate_pair

    rows = {"model": [], "bicubic": []}
    for _, hr, lr in test_set:
        sr = super_resolve(model, lr)
        rows["model"].append(evaluate_pair(sr, hr, scale, protocol="edsr"))
        up = np.clip(imresize_numpy(lr.astype(np.float64), scale), 0, 1)
        rows["bicubic"].append(evaluate_pair(up, hr, scale, protocol="edsr"))
    return {
        k: {"psnr": statistics.mean(r["psnr"] for r in v), "ssim": statistics.mean(r["ssim"] for r in v)}
        for k, v in rows.items()
    }


def run_one(variant, seed, args):
    import keras

    from visionfw.train import TrainConfig, train

    workdir = Path(args.out) / "runs" / f"{variant}_seed{seed}"
    config = TrainConfig(
        model=args.model,
        scale=args.scale,
        train_data=args.train_data,
        val_data=[],
        steps=args.steps,
        seed=seed,
        workdir=str(workdir),
        ckpt_every=max(100, args.steps // 4),
        log_every=max(50, args.steps // 10),
        tensorboard=False,
        progress=False,
        degradation=args.train_degradation if variant == "degraded" else None,
    )
    result = train(config)
    return keras.saving.load_model(result["model_path"], compile=False), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train_data", default="../shared/data/train/T91")
    ap.add_argument("--train_degradation", default="realsr")
    ap.add_argument("--test_degradation", default=TEST_DEGRADATION)
    ap.add_argument("--test_sets", default="Set5,Set14")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--out", default="experiments/results/realsr_degradation")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = {
        name: degraded_test_set(name, args.scale, args.test_degradation, args.data_dir)
        for name in args.test_sets.split(",")
        if name
    }
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        for variant in ("bicubic", "degraded"):
            done = out / "runs" / f"{variant}_seed{seed}" / "scores.json"
            if done.is_file():
                row = json.loads(done.read_text())
            else:
                model, result = run_one(variant, seed, args)
                row = {
                    "variant": variant,
                    "seed": seed,
                    "steps": result["steps"],
                    "seconds": result["time_s"],
                    "scores": {name: score(model, test_set, args.scale) for name, test_set in sets.items()},
                }
                done.write_text(json.dumps(row, indent=1))
            rows.append(row)
            print(variant, seed, {k: round(v["model"]["psnr"], 3) for k, v in row["scores"].items()}, flush=True)

    names = list(sets)
    lines = [
        f"{args.model} x{args.scale}, {args.steps} steps on {Path(args.train_data).name} per run; trained on "
        f"(a) bicubic LR, (b) --degradation={args.train_degradation}. Test LR: {args.test_degradation} "
        f"(seed {TEST_SEED}, per image). PSNR/SSIM on Y (BT.601) of the uint8 output, {args.scale} px shaved.",
        "",
        "| seed | " + " | ".join(f"{n} (a) | {n} (b) | {n} (b)-(a) | {n} bicubic" for n in names) + " |",
        "|---" * (1 + 4 * len(names)) + "|",
    ]
    by = {(r["variant"], r["seed"]): r for r in rows}
    gains = {n: [] for n in names}
    for seed in sorted({r["seed"] for r in rows}):
        a, b = by[("bicubic", seed)]["scores"], by[("degraded", seed)]["scores"]
        cells = []
        for n in names:
            gain = b[n]["model"]["psnr"] - a[n]["model"]["psnr"]
            gains[n].append(gain)
            cells.append(
                f"{a[n]['model']['psnr']:.3f} | {b[n]['model']['psnr']:.3f} | {gain:+.3f} | "
                f"{a[n]['bicubic']['psnr']:.3f}"
            )
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines.append("")
    for n in names:
        lines.append(
            f"- {n}: (b) - (a) = {statistics.mean(gains[n]):+.3f} dB on average "
            f"(min {min(gains[n]):+.3f}, max {max(gains[n]):+.3f}) over {len(gains[n])} seeds"
        )
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({"rows": rows, "gains": gains, "args": vars(args)}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
