"""TAD x2 versus plain SR with the same decoder and the same training budget.

Trains ``aetad_very_small`` as a task-aware autoencoder on T91 (``task='tad'``: loss
10*L1(SHR,HR) + L_latent, epsilon-ball on the LR deviation, SLR quantised to 8 bits from half
the steps on), and the very same decoder architecture as a plain SR network (``task='sr'``) on
8-bit MATLAB-bicubic LR patches, with the same steps, batches, patch size and Adam schedule,
both through the one training loop (:func:`visionfw.train.train`).  Evaluates both on Set5 and
Set14:

* HR PSNR/SSIM: Y channel, EDSR protocol (output quantised to uint8 RGB, float Y of BT.601
  studio-swing rgb2ycbcr), ``scale`` px shaved, MATLAB bicubic for the SR input
  (SR: :func:`visionfw.evaluate.evaluate_model`; TAD: :func:`visionfw.tasks.tad.evaluate_tad`);
* LR readability (TAD only): RGB PSNR of the stored 8-bit SLR against 8-bit MATLAB bicubic of HR.

    python experiments/tad_vs_sr.py --steps=400 --patch=48 --out=/tmp/tad_vs_sr.json
    python experiments/tad_vs_sr.py --steps=4 --batch=2 --patch=16     # a smoke run
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def register_decoder_as_sr(name, scale):
    """Registers ``name``'s TAD decoder as an SR model (8-bit LR in, HR out); returns its name."""
    from visionfw.model_defs.tad import decoder_spec
    from visionfw.zoo.registry import register_model

    sr_name = f"{name}_decoder_sr"

    def decoder_sr(scale=scale):
        spec = decoder_spec(name, scale)
        spec["meta"] = dict(spec["meta"], channels="rgb", upsampled_input=False, scale=scale)
        return spec

    register_model(
        sr_name,
        decoder_sr,
        family="tad",
        scales=(scale,),
        task="sr",
        description=f"the decoder of {name} trained as plain SR",
    )
    return sr_name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="aetad_very_small")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="HR patch size")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--epsilon", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None, help="first root of the data search path")
    ap.add_argument("--workdir", default="experiments/results/tad_vs_sr", help="the two training runs")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    import keras
    import tad_runs

    from visionfw.evaluate import evaluate_model
    from visionfw.tasks import tad
    from visionfw.train import train

    scale = 2
    common = dict(
        steps=args.steps,
        batch=args.batch,
        hr_patch=args.patch,
        lr=args.lr,
        seed=args.seed,
        data_dir=args.data_dir,
        scale=scale,
    )
    runs = Path(args.workdir)
    t0 = time.time()
    res_tad = train(
        tad_runs.train_config(
            args.model,
            runs / "tad",
            task="tad",
            **common,
            task_options={"alpha": 10.0, "beta": 1.0, "epsilon": args.epsilon, "quantize_from": args.steps // 2},
        )
    )
    t_tad = time.time() - t0
    print(f"TAD trained {args.steps} steps in {t_tad:.0f} s; last loss {res_tad['final_loss']:.4g}", flush=True)

    t0 = time.time()
    res_sr = train(
        tad_runs.train_config(register_decoder_as_sr(args.model, scale), runs / "sr", task="sr", loss="l1", **common)
    )
    t_sr = time.time() - t0
    print(f"SR trained {args.steps} steps in {t_sr:.0f} s; last loss {res_sr['final_loss']:.4g}", flush=True)

    model = keras.saving.load_model(res_tad["model_path"], safe_mode=True)
    sr_model = keras.saving.load_model(res_sr["model_path"], safe_mode=True)
    results = {
        "config": vars(args),
        "train_seconds": {"tad": t_tad, "sr": t_sr},
        "protocol": "HR: Y (BT.601 studio swing), EDSR protocol, shave 2, uint8 output; "
        "LR: RGB PSNR of 8-bit SLR vs 8-bit MATLAB bicubic, no shave",
    }
    for name in ("Set5", "Set14"):
        r_tad = tad.evaluate_tad(model, tad_runs.hr_images(name, scale, args.data_dir), scale)
        r_sr = evaluate_model(
            sr_model,
            [name],
            scale,
            protocol="edsr",
            data_dir=args.data_dir,
            channels="rgb",
            upsampled_input=False,
            progress=False,
        )[name]
        results[name] = {
            "tad_psnr": r_tad["psnr"],
            "tad_ssim": r_tad["ssim"],
            "tad_lr_psnr": r_tad["lr_psnr"],
            "sr_psnr": r_sr["psnr"],
            "sr_ssim": r_sr["ssim"],
        }
        print(
            f"{name}: TAD {r_tad['psnr']:.2f} dB / {r_tad['ssim']:.4f} (LR vs bicubic {r_tad['lr_psnr']:.2f} dB)"
            f"   SR {r_sr['psnr']:.2f} dB / {r_sr['ssim']:.4f}",
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
