"""Compare SR architectures across benchmark sets: size, cost, speed, memory and quality.

:func:`compare_models` builds each model, gives it weights (a file, the official release,
a short training run, or none), and fills one row per model with

* ``params``, ``macs``, ``act_mem_mb``, ``latency_ms``, ``peak_mem_mb`` at one stated LR
  input size (:mod:`visionfw.studies.profiling` states how each is counted);
* PSNR / SSIM per dataset with :func:`visionfw.evaluate.evaluate_model` under one named
  protocol (default ``'srcnn'``), and a ``bicubic`` row with the baseline.

Outputs in ``out`` (:func:`visionfw.studies.reports.write_compare_reports`): ``compare.md``,
``compare.csv``, ``compare.json``, ``psnr_vs_macs.png``, ``report.html`` (with ``report=True``,
:mod:`visionfw.studies.report_html`), and ``compare_cache.json``
(:class:`visionfw.studies.runs.ResultCache`), whose cells (keyed by the model's spec hash, the
weights' sha256, scale, dataset and protocol; costs by spec hash, input shape and device)
are reused on a rerun, so only new cells are computed.  Trained models live in
``out/train/<label>`` and are reused the same way (:func:`visionfw.studies.runs.train_or_reuse`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionfw.errors import ConfigError, WeightsError
from visionfw.studies.profiling import parse_input_size
from visionfw.studies.runs import ResultCache, evaluate_on_set, interrupted, spec_hash, train_short

__all__ = ["CompareModel", "parse_models", "parse_weights", "parse_input_size", "compare_models"]


@dataclasses.dataclass
class CompareModel:
    """One model of the comparison.

    ``model``: a registry name (trainable by :func:`visionfw.train.train`) with ``hyper``
    (e.g. ``{'n1': 8}``); or ``spec``: a spec dict (weights from a file or random).
    ``weights``: a weights file, ``'official'`` (the registry's
    ``model_info(name).weights_for(scale)``, found under ``weights/`` of the data search
    path) or None.
    """

    label: str
    model: str | None = None
    hyper: dict = dataclasses.field(default_factory=dict)
    spec: dict | None = None
    weights: str | None = None


def parse_models(models: str | Sequence[str | dict | CompareModel] | None) -> list[CompareModel]:
    """Reads the models of a comparison.

    Args:
      models: ``'a,b'``, or a list of registry names, spec dicts, dicts of :class:`CompareModel`
        fields or CompareModel (copied).

    Returns:
      One CompareModel per model.

    Raises:
      ConfigError: an item of another kind, no model, or two with the same label.
    """
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    out = []
    for m in models or ():
        if isinstance(m, CompareModel):
            out.append(dataclasses.replace(m, hyper=dict(m.hyper)))  # weights= must not edit the caller's
        elif isinstance(m, str):
            out.append(CompareModel(label=m, model=m))
        elif isinstance(m, dict) and ("label" in m or "model" in m) and "inputs" not in m:
            out.append(CompareModel(**m) if "label" in m else CompareModel(label=m["model"], **m))
        elif isinstance(m, dict):
            out.append(CompareModel(label=str(m.get("name", f"spec{len(out)}")), spec=m))
        else:
            raise ConfigError(f"models: cannot use {m!r}; give registry names, spec dicts or CompareModel.")
    if not out:
        raise ConfigError("models is empty; give e.g. models=srcnn_915,fsrcnn,espcn.")
    labels = [m.label for m in out]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ConfigError(f"models lists {sorted(dup)} twice; every model needs its own label.")
    return out


ALL = "*"  # parse_weights' key for "every model" (a bare 'official')


def parse_weights(text: str | dict[str, str] | None) -> dict[str, str]:
    """Reads the weights of a comparison.

    Args:
      text: ``'name=path,name2=official'`` (or a dict, copied); a bare ``'official'`` gives
        every registry model its official weights.

    Returns:
      ``{name: path}``, with the key :data:`ALL` for a bare ``'official'``.

    Raises:
      ConfigError: an item that is not name=path.
    """
    if isinstance(text, dict):
        return dict(text)
    result = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == "official":
            result[ALL] = "official"
            continue
        if "=" not in item:
            raise ConfigError(
                f"weights item {item!r} must be name=path (e.g. vdsr=VDSR_Official.mat or vdsr=official)."
            )
        name, path = item.split("=", 1)
        result[name.strip()] = path.strip()
    return result


def _split(items):
    if isinstance(items, str):
        return [s.strip() for s in items.split(",") if s.strip()]
    return list(items or [])


def _resolve_weights(entry, scale, data_dir=None):
    """(path, description) of ``entry``'s weights, or (None, None) without weights."""
    w = entry.weights
    if w is None:
        return None, None
    if w != "official":
        if not Path(w).is_file():
            raise WeightsError(f"weights={entry.label}={w}: no such file.")
        return w, Path(w).name
    from visionfw.weights.pretrained import find_weights
    from visionfw.zoo.registry import list_models, model_info

    info = model_info(entry.model).weights_for(scale) if entry.model else None
    if info is None:
        known = [n for n in list_models() if model_info(n).weights]
        raise WeightsError(
            f"weights={entry.label}=official: no official weights known for {entry.model} x{scale}; "
            f"models with official weights: {', '.join(known)}."
        )
    # the same search path and hash check as get_model(pretrained=True)
    path = find_weights(model_info(entry.model), scale, data_dir=data_dir)
    return str(path), f"official {info.file}"


