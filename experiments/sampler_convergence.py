"""Does the PSNR-gain histogram sampler converge faster than uniform sampling?

Trains the same model on the same data with the same step budget, hyper-parameters and
seeds once per sampler (``uniform``, ``psnr_hist``, ``pic``) through the library's
training loop (:func:`visionfw.train.train`, ``TrainConfig(sampler=...)``): every batch
is drawn on the device from a pool of ``--pool_size`` random HR crops of the training
images (pool crops, model initialisation and sampler RNG are seeded by the run's seed,
so the samplers of one seed share the pool and the initial weights).  The model is
validated every ``--val_every`` steps on Set5 and Set14 by the trainer's own
validation:

* protocol: the trainer's default for the model -- ``edsr`` for RGB models (the default
  ``espcn``: PSNR on float Y of BT.601 studio-swing rgb2ycbcr of the uint8-quantised
  RGB output, ``scale`` px shaved, MATLAB bicubic LR) or ``srcnn`` for Y models; the
  exact protocol string is copied into the summary.

Outputs (``--out``, default ``experiments/results/sampler_convergence/``):

* ``curves.csv``: sampler, seed, step, wall_s, train_s, set5_psnr, set14_psnr.
  ``wall_s`` is the trainer's elapsed time at that step (``train_log.csv``'s ``time``:
  includes earlier validations and the first step's tracing); ``train_s`` is the same
  minus the time spent inside earlier validations (measured exactly by wrapping the
  task's ``validate``), i.e. the wall-clock the samplers are compared on;
* ``convergence.png``: PSNR vs steps and vs training wall-clock, mean over seeds with a
  +-1 std band;
* ``summary.md`` / ``summary.json``: final PSNR per sampler (mean +- std over seeds), the
  paired difference to uniform, median step time, and the steps (and training seconds)
  each sampler needs to reach uniform's final mean PSNR, linearly interpolated on the
  mean validation curve ("not reached" when it never does).

Resumable: every (sampler, seed) run lives in ``<out>/runs/<key>/<sampler>_seed<seed>/``;
a finished run (``run_summary.json`` present) is skipped, an interrupted one resumes from
its last checkpoint.  Results are not meant to be committed.

    python experiments/sampler_convergence.py --seeds=0,1 --steps=1500 --val_every=250
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CSV_COLUMNS = ["sampler", "seed", "step", "wall_s", "train_s", "set5_psnr", "set14_psnr"]
VAL_SETS = {"Set5": "set5_psnr", "Set14": "set14_psnr"}
TIMED_TASK = "sr_valtimed"
VAL_TIMES_FILE = "val_times.csv"
DONE_FILE = "run_summary.json"


# ----------------------------------------------------------------------------- pure helpers


def steps_to_reach(steps, values, target, times=None):
    """First point where the curve ``values(steps)`` reaches ``target``.

    Linear interpolation between the last validation below ``target`` and the first at or
    above it.  Returns ``(step, time)`` (``time`` interpolated on ``times`` the same way,
    None without ``times``), or ``None`` when the curve never reaches ``target``.  When the
    first validation already reaches it, that validation's step is returned (an upper
    bound: nothing is known before it).
    """
    pts = [(float(s), float(v)) for s, v in zip(steps, values) if v is not None and math.isfinite(v)]
    tms = None if times is None else [float(t) for t, v in zip(times, values) if v is not None and math.isfinite(v)]
    for i, (s, v) in enumerate(pts):
        if v >= target:
            if i == 0:
                return s, (tms[0] if tms else None)
            s0, v0 = pts[i - 1]
            frac = (target - v0) / (v - v0)  # v > target > v0 here, so v != v0
            t = None if tms is None else tms[i - 1] + frac * (tms[i] - tms[i - 1])
            return s0 + frac * (s - s0), t
    return None


def mean_std(values):
    """(mean, sample std with ddof=1; 0.0 for a single value) of finite values, or (nan, nan)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def rows_from_log(log_rows, val_times, sampler, seed):
    """CSV rows (one per validation) from a run's ``train_log.csv`` rows.

    ``log_rows``: dicts with ``step``, ``time`` and ``val_Set5_psnr``/``val_Set14_psnr``
    (empty off validation steps).  ``val_times``: ``{step: seconds spent validating at
    step}``.  ``train_s`` at a step subtracts the validations of *earlier* steps (the
    trainer stamps ``time`` before validating).
    """
    out = []
    for row in sorted(log_rows, key=lambda r: int(r["step"])):
        step = int(row["step"])
        vals = {col: row.get(f"val_{name}_psnr", "") for name, col in VAL_SETS.items()}
        if not any(v not in ("", None) for v in vals.values()):
            continue
        wall = float(row["time"])
        spent = sum(d for s, d in val_times.items() if s < step)
        out.append(
            {
                "sampler": sampler,
                "seed": int(seed),
                "step": step,
                "wall_s": round(wall, 3),
                "train_s": round(wall - spent, 3),
                **{col: (float(v) if v not in ("", None) else float("nan")) for col, v in vals.items()},
            }
        )
    return out


