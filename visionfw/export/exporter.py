"""Export a trained model out of Python: TF SavedModel, TFLite and ONNX.

    >>> from visionfw.export import export_model, load_exported
    >>> export_model(model, "edsr_x2.onnx", format="onnx")          # any H x W; checked against Keras
    >>> sr = load_exported("edsr_x2.onnx")(lr[None])                  # onnxruntime, NHWC float32

Every export takes NHWC float32 images and returns float32, whatever ``dtype``; inputs are
named as in the Keras model (``input_0`` ...), outputs ``output_0`` ...; batch is dynamic.

=========== ============ ===================================== ====================================
format      written      input size                            ``dtype='fp16'``
=========== ============ ===================================== ====================================
saved_model a folder     any (None, None, C)                   weights and compute in float16 (the
                                                               model rebuilt under Keras's
                                                               ``float16`` dtype policy)
tflite      ``.tflite``  any: ``Interpreter.resize_tensor_     weights stored as float16 (the
                         input`` before ``allocate_tensors``;  converter's float16 quantisation);
                         a model with BicubicResize needs      the CPU dequantises them and
                         ``input_shape=(H, W)`` (see below)    computes in float32
onnx        ``.onnx``    any (dims ``batch``, ``height``,      weights and compute in float16 (the
                         ``width``)                            float16 Keras model converted)
=========== ============ ===================================== ====================================

``input_shape=(H, W)`` fixes the spatial size instead (runtimes that need one, such as TFLite
GPU/NPU delegates).  Conversion goes through TensorFlow: SavedModel via Keras's
``ExportArchive``; TFLite via ``tf.lite.TFLiteConverter`` on that SavedModel, builtin ops only
(so the file runs in any TFLite/LiteRT runtime); ONNX via ``tf2onnx`` (``pip install
'visionfw[export]'``), with its integer ``FloorMod`` replaced by a correct one (the writers
are in :mod:`visionfw.export.formats`).  BicubicResize computes its MATLAB weights for an unknown size in
float64, which TFLite lacks; at a fixed size they are constants and the export is exact.

By default every export is run once in its own runtime on a random input and compared with
the Keras model (:func:`check_export`, tolerance :data:`CHECK_TOLERANCE`).  When a conversion
fails, each distinct layer is converted alone to name the one the format cannot take
(:class:`~visionfw.errors.ConfigError`).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from visionfw.errors import ConfigError
from visionfw.export.formats import (
    DEFAULT_OPSET,
    DTYPES,
    FORMATS,
    INSTALL_HINT,
    SUFFIXES,
    as_float16,
    check_choice,
    format_from_path,
    import_tf2onnx,
    input_specs,
    serving_fn,
    write_onnx,
    write_saved_model,
    write_tflite,
)

if TYPE_CHECKING:
    import keras

__all__ = ["CHECK_TOLERANCE", "export_model", "check_export", "load_exported"]

# --------------------------------------------------------------------------- blame


def _flat_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _flat_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            yield layer


def _layer_inputs(layer):
    """The KerasTensors a layer was first called on (a list)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        return None
    tensors = nodes[0].input_tensors
    return list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]


def _blame(model, fmt, write):
    """The first distinct layer class that fails to convert on its own, as 'name (Class)', else None."""
    import keras

    seen = set()
    for layer in _flat_layers(model):
        cls = type(layer).__name__
        if cls in seen:
            continue
        seen.add(cls)
        tensors = _layer_inputs(layer)
        if not tensors or any(len(t.shape) != 4 for t in tensors):
            continue
        try:  # a copy of the layer, so the user's model gains no inbound node
            ins = [keras.Input(batch_shape=(None,) + tuple(t.shape[1:]), dtype=t.dtype) for t in tensors]
            twin = type(layer).from_config(layer.get_config())
            probe = keras.Model(ins, twin(ins[0] if len(ins) == 1 else ins))
            twin.set_weights(layer.get_weights())
            specs = [(f"input_{i}", (None,) + tuple(t.shape[1:])) for i, t in enumerate(tensors)]
        except Exception:
            continue
        with tempfile.TemporaryDirectory(prefix="visionfw_probe_") as tmp:
            try:
                write(probe, Path(tmp) / f"probe{SUFFIXES.get(fmt, '')}", specs)
            except Exception:
                return f"{layer.name!r} ({cls})"
    return None


# --------------------------------------------------------------------------- public


# (format, layer class) -> why the format cannot take the layer at a dynamic input size
_NEEDS_FIXED_SIZE = {
    ("tflite", "BicubicResize"): "computes its MATLAB bicubic weights for each input size in float64, "
    "which TFLite's builtin ops lack",
}

