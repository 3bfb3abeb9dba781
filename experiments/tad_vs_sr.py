"""TAD x2 versus plain SR with the same decoder and the same training budget.

Trains ``aetad_very_small`` as a task-aware autoencoder on T91 (loss 10*L1(SHR,HR) + L_latent,
epsilon-ball on the LR deviation, SLR quantised to 8 bits from half the steps on), and the very
same decoder architecture as a plain SR network on 8-bit MATLAB-bicubic LR patches, with the same
steps, batches, patch size and Adam schedule.  Evaluates both on Set5 and Set14:

* HR PSNR/SSIM: Y channel, EDSR protocol (output quantised to uint8 RGB, float Y of BT.601
  studio-swing rgb2ycbcr), ``scale`` px shaved, MATLAB bicubic for the SR input;
* LR readability (TAD only): RGB PSNR of the stored 8-bit SLR against 8-bit MATLAB bicubic of HR.

    python experiments/tad_vs_sr.py --steps=400 --patch=48 --out=/tmp/tad_vs_sr.json
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def shared_data():
    root = Path(os.environ.get("VISIONFW_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (root / "README.md").exists():
        sys.exit(f"reference data not found at {root}; set VISIONFW_SHARED_DATA")
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="aetad_very_small")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="HR patch size")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--epsilon", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    import keras
    import numpy as np

    import visionfw
    from model_defs.tad import decoder_spec
    from visionfw import tad
    from visionfw.data.image_io import list_images, read_image, read_image_uint8

    data = shared_data()
    train = [read_image(p) for p in list_images(data / "train" / "T91")]
    train = [np.repeat(t, 3, -1) if t.shape[-1] == 1 else t for t in train]
    sets = {s: [read_image_uint8(p) for p in list_images(data / "benchmark" / s)] for s in ("Set5", "Set14")}
    scale = 2
    common = dict(batch_size=args.batch, patch_size=args.patch, lr=args.lr, decay_every=int(args.steps * 0.75),
                  seed=args.seed, log_every=max(1, args.steps // 8))

    keras.utils.set_random_seed(args.seed)
    model = visionfw.get_model(args.model, scale=scale)
    task = tad.TADObjective(scale=scale, alpha=10.0, beta=1.0, epsilon=args.epsilon,
                            quantize_from=args.steps // 2)
    t0 = time.time()
    hist_tad = tad.train_tad(model, train, args.steps, task=task, **common)
    t_tad = time.time() - t0
    print(f"TAD trained {args.steps} steps in {t_tad:.0f} s; last {hist_tad[-1]}", flush=True)

    keras.utils.set_random_seed(args.seed)
    sr_model = visionfw.build_model(decoder_spec(args.model, scale))
    t0 = time.time()
    hist_sr = tad.train_sr(sr_model, train, args.steps, scale=scale, **common)
    t_sr = time.time() - t0
    print(f"SR trained {args.steps} steps in {t_sr:.0f} s; last {hist_sr[-1]}", flush=True)

    results = {"config": vars(args), "train_seconds": {"tad": t_tad, "sr": t_sr},
               "protocol": "HR: Y (BT.601 studio swing), EDSR protocol, shave 2, uint8 output; "
                           "LR: RGB PSNR of 8-bit SLR vs 8-bit MATLAB bicubic, no shave"}
    for name, images in sets.items():
        r_tad = tad.evaluate_tad(model, images, scale)
        r_sr = tad.evaluate_sr(sr_model, images, scale)
        results[name] = {"tad_psnr": r_tad["psnr"], "tad_ssim": r_tad["ssim"], "tad_lr_psnr": r_tad["lr_psnr"],
                         "sr_psnr": r_sr["psnr"], "sr_ssim": r_sr["ssim"]}
        print(f"{name}: TAD {r_tad['psnr']:.2f} dB / {r_tad['ssim']:.4f} (LR vs bicubic {r_tad['lr_psnr']:.2f} dB)"
              f"   SR {r_sr['psnr']:.2f} dB / {r_sr['ssim']:.4f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