def step_time_ms(log_rows, val_times):
    """Median ms per training step over the logged intervals, validations removed.

    The first interval (it holds the tf.function tracing) is left out.
    """
    rows = sorted(log_rows, key=lambda r: int(r["step"]))
    per_step = []
    for prev, cur in zip(rows[:-1], rows[1:]):
        s0, s1 = int(prev["step"]), int(cur["step"])
        spent = sum(d for s, d in val_times.items() if s0 <= s < s1)
        dt = float(cur["time"]) - float(prev["time"]) - spent
        if s1 > s0 and dt > 0:
            per_step.append(1000.0 * dt / (s1 - s0))
    if not per_step:
        return float("nan")
    per_step.sort()
    n = len(per_step)
    return per_step[n // 2] if n % 2 else 0.5 * (per_step[n // 2 - 1] + per_step[n // 2])


def mean_curves(rows, sampler, column):
    """``(steps, mean, std, mean train_s)`` over seeds, at the steps every seed has."""
    by_seed = {}
    for r in rows:
        if r["sampler"] == sampler:
            by_seed.setdefault(r["seed"], {})[int(r["step"])] = r
    if not by_seed:
        return [], [], [], []
    common = sorted(set.intersection(*(set(d) for d in by_seed.values())))
    means, stds, times = [], [], []
    for s in common:
        m, sd = mean_std([d[s][column] for d in by_seed.values()])
        means.append(m)
        stds.append(sd)
        times.append(mean_std([d[s]["train_s"] for d in by_seed.values()])[0])
    return common, means, stds, times


def summarize(rows, samplers, step_ms=None, baseline="uniform", tail=3):
    """Per sampler and validation set: final PSNR stats and steps to reach the baseline's final mean.

    ``step_ms``: ``{sampler: [median ms/step of each seed]}``.  ``tail``: the last ``tail``
    validations of every seed are also averaged (a less noisy end point than the last
    one alone, since validation PSNR jitters between checks at a constant lr).  Returns a dict
    ``{sampler: {set: {...}, 'step_ms': (mean, std), 'seeds': [...]}}``.
    """
    step_ms = step_ms or {}
    out = {}
    targets = {}
    for col in VAL_SETS.values():
        steps, means, _, _ = mean_curves(rows, baseline, col)
        targets[col] = means[-1] if means else None
    for sampler in samplers:
        mine = [r for r in rows if r["sampler"] == sampler]
        seeds = sorted({r["seed"] for r in mine})
        entry = {"seeds": seeds, "step_ms": mean_std(step_ms.get(sampler, []))}
        for name, col in VAL_SETS.items():
            final, tail_mean = {}, {}
            for seed in seeds:
                curve = sorted((r for r in mine if r["seed"] == seed), key=lambda r: r["step"])
                final[seed] = curve[-1][col]
                tail_mean[seed] = mean_std([r[col] for r in curve[-tail:]])[0]
            base_final = {}
            for r in rows:
                newer = r["seed"] not in base_final or r["step"] > base_final[r["seed"]][0]
                if r["sampler"] == baseline and newer:
                    base_final[r["seed"]] = (r["step"], r[col])
            paired = [final[s] - base_final[s][1] for s in seeds if s in base_final]
            steps, means, _, times = mean_curves(rows, sampler, col)
            target = targets[col]
            reach = None if target is None else steps_to_reach(steps, means, target, times)
            entry[name] = {
                "final": mean_std(final.values()),
                "final_by_seed": final,
                "tail_mean": mean_std(tail_mean.values()),
                "paired_diff_vs_baseline": mean_std(paired) if paired else (float("nan"), float("nan")),
                "target": target,
                "reach_step": None if reach is None else reach[0],
                "reach_train_s": None if reach is None else reach[1],
                "last_step": steps[-1] if steps else None,
            }
        out[sampler] = entry
    return out


def format_summary(summary, protocol="", baseline="uniform", tail=3):
    """Markdown table of :func:`summarize`'s result (one row per sampler)."""
    lines = []
    if protocol:
        lines.append(f"Protocol: {protocol}")
        lines.append("")
    head = ["sampler", "seeds", "ms/step"]
    for name in VAL_SETS:
        head += [
            f"{name} final (dB)",
            f"{name} last-{tail} mean",
            f"{name} d vs {baseline}",
            f"{name} steps to {baseline} final",
            f"{name} train s to it",
        ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for sampler, e in summary.items():
        ms, ms_sd = e["step_ms"]
        cells = [sampler, ",".join(str(s) for s in e["seeds"]), "n/a" if math.isnan(ms) else f"{ms:.1f} +- {ms_sd:.1f}"]
        for name in VAL_SETS:
            s = e[name]
            m, sd = s["final"]
            d, dsd = s["paired_diff_vs_baseline"]
            cells.append(f"{m:.3f} +- {sd:.3f}")
            tm, tsd = s["tail_mean"]
            cells.append(f"{tm:.3f} +- {tsd:.3f}")
            cells.append("n/a" if math.isnan(d) else f"{d:+.3f} +- {dsd:.3f}")
            if s["target"] is None:
                cells += ["n/a", "n/a"]
            elif s["reach_step"] is None:
                cells += ["not reached", "not reached"]
            else:
                cells.append(f"{s['reach_step']:.0f} / {s['last_step']}")
                cells.append("n/a" if s["reach_train_s"] is None else f"{s['reach_train_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    targets = {name: next(iter(summary.values()))[name]["target"] for name in VAL_SETS} if summary else {}
    if targets:
        lines.append("")
        lines.append(
            f"Target = {baseline}'s final mean PSNR: "
            + ", ".join(f"{n} {t:.3f} dB" for n, t in targets.items() if t is not None)
            + "; steps interpolated linearly on the mean-over-seeds validation curve. "
            f"d = paired per-seed difference of the final PSNR; last-{tail} mean = mean of the "
            f"last {tail} validations of each seed; +- = std over seeds."
        )
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4f}" if k.endswith("_psnr") else r[k]) for k in CSV_COLUMNS})
    os.replace(tmp, path)


def read_csv(path):
    with open(path, newline="") as f:
        return [
            {
                "sampler": r["sampler"],
                "seed": int(r["seed"]),
                "step": int(r["step"]),
                "wall_s": float(r["wall_s"]),
                "train_s": float(r["train_s"]),
                **{c: float(r[c]) for c in VAL_SETS.values()},
            }
            for r in csv.DictReader(f)
        ]


def read_val_times(path):
    """``{step: seconds}``; a step validated twice (a resumed run) keeps its last entry."""
    times = {}
    if os.path.exists(path):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                times[int(r["step"])] = float(r["seconds"])
    return times


def plot(rows, samplers, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    for i, (name, col) in enumerate(VAL_SETS.items()):
        for sampler in samplers:
            steps, means, stds, times = mean_curves(rows, sampler, col)
            if not steps:
                continue
            lo = [m - s for m, s in zip(means, stds)]
            hi = [m + s for m, s in zip(means, stds)]
            for j, x in enumerate((steps, times)):
                (line,) = axes[i][j].plot(x, means, marker="o", ms=3, label=sampler)
                axes[i][j].fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
        axes[i][0].set_xlabel("training step")
        axes[i][1].set_xlabel("training wall-clock, validation excluded (s)")
        for j in range(2):
            axes[i][j].set_ylabel(f"{name} PSNR (dB)")
            axes[i][j].grid(alpha=0.3)
            axes[i][j].legend()
    fig.suptitle(title + "\nmean over seeds, band = +-1 std", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- training


def _register_timed_task():
    """The SR task with its ``validate`` timed into ``<workdir>/val_times.csv``."""
    from visionfw.tasks.base import TASKS, SRTask, register_task

    if TIMED_TASK in TASKS:
        return

    class ValTimedSRTask(SRTask):
        name = TIMED_TASK

        def validate(self, model):
            t0 = time.perf_counter()
            result = super().validate(model)
            seconds = time.perf_counter() - t0
            path = os.path.join(self.config.workdir, VAL_TIMES_FILE)
            new = not os.path.exists(path)
            step = int(self.config.steps) if self._step is None else int(self._step) + 1
            with open(path, "a", newline="") as f:
                if new:
                    f.write("step,seconds\n")
                f.write(f"{step},{seconds:.4f}\n")
            return result

        def begin_step(self, step):
            self._step = step  # the trainer validates after step+1 is done
            return super().begin_step(step)

        _step = None

    register_task(TIMED_TASK, ValTimedSRTask)


def run_one(args, sampler, seed, run_dir):
    """Train one (sampler, seed) unless finished; return its rows, step time and protocol."""
    run_dir = Path(run_dir)
    done = run_dir / DONE_FILE
    if not done.exists():
        from visionfw.train import TrainConfig, train

        _register_timed_task()
        kwargs = dict(args.sampler_kwargs.get(sampler, {}))
        config = TrainConfig(
            model=args.model,
            scale=args.scale,
            task=TIMED_TASK,
            train_data=args.train_data,
            val_data=list(VAL_SETS),
            data_dir=args.data_dir,
            steps=args.steps,
            seed=seed,
            schedule=args.schedule,
            sampler=sampler,
            pool_size=args.pool_size,
            sampler_kwargs=kwargs,
            workdir=str(run_dir),
            resume="auto",
            val_every=args.val_every,
            ckpt_every=args.val_every,
            log_every=args.log_every,
            keep_checkpoints=1,
            tensorboard=False,
            progress=False,
        )
        t0 = time.perf_counter()
        result = train(config)
        info = {
            "sampler": sampler,
            "seed": seed,
            "process_wall_s": time.perf_counter() - t0,
            "trainer_time_s": result["time_s"],
            "protocol": result["protocol"],
            "val": result["val"],
            "steps": result["steps"],
            "sampler_kwargs": kwargs,
        }
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, done)
        print(
            f"  done {sampler} seed {seed}: {info['process_wall_s']:.0f} s, "
            f"Set5 {result['val']['Set5']['psnr']:.3f} dB",
            flush=True,
        )
    else:
        print(f"  skip {sampler} seed {seed} (finished earlier)", flush=True)
    info = json.loads(done.read_text())
    with open(run_dir / "train_log.csv", newline="") as f:
        log_rows = list(csv.DictReader(f))
    val_times = read_val_times(run_dir / VAL_TIMES_FILE)
    return rows_from_log(log_rows, val_times, sampler, seed), step_time_ms(log_rows, val_times), info


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="espcn", help="registry name (default espcn: RGB, edsr protocol)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--val_every", type=int, default=250)
    ap.add_argument(
        "--schedule",
        default=None,
        choices=["constant", "step", "multistep", "cosine"],
        help="lr schedule (default: the model preset's; cosine decays to 0 at --steps)",
    )
    ap.add_argument("--log_every", type=int, default=50, help="log interval (step-time estimate)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--samplers", default="uniform,psnr_hist,pic")
    ap.add_argument("--pool_size", type=int, default=10000)
    ap.add_argument(
        "--sampler_kwargs", default="{}", help='JSON {sampler: {option: value}}, e.g. \'{"psnr_hist": {"bins": 10}}\''
    )
    ap.add_argument("--out", default="experiments/results/sampler_convergence")
    ap.add_argument(
        "--train_data", default=None, help="training images (default: train/T91 on the library's data search path)"
    )
    ap.add_argument(
        "--data_dir",
        default=None,
        help="first root of the library's data search path (benchmark sets, and T91 when --train_data is not given)",
    )
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    args.sampler_kwargs = json.loads(args.sampler_kwargs)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.train_data is None:
        from visionfw.data import paths
        from visionfw.errors import DataError

        try:
            args.train_data = str(paths.find("train", "T91", args.data_dir, what="The training set T91"))
        except DataError as exc:
            sys.exit(f"{exc} (or pass --train_data)")
    if not Path(args.train_data).is_dir():
        sys.exit(f"--train_data={args.train_data}: no such folder.")
    out = Path(args.out)
    key = f"{args.model}_x{args.scale}_steps{args.steps}_val{args.val_every}_pool{args.pool_size}"
    if args.schedule:
        key += f"_{args.schedule}"
    runs = out / "runs" / key
    rows, step_ms, protocol = [], {}, ""
    t0 = time.perf_counter()
    for seed in args.seeds:  # seed-major: an early stop still leaves complete paired seeds
        for sampler in args.samplers:
            r, ms, info = run_one(args, sampler, seed, runs / f"{sampler}_seed{seed}")
            rows += r
            step_ms.setdefault(sampler, []).append(ms)
            protocol = protocol or info.get("protocol", "")
    print(f"all runs: {time.perf_counter() - t0:.0f} s", flush=True)
    write_csv(out / "curves.csv", rows)
    summary = summarize(rows, args.samplers, step_ms)
    title = (
        f"{args.model} x{args.scale}, {Path(args.train_data).name}, pool {args.pool_size}, "
        f"{args.steps} steps, lr schedule {args.schedule or 'preset'}, seeds {args.seeds}"
    )
    plot(rows, args.samplers, out / "convergence.png", title)
    table = format_summary(summary, protocol)
    (out / "summary.md").write_text(f"# Sampler convergence: {title}\n\n{table}")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "config": dict(vars(args)),
                "protocol": protocol,
                "step_ms_by_seed": step_ms,
                "summary": summary,
            },
            indent=2,
            default=str,
        )
    )
    print(table)
    print(f"wrote {out / 'curves.csv'}, {out / 'convergence.png'}, {out / 'summary.md'}")
    return summary


if __name__ == "__main__":
    main()