# the check's tolerance on max |export - keras|, relative to max |keras output| (at least 1):
# the zoo measures fp32 <= 4e-6 and fp16 <= 4e-3 (random weights; tests/test_export.py)
CHECK_TOLERANCE = {"fp32": 1e-4, "fp16": 3e-2}


def _export_path(path, format, overwrite):
    """``path`` with the format's suffix added when missing; ConfigError if it exists and not ``overwrite``."""
    path = Path(path)
    if format in SUFFIXES and path.suffix.lower() != SUFFIXES[format]:
        path = path.with_name(path.name + SUFFIXES[format])
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; remove it or pass overwrite=True.")
    return path


def _check_converter(format, check):
    """ConfigError before any work when the converter (or onnxruntime for the check) is missing."""
    if format == "onnx":
        import_tf2onnx()
        if check:
            _import_onnxruntime("check=True")
    if format == "tflite":
        import tensorflow as tf

        if not hasattr(tf, "lite") or not hasattr(tf.lite, "TFLiteConverter"):
            raise ConfigError(
                f"format='tflite' needs tf.lite.TFLiteConverter, which this TensorFlow "
                f"({tf.__version__}) lacks; install a TensorFlow that ships it ({INSTALL_HINT})."
            )


def _refuse_dynamic_size(model, format, specs):
    """ConfigError naming the layer when the format cannot take it at a free input size."""
    if not any(None in shape[1:3] for _, shape in specs):
        return
    for layer in _flat_layers(model):
        why = _NEEDS_FIXED_SIZE.get((format, type(layer).__name__))
        if why:
            raise ConfigError(
                f"format={format!r}: model {model.name!r} has layer {layer.name!r} "
                f"({type(layer).__name__}), which {why}; pass input_shape=(H, W) to export it "
                "for one input size (its weights then become constants; exact), or export "
                "to 'saved_model' or 'onnx', which take any size."
            )


def _writer(model, format, dtype, opset):
    """``(model to convert, write(model, path, specs))`` for the format and dtype."""
    fp16 = dtype == "fp16"
    if format == "tflite":  # the converter stores float16 weights itself

        def write_tflite_file(m, p, s):
            return write_tflite(m, p, s, fp16)

        return model, write_tflite_file

    def write(m, p, s):
        if format == "saved_model":
            return write_saved_model(m, p, s, cast16=fp16)
        return write_onnx(m, p, s, cast16=fp16, opset=opset)

    return (as_float16(model) if fp16 else model), write


def _write_or_blame(model, target, format, write, path, specs):
    """Writes the export; on a failure, ConfigError naming the layer the format cannot take."""
    _cleanup(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return write(target, path, specs)
    except ConfigError:
        raise
    except Exception as exc:
        _cleanup(path)
        culprit = _blame(target, format, write)
        reason = f"{type(exc).__name__}: {_first_lines(exc)}"
        if culprit:
            raise ConfigError(
                f"format={format!r}: model {model.name!r} has layer {culprit}, which this format "
                f"cannot take ({reason}). Replace that layer, or export to another format."
            ) from exc
        raise ConfigError(
            f"format={format!r}: exporting model {model.name!r} failed ({reason}); no single "
            "layer fails alone, so it is their combination (report it with the model's spec)."
        ) from exc


def _require_match(model, written, format, dtype, input_shape):
    """ConfigError when the export at ``written`` differs from the Keras model (:func:`check_export`)."""
    report = check_export(model, written, format=format, dtype=dtype, input_shape=input_shape)
    if not report["ok"]:
        raise ConfigError(
            f"format={format!r}, dtype={dtype!r}: the export of {model.name!r} at {written} differs "
            f"from the Keras model by {report['max_abs_diff']:.3g} (max |output| "
            f"{report['max_abs_ref']:.3g}, tolerance {report['tolerance']:.3g}, the Keras model's "
            f"own eager vs tf.function difference {report['keras_noise']:.3g}) on a "
            f"{report['size'][0]}x{report['size'][1]} random input: a converter bug; report it "
            "with the model's spec, use another format meanwhile, or pass check=False to keep it."
        )


def export_model(
    model: keras.Model,
    path: str | Path,
    *,
    format: str = "saved_model",
    dtype: str = "fp32",
    input_shape: Any = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    overwrite: bool = True,
) -> Path:
    """Writes ``model`` to ``path`` in ``format`` and returns the written path.

    Args:
      model: a ``keras.Model`` (weights loaded).
      path: a folder for 'saved_model', a ``.tflite`` / ``.onnx`` file (suffix added when missing).
      format: 'saved_model', 'tflite' or 'onnx'.
      dtype: 'fp32', or 'fp16' (see the module docstring for what it means per format;
        inputs and outputs stay float32).
      input_shape: None (any H x W; every format here allows it, except TFLite for a model
        with BicubicResize), or (H, W) / (H, W, C) to fix the spatial size; a list of them
        for a model with several inputs.  Batch stays dynamic.
      opset: ONNX opset.
      check: run the export in its runtime on a random input and raise ConfigError if it
        differs from the Keras model by more than :data:`CHECK_TOLERANCE` (see
        :func:`check_export`).
      overwrite: False raises ConfigError if ``path`` exists.

    Returns:
      The written path (a ``Path``).

    Raises:
      ConfigError: an unknown format or dtype, a missing converter package (with the pip command),
        a layer the format cannot take (named), or an export that fails the check.
    """
    check_choice(format, FORMATS, "format")
    check_choice(dtype, DTYPES, "dtype")
    specs = input_specs(model, input_shape)
    path = _export_path(path, format, overwrite)
    _check_converter(format, check)  # before any work: a missing package is the likeliest problem
    _refuse_dynamic_size(model, format, specs)
    target, write = _writer(model, format, dtype, opset)
    written = _write_or_blame(model, target, format, write, path, specs)
    if check:
        _require_match(model, written, format, dtype, input_shape)
    return written


def _import_onnxruntime(why):
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"{why}: running ONNX needs onnxruntime; {INSTALL_HINT}.") from None
    return onnxruntime


