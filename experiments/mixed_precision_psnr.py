"""Does mixed bfloat16 training keep the PSNR of float32 training?

Trains each model twice per seed through the library's loop (:func:`visionfw.train.train`): once in
float32 and once with ``mixed_precision='bfloat16'`` (Keras ``mixed_bfloat16``: bf16 compute, float32
weights and optimizer state), with the same seed, so the pair shares initial weights, crops and batch
order.  The final model of each run is scored by the trainer's validation on Set5 and Set14: the
``edsr`` protocol (float Y of BT.601 on the uint8-rounded output, scale px shaved, MATLAB bicubic LR),
computed in float32/float64 whatever the training precision.  ``--fp16`` adds mixed float16 runs (loss
scaling), where the device has fast fp16.

    python experiments/mixed_precision_psnr.py --models=espcn,edsr_baseline --seeds=0,1,2
    python experiments/mixed_precision_psnr.py --models=espcn --seeds=0 --steps=espcn=20   # smoke run
    # EDSR-baseline past bicubic on 2 cores: a shorter, faster recipe than the paper's
    python experiments/mixed_precision_psnr.py --models=edsr_baseline --seeds=0,1 --steps=edsr_baseline=1000 \
        --set="edsr_baseline.lr=5e-4,edsr_baseline.schedule=cosine,edsr_baseline.lr_patch=24" \
        --out=experiments/results/mixed_precision_edsr1000

Writes ``<out>/summary.md`` and ``summary.json``: PSNR per (model, precision, seed), the paired
difference bf16 - fp32 per seed, its mean and the largest absolute one, and steps/s.  Finished runs
(``<out>/runs/<model>_<precision>_seed<s>/result.json``) are reused.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# budgets that fit 2 CPU cores; otherwise each model's recipe (ESPCN's is the quick-start one)
DEFAULT_STEPS = {"espcn": 1500, "edsr_baseline": 300}
DEFAULT_OPTIONS = {"edsr_baseline": {"batch_size": 8, "lr_patch": 32}}


def parse_steps(text):
    steps = dict(DEFAULT_STEPS)
    for item in filter(None, (text or "").split(",")):
        name, value = item.split("=")
        steps[name.strip()] = int(value)
    return steps


def parse_set(text):
    """{model: {TrainConfig field: value}} from 'model.field=value,...' (values as JSON where they parse)."""
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        model, _, field = key.strip().partition(".")
        try:
            value = json.loads(value)
        except ValueError:
            value = value.strip()
        out.setdefault(model, {})[field] = value
    return out


def run_one(model, precision, seed, steps, args):
    from visionfw.train import TrainConfig, train

    workdir = Path(args.out) / "runs" / f"{model}_{precision}_seed{seed}"
    done = workdir / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    config = TrainConfig(
        model=model,
        scale=args.scale,
        train_data=args.train_data,
        val_data=["Set5", "Set14"],
        steps=steps,
        seed=seed,
        workdir=str(workdir),
        val_every=0,
        ckpt_every=max(100, steps // 4),
        log_every=max(50, steps // 10),
        tensorboard=False,
        progress=False,
        mixed_precision=None if precision == "fp32" else precision,
        **{**DEFAULT_OPTIONS.get(model, {}), **parse_set(args.set).get(model, {})},
    )
    result = train(config)
    row = {
        "model": model,
        "precision": precision,
        "seed": seed,
        "steps": steps,
        "set5": result["val"]["Set5"]["psnr"],
        "set14": result["val"]["Set14"]["psnr"],
        "steps_per_sec": result["steps_per_sec"],
        "protocol": result["protocol"],
    }
    done.write_text(json.dumps(row, indent=1))
    return row


def summarise(rows, precisions):
    lines, summary = [], {"rows": rows, "pairs": {}}
    protocol = rows[0]["protocol"] if rows else ""
    lines.append(
        f"PSNR (dB) after the same steps and seed; {protocol}; evaluation in float32 on uint8-rounded output.\n"
    )
    lines.append(
        "| model | steps | seed | "
        + " | ".join(f"{p} Set5 | {p} Set14" for p in precisions)
        + " | "
        + " | ".join(f"{p}-fp32 Set5 | {p}-fp32 Set14" for p in precisions[1:])
        + " |"
    )
    lines.append("|---" * (3 + 2 * len(precisions) + 2 * (len(precisions) - 1)) + "|")
    by = {(r["model"], r["precision"], r["seed"]): r for r in rows}
    for model in dict.fromkeys(r["model"] for r in rows):
        seeds = sorted({r["seed"] for r in rows if r["model"] == model})
        for seed in seeds:
            cells = [by[(model, p, seed)] for p in precisions]
            diffs = [(c["set5"] - cells[0]["set5"], c["set14"] - cells[0]["set14"]) for c in cells[1:]]
            for p, d in zip(precisions[1:], diffs):
                summary["pairs"].setdefault(f"{model}/{p}", []).append(d)
            lines.append(
                f"| {model} | {cells[0]['steps']} | {seed} | "
                + " | ".join(f"{c['set5']:.3f} | {c['set14']:.3f}" for c in cells)
                + " | "
                + " | ".join(f"{a:+.3f} | {b:+.3f}" for a, b in diffs)
                + " |"
            )
    lines.append("")
    for key, pairs in summary["pairs"].items():
        flat = [v for pair in pairs for v in pair]
        mean5 = statistics.mean(p[0] for p in pairs)
        mean14 = statistics.mean(p[1] for p in pairs)
        lines.append(
            f"- {key}: mean paired difference Set5 {mean5:+.3f}, Set14 {mean14:+.3f} dB; largest "
            f"|difference| {max(map(abs, flat)):.3f} dB over {len(pairs)} seeds"
        )
    for model in dict.fromkeys(r["model"] for r in rows):
        speed = {
            p: statistics.median(r["steps_per_sec"] for r in rows if r["model"] == model and r["precision"] == p)
            for p in precisions
        }
        lines.append(
            f"- {model} steps/s (median over seeds, as the trainer reports them): "
            + ", ".join(f"{p} {v:.2f}" for p, v in speed.items())
        )
    return "\n".join(lines) + "\n", summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="espcn,edsr_baseline")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", default="", help="model=steps overrides, e.g. espcn=1500,edsr_baseline=300")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--train_data", default="../shared/data/train/T91")
    ap.add_argument("--fp16", action="store_true", help="add mixed float16 runs")
    ap.add_argument("--set", default="", help="TrainConfig overrides per model: 'edsr_baseline.lr=5e-4,...'")
    ap.add_argument("--out", default="experiments/results/mixed_precision")
    args = ap.parse_args()

    precisions = ["fp32", "bfloat16"] + (["float16"] if args.fp16 else [])
    steps = parse_steps(args.steps)
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        for seed in [int(s) for s in args.seeds.split(",") if s]:
            for precision in precisions:
                row = run_one(model, precision, seed, steps.get(model, 1000), args)
                print(
                    f"{model} {precision} seed {seed}: Set5 {row['set5']:.3f} Set14 {row['set14']:.3f} dB "
                    f"({row['steps_per_sec']:.2f} steps/s)",
                    flush=True,
                )
                rows.append(row)
    text, summary = summarise(rows, precisions)
    out = Path(args.out)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
