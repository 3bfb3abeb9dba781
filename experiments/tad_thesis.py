"""The thesis' x4 TAD table on our budget: aetad_skip2 / aetad_very_small trained at x4, ours beside the thesis'.

Recipe (the thesis' loss and quantisation, read as in :mod:`visionfw.tad`): the x2 autoencoder applied twice
with shared weights, loss ``10 * L1(SHR, HR) + L_latent`` with the epsilon ball 10 (grey levels) around
MATLAB bicubic ``1/4`` of HR, SLR rounded to 8 bits (clipped straight-through gradient) from half the steps
on, Adam lr 2e-4 halved at 3/4 of the steps, batch 16, random flipped/rotated HR patches.  Training data:
DIV2K's HR training images when ``train/DIV2K`` (or ``train/DIV2K_train_HR``) is on the data search path,
else T91 + BSD200 (the classic 291 images; a folder of links under the results folder, nothing copied).

Evaluation (the protocol of the thesis' tables as the project reads them, the standard SR protocol): SLR
stored as an 8-bit image, decoded, PSNR on Y (BT.601 studio swing) of the uint8 output, ``scale`` px
shaved (EDSR protocol), on Set5 / Set14 / BSD100 / Urban100 where present.

A wall-clock budget (``--budget_minutes``) sets the number of steps: a first short chunk measures the
step rate, the plan (total steps, quantisation start, lr halving) is fixed from it and written to
``plan.json``; training stops cleanly (checkpoint) at the budget whatever the rate does later.  Run the
same command again to resume (``resume=auto``), or with ``--steps`` to give the total yourself (a GPU):

    python experiments/tad_thesis.py --models=aetad_very_small --budget_minutes=90 \\
        --table_out=/work/notes/tad_x4_table.md
    python experiments/tad_thesis.py --models=aetad_skip2,aetad_very_small --steps=300000 --patch=192
    python experiments/tad_thesis.py --table_only            # the table of the runs so far
"""
import argparse
import csv
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

SETS = ("Set5", "Set14", "BSD100", "Urban100")
# the thesis' final-model table at x4 (PSNR of the upscaled TAD image, DIV2K-trained)
THESIS = {
    "Kim et al.": {"Set5": 31.81, "Set14": 28.63, "BSD100": 28.51, "Urban100": 26.63},
    "aetad_skip2": {"Set5": 31.814, "Set14": 28.665, "BSD100": 28.601, "Urban100": 24.156},
    "aetad_very_small": {"Set5": 31.102, "Set14": 28.334, "BSD100": 25.719, "Urban100": 23.084},
}
PROTOCOL = ("SLR stored as 8 bits, decoded; PSNR on Y (BT.601 studio swing) of the uint8 output, "
            "scale px shaved (EDSR protocol)")


def training_set(results, data_dir=None):
    """(folder, description): DIV2K's HR images when on the search path, else T91 + BSD200 linked into
    ``results/train_T91+BSD200`` (links only: the data stay where they are)."""
    from visionfw.data import paths
    from visionfw.data.image_io import list_images
    from visionfw.errors import DataError

    for name in ("DIV2K", "DIV2K_train_HR"):
        try:
            return str(paths.find("train", name, data_dir)), name
        except DataError:
            pass
    parts = [paths.find("train", name, data_dir, what=f"The training set {name}") for name in ("T91", "BSD200")]
    folder = Path(results) / "train_T91+BSD200"
    folder.mkdir(parents=True, exist_ok=True)
    for part in parts:
        for image in list_images(part):
            link = folder / f"{part.name}_{image.name}"
            if not link.exists():
                link.symlink_to(image.resolve())
    return str(folder), f"T91 + BSD200 ({len(list_images(folder))} images; no DIV2K on the data search path)"


def config_for(args, model, workdir, train_data, steps, plan):
    from visionfw.train import TrainConfig

    return TrainConfig(
        model=model, task="tad", scale=args.scale, train_data=train_data, steps=steps, batch_size=args.batch,
        lr_patch=args.patch // args.scale, lr=args.lr, optimizer="adam", schedule="step",
        schedule_kwargs={"step_size": plan["lr_halved_at"], "gamma": 0.5}, seed=args.seed,
        task_options={"alpha": 10.0, "beta": 1.0, "epsilon": args.epsilon, "quantize_from": plan["quantize_from"]},
        val_data=["Set5"], val_every=plan["val_every"], ckpt_every=plan["val_every"], log_every=plan["log_every"],
        data_dir=args.data_dir, workdir=str(workdir), resume="auto", tensorboard=False, progress=False)


