"""Compare SR architectures across benchmark sets: size, cost, speed, memory and quality.

:func:`compare_models` builds each model, gives it weights (a file, a short training run,
or none), and fills one row per model with

* ``params``: trainable + non-trainable parameters;
* ``macs``: multiply-accumulates of one forward pass for a stated input size
  (:func:`count_macs`).  Convention: the input size is the **LR** size (``input_size``,
  default 64x64); pre-upsampled models (SRCNN, VDSR) are counted on the **HR** size
  (``scale`` times larger), so every model produces the same output size.  Only layers
  that multiply by weights count: Conv (per output pixel ``k*k*C_in/groups*C_out``),
  transposed Conv (per *input* pixel ``k*k*C_in*C_out``), depthwise/separable Conv, Dense
  (per position), RCAN's channel attention (its two dense layers, once per image).
  Element-wise work (activations, PReLU, Add, BatchNorm, MeanShift, PixelShuffle) is
  not counted.  1 GMAC = 1e9 MACs (= 2e9 FLOPs);
* ``latency_ms``: batch 1 at that input size, the median of ``latency_runs`` timed calls
  of a cached ``tf.function`` after ``warmup`` untimed calls;
* ``peak_mem_mb``: on GPU the allocator's peak (``tf.config.experimental.get_memory_info``)
  above the level before the call; on CPU the process's peak resident memory above the
  level before the call, polled every 0.5 ms from ``/proc/self/statm`` during the first
  calls at that size, before the timed ones (TF's allocations are invisible to ``tracemalloc``; ``resource.getrusage``'s
  lifetime maximum is the fallback off Linux).  ``act_mem_mb`` is the analytic sum of
  every layer's float32 output at that size, which does not depend on the allocator;
* PSNR / SSIM per dataset with :func:`visionfw.evaluate.evaluate_model` under one named
  protocol (default ``'srcnn'``), and a ``bicubic`` row with the baseline.

Outputs in ``out``: ``compare.md``, ``compare.csv``, ``compare.json``,
``psnr_vs_macs.png`` and ``compare_cache.json``, whose cells (keyed by the model's spec
hash, the weights' sha256, scale, dataset and protocol; costs by spec hash, input shape and
device) are reused on a rerun, so only new cells are computed.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import json
import os
import statistics
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from visionfw.errors import ConfigError, WeightsError

__all__ = ["CompareModel", "OFFICIAL_WEIGHTS", "parse_models", "parse_weights", "parse_input_size",
           "count_macs", "model_input_shape", "measure_latency", "measure_peak_memory",
           "compare_models", "format_markdown", "write_csv", "plot_psnr_vs_macs", "spec_hash", "train_or_reuse",
           "default_shared_data"]

# (registry name, scale) -> path under <shared data>/weights; scale None: one file for every scale
OFFICIAL_WEIGHTS = {
    ("srcnn_915", 2): "srcnn/915_91images/x2.mat",
    ("srcnn_915", 3): "srcnn/915_91images/x3.mat",
    ("srcnn_915", 4): "srcnn/915_91images/x4.mat",
    ("srcnn_955", 2): "srcnn/955_imagenet/x2.mat",
    ("srcnn_955", 3): "srcnn/955_imagenet/x3.mat",
    ("srcnn_955", 4): "srcnn/955_imagenet/x4.mat",
    ("srcnn_935", 3): "srcnn/935_imagenet/x3.mat",
    ("vdsr", None): "vdsr/VDSR_Official.mat",
}

_CACHE_VERSION = 1


def default_shared_data():
    """The reference data folder: $VISIONFW_SHARED_DATA, ./../shared/data, or next to the repo."""
    candidates = []
    if os.environ.get("VISIONFW_SHARED_DATA"):
        candidates.append(Path(os.environ["VISIONFW_SHARED_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


# --------------------------------------------------------------------------- model entries


@dataclasses.dataclass
class CompareModel:
    """One model of the comparison.

    ``model``: a registry name (trainable by :func:`visionfw.train.train`) with ``hyper``
    (e.g. ``{'n1': 8}``); or ``spec``: a spec dict (weights from a file or random).
    ``weights``: a weights file, ``'official'`` (see :data:`OFFICIAL_WEIGHTS`) or None.
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
            out.append(dataclasses.replace(m, hyper=dict(m.hyper)))  # --weights must not edit the caller's
        elif isinstance(m, str):
            out.append(CompareModel(label=m, model=m))
        elif isinstance(m, dict) and ("label" in m or "model" in m) and "inputs" not in m:
            out.append(CompareModel(**m) if "label" in m else CompareModel(label=m["model"], **m))
        elif isinstance(m, dict):
            out.append(CompareModel(label=str(m.get("name", f"spec{len(out)}")), spec=m))
        else:
            raise ConfigError(f"--models: cannot use {m!r}; give registry names, spec dicts or CompareModel.")
    if not out:
        raise ConfigError("--models is empty; give e.g. --models=srcnn_915,fsrcnn,espcn.")
    labels = [m.label for m in out]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise ConfigError(f"--models lists {sorted(dup)} twice; every model needs its own label.")
    return out


