"""Rank training sets by the PSNR gain over bicubic they give one network.

:func:`rank_datasets` trains the same network (same hyper-parameters, steps, batch and
seed) once per training set, evaluates each on every test set, and reports the mean
PSNR gain over bicubic in a matrix: **rows are test sets, columns are training sets**.
:func:`rank_matrix` (a pure function) ranks the training sets per test set (1 = largest
gain; equal gains share the smaller rank), gives each test set's "min diff" -- the gap
between its best and second-best training set, i.e. how decisive the ranking is -- and
an overall ranking by mean rank (ties broken by the larger mean gain, then by name).

The labels matter: every cell is looked up by its (test, train) names, never by
position, and :func:`format_rank_table` writes the names next to their own values (the
table of the original research had its row labels shifted by one row).

Resumable: each training set's model is ``out/<train set>/model.keras`` (the trainer
resumes an interrupted run from its checkpoints), and each (train, test) result is kept
in ``out/rank_cache.json``; finished cells are skipped on a rerun.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import numpy as np

from visionfw.errors import ConfigError, DataError

__all__ = ["rank_matrix", "format_rank_table", "parse_rank_table", "resolve_train_sets", "default_train_root",
           "rank_datasets", "plot_gain_distributions"]


# --------------------------------------------------------------------------- ranking (pure)


def rank_matrix(gains):
    """Ranks the training sets of ``gains[test][train]`` (mean PSNR gain in dB).

    Every test set must list the same training sets.  Returns a dict:

    * ``tests``, ``trains``: the names, in input order;
    * ``gains``: the input (copied);
    * ``ranks[test][train]``: 1 = largest gain; ties share the smaller rank ("1224");
    * ``best[test]``: the training set ranked first (first in input order among ties);
    * ``min_diff[test]``: best gain minus second-best gain (0 with a tie; None with one set);
    * ``mean_rank[train]``, ``mean_gain[train]``: over the test sets;
    * ``overall``: training sets ordered by mean rank, then larger mean gain, then name;
    * ``overall_rank[train]``: 1-based position in ``overall``.
    """
    if not gains:
        raise ConfigError("rank_matrix: no test sets in the gains matrix.")
    tests = list(gains)
    trains = list(gains[tests[0]])
    if not trains:
        raise ConfigError(f"rank_matrix: test set {tests[0]!r} has no training-set columns.")
    for t in tests:
        if set(gains[t]) != set(trains):
            raise ConfigError(f"rank_matrix: test set {t!r} has training sets {sorted(gains[t])}, "
                              f"expected {sorted(trains)}; every row needs every column.")
    ranks, best, min_diff = {}, {}, {}
    for t in tests:
        values = {tr: float(gains[t][tr]) for tr in trains}
        ranks[t] = {tr: 1 + sum(1 for other in trains if values[other] > values[tr]) for tr in trains}
        order = sorted(trains, key=lambda tr: (-values[tr], trains.index(tr)))
        best[t] = order[0]
        min_diff[t] = values[order[0]] - values[order[1]] if len(order) > 1 else None
    mean_rank = {tr: float(np.mean([ranks[t][tr] for t in tests])) for tr in trains}
    mean_gain = {tr: float(np.mean([float(gains[t][tr]) for t in tests])) for tr in trains}
    overall = sorted(trains, key=lambda tr: (mean_rank[tr], -mean_gain[tr], tr))
    return {"tests": tests, "trains": trains, "gains": {t: dict(gains[t]) for t in tests}, "ranks": ranks,
            "best": best, "min_diff": min_diff, "mean_rank": mean_rank, "mean_gain": mean_gain,
            "overall": overall, "overall_rank": {tr: i + 1 for i, tr in enumerate(overall)}}


def format_rank_table(table, digits=3):
    """Markdown: one row per test set ("gain (rank)" per training set, best set, min diff),
    then rows for the mean gain, mean rank and overall rank of each training set."""
    trains = table["trains"]
    head = ["test set \\ train set"] + trains + ["best", "min diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in table["tests"]:
        cells = [f"{table['gains'][t][tr]:+.{digits}f} ({table['ranks'][t][tr]})" for tr in trains]
        md = table["min_diff"][t]
        lines.append("| " + " | ".join([t] + cells + [table["best"][t], "-" if md is None else f"{md:.{digits}f}"])
                     + " |")
    lines.append("| mean gain | " + " | ".join(f"{table['mean_gain'][tr]:+.{digits}f}" for tr in trains) + " | | |")
    lines.append("| mean rank | " + " | ".join(f"{table['mean_rank'][tr]:.2f}" for tr in trains) + " | | |")
    lines.append("| overall rank | " + " | ".join(str(table["overall_rank"][tr]) for tr in trains) + " | | |")
    lines += ["", "Cells: mean PSNR gain over bicubic in dB (rank of the training set for that test set, 1 = best). "
              "min diff: best minus second-best gain. Overall: by mean rank, ties by mean gain.",
              "Overall ranking: " + " > ".join(table["overall"])]
    return "\n".join(lines)


def parse_rank_table(markdown):
    """{test: {train: gain}} read back from :func:`format_rank_table`'s text (for checks)."""
    rows = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    trains = header[1:-2]
    gains = {}
    for ln in rows[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] in ("mean gain", "mean rank", "overall rank"):
            continue
        gains[cells[0]] = {tr: float(c.split(" ")[0]) for tr, c in zip(trains, cells[1:1 + len(trains)])}
    return gains