def make_plan(total, val_points=12):
    return {"steps": int(total), "quantize_from": int(total) // 2, "lr_halved_at": max(1, int(total * 0.75)),
            "val_every": max(1, int(total) // val_points), "log_every": max(1, int(total) // (2 * val_points))}


class Deadline:
    """SIGTERM to this process at ``when`` (time.time()): the trainer then checkpoints and stops."""

    def __init__(self, when):
        self.timer = threading.Timer(max(0.0, when - time.time()), os.kill, (os.getpid(), signal.SIGTERM))
        self.timer.daemon = True

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        return False


def train_model(args, model, train_data, stop_at):
    """Trains ``model`` into ``<results>/<model>`` until its plan's steps or ``stop_at``; returns the step reached."""
    from visionfw.errors import TrainingError
    from visionfw.train import train
    from visionfw.train.trainer import TrainingInterrupted

    workdir = Path(args.results) / model
    plan_file = workdir / "plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
    elif args.steps:
        plan = make_plan(args.steps)
    else:  # measure the step rate on a short chunk, then fit the plan into the budget
        first = args.probe_steps
        probe = dict(make_plan(10 ** 9), val_every=first, log_every=max(1, first // 4))
        train(config_for(args, model, workdir, train_data, first, probe))
        # the rate of the logged intervals after the first (which includes tracing the step)
        rate = [float(r["steps_per_sec"]) for r in _rows(workdir)][1:]
        rate = sum(rate) / len(rate)
        left = stop_at - time.time() - 12 * args.val_seconds  # the plan validates 12 times
        plan = make_plan(first + max(1, int(0.9 * rate * left)))
        print(f"{model}: {rate:.3f} steps/s over the first {first} steps -> {plan['steps']} steps in the budget",
              flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=2))
    print(f"{model}: plan {plan}", flush=True)
    config = config_for(args, model, workdir, train_data, plan["steps"], plan)
    reached = plan["steps"]
    try:
        with Deadline(stop_at):
            train(config)
    except TrainingInterrupted as exc:
        print(f"{model}: budget reached at step {exc.step} of {plan['steps']}", flush=True)
        reached = exc.step
        config.steps = reached
        train(config)  # already at its steps: only writes model.keras from the checkpoint
    except TrainingError as exc:
        print(f"{model}: {exc}", flush=True)
        return None
    return reached


def _rows(model_dir):
    path = Path(model_dir) / "train_log.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def curve(model_dir):
    """[(step, loss, Set5 PSNR or None)] of a run's log."""
    return [(int(r["step"]), float(r["loss"]), float(r["val_Set5_psnr"]) if r.get("val_Set5_psnr") else None)
            for r in _rows(model_dir)]


def evaluate(model_path, scale, data_dir=None):
    """{set: {'psnr', 'bicubic_psnr', 'lr_psnr'}} over the sets present; absent sets are left out."""
    import keras

    from visionfw import tad
    from visionfw.data.benchmarks import load_benchmark
    from visionfw.errors import DataError

    model = keras.saving.load_model(model_path, safe_mode=True)
    times = int(round(math.log2(scale)))
    out = {}
    for name in SETS:
        try:
            hr = [rec.hr for rec in load_benchmark(name, scale, data_dir=data_dir)]
        except DataError:
            continue
        r = tad.evaluate_tad(model, hr, scale, times=times)
        out[name] = {k: r[k] for k in ("psnr", "ssim", "bicubic_psnr", "lr_psnr")}
    return out


def table(ours, runs):
    """Markdown: one row per set, the thesis' columns then ours (``ours``: {model: {set: result}})."""
    models = list(ours)
    head = ["dataset", *THESIS, *[f"ours: {m}" for m in models], "bicubic (ours)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in SETS:
        row = [name] + [f"{THESIS[k][name]:.3f}" for k in THESIS]
        bicubic = None
        for m in models:
            r = ours[m].get(name)
            row.append(f"{r['psnr']:.3f}" if r else "absent")
            bicubic = r["bicubic_psnr"] if r else bicubic
        row.append(f"{bicubic:.3f}" if bicubic is not None else "absent")
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"Protocol: {PROTOCOL}. Thesis columns: DIV2K-trained final models."]
    for m in models:
        notes.append(f"ours {m}: {runs.get(m, '')}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def describe_run(model_dir):
    """One line: steps reached of the plan, the recipe's sizes, training time, the Set5 curve."""
    plan_file, rows = Path(model_dir) / "plan.json", _rows(model_dir)
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    text = f"{rows[-1]['step'] if rows else 0} of {plan.get('steps', '?')} planned steps"
    cfg = Path(model_dir) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text())
        text += f", batch {c['batch_size']}, HR patch {c['lr_patch'] * c['scale']}, lr {c['lr']:g}"
    if rows:
        text += f", {float(rows[-1]['time']) / 60:.0f} min of training"
    vals = [(s, p) for s, _, p in curve(model_dir) if p is not None]
    if vals:
        text += "; Set5 (validation) by step: " + ", ".join(f"{s}: {p:.2f}" for s, p in vals)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="aetad_very_small,aetad_skip2")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--steps", type=int, default=0, help="total steps per model (0: fit --budget_minutes)")
    ap.add_argument("--budget_minutes", type=float, default=90.0, help="wall-clock budget of all training")
    ap.add_argument("--eval_minutes", type=float, default=4.0, help="of the budget, kept for the final evaluation")
    ap.add_argument("--val_seconds", type=float, default=20.0, help="time one Set5 validation takes (planning)")
    ap.add_argument("--probe_steps", type=int, default=40, help="steps that measure the rate")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64, help="HR patch size")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--epsilon", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data_dir", default=None, help="first root of the data search path")
    ap.add_argument("--results", default="experiments/results/tad_thesis")
    ap.add_argument("--table_out", default=None, help="also write the table (markdown) here")
    ap.add_argument("--table_only", action="store_true", help="evaluate the runs as they are, train nothing")
    args = ap.parse_args()

    started = time.time()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        train_data, described = training_set(results, args.data_dir)
        print(f"training data: {described}", flush=True)
        for i, model in enumerate(models):
            # the budget left is shared equally by the models still to train
            share = (started + (args.budget_minutes - args.eval_minutes) * 60 - time.time()) / (len(models) - i)
            train_model(args, model, train_data, time.time() + share)
    ours, runs = {}, {}
    for model in models:
        path = results / model / "model.keras"
        if path.exists():
            ours[model] = evaluate(str(path), args.scale, args.data_dir)
            runs[model] = describe_run(results / model)
    text = table(ours, runs)
    print(text, flush=True)
    (results / "table.md").write_text(text)
    (results / "table.json").write_text(json.dumps({"ours": ours, "thesis": THESIS, "protocol": PROTOCOL,
                                                   "curves": {m: curve(results / m) for m in models}}, indent=2))
    if args.table_out:
        Path(args.table_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
