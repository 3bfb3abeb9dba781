"""Rank training sets by the PSNR gain over bicubic they give one network.

:func:`rank_datasets` trains the same network (same hyper-parameters, steps, batch and
seed) once per training set, evaluates each on every test set, and reports the mean
PSNR gain over bicubic in a matrix: **rows are test sets, columns are training sets**.
:func:`rank_matrix` (a pure function) ranks the training sets per test set (1 = largest
gain; equal gains share the smaller rank), gives each test set's "min diff" -- the gap
between its best and second-best training set, i.e. how decisive the ranking is -- and
an overall ranking by mean rank (ties broken by the larger mean gain, then by name).

The labels matter: every cell is looked up by its (test, train) names, never by
position, and :func:`visionfw.studies.reports.format_rank_table` writes the names next to their own
values (the table of the original research had its row labels shifted by one row).

Training sets are names on the data search path (``train/<name>``, see
:mod:`visionfw.data.paths`), names under ``train_root``, or folders.

Resumable (:mod:`visionfw.studies.runs`): each training set's model is ``out/<train set>/model.keras``
(reused when finished, resumed from its checkpoints when interrupted), and each (train,
test) result is kept in ``out/rank_cache.json``; finished cells are skipped on a rerun.
Reports (``ranking.md``, ``ranking.json``, ``gain_distributions.png``) come from
:func:`visionfw.studies.reports.write_rank_reports`.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np

from visionfw.errors import ConfigError, DataError

__all__ = ["rank_matrix", "resolve_train_sets", "rank_datasets"]


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
            raise ConfigError(
                f"rank_matrix: test set {t!r} has training sets {sorted(gains[t])}, "
                f"expected {sorted(trains)}; every row needs every column."
            )
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
    return {
        "tests": tests,
        "trains": trains,
        "gains": {t: dict(gains[t]) for t in tests},
        "ranks": ranks,
        "best": best,
        "min_diff": min_diff,
        "mean_rank": mean_rank,
        "mean_gain": mean_gain,
        "overall": overall,
        "overall_rank": {tr: i + 1 for i, tr in enumerate(overall)},
    }


# --------------------------------------------------------------------------- data


def resolve_train_sets(train_sets, train_root=None, data_dir=None):
    """{label: folder} for training-set names or folder paths.

    A name is looked up under ``train_root`` when given, else as ``train/<name>`` on the data
    search path (:mod:`visionfw.data.paths`, ``data_dir`` first); an item that is a path
    (it holds a separator, or no root holds the name but the folder exists) is used as is.
    """
    from visionfw.data import paths

    if isinstance(train_sets, str):
        train_sets = [s.strip() for s in train_sets.split(",") if s.strip()]
    if not train_sets:
        raise ConfigError("train_sets is empty; give e.g. train_sets=T91,BSD200.")
    found = {}
    for item in map(str, train_sets):
        as_path = Path(item).expanduser()
        if os.sep in item or "/" in item:
            if not as_path.is_dir():
                raise DataError(f"training set folder {item} does not exist; fix the path in train_sets.")
            label, folder = as_path.name, as_path
        elif train_root is not None and (Path(train_root).expanduser() / item).is_dir():
            label, folder = item, Path(train_root).expanduser() / item
        elif as_path.is_dir():
            label, folder = as_path.name, as_path
        elif train_root is not None:
            raise DataError(
                f"training set {item!r} not found under --train_root={train_root}; give a folder "
                "path or another --train_root."
            )
        else:
            label, folder = item, paths.find("train", item, data_dir, what=f"Training set {item!r}")
        if label in found:
            raise ConfigError(f"train_sets: two training sets are named {label!r}; rename a folder.")
        found[label] = str(folder)
    return found


# --------------------------------------------------------------------------- the experiment


def rank_datasets(
    model,
    scale,
    train_sets,
    test_sets,
    steps,
    out,
    data_dir=None,
    train_root=None,
    seed=0,
    model_kwargs=None,
    protocol=None,
    train_options=None,
    progress=False,
    plot=True,
    log_every=100,
):
    """Trains ``model`` on each training set with the same budget and seed; ranks the sets.

    Args:
      model: registry name (e.g. 'espcn'); ``model_kwargs`` its hyper-parameters.
      train_sets: names (see :func:`resolve_train_sets`) or folders (list or comma string).
      test_sets: benchmark names or folders.
      steps: training steps per set; ``train_options``: more TrainConfig fields
        (batch_size, lr_patch, lr, data_options...), the same for every set.
      out: folder for the models, the cache and the reports.
      data_dir: first root of the data search path (benchmark and training sets).
      protocol: 'srcnn' / 'edsr' (default: srcnn for Y models, edsr for RGB models).
      progress: announce each training set, show its training's and evaluation's progress on
        stderr (a live bar on a terminal, else a plain line every ``log_every`` steps).

    The first Ctrl-C / SIGTERM stops a training with a checkpoint, writes the ranking of the
    training sets that finished (``result['partial']``) and raises
    :class:`visionfw.train.TrainingInterrupted`; the same call again finishes the rest.

    Returns {'table': rank_matrix(...), 'per_image': {test: {train: [gains]}}, 'markdown',
    'files', 'computed': {'train', 'eval'}, 'protocol_description', ...}.
    """
    from visionfw.console import say
    from visionfw.evaluate import evaluate_model
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.studies.reports import format_ranking, write_rank_reports
    from visionfw.studies.runs import ResultCache, interrupted, train_short
    from visionfw.train import TrainingInterrupted
    from visionfw.weights.loader import file_sha256, load_weights
    from visionfw.zoo.builder import build_model
    from visionfw.zoo.registry import get_spec

    scale, steps = int(scale), int(steps)
    if steps < 1:
        raise ConfigError(f"steps={steps} must be >= 1.")
    if isinstance(test_sets, str):
        test_sets = [s.strip() for s in test_sets.split(",") if s.strip()]
    if not test_sets:
        raise ConfigError("test_sets is empty; give e.g. test_sets=Set5,Set14.")
    model_kwargs = dict(model_kwargs or {})
    trains = resolve_train_sets(train_sets, train_root, data_dir)
    spec = get_spec(model, scale=scale, **model_kwargs)
    meta = spec.get("meta", {})
    if protocol is None:
        protocol = "srcnn" if meta.get("channels") == "y" else "edsr"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(out / "rank_cache.json")
    computed = {"train": 0, "eval": 0}
    test_names = [Path(str(t)).name if Path(str(t)).is_dir() else str(t) for t in test_sets]
    gains = {t: {} for t in test_names}
    per_image = {t: {} for t in test_names}
    bicubic = {}

    def finish(done, partial=False):
        table = {t: {tr: gains[t][tr] for tr in done} for t in test_names}
        result = {
            "model": model,
            "model_kwargs": model_kwargs,
            "scale": scale,
            "steps": steps,
            "seed": seed,
            "train_sets": {tr: trains[tr] for tr in done},
            "test_sets": test_names,
            "protocol": protocol,
            "protocol_description": protocol_description(protocol, scale),
            "table": rank_matrix(table),
            "per_image": {t: {tr: per_image[t][tr] for tr in done} for t in test_names},
            "bicubic_psnr": bicubic,
            "computed": computed,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "files": {"cache": str(cache.path)},
        }
        result["markdown"] = format_ranking(result)
        if partial:
            result["partial"] = f"interrupted after {len(done)} of {len(trains)} training sets"
            result["markdown"] += f"\n\nPARTIAL TABLE: {result['partial']}; run the same command again to finish it."
        write_rank_reports(result, out, plot=plot)
        return result

    done, doing = [], "starting"
    try:
        for index, (label, path) in enumerate(trains.items(), 1):
            tag = f"rank-datasets {label} ({index}/{len(trains)})"
            doing = f"training on {label} ({index}/{len(trains)})"
            model_path, trained = train_short(
                model,
                scale,
                steps,
                out / label,
                model_kwargs=model_kwargs,
                train_data=path,
                seed=seed,
                options=train_options,
                progress=progress,
                label=tag,
            )
            computed["train"] += int(trained)
            if not trained and progress:
                say(f"{tag}: reusing the finished training in {out / label}")
            doing = f"evaluating the model trained on {label} ({index}/{len(trains)})"
            sha = file_sha256(model_path)[:16]
            net = None
            for ts, tname in zip(test_sets, test_names):
                key = f"{label}|{tname}|x{scale}|{protocol}|{sha}"
                cell = cache.get(key)
                if cell is None:
                    if net is None:
                        net = build_model(spec)
                        load_weights(net, model_path)
                    r = next(
                        iter(
                            evaluate_model(
                                net,
                                [ts],
                                scale,
                                protocol=protocol,
                                data_dir=data_dir,
                                channels=meta.get("channels"),
                                upsampled_input=meta.get("upsampled_input"),
                                progress=progress,
                                log_every=log_every,
                                progress_label=f"{tag}:",
                            ).values()
                        )
                    )
                    cell = {
                        "gain_psnr": r["gain_psnr"],
                        "psnr": r["psnr"],
                        "bicubic_psnr": r["bicubic_psnr"],
                        "images": [{"name": im["name"], "gain_psnr": im["gain_psnr"]} for im in r["images"]],
                    }
                    cache.put(key, cell)
                    computed["eval"] += 1
                gains[tname][label] = cell["gain_psnr"]
                per_image[tname][label] = [im["gain_psnr"] for im in cell["images"]]
                bicubic[tname] = cell["bicubic_psnr"]
            done.append(label)
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        # the first Ctrl-C: keep what finished (the ranking of the finished sets, the cache)
        written = finish(done, partial=True)["files"].get("markdown") if done else None
        table = (
            f"the table of the {len(done)} finished training set(s) is in {written}"
            if written
            else "no training set had finished"
        )
        raise interrupted("rank-datasets", doing, exc, table) from None
    return finish(done)