def _official_options(entry, scale):
    """(hyper, load options) the registry gives ``entry``'s official weights (EDSR's rgb_range...), for
    'official' and for a file in the official release's format (see :func:`visionfw.loading.official_options`)."""
    from visionfw.loading import is_model_reference, official_options

    if not entry.weights or entry.model is None or is_model_reference(entry.model):
        return {}, {}
    from visionfw.zoo.registry import model_info

    return official_options(model_info(entry.model), scale, True if entry.weights == "official" else entry.weights)


def _spec_of(entry, scale):
    from visionfw.loading import is_model_reference, spec_from_reference
    from visionfw.zoo.registry import get_spec

    if entry.spec is not None:
        return entry.spec
    if entry.model is None:
        raise ConfigError(f"model {entry.label!r} has neither a registry name nor a spec.")
    if is_model_reference(entry.model):  # file.py:function / package.module:function
        spec = spec_from_reference(entry.model, int(scale), entry.hyper)
        if not isinstance(spec, dict):
            raise ConfigError(f"model {entry.label!r}: compare needs a function that returns a spec dict.")
        return spec
    return get_spec(entry.model, scale=int(scale), **{**_official_options(entry, scale)[0], **entry.hyper})


@dataclasses.dataclass
class _Comparison:
    """One :func:`compare_models` call: its settings, checked, and what it has computed so far."""

    entries: list[CompareModel]
    test_data: list[str]
    protocol: str
    scale: int
    lr_size: tuple[int, int]
    out: Path | None
    data_dir: str | None
    train_steps: int
    train_data: str | None
    train_options: dict | None
    latency_runs: int
    warmup: int
    seed: int
    progress: bool
    log_every: int
    plot: bool
    report: bool
    report_max_mb: float | None
    rows: list[dict] = dataclasses.field(default_factory=list)
    bicubic: dict[str, dict] = dataclasses.field(default_factory=dict)
    computed: dict[str, int] = dataclasses.field(default_factory=lambda: {"train": 0, "eval": 0, "cost": 0})
    memory_method: str | None = None

    def __post_init__(self):
        from visionfw.studies import profiling

        self.cache = ResultCache(self.out / "compare_cache.json" if self.out else None)
        self.device = profiling.device_name()
        self.ds_names = [Path(str(d)).name if Path(str(d)).is_dir() else str(d) for d in self.test_data]


def _entries_with_weights(models, weights):
    """The models as CompareModel, each with the weights ``weights`` names for it."""
    from visionfw.loading import is_model_reference

    entries = parse_models(models)
    for label, path in parse_weights(weights).items():
        if label == ALL:
            for e in entries:
                if e.model is not None and not is_model_reference(e.model) and e.weights is None:
                    e.weights = path
            continue
        match = [e for e in entries if e.label == label or e.model == label]
        if not match:
            raise ConfigError(f"weights names {label!r}, which is not in models={','.join(e.label for e in entries)}.")
        for e in match:
            e.weights = path
    return entries


