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

import dataclasses
import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import ConfigError, DataError

__all__ = ["rank_matrix", "resolve_train_sets", "rank_datasets"]


# --------------------------------------------------------------------------- ranking (pure)


def rank_matrix(gains: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Ranks the training sets of ``gains[test][train]`` (mean PSNR gain in dB).

    Args:
      gains: ``{test: {train: gain}}``; every test set must list the same training sets.

    Returns:
      A dict:

      * ``tests``, ``trains``: the names, in input order;
      * ``gains``: the input (copied);
      * ``ranks[test][train]``: 1 = largest gain; ties share the smaller rank ("1224");
      * ``best[test]``: the training set ranked first (first in input order among ties);
      * ``min_diff[test]``: best gain minus second-best gain (0 with a tie; None with one set);
      * ``mean_rank[train]``, ``mean_gain[train]``: over the test sets;
      * ``overall``: training sets ordered by mean rank, then larger mean gain, then name;
      * ``overall_rank[train]``: 1-based position in ``overall``.

    Raises:
      ConfigError: no test set, no training set, or a row without every column.
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


def resolve_train_sets(
    train_sets: str | Sequence[str], train_root: str | None = None, data_dir: str | None = None
) -> dict[str, str]:
    """Finds the training sets' folders.

    A name is looked up under ``train_root`` when given, else as ``train/<name>`` on the data
    search path (:mod:`visionfw.data.paths`, ``data_dir`` first); an item that is a path
    (it holds a separator, or no root holds the name but the folder exists) is used as is.

    Args:
      train_sets: names or folders (list or comma string).
      train_root: the folder holding the named sets.
      data_dir: first root of the data search path.

    Returns:
      ``{label: folder}``.

    Raises:
      ConfigError: no training set, or two with the same name.
      DataError: a set is not found.
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


@dataclasses.dataclass
class _Ranking:
    """One :func:`rank_datasets` call: its settings, checked, and what it has computed so far."""

    model: str
    model_kwargs: dict
    scale: int
    steps: int
    trains: dict[str, str]
    test_sets: list[str]
    spec: dict
    protocol: str
    out: Path
    data_dir: str | None
    seed: int
    train_options: dict | None
    progress: bool
    log_every: int
    plot: bool
    done: list[str] = dataclasses.field(default_factory=list)
    computed: dict[str, int] = dataclasses.field(default_factory=lambda: {"train": 0, "eval": 0})
    bicubic: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        from visionfw.studies.runs import ResultCache

        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = ResultCache(self.out / "rank_cache.json")
        self.test_names = [Path(str(t)).name if Path(str(t)).is_dir() else str(t) for t in self.test_sets]
        self.gains: dict[str, dict[str, float]] = {t: {} for t in self.test_names}
        self.per_image: dict[str, dict[str, list[float]]] = {t: {} for t in self.test_names}


def _checked_steps(steps):
    steps = int(steps)
    if steps < 1:
        raise ConfigError(f"steps={steps} must be >= 1.")
    return steps


def _checked_test_sets(test_sets):
    if isinstance(test_sets, str):
        test_sets = [s.strip() for s in test_sets.split(",") if s.strip()]
    if not test_sets:
        raise ConfigError("test_sets is empty; give e.g. test_sets=Set5,Set14.")
    return list(test_sets)


def _default_protocol(protocol, spec):
    """The protocol asked for, else srcnn for Y models and edsr for RGB ones."""
    if protocol is not None:
        return protocol
    return "srcnn" if spec.get("meta", {}).get("channels") == "y" else "edsr"


def rank_datasets(
    model: str,
    scale: int,
    train_sets: str | Sequence[str],
    test_sets: str | Sequence[str],
    steps: int,
    out: str | Path,
    *,
    data_dir: str | None = None,
    train_root: str | None = None,
    seed: int = 0,
    model_kwargs: dict | None = None,
    protocol: str | None = None,
    train_options: dict | None = None,
    progress: bool = False,
    plot: bool = True,
    log_every: int = 100,
) -> dict[str, Any]:
    """Trains ``model`` on each training set with the same budget and seed; ranks the sets.

    The first Ctrl-C / SIGTERM stops a training with a checkpoint, writes the ranking of the
    training sets that finished (``result['partial']``) and raises
    :class:`visionfw.train.TrainingInterrupted`; the same call again finishes the rest.

    Args:
      model: registry name (e.g. 'espcn').
      scale: SR factor.
      train_sets: names (see :func:`resolve_train_sets`) or folders (list or comma string).
      test_sets: benchmark names or folders.
      steps: training steps per set.
      out: folder for the models, the cache and the reports.
      data_dir: first root of the data search path (benchmark and training sets).
      train_root: folder holding the training sets named in ``train_sets``.
      seed: seed of initialisation, data order and crops (the same for every set).
      model_kwargs: the model's hyper-parameters.
      protocol: 'srcnn' / 'edsr' (default: srcnn for Y models, edsr for RGB models).
      train_options: more TrainConfig fields (batch_size, lr_patch, lr, data_options...), the same for every set.
      progress: announce each training set, show its training's and evaluation's progress on
        stderr (a live bar on a terminal, else a plain line every ``log_every`` steps).
      plot: also write gain_distributions.png.
      log_every: see ``progress``.

    Returns:
      {'table': rank_matrix(...), 'per_image': {test: {train: [gains]}}, 'markdown', 'files',
      'computed': {'train', 'eval'}, 'protocol_description', ...}.

    Raises:
      ConfigError: bad steps, test sets or training sets.
      DataError: a training set is not found.
      TrainingInterrupted: after the first Ctrl-C / SIGTERM, with the partial ranking written.
    """
    from visionfw.zoo.registry import get_spec

    scale = int(scale)
    steps = _checked_steps(steps)
    tests = _checked_test_sets(test_sets)
    model_kwargs = dict(model_kwargs or {})
    trains = resolve_train_sets(train_sets, train_root, data_dir)
    spec = get_spec(model, scale=scale, **model_kwargs)
    run = _Ranking(
        model=model,
        model_kwargs=model_kwargs,
        scale=scale,
        steps=steps,
        trains=trains,
        test_sets=tests,
        spec=spec,
        protocol=_default_protocol(protocol, spec),
        out=Path(out),
        data_dir=data_dir,
        seed=seed,
        train_options=train_options,
        progress=progress,
        log_every=log_every,
        plot=plot,
    )
    return _rank_all(run)


def _rank_all(run):
    """Trains and evaluates on every training set, then writes the ranking; after an interrupt, the finished sets'."""
    from visionfw.studies.runs import interrupted
    from visionfw.train import TrainingInterrupted

    doing = "starting"
    try:
        for index, (label, path) in enumerate(run.trains.items(), 1):
            tag = f"rank-datasets {label} ({index}/{len(run.trains)})"
            doing = f"training on {label} ({index}/{len(run.trains)})"
            model_path = _train_on(run, label, path, tag)
            doing = f"evaluating the model trained on {label} ({index}/{len(run.trains)})"
            _evaluate_on_test_sets(run, label, model_path, tag)
            run.done.append(label)
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        # the first Ctrl-C: keep what finished (the ranking of the finished sets, the cache)
        done = run.done
        written = _finish(run, partial=True)["files"].get("markdown") if done else None
        table = (
            f"the table of the {len(done)} finished training set(s) is in {written}"
            if written
            else "no training set had finished"
        )
        raise interrupted("rank-datasets", doing, exc, table) from None
    return _finish(run)


def _train_on(run, label, path, tag):
    """The model.keras trained on one training set (or the finished run reused)."""
    from visionfw.console import say
    from visionfw.studies.runs import train_short

    model_path, trained = train_short(
        run.model,
        run.scale,
        run.steps,
        run.out / label,
        model_kwargs=run.model_kwargs,
        train_data=path,
        seed=run.seed,
        options=run.train_options,
        progress=run.progress,
        label=tag,
    )
    run.computed["train"] += int(trained)
    if not trained and run.progress:
        say(f"{tag}: reusing the finished training in {run.out / label}")
    return model_path


def _evaluate_on_test_sets(run, label, model_path, tag):
    """Fills the gains of the model trained on ``label`` for every test set: from the cache, else evaluated."""
    from visionfw.weights.formats import file_sha256

    sha = file_sha256(model_path)[:16]
    net = None
    for ts, tname in zip(run.test_sets, run.test_names):
        key = f"{label}|{tname}|x{run.scale}|{run.protocol}|{sha}"
        cell = run.cache.get(key)
        if cell is None:
            if net is None:
                net = _load_trained(run.spec, model_path)
            cell = _gain_cell(run, net, ts, tag)
            run.cache.put(key, cell)
            run.computed["eval"] += 1
        run.gains[tname][label] = cell["gain_psnr"]
        run.per_image[tname][label] = [im["gain_psnr"] for im in cell["images"]]
        run.bicubic[tname] = cell["bicubic_psnr"]


def _load_trained(spec, model_path):
    from visionfw.weights.loader import load_weights
    from visionfw.zoo.builder import build_model

    net = build_model(spec)
    load_weights(net, model_path)
    return net


def _gain_cell(run, net, test_set, tag):
    """The cached cell of one evaluation: mean and per-image PSNR gains over bicubic."""
    from visionfw.studies.runs import evaluate_on_set

    r = evaluate_on_set(run, net, test_set, run.spec.get("meta", {}), f"{tag}:")
    return {
        "gain_psnr": r["gain_psnr"],
        "psnr": r["psnr"],
        "bicubic_psnr": r["bicubic_psnr"],
        "images": [{"name": im["name"], "gain_psnr": im["gain_psnr"]} for im in r["images"]],
    }


def _finish(run, partial=False):
    """The result of the training sets done so far, its reports written."""
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.studies.reports import format_ranking, write_rank_reports

    done, names = run.done, run.test_names
    result = {
        "model": run.model,
        "model_kwargs": run.model_kwargs,
        "scale": run.scale,
        "steps": run.steps,
        "seed": run.seed,
        "train_sets": {tr: run.trains[tr] for tr in done},
        "test_sets": names,
        "protocol": run.protocol,
        "protocol_description": protocol_description(run.protocol, run.scale),
        "table": rank_matrix({t: {tr: run.gains[t][tr] for tr in done} for t in names}),
        "per_image": {t: {tr: run.per_image[t][tr] for tr in done} for t in names},
        "bicubic_psnr": run.bicubic,
        "computed": run.computed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": {"cache": str(run.cache.path)},
    }
    result["markdown"] = format_ranking(result)
    if partial:
        result["partial"] = f"interrupted after {len(done)} of {len(run.trains)} training sets"
        result["markdown"] += f"\n\nPARTIAL TABLE: {result['partial']}; run the same command again to finish it."
    write_rank_reports(result, run.out, plot=run.plot)
    return result