# --------------------------------------------------------------------------- data


def default_train_root():
    """$VISIONFW_SHARED_DATA/train, ../shared/data/train (from the cwd) or next to the repo, if present."""
    candidates = []
    if os.environ.get("VISIONFW_SHARED_DATA"):
        candidates.append(Path(os.environ["VISIONFW_SHARED_DATA"]) / "train")
    candidates.append(Path.cwd().parent / "shared" / "data" / "train")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "train")
    return next((c for c in candidates if c.is_dir()), None)


def resolve_train_sets(train_sets, train_root=None):
    """{label: folder} for names under ``train_root`` (or the default root) or folder paths."""
    if isinstance(train_sets, str):
        train_sets = [s.strip() for s in train_sets.split(",") if s.strip()]
    if not train_sets:
        raise ConfigError("--train_sets is empty; give e.g. --train_sets=T91,BSD200.")
    root = Path(train_root) if train_root else default_train_root()
    found = {}
    for item in train_sets:
        p = Path(str(item)).expanduser()
        if p.is_dir() and (os.sep in str(item) or root is None or not (root / str(item)).is_dir()):
            label = p.name
        elif root is not None and (root / str(item)).is_dir():
            p, label = root / str(item), str(item)
        else:
            where = f"under --train_root={root}" if root else "(no --train_root given and ../shared/data/train absent)"
            raise DataError(f"training set {item!r} not found {where}; give a folder path or --train_root.")
        if label in found:
            raise ConfigError(f"--train_sets: two training sets are named {label!r}; rename a folder.")
        found[label] = str(p)
    return found


# --------------------------------------------------------------------------- the experiment


def _load_cache(path):
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    return {"cells": {}}


def _save_cache(path, cache):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1, default=float))
    tmp.replace(path)


def _train_one(model, scale, model_kwargs, train_path, steps, seed, workdir, options):
    """Trains, resumes or reuses one run; returns (model.keras path, trained now?)."""
    from visionfw.compare import train_or_reuse

    kwargs = dict(model=model, scale=int(scale), model_kwargs=dict(model_kwargs), train_data=str(train_path),
                  val_data=[], steps=int(steps), seed=int(seed), workdir=str(workdir), progress=False,
                  tensorboard=False, val_every=0, ckpt_every=max(1, min(int(steps), 500)),
                  log_every=max(1, min(100, int(steps))))
    kwargs.update(options or {})
    return train_or_reuse(**kwargs)