def _checked_test_data(test_data):
    test_data = _split(test_data)
    if not test_data:
        raise ConfigError("test_data is empty; give e.g. test_data=Set5,Set14.")
    return test_data


def _checked_protocol(protocol):
    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"protocol={protocol!r}: use srcnn or edsr.")
    return protocol


def compare_models(
    models: str | Sequence[str | dict | CompareModel],
    test_data: str | Sequence[str],
    scale: int,
    *,
    weights: str | dict[str, str] | None = None,
    train_steps: int = 0,
    train_data: str | None = None,
    out: str | Path | None = None,
    input_size: str | tuple[int, int] = (64, 64),
    protocol: str = "srcnn",
    data_dir: str | None = None,
    latency_runs: int = 10,
    warmup: int = 3,
    seed: int = 0,
    train_options: dict | None = None,
    progress: bool = False,
    plot: bool = True,
    log_every: int = 100,
    report: bool = False,
    report_max_mb: float | None = None,
) -> dict[str, Any]:
    """Compares ``models`` on ``test_data``; see the module docstring.

    The first Ctrl-C / SIGTERM stops a training with a checkpoint, writes the table of the
    models that finished (``result['partial']`` says so) and raises
    :class:`visionfw.train.trainer.TrainingInterrupted`; the same call again finishes the rest.

    Args:
      models: registry names ('srcnn_915,fsrcnn'), spec dicts, dicts of :class:`CompareModel` fields, or CompareModel.
      test_data: benchmark names or folders (list or comma string).
      scale: SR factor.
      weights: {label: path or 'official'} (or 'a=p,b=q'); overrides CompareModel.weights.
      train_steps: models without weights are trained this many steps; 0: they keep their random initialisation.
      train_data: their training images (None: the embedded photos).
      out: folder for the outputs and the cache (None: nothing written, nothing cached).
      input_size: LR input size (H, W) or 'HxW' for MACs, latency and memory.
      protocol: 'srcnn' or 'edsr' (see :mod:`visionfw.evaluate`), one for the whole table.
      data_dir: first root of the data search path (:mod:`visionfw.data.paths`) for benchmarks and official weights.
      latency_runs: timed forward passes (the median is reported); ``warmup``: untimed ones before.
      seed: seed of training and of random initialisation.
      train_options: extra :class:`visionfw.train.TrainConfig` fields (batch_size, lr_patch...).
      progress: announce each model, show its training's and evaluation's progress on stderr
        (:class:`visionfw.console.Progress`, plain lines every ``log_every`` steps off a terminal).
      plot: also write psnr_vs_macs.png.
      report: also write ``out/report.html`` (:func:`visionfw.studies.report_html.write_compare_report`), keeping
        the models' outputs in ``out/sr_images`` for it; ``report_max_mb``: its size cap (default 10).

    Returns:
      {'rows': [...], 'datasets', 'scale', 'protocol', 'protocol_description', 'input_size', 'device',
      'memory_method', 'computed': {'train', 'eval', 'cost'} counts, 'test_data' (the sets as given), 'files'}.

    Raises:
      ConfigError: a bad model, weights name, test set list, protocol or input size.
      TrainingInterrupted: after the first Ctrl-C / SIGTERM, with the partial table written.
    """
    run = _Comparison(
        entries=_entries_with_weights(models, weights),
        test_data=_checked_test_data(test_data),
        protocol=_checked_protocol(protocol),
        scale=int(scale),
        lr_size=parse_input_size(input_size),
        out=Path(out) if out else None,
        data_dir=data_dir,
        train_steps=int(train_steps or 0),
        train_data=train_data,
        train_options=train_options,
        latency_runs=latency_runs,
        warmup=warmup,
        seed=seed,
        progress=progress,
        log_every=log_every,
        plot=plot,
        report=report,
        report_max_mb=report_max_mb,
    )
    return _compare_all(run)