def parse_weights(text):
    """``'name=path,name2=official'`` -> {name: path}."""
    if isinstance(text, dict):
        return dict(text)
    result = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigError(f"--weights item {item!r} must be name=path (e.g. vdsr=VDSR_Official.mat "
                              "or vdsr=official).")
        name, path = item.split("=", 1)
        result[name.strip()] = path.strip()
    return result


def parse_input_size(text):
    """``'HxW'`` (or one number for a square, or a (h, w) pair) -> (h, w)."""
    if isinstance(text, (tuple, list)):
        h, w = text
        return int(h), int(w)
    s = str(text).lower().replace(" ", "")
    try:
        parts = [int(p) for p in s.split("x")] if "x" in s else [int(s)] * 2
    except ValueError:
        parts = []
    if len(parts) != 2 or min(parts) < 1:
        raise ConfigError(f"--input_size={text!r}: use HxW in LR pixels, e.g. 64x64.")
    return parts[0], parts[1]


def _resolve_weights(entry, scale, shared=None):
    w = entry.weights
    if w is None or w != "official":
        if w is not None and not Path(w).is_file():
            raise WeightsError(f"--weights {entry.label}={w}: no such file.")
        return w
    key = (entry.model, None) if (entry.model, None) in OFFICIAL_WEIGHTS else (entry.model, int(scale))
    if key not in OFFICIAL_WEIGHTS:
        raise WeightsError(f"--weights {entry.label}=official: no official weights known for "
                           f"{entry.model} x{scale}; known: {sorted({k[0] for k in OFFICIAL_WEIGHTS})}.")
    shared = Path(shared) if shared else default_shared_data()
    if shared is None:
        raise WeightsError(f"--weights {entry.label}=official: the reference data folder is not found; set "
                           "VISIONFW_SHARED_DATA or give the file path.")
    path = shared / "weights" / OFFICIAL_WEIGHTS[key]
    if not path.is_file():
        raise WeightsError(f"--weights {entry.label}=official: {path} does not exist.")
    return str(path)


def _spec_of(entry, scale):
    import inspect

    from visionfw.registry import get_spec, model_entry

    if entry.spec is not None:
        return entry.spec
    if entry.model is None:
        raise ConfigError(f"model {entry.label!r} has neither a registry name nor a spec.")
    hyper = dict(entry.hyper)
    if "scale" in inspect.signature(model_entry(entry.model).fn).parameters:
        hyper.setdefault("scale", int(scale))
    return get_spec(entry.model, **hyper)