# sizes tried for the check when the input size is free: odd first (it catches padding and
# index bugs), then one divisible by 16 for models that need it (PixelUnshuffle, TAD)
_CHECK_SIZES = ((17, 23), (48, 64))


def check_export(
    model: keras.Model,
    path: str | Path,
    *,
    format: str | None = None,
    dtype: str = "fp32",
    input_shape: Any = None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    batch: int = 1,
) -> dict[str, Any]:
    """Max abs difference between ``model`` and its export at ``path`` on a random input.

    The input is uniform in [0, 1] of ``size`` (H, W); by default the export's fixed size, else
    17x23, else 48x64 (the first the Keras model runs at).  The bound is
    ``CHECK_TOLERANCE[dtype] * max(1, max |keras output|)``, or 10x the model's own float32
    noise if that is larger: the difference between the Keras model run eagerly and as a
    ``tf.function`` (kernels fused and ordered differently).  That noise is ~1e-6 for a
    trained model, but an untrained deep one can amplify round-off enormously (full RCAN with
    random weights: outputs ~5e6 that move by ~1e4 between the two Keras runs).

    Args:
      model: the Keras model that was exported.
      path: the export.
      format: its format (default from the path, :func:`visionfw.export.formats.format_from_path`).
      dtype: the dtype it was exported with ('fp32' or 'fp16'), which sets the tolerance.
      input_shape: the ``input_shape`` it was exported with.
      size: (H, W) of the random input.
      seed: seed of the random input.
      batch: batch size of the random input.

    Returns:
      ``{'max_abs_diff', 'max_abs_ref', 'keras_noise', 'relative', 'tolerance', 'ok', 'size'}``
      (``relative`` = diff / max(1, max |ref|); ``tolerance`` absolute).

    Raises:
      ConfigError: an unknown dtype, or a model that runs at none of the sizes tried.
    """
    import tensorflow as tf

    check_choice(dtype, DTYPES, "dtype")
    fmt = format or format_from_path(path)
    specs = input_specs(model, input_shape)
    if size is not None:
        sizes = [tuple(size)]
    elif all(None not in shape[1:3] for _, shape in specs):
        sizes = [tuple(specs[0][1][1:3])]
    else:
        sizes = list(_CHECK_SIZES)
    rng = np.random.default_rng(seed)
    ref = xs = None
    for hw in sizes:
        xs = [rng.random((batch,) + tuple(hw) + (shape[3],), dtype=np.float32) for _, shape in specs]
        try:
            ref = _outputs(model(xs[0] if len(xs) == 1 else xs, training=False))
            break
        except Exception:
            ref = None
    if ref is None:
        raise ConfigError(f"check_export: model {model.name!r} runs at none of the sizes {sizes}; pass size=(H, W).")
    graph = _outputs(tf.function(serving_fn(model, cast16=False))(*xs))
    noise = max(_max_abs_diff(g, r) for g, r in zip(graph, ref))
    got = load_exported(path, format=fmt)(*xs)
    got = got if isinstance(got, list) else [got]
    diff = max(_max_abs_diff(g, r) for g, r in zip(got, ref))
    scale = max(float(np.nanmax(np.abs(r))) if np.isfinite(r).any() else 0.0 for r in ref)
    tolerance = max(CHECK_TOLERANCE[dtype] * max(1.0, scale), 10.0 * noise)
    return {
        "max_abs_diff": diff,
        "max_abs_ref": scale,
        "keras_noise": noise,
        "relative": diff / max(1.0, scale),
        "tolerance": tolerance,
        "ok": bool(np.isfinite(diff) and diff <= tolerance),
        "size": tuple(xs[0].shape[1:3]),
    }