def _compare_all(run):
    """Fills one row per model, then writes the outputs; after an interrupt, the finished rows'."""
    from visionfw.train import TrainingInterrupted

    doing = "starting"
    try:
        for index, entry in enumerate(run.entries, 1):
            tag = f"{entry.label} ({index}/{len(run.entries)})"
            doing = f"preparing {tag}"
            spec = _spec_of(entry, run.scale)
            wpath, wdesc = _resolve_weights(entry, run.scale, run.data_dir)
            if wpath is None and run.train_steps > 0:
                doing = f"training {tag}"
                wpath, wdesc = _train_entry(run, entry, tag)
            doing = f"evaluating {tag}"
            run.rows.append(_model_row(run, entry, spec, wpath, wdesc))
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        # the first Ctrl-C: keep what finished (the table of the finished models, the cache)
        written = _finish(run, partial=True)["files"].get("markdown") if run.rows and run.out is not None else None
        rows = len(run.rows)
        table = f"the table of the {rows} finished model(s) is in {written}" if written else "no model had finished"
        raise interrupted("compare", doing, exc, table) from None
    return _finish(run)


def _train_entry(run, entry, tag):
    """(model.keras path, description) of a short training run of ``entry`` (or the finished one reused)."""
    from visionfw.console import say
    from visionfw.loading import is_model_reference

    if run.out is None:
        raise ConfigError("train_steps needs out=FOLDER (the trained models are saved there).")
    if entry.model is None or is_model_reference(entry.model):
        raise ConfigError(
            f"model {entry.label!r} is a spec dict; training needs a registry name "
            "(or give weights=LABEL=PATH for it, or train_steps=0 for random weights)."
        )
    workdir = run.out / "train" / entry.label
    wpath, trained = train_short(
        entry.model,
        run.scale,
        run.train_steps,
        workdir,
        model_kwargs=entry.hyper,
        train_data=run.train_data,
        seed=run.seed,
        options=run.train_options,
        progress=run.progress,
        label=f"compare {tag}",
    )
    run.computed["train"] += int(trained)
    if not trained and run.progress:
        say(f"compare {tag}: reusing the finished training in {workdir}")
    source = "embedded photos" if not run.train_data else Path(str(run.train_data)).name
    return wpath, f"trained {run.train_steps} steps on {source}"


def _build_with_weights(run, entry, spec, wpath, wdesc):
    """(model, weights description, weights id): ``spec`` built, its weights loaded (or random, seeded)."""
    import keras

    from visionfw.weights.formats import file_sha256
    from visionfw.weights.loader import load_weights
    from visionfw.zoo.builder import build_model

    keras.utils.set_random_seed(int(run.seed))
    model = build_model(spec)
    if wpath is None:
        return model, "random", f"random-seed{run.seed}"
    load_weights(model, wpath, **_official_options(entry, run.scale)[1])
    return model, wdesc, file_sha256(wpath)[:16]


def _measured_cost(run, model, spec, in_shape):
    """The cost row of ``model`` at ``in_shape``: from the cache, else measured (and cached)."""
    from visionfw.studies import profiling

    cost_key = f"cost2|{spec_hash(spec)}|{'x'.join(map(str, in_shape))}|{run.device}|{run.latency_runs}|{run.warmup}"
    cost = run.cache.get(cost_key)
    if cost is None:
        cost = profiling.measure_cost(model, spec, in_shape, runs=run.latency_runs, warmup=run.warmup, seed=run.seed)
        run.cache.put(cost_key, cost)
        run.computed["cost"] += 1
    run.memory_method = run.memory_method or cost["memory_method"]
    return cost


def _sr_images_dir(run, entry, shash, wsha):
    """Where the report keeps this model's outputs (per model and weights, so a cached cell has its images)."""
    if not run.report or run.out is None:
        return None
    return run.out / "sr_images" / f"{entry.label}-{hashlib.sha1(f'{shash}|{wsha}'.encode()).hexdigest()[:8]}"


