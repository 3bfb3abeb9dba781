"""The thesis' x4 TAD table on our budget: aetad_skip2 / aetad_very_small trained at x4, ours beside the thesis'.

Recipe (the thesis' loss and quantisation, read as in :mod:`visionfw.tasks.tad`): the x2 autoencoder applied twice
with shared weights, loss ``10 * L1(SHR, HR) + L_latent`` with the epsilon ball 10 (grey levels) around
MATLAB bicubic ``1/4`` of HR, SLR rounded to 8 bits (clipped straight-through gradient) from half the steps
on, Adam lr 2e-4 halved at 3/4 of the steps, batch 16, random flipped/rotated HR patches.  Training data:
DIV2K's HR training images when ``train/DIV2K`` (or ``train/DIV2K_train_HR``) is on the data search path,
else T91 + BSD200 (the classic 291 images; a folder of links under the results folder, nothing copied).

Evaluation (the protocol of the thesis' tables as the project reads them, the standard SR protocol): SLR
stored as an 8-bit image, decoded, PSNR on Y (BT.601 studio swing) of the uint8 output, ``scale`` px
shaved (EDSR protocol), on Set5 / Set14 / BSD100 / Urban100 where present.

A wall-clock budget (``--budget_minutes``, no ``--steps``) runs the recipe in timed phases, as the step
rate of a shared machine is not known in advance: float SLR for the first half of the training time,
8-bit SLR after it, lr halved for the last quarter; each phase ends with a checkpoint.  The steps they
reached go to ``plan.json``.  ``--steps=N`` instead gives a step plan (quantise from N/2, lr halved at
3N/4), resumable: run the same command again (``resume=auto``), or a larger ``--steps`` to continue a run.

    python experiments/tad_thesis.py --models=aetad_very_small --budget_minutes=90 \\
        --table_out=tad_x4_table.md
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
PROTOCOL = (
    "SLR stored as 8 bits, decoded; PSNR on Y (BT.601 studio swing) of the uint8 output, "
    "scale px shaved (EDSR protocol)"
)


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


def config_for(
    args, model, workdir, train_data, steps, quantize_from, lr_halved_at=None, lr=None, val_every=100, task_options=None
):
    """The recipe's TrainConfig; ``lr_halved_at=None``: constant ``lr`` (one phase of a timed run);
    ``task_options`` replace the recipe's TAD options (e.g. another loss, or a fixed quantize_from)."""
    from visionfw.train import TrainConfig

    schedule, kwargs = ("step", {"step_size": lr_halved_at, "gamma": 0.5}) if lr_halved_at else ("constant", {})
    options = {"alpha": 10.0, "beta": 1.0, "epsilon": args.epsilon, "quantize_from": quantize_from}
    options.update(task_options or {})
    return TrainConfig(
        model=model,
        task="tad",
        scale=args.scale,
        train_data=train_data,
        steps=steps,
        batch_size=args.batch,
        lr_patch=args.patch // args.scale,
        lr=lr or args.lr,
        optimizer="adam",
        schedule=schedule,
        schedule_kwargs=kwargs,
        seed=args.seed,
        task_options=options,
        val_data=["Set5"],
        val_every=val_every,
        ckpt_every=val_every,
        log_every=max(1, val_every // 2),
        data_dir=args.data_dir,
        workdir=str(workdir),
        resume="auto",
        tensorboard=False,
        progress=False,
    )


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


def _reached(workdir):
    """The step of the run's latest checkpoint (0: none yet)."""
    steps = [int(p.stem.split("-")[1]) for p in (Path(workdir) / "checkpoints").glob("ckpt-*.npz")]
    return max(steps, default=0)


def train_timed(args, model, workdir, train_data, stop_at, task_options=None, validations=12):
    """The recipe in wall-clock phases (the step rate of a shared machine is unknown in advance): float
    SLR for the first half of the time, 8-bit SLR after, lr halved for the last quarter.  Each phase
    ends with a checkpoint (SIGTERM at its deadline); returns the plan in steps (``plan.json``).
    ``task_options``: see :func:`config_for`; ``validations``: about how many over the run."""
    from visionfw.train import TrainingInterrupted, train

    start = time.time()
    phases = [
        ("float SLR", None, args.lr, 0.5),
        ("8-bit SLR", 0, args.lr, 0.75),
        ("8-bit SLR, lr halved", 0, args.lr / 2, 1.0),
    ]
    val_every, done = args.first_val_every, []
    for name, quantize_from, lr, end in phases:
        first, t0 = _reached(workdir), time.time()
        config = config_for(
            args,
            model,
            workdir,
            train_data,
            10**8,
            quantize_from,
            lr=lr,
            val_every=val_every,
            task_options=task_options,
        )
        try:
            with Deadline(start + end * (stop_at - start)):
                train(config)
        except TrainingInterrupted:
            pass
        last = _reached(workdir)
        done.append({"phase": name, "from": first, "to": last, "lr": lr})
        print(f"{model}: {name}: steps {first} -> {last} in {(time.time() - t0) / 60:.1f} min", flush=True)
        rate = (last - first) / max(time.time() - t0, 1.0)
        val_every = max(5, int(rate * (stop_at - start) / validations))
    return {"steps": done[-1]["to"], "quantize_from": done[1]["from"], "lr_halved_at": done[2]["from"], "phases": done}


def train_model(args, model, train_data, stop_at, run_name=None, task_options=None, validations=12):
    """Trains ``model`` into ``<results>/<run_name or model>``: ``--steps`` (or an earlier run's
    ``plan.json``) as a step plan, else timed phases until ``stop_at``; writes ``model.keras``; returns
    the plan.  ``task_options``, ``validations``: see :func:`train_timed`."""
    from visionfw.train import train

    workdir = Path(args.results) / (run_name or model)
    plan_file = workdir / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else None
    if plan is None and not args.steps:
        plan = train_timed(args, model, workdir, train_data, stop_at, task_options, validations)
    else:
        if plan is None:
            steps = args.steps
            plan = {"steps": steps, "quantize_from": steps // 2, "lr_halved_at": max(1, int(steps * 0.75))}
        plan["steps"] = max(plan["steps"], args.steps)  # --steps beyond an earlier run continues it
    workdir.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=2))
    print(f"{model}: plan {plan}", flush=True)
    # the step plan: trains what is missing, or (already complete) only writes model.keras
    train(
        config_for(
            args,
            model,
            workdir,
            train_data,
            plan["steps"],
            plan["quantize_from"],
            plan["lr_halved_at"],
            val_every=max(5, plan["steps"] // validations),
            task_options=task_options,
        )
    )
    return plan


def _rows(model_dir):
    path = Path(model_dir) / "train_log.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def curve(model_dir):
    """[(step, loss, Set5 PSNR or None)] of a run's log."""
    return [
        (int(r["step"]), float(r["loss"]), float(r["val_Set5_psnr"]) if r.get("val_Set5_psnr") else None)
        for r in _rows(model_dir)
    ]


def evaluate(model_path, scale, data_dir=None):
    """{set: {'psnr', 'bicubic_psnr', 'lr_psnr'}} over the sets present; absent sets are left out."""
    import keras

    from visionfw.data.benchmarks import load_benchmark
    from visionfw.errors import DataError
    from visionfw.tasks import tad

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


def write_tables(results, text, data, table_out=None):
    """The table as ``table.md`` and ``data`` as ``table.json`` in ``results``, the table also at ``table_out``."""
    print(text, flush=True)
    (results / "table.md").write_text(text)
    (results / "table.json").write_text(json.dumps(data, indent=2))
    if table_out:
        Path(table_out).write_text(text)


def describe_run(model_dir):
    """One line: steps reached of the plan, the recipe's sizes, training time, the Set5 curve."""
    plan_file, rows = Path(model_dir) / "plan.json", _rows(model_dir)
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    text = f"{rows[-1]['step'] if rows else 0} of {plan.get('steps', '?')} planned steps"
    cfg = Path(model_dir) / "config.json"
    if cfg.exists():
        c = json.loads(cfg.read_text())
        text += (
            f" on {Path(c['train_data']).name}, batch {c['batch_size']}, HR patch {c['lr_patch'] * c['scale']}, "
            f"lr {c['lr']:g}"
        )
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
    ap.add_argument(
        "--first_val_every",
        type=int,
        default=25,
        help="timed runs: validation interval of the "
        "first phase (later phases: about 12 validations over the run at the rate measured)",
    )
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
    curves = {m: curve(results / m) for m in models}
    data = {"ours": ours, "thesis": THESIS, "protocol": PROTOCOL, "curves": curves}
    write_tables(results, table(ours, runs), data, args.table_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
