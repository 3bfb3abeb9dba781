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
from pathlib import Path

from visionfw.errors import ConfigError, WeightsError
from visionfw.studies.profiling import parse_input_size

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


def parse_models(models):
    """``'a,b'`` / list of names / dicts / :class:`CompareModel` -> list of CompareModel."""
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


def parse_weights(text):
    """``'name=path,name2=official'`` -> {name: path}; a bare ``'official'`` -> {ALL: 'official'}
    (every registry model gets its official weights)."""
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


def compare_models(
    models,
    test_data,
    scale,
    weights=None,
    train_steps=0,
    train_data=None,
    out=None,
    input_size=(64, 64),
    protocol="srcnn",
    data_dir=None,
    latency_runs=10,
    warmup=3,
    seed=0,
    train_options=None,
    progress=False,
    plot=True,
    log_every=100,
    report=False,
    report_max_mb=None,
):
    """Compares ``models`` on ``test_data``; see the module docstring.

    Args:
      models: registry names ('srcnn_915,fsrcnn'), spec dicts, dicts of
        :class:`CompareModel` fields, or CompareModel.
      test_data: benchmark names or folders (list or comma string).
      scale: SR factor.
      weights: {label: path or 'official'} (or 'a=p,b=q'); overrides CompareModel.weights.
      train_steps: models without weights are trained this many steps on ``train_data``
        (None: the embedded photos); 0: they keep their random initialisation.
      out: folder for the outputs and the cache (None: nothing written, nothing cached).
      input_size: LR input size (H, W) or 'HxW' for MACs, latency and memory.
      protocol: 'srcnn' or 'edsr' (see :mod:`visionfw.evaluate`), one for the whole table.
      data_dir: first root of the data search path (:mod:`visionfw.data.paths`): benchmark
        sets and official weights are looked up there first.
      train_options: extra :class:`visionfw.train.TrainConfig` fields (batch_size, lr_patch...).
      progress: announce each model, show its training's and evaluation's progress on stderr
        (:class:`visionfw.console.Progress`: a live bar on a terminal, else a plain line every
        ``log_every`` steps).
      report: also write ``out/report.html`` (:func:`visionfw.studies.report_html.write_compare_report`):
        the table, the plot and, per image, crops where the models differ; the models' outputs
        are kept in ``out/sr_images`` for it.  ``report_max_mb``: the page's size cap (default 10).

    The first Ctrl-C / SIGTERM stops a training with a checkpoint, writes the table of the
    models that finished (``result['partial']`` says so) and raises
    :class:`visionfw.train.TrainingInterrupted`; the same call again finishes the rest.

    Returns {'rows': [...], 'datasets', 'scale', 'protocol', 'protocol_description',
    'input_size', 'device', 'memory_method', 'computed': {'train', 'eval', 'cost'} counts,
    'test_data' (the sets as given), 'files': {...}}.
    """
    import hashlib

    import keras

    from visionfw.console import say
    from visionfw.evaluate import evaluate_model
    from visionfw.loading import is_model_reference
    from visionfw.metrics.psnr_ssim import protocol_description
    from visionfw.studies import profiling
    from visionfw.studies.reports import write_compare_reports
    from visionfw.studies.runs import ResultCache, interrupted, spec_hash, train_short
    from visionfw.train import TrainingInterrupted
    from visionfw.weights.loader import file_sha256, load_weights
    from visionfw.zoo.builder import build_model

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
    test_data = _split(test_data)
    if not test_data:
        raise ConfigError("test_data is empty; give e.g. test_data=Set5,Set14.")
    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"protocol={protocol!r}: use srcnn or edsr.")
    scale = int(scale)
    lr_size = parse_input_size(input_size)
    train_steps = int(train_steps or 0)
    out = Path(out) if out else None
    cache = ResultCache(out / "compare_cache.json" if out else None)
    device = profiling.device_name()
    computed = {"train": 0, "eval": 0, "cost": 0}
    ds_names = [Path(str(d)).name if Path(str(d)).is_dir() else str(d) for d in test_data]
    rows = []
    memory_method = None
    bicubic = {}

    def finish(partial=False):
        table = list(rows)
        if bicubic:
            table.append(
                {
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
            )
        result = {
            "rows": table,
            "datasets": ds_names,
            "scale": scale,
            "protocol": protocol,
            "protocol_description": protocol_description(protocol, scale),
            "input_size": list(lr_size),
            "device": device,
            "memory_method": memory_method,
            "latency_runs": int(latency_runs),
            "warmup": int(warmup),
            "computed": computed,
            "test_data": [str(d) for d in test_data],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "files": {},
        }
        if partial:
            result["partial"] = f"interrupted after {len(rows)} of {len(entries)} models"
        if out is not None:
            result["files"]["cache"] = str(out / "compare_cache.json")
            if report and rows:
                from visionfw.studies.report_html import DEFAULT_MAX_MB, write_compare_report

                result["files"]["report"] = str(
                    write_compare_report(result, out, data_dir=data_dir, max_mb=report_max_mb or DEFAULT_MAX_MB)
                )
            write_compare_reports(result, out, plot=plot)
        return result

    doing = "starting"
    try:
        for index, entry in enumerate(entries, 1):
            tag = f"{entry.label} ({index}/{len(entries)})"
            doing = f"preparing {tag}"
            spec = _spec_of(entry, scale)
            meta = spec.get("meta", {})
            shash = spec_hash(spec)
            wpath, wdesc = _resolve_weights(entry, scale, data_dir)
            if wpath is None and train_steps > 0:
                if out is None:
                    raise ConfigError("train_steps needs out=FOLDER (the trained models are saved there).")
                if entry.model is None or is_model_reference(entry.model):
                    raise ConfigError(
                        f"model {entry.label!r} is a spec dict; training needs a registry name "
                        "(or give weights=LABEL=PATH for it, or train_steps=0 for random weights)."
                    )
                doing = f"training {tag}"
                workdir = out / "train" / entry.label
                wpath, trained = train_short(
                    entry.model,
                    scale,
                    train_steps,
                    workdir,
                    model_kwargs=entry.hyper,
                    train_data=train_data,
                    seed=seed,
                    options=train_options,
                    progress=progress,
                    label=f"compare {tag}",
                )
                computed["train"] += int(trained)
                if not trained and progress:
                    say(f"compare {tag}: reusing the finished training in {workdir}")
                source = "embedded photos" if not train_data else Path(str(train_data)).name
                wdesc = f"trained {train_steps} steps on {source}"
            doing = f"evaluating {tag}"
            keras.utils.set_random_seed(int(seed))
            model = build_model(spec)
            if wpath is not None:
                load_weights(model, wpath, **_official_options(entry, scale)[1])
                wsha = file_sha256(wpath)[:16]
            else:
                wdesc, wsha = "random", f"random-seed{seed}"
            channels = meta.get("channels")
            upsampled = meta.get("upsampled_input")
            in_shape = profiling.model_input_shape(spec, lr_size, scale)

            cost_key = f"cost2|{shash}|{'x'.join(map(str, in_shape))}|{device}|{latency_runs}|{warmup}"
            cost = cache.get(cost_key)
            if cost is None:
                cost = profiling.measure_cost(model, spec, in_shape, runs=latency_runs, warmup=warmup, seed=seed)
                cache.put(cost_key, cost)
                computed["cost"] += 1
            memory_method = memory_method or cost["memory_method"]

            metrics = {}
            # the report shows the outputs: kept per model and weights, so a cached cell has its images
            sr_dir = (
                out / "sr_images" / f"{entry.label}-{hashlib.sha1(f'{shash}|{wsha}'.encode()).hexdigest()[:8]}"
                if report and out is not None
                else None
            )
            for ds, ds_name in zip(test_data, ds_names):
                key = f"eval|{entry.label}|{shash}|{wsha}|x{scale}|{ds_name}|{protocol}"
                cell = cache.get(key)
                if (
                    cell is not None
                    and sr_dir is not None
                    and not all(
                        (sr_dir / ds_name / f"x{scale}" / f"{im['name']}.png").is_file() for im in cell["images"]
                    )
                ):
                    cell = None  # evaluated before without the report: again, saving the outputs
                if cell is None:
                    res = evaluate_model(
                        model,
                        [ds],
                        scale,
                        protocol=protocol,
                        data_dir=data_dir,
                        channels=channels,
                        upsampled_input=upsampled,
                        progress=progress,
                        log_every=log_every,
                        progress_label=f"compare {entry.label}:",
                        save_images=sr_dir,
                    )
                    r = next(iter(res.values()))
                    cell = {k: r[k] for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain_psnr", "n_images")}
                    cell["images"] = [dict(im) for im in r["images"]]
                    cache.put(key, cell)
                    computed["eval"] += 1
                metrics[ds_name] = cell
                bicubic.setdefault(ds_name, {"psnr": cell["bicubic_psnr"], "ssim": cell["bicubic_ssim"]})
            rows.append(
                {
                    "model": entry.label,
                    "registry_name": entry.model,
                    "hyper": dict(entry.hyper),
                    "weights": wdesc,
                    "weights_path": wpath,
                    "weights_sha256": wsha,
                    "channels": channels,
                    "upsampled_input": bool(upsampled),
                    "input_shape": list(in_shape),
                    **{k: cost[k] for k in ("params", "macs", "act_mem_mb", "latency_ms", "peak_mem_mb")},
                    "metrics": metrics,
                    "sr_images": str(sr_dir) if sr_dir else None,
                }
            )
            del model
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        # the first Ctrl-C: keep what finished (the table of the finished models, the cache)
        written = finish(partial=True)["files"].get("markdown") if rows and out is not None else None
        table = (
            f"the table of the {len(rows)} finished model(s) is in {written}" if written else "no model had finished"
        )
        raise interrupted("compare", doing, exc, table) from None
    return finish()