def rank_datasets(model, scale, train_sets, test_sets, steps, out, data_dir=None, train_root=None, seed=0,
                  model_kwargs=None, protocol=None, train_options=None, progress=False, plot=True):
    """Trains ``model`` on each training set with the same budget and seed; ranks the sets.

    Args:
      model: registry name (e.g. 'espcn'); ``model_kwargs`` its hyper-parameters.
      train_sets: names under ``train_root`` or folders (list or comma string).
      test_sets: benchmark names or folders.
      steps: training steps per set; ``train_options``: more TrainConfig fields
        (batch_size, lr_patch, lr, data_options...), the same for every set.
      out: folder for the models, the cache and the reports.
      protocol: 'srcnn' / 'edsr' (default: srcnn for Y models, edsr for RGB models).

    Returns {'table': rank_matrix(...), 'per_image': {test: {train: [gains]}}, 'markdown',
    'files', 'computed': {'train', 'eval'}, 'protocol_description', ...}.
    """
    from visionfw.builder import build_model
    from visionfw.evaluate import evaluate_model
    from visionfw.metrics import protocol_description
    from visionfw.registry import get_spec
    from visionfw.weights import file_sha256, load_weights

    scale, steps = int(scale), int(steps)
    if steps < 1:
        raise ConfigError(f"--steps={steps} must be >= 1.")
    if isinstance(test_sets, str):
        test_sets = [s.strip() for s in test_sets.split(",") if s.strip()]
    if not test_sets:
        raise ConfigError("--test_sets is empty; give e.g. --test_sets=Set5,Set14.")
    model_kwargs = dict(model_kwargs or {})
    trains = resolve_train_sets(train_sets, train_root)
    spec = get_spec(model, scale=scale, **model_kwargs)
    meta = spec.get("meta", {})
    if protocol is None:
        protocol = "srcnn" if meta.get("channels") == "y" else "edsr"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "rank_cache.json"
    cache = _load_cache(cache_path)
    computed = {"train": 0, "eval": 0}
    test_names = [Path(str(t)).name if Path(str(t)).is_dir() else str(t) for t in test_sets]
    gains = {t: {} for t in test_names}
    per_image = {t: {} for t in test_names}
    bicubic = {}
    for label, path in trains.items():
        workdir = out / label
        model_path, trained = _train_one(model, scale, model_kwargs, path, steps, seed, workdir, train_options)
        computed["train"] += int(trained)
        sha = file_sha256(model_path)[:16]
        net = None
        for ts, tname in zip(test_sets, test_names):
            key = f"{label}|{tname}|x{scale}|{protocol}|{sha}"
            cell = cache["cells"].get(key)
            if cell is None:
                if net is None:
                    net = build_model(spec)
                    load_weights(net, model_path)
                r = next(iter(evaluate_model(net, [ts], scale, protocol=protocol, data_dir=data_dir,
                                             channels=meta.get("channels"),
                                             upsampled_input=meta.get("upsampled_input"),
                                             progress=progress).values()))
                cell = {"gain_psnr": r["gain_psnr"], "psnr": r["psnr"], "bicubic_psnr": r["bicubic_psnr"],
                        "images": [{"name": im["name"], "gain_psnr": im["gain_psnr"]} for im in r["images"]]}
                cache["cells"][key] = cell
                _save_cache(cache_path, cache)
                computed["eval"] += 1
            gains[tname][label] = cell["gain_psnr"]
            per_image[tname][label] = [im["gain_psnr"] for im in cell["images"]]
            bicubic[tname] = cell["bicubic_psnr"]
    table = rank_matrix(gains)
    desc = protocol_description(protocol, scale)
    md = (f"Training-set ranking: {model} {json.dumps(model_kwargs) if model_kwargs else ''} x{scale}, "
          f"{steps} steps, seed {seed}; rows = test sets, columns = training sets.\n\n"
          + format_rank_table(table)
          + f"\n\nBicubic PSNR: {', '.join(f'{t} {v:.3f} dB' for t, v in bicubic.items())}. "
          f"Protocol: {protocol} -- {desc}.")
    result = {"model": model, "model_kwargs": model_kwargs, "scale": scale, "steps": steps, "seed": seed,
              "train_sets": trains, "test_sets": test_names, "protocol": protocol, "protocol_description": desc,
              "table": table, "per_image": per_image, "bicubic_psnr": bicubic, "markdown": md,
              "computed": computed,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "files": {}}
    (out / "ranking.md").write_text(md + "\n")
    files = {"markdown": str(out / "ranking.md"), "json": str(out / "ranking.json"), "cache": str(cache_path)}
    if plot:
        files["plot"] = str(plot_gain_distributions(per_image, out / "gain_distributions.png",
                                                    title=f"{model} x{scale}, {steps} steps"))
    result["files"] = files
    (out / "ranking.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def plot_gain_distributions(per_image, path, title=""):
    """PNG: per test set, a histogram of per-image PSNR gains for each training set."""
    # the object-oriented API needs no pyplot backend, so a notebook's backend is left alone
    from matplotlib.figure import Figure

    tests = list(per_image)
    fig = Figure(figsize=(5 * len(tests), 3.8))
    axes = fig.subplots(1, len(tests), squeeze=False)
    for ax, t in zip(axes[0], tests):
        values = [v for vs in per_image[t].values() for v in vs]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, max(6, min(30, len(values) // 2)))
        for train, vs in per_image[t].items():
            _, _, patches = ax.hist(vs, bins=bins, histtype="step", lw=1.8,
                                    label=f"{train} (mean {np.mean(vs):+.2f})")
            ax.axvline(float(np.mean(vs)), ls=":", lw=1, color=patches[0].get_edgecolor())
        ax.set_xlabel("PSNR gain over bicubic (dB), per image")
        ax.set_ylabel("images")
        ax.set_title(f"test set {t}" + (f" -- {title}" if title else ""), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
