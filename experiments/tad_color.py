"""Colour TAD on our budget: ``aetad_color`` (RGB -> one 8-bit grey image -> RGB) against the grey baseline.

Colour TAD (the thesis' "image colorization" section): the encoder writes a grey image (its guide is the
full-range luma ``0.299 R + 0.587 G + 0.114 B``), a decoder restores RGB from that grey image alone.
Recipe (the x4 TAD recipe of ``experiments/tad_thesis.py``, timed phases on a wall-clock budget):
loss ``10 * L1(RGB out, RGB) + L_latent`` with the epsilon ball 10 (grey levels) around the luma, the
grey latent rounded to 8 bits (clipped straight-through gradient) for the second half of the time, Adam
lr 2e-4 halved for the last quarter, batch 16, random flipped/rotated 64 px RGB patches of T91 + BSD200
(DIV2K when it is on the data search path).

The grey baseline is to colour TAD what "bicubic LR + a trained SR net" is to SR TAD: the same decoder
(``aetad_color``'s, alone) trained for the same wall-clock budget, same data, batch, lr schedule, to restore
RGB from the *plain* 8-bit luma image, loss L1 (``visionfw.model_defs.tad.aetad_color_grey_baseline``:
a weightless luma "encoder", the TAD task with alpha 1, beta 0 and 8-bit rounding from step 0).

Evaluation (``visionfw.tasks.tad.COLOR_PROTOCOL``): the grey image stored as 8 bits, decoded, PSNR on RGB of the
uint8 output, no shave, on Set5 and Set14 (images without colour left out: Set14's bridge and man), beside
the plain luma replicated to three channels.  The thesis' colour numbers are not available to this
repository, so its column says so.

    python experiments/tad_color.py --budget_minutes=22 --batch=8 --patch=48
    python experiments/tad_color.py --table_only
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tad_thesis  # noqa: E402  (the x4 experiment: training set, timed phases, run description)

SETS = ("Set5", "Set14")
BASELINE_MODEL = "visionfw.model_defs.tad:aetad_color_grey_baseline"
# run folder: (model, TAD task options replacing the recipe's, description)
RUNS = {
    "aetad_color": ("aetad_color", None, "colour TAD (aetad_color, R=3)"),
    "grey_baseline": (
        BASELINE_MODEL,
        {"alpha": 1.0, "beta": 0.0, "quantize_from": 0},
        "grey baseline (the same decoder on the plain luma, L1)",
    ),
}
THESIS = "not available"  # the thesis text (and its colour TAD numbers) is not in this repository


def evaluate(model_path, data_dir=None, sets=SETS):
    """{set: evaluate_color_tad result} over the sets present; absent sets are left out."""
    import keras

    from visionfw.data.benchmarks import load_benchmark
    from visionfw.errors import DataError
    from visionfw.tasks import tad

    model = keras.saving.load_model(model_path, safe_mode=True)
    out = {}
    for name in sets:
        try:
            hr = [rec.hr for rec in load_benchmark(name, 1, data_dir=data_dir)]
        except DataError:
            continue
        out[name] = tad.evaluate_color_tad(model, hr)
    return out


def table(ours, runs):
    """Markdown: one row per set; colour TAD, the grey baseline, the grey image replicated, the thesis.
    ``ours``: {run: {set: evaluate_color_tad result}}; ``runs``: {run: one line on its training}."""
    from visionfw.tasks.tad import COLOR_PROTOCOL

    head = [
        "dataset (colour images)",
        f"ours: {RUNS['aetad_color'][2]}",
        RUNS["grey_baseline"][2],
        "grey (luma) replicated to RGB",
        "thesis",
        "colour TAD grey image vs luma",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in SETS:
        tad_r, base_r = ours.get("aetad_color", {}).get(name), ours.get("grey_baseline", {}).get(name)
        any_r = tad_r or base_r
        if any_r is None:
            continue
        row = [
            f"{name} ({any_r['count']})",
            f"{tad_r['psnr']:.2f}" if tad_r else "not run",
            f"{base_r['psnr']:.2f}" if base_r else "not run",
            f"{any_r['grey_psnr']:.2f}",
            THESIS,
            f"{tad_r['latent_psnr']:.2f}" if tad_r else "not run",
        ]
        lines.append("| " + " | ".join(row) + " |")
    notes = [
        f"PSNR (dB). Protocol: {COLOR_PROTOCOL}. The last column: PSNR of colour TAD's 8-bit grey image "
        "against the 8-bit luma (how far the readable grey image moved). Thesis: its colour TAD numbers are "
        "not available to this repository."
    ]
    notes += [f"{RUNS[run][2]}: {text}" for run, text in runs.items()]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget_minutes", type=float, default=20.0, help="wall-clock training time of EACH run")
    ap.add_argument("--runs", default="aetad_color,grey_baseline", help=f"of {', '.join(RUNS)}")
    ap.add_argument("--steps", type=int, default=0, help="a step plan per run instead of the time budget")
    ap.add_argument("--first_val_every", type=int, default=40, help="validation interval of the first phase")
    ap.add_argument("--validations", type=int, default=6, help="about how many Set5 validations per run")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64, help="RGB patch size")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--epsilon", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None, help="first root of the data search path")
    ap.add_argument("--results", default="experiments/results/tad_color")
    ap.add_argument("--table_out", default=None, help="also write the table (markdown) here")
    ap.add_argument("--table_only", action="store_true", help="evaluate the runs as they are, train nothing")
    ap.set_defaults(scale=1)  # tad_thesis.config_for: colour TAD keeps the size (HR patch = lr_patch)
    args = ap.parse_args()

    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        train_data, described = tad_thesis.training_set(results, args.data_dir)
        print(f"training data: {described}", flush=True)
        for run in runs:
            model, options, _ = RUNS[run]
            tad_thesis.train_model(
                args,
                model,
                train_data,
                time.time() + args.budget_minutes * 60,
                run_name=run,
                task_options=options,
                validations=args.validations,
            )
    ours, described_runs = {}, {}
    for run in runs:
        path = results / run / "model.keras"
        if path.exists():
            ours[run] = evaluate(str(path), args.data_dir)
            described_runs[run] = tad_thesis.describe_run(results / run)
    text = table(ours, described_runs)
    data = {
        "ours": ours,
        "thesis": THESIS,
        "budget_minutes_each": args.budget_minutes,
        "curves": {r: tad_thesis.curve(results / r) for r in runs},
    }
    tad_thesis.write_tables(results, text, data, args.table_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