def _evaluated_cells(run, model, entry, spec, wsha, sr_dir):
    """{set: PSNR/SSIM cell} of ``model``: from the cache, else evaluated (and cached)."""
    meta = spec.get("meta", {})
    metrics = {}
    for ds, ds_name in zip(run.test_data, run.ds_names):
        key = f"eval|{entry.label}|{spec_hash(spec)}|{wsha}|x{run.scale}|{ds_name}|{run.protocol}"
        cell = run.cache.get(key)
        if cell is not None and sr_dir is not None and not _has_images(cell, sr_dir / ds_name / f"x{run.scale}"):
            cell = None  # evaluated before without the report: again, saving the outputs
        if cell is None:
            r = evaluate_on_set(run, model, ds, meta, f"compare {entry.label}:", save_images=sr_dir)
            cell = {k: r[k] for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain_psnr", "n_images")}
            cell["images"] = [dict(im) for im in r["images"]]
            run.cache.put(key, cell)
            run.computed["eval"] += 1
        metrics[ds_name] = cell
        run.bicubic.setdefault(ds_name, {"psnr": cell["bicubic_psnr"], "ssim": cell["bicubic_ssim"]})
    return metrics


def _has_images(cell, folder):
    return all((folder / f"{im['name']}.png").is_file() for im in cell["images"])


def _model_row(run, entry, spec, wpath, wdesc):
    """The table row of one model: its weights, cost and quality per set."""
    from visionfw.studies import profiling

    model, wdesc, wsha = _build_with_weights(run, entry, spec, wpath, wdesc)
    meta = spec.get("meta", {})
    in_shape = profiling.model_input_shape(spec, run.lr_size, run.scale)
    cost = _measured_cost(run, model, spec, in_shape)
    sr_dir = _sr_images_dir(run, entry, spec_hash(spec), wsha)
    metrics = _evaluated_cells(run, model, entry, spec, wsha, sr_dir)
    return {
        "model": entry.label,
        "registry_name": entry.model,
        "hyper": dict(entry.hyper),
        "weights": wdesc,
        "weights_path": wpath,
        "weights_sha256": wsha,
        "channels": meta.get("channels"),
        "upsampled_input": bool(meta.get("upsampled_input")),
        "input_shape": list(in_shape),
        **{k: cost[k] for k in ("params", "macs", "act_mem_mb", "latency_ms", "peak_mem_mb")},
        "metrics": metrics,
        "sr_images": str(sr_dir) if sr_dir else None,
    }


def _bicubic_row(bicubic):
    """The table row of the bicubic baseline: its PSNR/SSIM per set, no cost."""
    return {
        "model": "bicubic",
        "registry_name": None,
        "hyper": {},
        "weights": "-",
        "weights_path": None,
        "weights_sha256": None,
        "channels": None,
        "upsampled_input": None,
        "input_shape": None,
        "params": 0,
        "macs": None,
        "act_mem_mb": None,
        "latency_ms": None,
        "peak_mem_mb": None,
        "metrics": {k: {"psnr": v["psnr"], "ssim": v["ssim"]} for k, v in bicubic.items()},
    }


def _finish(run, partial=False):
    """The result of the rows so far, its files written when ``out`` is given."""
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.studies.reports import write_compare_reports

    result = {
        "rows": run.rows + ([_bicubic_row(run.bicubic)] if run.bicubic else []),
        "datasets": run.ds_names,
        "scale": run.scale,
        "protocol": run.protocol,
        "protocol_description": protocol_description(run.protocol, run.scale),
        "input_size": list(run.lr_size),
        "device": run.device,
        "memory_method": run.memory_method,
        "latency_runs": int(run.latency_runs),
        "warmup": int(run.warmup),
        "computed": run.computed,
        "test_data": [str(d) for d in run.test_data],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": {},
    }
    if partial:
        result["partial"] = f"interrupted after {len(run.rows)} of {len(run.entries)} models"
    if run.out is not None:
        result["files"]["cache"] = str(run.out / "compare_cache.json")
        if run.report and run.rows:
            from visionfw.studies.report_html import write_compare_report
            from visionfw.studies.report_page import DEFAULT_MAX_MB

            max_mb = run.report_max_mb or DEFAULT_MAX_MB
            report = write_compare_report(result, run.out, data_dir=run.data_dir, max_mb=max_mb)
            result["files"]["report"] = str(report)
        write_compare_reports(result, run.out, plot=run.plot)
    return result