def spec_hash(spec):
    """sha256 (16 hex) of the spec's canonical JSON: identifies an architecture."""
    from visionfw.spec_tools import spec_to_json

    text = spec_to_json(spec)
    text = json.dumps(json.loads(text), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- cost


def model_input_shape(spec, input_size, scale):
    """(H, W, C) the model takes for an LR ``input_size``: the HR size for pre-upsampled models."""
    h, w = parse_input_size(input_size)
    meta = spec.get("meta", {})
    if meta.get("upsampled_input"):
        s = int(meta.get("scale") or scale)
        h, w = h * s, w * s
    channels = spec["inputs"][0][-1]
    return int(h), int(w), int(channels)


def _fixed_model(model_or_spec, input_shape):
    """A model whose input has the fixed shape ``input_shape`` (H, W, C), so every layer's
    output shape is static."""
    import keras

    from visionfw.builder import build_model

    if isinstance(model_or_spec, dict):
        spec = dict(model_or_spec)
        if len(spec["inputs"]) != 1:
            raise ConfigError("count_macs: single-input models only.")
        spec["inputs"] = [tuple(input_shape)]
        return build_model(spec)
    model = model_or_spec
    config = model.get_config()
    for layer in config.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            layer["config"]["batch_shape"] = [None, *input_shape]
    try:
        return keras.Model.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any rebuild failure means: give the spec instead
        raise ConfigError(f"count_macs: cannot rebuild model {model.name!r} on a fixed input ({exc}); "
                          "pass its spec dict instead.") from None


def _shape(t):
    return tuple(int(d) for d in t.shape[1:])


def _layer_macs(layer):
    cls = type(layer).__name__
    if cls in ("Conv2D", "EdgePadConv2D", "Conv1D", "Conv3D"):
        out = _shape(layer.output)
        cin = int(layer.input.shape[-1])
        k = int(np.prod(layer.kernel_size))
        groups = int(getattr(layer, "groups", 1) or 1)
        return int(np.prod(out[:-1])) * out[-1] * k * cin // groups
    if cls in ("Conv2DTranspose", "Conv1DTranspose", "Conv3DTranspose"):
        inp = _shape(layer.input)
        return int(np.prod(inp[:-1])) * inp[-1] * int(np.prod(layer.kernel_size)) * int(layer.filters)
    if cls == "DepthwiseConv2D":
        out = _shape(layer.output)
        return int(np.prod(out)) * int(np.prod(layer.kernel_size))
    if cls == "SeparableConv2D":
        out = _shape(layer.output)
        cin = int(layer.input.shape[-1])
        mult = int(layer.depth_multiplier)
        pix = int(np.prod(out[:-1]))
        return pix * cin * mult * int(np.prod(layer.kernel_size)) + pix * cin * mult * out[-1]
    if cls == "Dense":
        inp = _shape(layer.input)
        return int(np.prod(inp[:-1])) * inp[-1] * int(layer.units)
    if cls == "ChannelAttention":
        c = int(layer.input.shape[-1])
        hidden = max(1, c // layer.reduction)
        return 2 * c * hidden
    return 0


def count_macs(model_or_spec, input_shape, per_layer=False):
    """Multiply-accumulates of one forward pass of batch 1 at ``input_shape`` (H, W, C).

    ``model_or_spec``: a spec dict (rebuilt with the fixed input) or a functional
    ``keras.Model`` (rebuilt from its config).  Counting convention: module docstring.
    Returns {'macs', 'activation_bytes', 'params', 'input_shape', 'layers': [(name, class, macs)]}
    (``layers`` filled only with ``per_layer=True``).
    """
    import keras

    if len(input_shape) != 3:
        raise ConfigError(f"count_macs: input_shape {input_shape} must be (H, W, C).")
    model = _fixed_model(model_or_spec, input_shape)
    total, act = 0, 0
    rows = []

    def walk(m):
        nonlocal total, act
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
                continue
            if type(layer).__name__ == "InputLayer":
                continue
            macs = _layer_macs(layer)
            total += macs
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
            for o in outputs:
                if any(d is None for d in o.shape[1:]):
                    raise ConfigError(f"count_macs: layer {layer.name!r} has a dynamic output shape "
                                      f"{o.shape} even on a fixed input; cannot count it.")
                act += int(np.prod(o.shape[1:])) * 4
            if per_layer:
                rows.append((layer.name, type(layer).__name__, macs))

    walk(model)
    return {"macs": int(total), "activation_bytes": int(act), "params": int(model.count_params()),
            "input_shape": tuple(input_shape), "layers": rows}


_FORWARD = weakref.WeakKeyDictionary()


def _forward(model):
    """A cached ``tf.function`` of the model, traced once for any spatial size."""
    fn = _FORWARD.get(model)
    if fn is None:
        import tensorflow as tf

        ref = weakref.ref(model)
        channels = model.inputs[0].shape[-1]

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
        def fn(x):
            return ref()(x, training=False)

        _FORWARD[model] = fn
    return fn


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def device_name():
    """'GPU: <name>' or 'CPU: <n> threads'."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {os.cpu_count()} threads"


def measure_latency(model, input_shape, runs=10, warmup=3, seed=0):
    """Median wall time (ms) of one forward pass, batch 1, after ``warmup`` untimed calls.

    The output is fetched to the host (``.numpy()``) inside the timing, so asynchronous GPU
    execution is included.  Returns {'median_ms', 'runs_ms', 'warmup', 'runs'}.
    """
    fn = _forward(model)
    x = np.random.default_rng(seed).random((1, *input_shape), dtype=np.float32)
    for _ in range(max(0, int(warmup))):
        _numpy(fn(x))
    times = []
    for _ in range(max(1, int(runs))):
        t0 = time.perf_counter()
        _numpy(fn(x))
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(statistics.median(times)), "runs_ms": times, "warmup": int(warmup),
            "runs": len(times)}


def _numpy(out):
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out.numpy()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim():
    """Hands freed heap pages back to the OS (glibc), so earlier models' freed buffers do not
    hide this model's allocations from the RSS measurement."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_peak_memory(model, input_shape, runs=2, seed=0):
    """Peak memory (MiB) of a batch-1 forward pass above the level just before it.

    GPU: ``get_memory_info('GPU:0')['peak']`` after ``reset_memory_stats``.  CPU: peak
    RSS polled every 0.5 ms during ``runs`` calls (``/proc/self/statm``, after glibc's
    ``malloc_trim``), or the ``getrusage`` max-RSS delta where /proc is absent.  The
    function is traced on a tiny input first so graph building is not counted.  Call it
    before other calls at this size: TF's CPU buffers are reused after the first call, so
    later calls add little.  Returns {'peak_mb', 'method'}.
    """
    import tensorflow as tf

    fn = _forward(model)
    _numpy(fn(np.zeros((1, 8, 8, input_shape[-1]), np.float32)))
    x = np.random.default_rng(seed).random((1, *input_shape), dtype=np.float32)
    if _has_gpu():
        tf.config.experimental.reset_memory_stats("GPU:0")
        before = tf.config.experimental.get_memory_info("GPU:0")["current"]
        for _ in range(runs):
            _numpy(fn(x))
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        return {"peak_mb": (peak - before) / 2**20, "method": "GPU allocator peak above the pre-call level"}
    if os.path.exists("/proc/self/statm"):
        _malloc_trim()
        base = _rss_bytes()
        peak = [base]
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(0.0005)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        try:
            for _ in range(runs):
                _numpy(fn(x))
        finally:
            stop.set()
            t.join()
        peak[0] = max(peak[0], _rss_bytes())
        return {"peak_mb": (peak[0] - base) / 2**20,
                "method": "CPU process RSS peak above the pre-call level during the first calls at this "
                           "size, polled every 0.5 ms"}
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(runs):
        _numpy(fn(x))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024
    return {"peak_mb": (after - before) * unit / 2**20, "method": "getrusage max-RSS delta (lower bound)"}


# --------------------------------------------------------------------------- cache


class _Cache:
    """A JSON dict of computed cells, written atomically after every new cell."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self.data = {"version": _CACHE_VERSION, "cells": {}}
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("version") == _CACHE_VERSION:
                    self.data = data
            except (OSError, ValueError):
                pass  # a broken cache is recomputed, not trusted

    def get(self, key):
        return self.data["cells"].get(key)

    def put(self, key, value):
        self.data["cells"][key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, default=float))
            tmp.replace(self.path)


# --------------------------------------------------------------------------- training


# TrainConfig fields that are bookkeeping, not part of what a run learns
_BOOKKEEPING = {"workdir", "progress", "tensorboard", "val_every", "ckpt_every", "log_every", "val_data",
                "resume", "keep_checkpoints"}


def train_or_reuse(**config):
    """Runs :func:`visionfw.train.train` on ``TrainConfig(**config)`` unless its workdir
    already holds a finished run of the same config; returns (model.keras path, trained now?).

    Same config (every given field but bookkeeping equals the saved ``config.json``) and
    ``model.keras`` present: reused.  Same config, no model: the interrupted run resumes
    from its checkpoints.  Another config: the old checkpoints (ours) are removed and the
    run starts afresh.
    """
    import shutil

    from visionfw.train import TrainConfig, train

    workdir = Path(config["workdir"])
    saved = None
    if (workdir / "config.json").is_file():
        try:
            saved = json.loads((workdir / "config.json").read_text())
        except ValueError:
            saved = None
    wanted = {k: v for k, v in config.items() if k not in _BOOKKEEPING}
    same = saved is not None and all(saved.get(k) == json.loads(json.dumps(v)) for k, v in wanted.items())
    if same and (workdir / "model.keras").is_file():
        return str(workdir / "model.keras"), False
    if not same:
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
        (workdir / "model.keras").unlink(missing_ok=True)
    return train(TrainConfig(**config))["model_path"], True


def _train_entry(entry, scale, steps, train_data, workdir, seed, options):
    """Trains registry model ``entry`` for ``steps`` (or reuses the run, see
    :func:`train_or_reuse`); returns (model.keras path, trained now?)."""
    if entry.model is None:
        raise ConfigError(f"model {entry.label!r} is a spec dict; training needs a registry name "
                          "(or give --weights for it, or --train_steps=0 for random weights).")
    kwargs = dict(model=entry.model, scale=int(scale), model_kwargs=dict(entry.hyper),
                  train_data=str(train_data) if train_data else None, val_data=[], steps=int(steps),
                  seed=int(seed), workdir=str(workdir), progress=False, tensorboard=False, val_every=0,
                  ckpt_every=max(1, min(int(steps), 500)), log_every=max(1, min(100, int(steps))))
    kwargs.update(options or {})
    return train_or_reuse(**kwargs)


def _describe_train_data(train_data):
    return "embedded photos" if not train_data else Path(str(train_data)).name


# --------------------------------------------------------------------------- the comparison


def compare_models(models, test_data, scale, weights=None, train_steps=0, train_data=None, out=None,
                   input_size=(64, 64), protocol="srcnn", data_dir=None, latency_runs=10, warmup=3,
                   seed=0, train_options=None, shared_data=None, progress=False, plot=True):
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
      train_options: extra :class:`visionfw.train.TrainConfig` fields (batch_size, lr_patch...).

    Returns {'rows': [...], 'datasets', 'scale', 'protocol', 'protocol_description',
    'input_size', 'device', 'memory_method', 'computed': {'train', 'eval', 'cost'} counts,
    'files': {...}}.
    """
    import keras

    from visionfw.builder import build_model
    from visionfw.evaluate import evaluate_model
    from visionfw.metrics import protocol_description
    from visionfw.weights import file_sha256, load_weights

    entries = parse_models(models)
    for label, path in parse_weights(weights).items():
        match = [e for e in entries if e.label == label or e.model == label]
        if not match:
            raise ConfigError(f"--weights names {label!r}, which is not in --models "
                              f"({', '.join(e.label for e in entries)}).")
        for e in match:
            e.weights = path
    if isinstance(test_data, str):
        test_data = [d.strip() for d in test_data.split(",") if d.strip()]
    if not test_data:
        raise ConfigError("--test_data is empty; give e.g. --test_data=Set5,Set14.")
    if protocol not in ("srcnn", "edsr"):
        raise ConfigError(f"--protocol={protocol!r}: use srcnn or edsr.")
    scale = int(scale)
    lr_size = parse_input_size(input_size)
    train_steps = int(train_steps or 0)
    out = Path(out) if out else None
    cache = _Cache(out / "compare_cache.json" if out else None)
    device = device_name()
    computed = {"train": 0, "eval": 0, "cost": 0}
    ds_names = [Path(str(d)).name if Path(str(d)).is_dir() else str(d) for d in test_data]
    rows = []
    memory_method = None
    bicubic = {}

    for entry in entries:
        spec = _spec_of(entry, scale)
        meta = spec.get("meta", {})
        shash = spec_hash(spec)
        wpath = _resolve_weights(entry, scale, shared_data)
        if wpath is not None:
            shared = Path(shared_data) if shared_data else default_shared_data()
            rel = None
            if shared is not None:
                try:
                    rel = str(Path(wpath).resolve().relative_to((shared / "weights").resolve()))
                except ValueError:
                    rel = None
            wdesc = f"official {rel}" if rel else Path(wpath).name
        elif train_steps > 0:
            if out is None:
                raise ConfigError("--train_steps needs --out (the trained models are saved there).")
            wpath, trained = _train_entry(entry, scale, train_steps, train_data, out / "train" / entry.label,
                                          seed, train_options)
            computed["train"] += int(trained)
            wdesc = f"trained {train_steps} steps on {_describe_train_data(train_data)}"
        else:
            wdesc = "random"
        keras.utils.set_random_seed(int(seed))
        model = build_model(spec)
        if wpath is not None:
            load_weights(model, wpath)
            wsha = file_sha256(wpath)[:16]
        else:
            wsha = f"random-seed{seed}"
        channels = meta.get("channels")
        upsampled = meta.get("upsampled_input")
        in_shape = model_input_shape(spec, lr_size, scale)

        cost_key = f"cost2|{shash}|{'x'.join(map(str, in_shape))}|{device}|{latency_runs}|{warmup}"
        cost = cache.get(cost_key)
        if cost is None:
            macs = count_macs(spec, in_shape)
            # memory first: only the first call at a new size allocates (pools are reused after)
            mem = measure_peak_memory(model, in_shape, seed=seed)
            lat = measure_latency(model, in_shape, runs=latency_runs, warmup=warmup, seed=seed)
            cost = {"params": int(model.count_params()), "macs": macs["macs"],
                    "act_mem_mb": macs["activation_bytes"] / 2**20, "latency_ms": lat["median_ms"],
                    "latency_runs_ms": lat["runs_ms"], "peak_mem_mb": mem["peak_mb"],
                    "memory_method": mem["method"]}
            cache.put(cost_key, cost)
            computed["cost"] += 1
        memory_method = memory_method or cost["memory_method"]

        metrics = {}
        for ds, ds_name in zip(test_data, ds_names):
            key = f"eval|{entry.label}|{shash}|{wsha}|x{scale}|{ds_name}|{protocol}"
            cell = cache.get(key)
            if cell is None:
                res = evaluate_model(model, [ds], scale, protocol=protocol, data_dir=data_dir, channels=channels,
                                     upsampled_input=upsampled, progress=progress)
                r = next(iter(res.values()))
                cell = {k: r[k] for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain_psnr", "n_images")}
                cell["images"] = [{k: v for k, v in im.items()} for im in r["images"]]
                cache.put(key, cell)
                computed["eval"] += 1
            metrics[ds_name] = cell
            bicubic.setdefault(ds_name, {"psnr": cell["bicubic_psnr"], "ssim": cell["bicubic_ssim"]})
        rows.append({"model": entry.label, "registry_name": entry.model, "hyper": dict(entry.hyper),
                     "weights": wdesc, "weights_path": wpath, "weights_sha256": wsha,
                     "channels": channels, "upsampled_input": bool(upsampled), "input_shape": list(in_shape),
                     **{k: cost[k] for k in ("params", "macs", "act_mem_mb", "latency_ms", "peak_mem_mb")},
                     "metrics": metrics})
        del model
    if bicubic:
        rows.append({"model": "bicubic", "registry_name": None, "hyper": {}, "weights": "-", "weights_path": None,
                     "weights_sha256": None, "channels": None, "upsampled_input": None, "input_shape": None,
                     "params": 0, "macs": None, "act_mem_mb": None, "latency_ms": None, "peak_mem_mb": None,
                     "metrics": {k: {"psnr": v["psnr"], "ssim": v["ssim"]} for k, v in bicubic.items()}})
    result = {"rows": rows, "datasets": ds_names, "scale": scale, "protocol": protocol,
              "protocol_description": protocol_description(protocol, scale), "input_size": list(lr_size),
              "device": device, "memory_method": memory_method, "latency_runs": int(latency_runs),
              "warmup": int(warmup), "computed": computed,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "files": {}}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(format_markdown(result) + "\n")
        write_csv(result, out / "compare.csv")
        (out / "compare.json").write_text(json.dumps(result, indent=2, default=float))
        result["files"] = {"markdown": str(out / "compare.md"), "csv": str(out / "compare.csv"),
                           "json": str(out / "compare.json"), "cache": str(out / "compare_cache.json")}
        if plot:
            result["files"]["plot"] = str(plot_psnr_vs_macs(result, out / "psnr_vs_macs.png"))
            (out / "compare.json").write_text(json.dumps(result, indent=2, default=float))
    return result


# --------------------------------------------------------------------------- reports


def _columns(result):
    cols = ["model", "weights", "params", "GMACs", "latency_ms", "peak_mem_MB", "act_mem_MB"]
    for ds in result["datasets"]:
        cols += [f"{ds} PSNR", f"{ds} SSIM"]
    return cols


def _row_values(row, result):
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    values = [row["model"], row["weights"], f"{row['params']:,}", num(None if row["macs"] is None else
                                                                       row["macs"] / 1e9, ".4g"),
              num(row["latency_ms"], ".2f"), num(row["peak_mem_mb"], ".1f"), num(row["act_mem_mb"], ".1f")]
    for ds in result["datasets"]:
        m = row["metrics"].get(ds)
        values += [num(m and m["psnr"], ".3f"), num(m and m["ssim"], ".4f")]
    return values


def format_markdown(result):
    """The comparison as a Markdown table with the conventions stated under it."""
    cols = _columns(result)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in result["rows"]:
        lines.append("| " + " | ".join(_row_values(row, result)) + " |")
    h, w = result["input_size"]
    s = result["scale"]
    lines += ["",
              f"Scale x{s}. PSNR/SSIM protocol: {result['protocol']} -- {result['protocol_description']}.",
              f"GMACs: multiply-accumulates (1e9) of one forward pass for a {h}x{w} LR input "
              f"({h * s}x{w * s} HR; pre-upsampled models such as SRCNN/VDSR are counted on the HR size); "
              "conv/dense layers only.",
              f"Latency: batch 1 at that size, median of {result['latency_runs']} runs after "
              f"{result['warmup']} warm-up runs of a cached tf.function, on {result['device']}.",
              f"peak_mem_MB: {result['memory_method']}; act_mem_MB: sum of all layer outputs in float32."]
    return "\n".join(lines)


def write_csv(result, path):
    """One line per model; numbers unformatted."""
    path = Path(path)
    fields = ["model", "weights", "params", "macs", "latency_ms", "peak_mem_mb", "act_mem_mb"]
    for ds in result["datasets"]:
        fields += [f"{ds}_psnr", f"{ds}_ssim", f"{ds}_bicubic_psnr"]
    fields += ["scale", "protocol", "input_size", "device"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for row in result["rows"]:
            line = {k: row.get(k) for k in fields[:7]}
            for ds in result["datasets"]:
                m = row["metrics"].get(ds, {})
                line[f"{ds}_psnr"] = m.get("psnr")
                line[f"{ds}_ssim"] = m.get("ssim")
                line[f"{ds}_bicubic_psnr"] = m.get("bicubic_psnr", m.get("psnr") if row["model"] == "bicubic" else None)
            line.update(scale=result["scale"], protocol=result["protocol"],
                        input_size="x".join(map(str, result["input_size"])), device=result["device"])
            w.writerow(line)
    return path


def plot_psnr_vs_macs(result, path):
    """PNG: PSNR (y) against GMACs (x, log) per dataset; bubble area ~ parameters."""
    # the object-oriented API needs no pyplot backend, so a notebook's backend is left alone
    from matplotlib.figure import Figure

    rows = [r for r in result["rows"] if r["macs"]]
    datasets = result["datasets"]
    fig = Figure(figsize=(5.5 * len(datasets), 4.5))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    max_params = max([r["params"] for r in rows] or [1])
    for ax, ds in zip(axes[0], datasets):
        for r in rows:
            m = r["metrics"].get(ds)
            if not m:
                continue
            size = 30 + 1500 * (r["params"] / max_params) ** 0.5
            ax.scatter(r["macs"] / 1e9, m["psnr"], s=size, alpha=0.5)
            # the label sits just above the bubble (its radius in points is sqrt(area) / 2)
            ax.annotate(r["model"], (r["macs"] / 1e9, m["psnr"]), fontsize=8, ha="center", va="bottom",
                        xytext=(0, size ** 0.5 / 2 + 2), textcoords="offset points")
        bic = next((r for r in result["rows"] if r["model"] == "bicubic"), None)
        if bic and ds in bic["metrics"]:
            ax.axhline(bic["metrics"][ds]["psnr"], color="grey", ls="--", lw=1, label="bicubic")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.15)
        h, w = result["input_size"]
        ax.set_xlabel(f"GMACs ({h}x{w} LR input)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{ds} x{result['scale']} ({result['protocol']} protocol); bubble = parameters", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