def _max_abs_diff(got, ref):
    """max |got - ref|, with NaN == NaN and inf == inf of the same sign (else NaN / inf)."""
    got = np.asarray(got, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    return float(np.max(np.where(same, 0.0, np.abs(got - ref)), initial=0.0))


def _outputs(out):
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, np.float64) for o in outs]


def _cleanup(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _first_lines(exc, n=3, width=400):
    import re

    # the TFLite converter's message is MLIR locations; the op names are what matters
    ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(exc))
    if ops:
        return f"TensorFlow ops with no TFLite builtin: {', '.join(sorted(set(ops)))}"
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:n] if line.strip())
    return text[:width] + ("..." if len(text) > width else "")


# --------------------------------------------------------------------------- running an export


def _tflite_quiet():
    """TFLite's C++ INFO lines ("Created TensorFlow Lite XNNPACK delegate for CPU") go to descriptor
    2 past TF_CPP_MIN_LOG_LEVEL: dropped meanwhile when that level hides INFO (visionfw's default)."""
    import contextlib
    import os

    from visionfw.keras_hooks import silenced_fd2

    return silenced_fd2() if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "1" else contextlib.nullcontext()


def _tflite_interpreter(path, num_threads):
    with _tflite_quiet():
        return _new_tflite_interpreter(path, num_threads)


def _new_tflite_interpreter(path, num_threads):
    try:
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to ai_edge_litert
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
    except (ImportError, AttributeError):
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError(
            f"{path}: no TFLite interpreter (tf.lite.Interpreter or ai_edge_litert); pip install ai-edge-litert."
        ) from None
    return Interpreter(model_path=str(path), num_threads=num_threads)


def load_exported(path: str | Path, format: str | None = None, num_threads: int | None = None) -> Callable[..., Any]:
    """A function that runs an export in its own runtime: TensorFlow (SavedModel), the TFLite
    interpreter (resized to each input's shape) or onnxruntime.

    Args:
      path: the export.
      format: its format; default from the path.
      num_threads: CPU threads for TFLite / onnxruntime (default theirs).

    Returns:
      ``f(*nhwc_float32_arrays) -> numpy array`` (a list for several outputs).

    Raises:
      ConfigError: an unknown format, a missing export or runtime.
    """
    path = Path(path)
    fmt = format or format_from_path(path)
    check_choice(fmt, FORMATS, "format")
    if not path.exists():
        raise ConfigError(f"{path}: no such export.")

    def one(outs):
        return outs[0] if len(outs) == 1 else outs

    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))

        def run_saved_model(*xs):
            out = loaded.serve(*[np.asarray(x, np.float32) for x in xs])
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            return one([o.numpy() for o in outs])

        return run_saved_model
    if fmt == "onnx":
        ort = _import_onnxruntime(str(path))
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run_onnx(*xs):
            return one(session.run(None, {n: np.asarray(x, np.float32) for n, x in zip(names, xs)}))

        run_onnx.session = session
        return run_onnx
    interpreter = _tflite_interpreter(path, num_threads)
    # the signature runner feeds inputs by name, resizes them to each call's shapes and
    # returns outputs by name (output_0 ...), whatever order the converter gave the tensors
    runner = interpreter.get_signature_runner("serving_default")
    names = [d.split(":")[0] for d in _signature_inputs(interpreter)]

    def run_tflite(*xs):
        with _tflite_quiet():  # the delegate is created at the first call
            out = runner(**{n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(names, xs)})
        return one([out[k] for k in sorted(out, key=_output_index)])

    run_tflite.interpreter = interpreter
    return run_tflite


def _signature_inputs(interpreter):
    return sorted(interpreter.get_signature_list()["serving_default"]["inputs"], key=_output_index)


def _output_index(name):
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0
