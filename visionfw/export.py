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
'visionfw[export]'``), with its integer ``FloorMod`` replaced by a correct one (see
:func:`_floormod_handler`).  BicubicResize computes its MATLAB weights for an unknown size in
float64, which TFLite lacks; at a fixed size they are constants and the export is exact.

By default every export is run once in its own runtime on a random input and compared with
the Keras model (:func:`check_export`, tolerance :data:`CHECK_TOLERANCE`).  When a conversion
fails, each distinct layer is converted alone to name the one the format cannot take
(:class:`~visionfw.errors.ConfigError`).
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from visionfw.errors import ConfigError

__all__ = ["FORMATS", "DTYPES", "CHECK_TOLERANCE", "export_model", "check_export", "load_exported", "format_from_path"]

FORMATS = ("saved_model", "tflite", "onnx")
DTYPES = ("fp32", "fp16")
DEFAULT_OPSET = 17
_INSTALL = "pip install 'visionfw[export]'"
_SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}


# --------------------------------------------------------------------------- checks


def _check_choice(value, choices, what):
    if value not in choices:
        raise ConfigError(f"{what}={value!r} is not supported; use one of {', '.join(choices)}.")


def format_from_path(path):
    """'tflite' / 'onnx' from the file suffix, else 'saved_model' (a folder)."""
    suffix = Path(path).suffix.lower()
    return {".tflite": "tflite", ".onnx": "onnx"}.get(suffix, "saved_model")


def _import_tf2onnx():
    try:
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"format='onnx' needs the tf2onnx package ({exc}); {_INSTALL}.") from None
    except Exception as exc:  # installed but broken against this TensorFlow/protobuf
        raise ConfigError(
            f"format='onnx': tf2onnx failed to import ({type(exc).__name__}: {exc}); reinstall it with {_INSTALL}."
        ) from None
    return tf2onnx


def _input_specs(model, input_shape):
    """One (name, batch_shape) per model input; ``input_shape`` fixes H, W (and checks C)."""
    import keras

    if not isinstance(model, keras.Model):
        raise ConfigError(f"export_model: model must be a keras.Model, got {type(model).__name__}.")
    inputs = list(model.inputs)
    shapes = [None] * len(inputs)
    if input_shape is not None:
        given = [input_shape] if len(inputs) == 1 or not isinstance(input_shape[0], (list, tuple)) else input_shape
        if len(given) != len(inputs):
            raise ConfigError(
                f"input_shape={input_shape!r}: model {model.name!r} has {len(inputs)} inputs; give "
                "one (H, W) per input."
            )
        shapes = [tuple(s) for s in given]
    specs = []
    for i, (tensor, shape) in enumerate(zip(inputs, shapes)):
        full = tuple(tensor.shape)
        name = getattr(tensor, "name", None) or f"input_{i}"
        name = name.split(":")[0]
        if shape is None:
            specs.append((name, (None,) + full[1:]))
            continue
        if len(shape) not in (2, 3) or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape):
            raise ConfigError(f"input_shape={input_shape!r}: write (H, W) or (H, W, C) with positive integers.")
        c = full[-1]
        if len(shape) == 3 and c is not None and shape[2] != c:
            raise ConfigError(f"input_shape={input_shape!r}: model {model.name!r} input {name!r} takes {c} channel(s).")
        for axis, (v, want) in enumerate(zip(shape[:2], full[1:3])):
            if want is not None and v != want:
                raise ConfigError(
                    f"input_shape={input_shape!r}: model {model.name!r} input {name!r} is fixed "
                    f"to {want} along axis {axis + 1}."
                )
        specs.append((name, (None, int(shape[0]), int(shape[1]), shape[2] if len(shape) == 3 else c)))
    return specs


# --------------------------------------------------------------------------- float16 model


def _float16_config(obj):
    """The model config with every float32 dtype (layer policies, inputs, tensors) as float16."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key == "dtype" and value in ("float32", "mixed_float16"):
                out[key] = "float16"
            elif (
                key == "dtype"
                and isinstance(value, dict)
                and value.get("class_name", "").endswith("DTypePolicy")
                and value.get("config", {}).get("name") in ("float32", "mixed_float16")
            ):
                out[key] = {**value, "config": {**value["config"], "name": "float16"}}
            else:
                out[key] = _float16_config(value)
        return out
    if isinstance(obj, list):
        return [_float16_config(v) for v in obj]
    return obj


def _as_float16(model):
    """A copy of ``model`` whose weights and compute are float16 (Keras's ``float16`` dtype policy)."""
    import keras

    previous = keras.config.dtype_policy()
    # sub-layers that layers create in build() without a dtype (ChannelAttention's Dense) take
    # the global policy, so it is float16 while the copy is built
    keras.config.set_dtype_policy("float16")
    try:
        clone = model.__class__.from_config(_float16_config(copy.deepcopy(model.get_config())))
    except Exception as exc:
        raise ConfigError(
            f"dtype='fp16': model {model.name!r} could not be rebuilt under the float16 dtype policy "
            f"({type(exc).__name__}: {exc}); export with dtype='fp32'."
        ) from None
    finally:
        keras.config.set_dtype_policy(previous)
    src, dst = model.weights, clone.weights
    if len(src) != len(dst):
        raise ConfigError(
            f"dtype='fp16': the float16 copy of {model.name!r} has {len(dst)} weights, the model "
            f"{len(src)}; export with dtype='fp32'."
        )
    for a, b in zip(src, dst):
        b.assign(np.asarray(a.numpy(), dtype=b.dtype))
    return clone


# --------------------------------------------------------------------------- SavedModel


def _serving_fn(model, cast16):
    """x (float32) -> the model's outputs as float32 (a list for several outputs)."""
    import tensorflow as tf

    def serve(*xs):
        if cast16:
            xs = [tf.cast(x, tf.float16) for x in xs]
        out = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        outs = [tf.cast(o, tf.float32) for o in outs]
        return outs[0] if len(outs) == 1 else outs

    return serve


def _tensor_specs(specs):
    import tensorflow as tf

    return [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in specs]


def _write_saved_model(model, path, specs, cast16):
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", _serving_fn(model, cast16), input_signature=_tensor_specs(specs))
    with _quiet():
        archive.write_out(str(path), verbose=False)
    return Path(path)


@contextlib.contextmanager
def _quiet():
    """Silences TensorFlow's converter chatter (absl INFO/WARNING lines) while converting."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        absl_logging.set_verbosity(level)


# --------------------------------------------------------------------------- TFLite


def _write_tflite(model, path, specs, fp16):
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="visionfw_tflite_") as tmp:
        saved = _write_saved_model(model, Path(tmp) / "saved_model", specs, cast16=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        # builtin ops only: a file that needs the Flex (TF ops) delegate runs in few runtimes
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        with _quiet():
            flatbuffer = converter.convert()
    Path(path).write_bytes(flatbuffer)
    return Path(path)


# --------------------------------------------------------------------------- ONNX


def _rename_onnx(onnx_model, specs):
    """Names the outputs output_0 ... and the input dims batch/height/width (not tf2onnx's unk__N)."""
    graph = onnx_model.graph
    dims = ("batch", "height", "width")
    suffix = [""] if len(specs) == 1 else [f"_{i}" for i in range(len(specs))]
    for value, sfx in zip(graph.input, suffix):
        for axis, d in enumerate(value.type.tensor_type.shape.dim[:3]):
            if not d.HasField("dim_value"):
                d.dim_param = dims[axis] + (sfx if axis else "")  # one batch for all inputs
    for i, value in enumerate(graph.output):
        old, new = value.name, f"output_{i}"
        if old == new:
            continue
        for node in graph.node:
            node.output[:] = [new if o == old else o for o in node.output]
            node.input[:] = [new if o == old else o for o in node.input]
        value.name = new
    return onnx_model


def _floormod_handler(ctx, node, name, args):
    """tf.math.floormod for tf2onnx.

    tf2onnx 1.17 writes integer FloorMod as ``x - (x / y) * y`` with ONNX's truncating
    integer Div: wrong for negative x (-3 mod 12 gives -3, not 9).  BicubicResize mirrors
    its border indices with an integer floormod, so the ONNX model silently gathered the
    wrong pixels (errors up to 0.3) at dynamic sizes.  ONNX ``Mod`` with ``fmod=0`` is
    floor-mod for integers; floats keep the floor(x / y) form.
    """
    from onnx import TensorProto

    if ctx.get_dtype(node.input[0]) in (
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.DOUBLE,
        TensorProto.BFLOAT16,
    ):
        div = ctx.make_node("Div", inputs=list(node.input))
        floor = ctx.make_node("Floor", inputs=div.output)
        mul = ctx.make_node("Mul", inputs=[floor.output[0], node.input[1]])
        shapes, dtypes = node.output_shapes, node.output_dtypes
        ctx.remove_node(node.name)
        ctx.make_node(
            "Sub",
            inputs=[node.input[0], mul.output[0]],
            name=node.name,
            outputs=node.output,
            shapes=shapes,
            dtypes=dtypes,
        )
        return
    node.type = "Mod"
    node.domain = ""
    node.set_attr("fmod", 0)


def _unknown_onnx_ops(graph):
    """Op types in ``graph`` (and its subgraphs) that no ONNX schema defines."""
    import onnx

    unknown = set()
    for node in graph.node:
        if not onnx.defs.has(node.op_type, node.domain):
            unknown.add(node.op_type if not node.domain else f"{node.domain}.{node.op_type}")
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                unknown |= _unknown_onnx_ops(sub)
    return unknown


def _write_onnx(model, path, specs, cast16, opset):
    import logging

    import tensorflow as tf

    tf2onnx = _import_tf2onnx()
    signature = _tensor_specs(specs)
    fn = tf.function(_serving_fn(model, cast16), input_signature=signature)
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.CRITICAL)  # its per-op errors are re-raised below, once
    try:
        with _quiet():
            onnx_model, _ = tf2onnx.convert.from_function(
                fn,
                input_signature=signature,
                opset=int(opset),
                custom_op_handlers={"FloorMod": (_floormod_handler, [])},
            )
    finally:
        tf2onnx_logger.setLevel(level)
    # tf2onnx leaves TF ops it cannot map in the graph (and only logs them): refuse such a file
    unmapped = sorted(_unknown_onnx_ops(onnx_model.graph))
    if unmapped:
        raise ValueError(f"TensorFlow ops with no ONNX equivalent: {', '.join(unmapped)}")
    onnx_model = _rename_onnx(onnx_model, specs)
    import onnx

    onnx.save_model(onnx_model, str(path))
    return Path(path)


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
                write(probe, Path(tmp) / f"probe{_SUFFIX.get(fmt, '')}", specs)
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


def export_model(
    model, path, format="saved_model", dtype="fp32", input_shape=None, opset=DEFAULT_OPSET, check=True, overwrite=True
):
    """Writes ``model`` to ``path`` in ``format`` and returns the written path (a ``Path``).

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

    Raises ConfigError for an unknown format or dtype, a missing converter package (with the
    pip command), or a layer the format cannot take (named).
    """
    _check_choice(format, FORMATS, "format")
    _check_choice(dtype, DTYPES, "dtype")
    specs = _input_specs(model, input_shape)
    path = Path(path)
    if format in _SUFFIX and path.suffix.lower() != _SUFFIX[format]:
        path = path.with_name(path.name + _SUFFIX[format])
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; remove it or pass overwrite=True.")
    if format == "onnx":
        _import_tf2onnx()  # before any work: a missing package is the likeliest problem
        if check:
            _import_onnxruntime("check=True")
    if format == "tflite":
        import tensorflow as tf

        if not hasattr(tf, "lite") or not hasattr(tf.lite, "TFLiteConverter"):
            raise ConfigError(
                f"format='tflite' needs tf.lite.TFLiteConverter, which this TensorFlow "
                f"({tf.__version__}) lacks; install a TensorFlow that ships it ({_INSTALL})."
            )
    dynamic = any(None in shape[1:3] for _, shape in specs)
    if dynamic:
        for layer in _flat_layers(model):
            why = _NEEDS_FIXED_SIZE.get((format, type(layer).__name__))
            if why:
                raise ConfigError(
                    f"format={format!r}: model {model.name!r} has layer {layer.name!r} "
                    f"({type(layer).__name__}), which {why}; pass input_shape=(H, W) to export it "
                    "for one input size (its weights then become constants; exact), or export "
                    "to 'saved_model' or 'onnx', which take any size."
                )

    fp16 = dtype == "fp16"
    if format == "tflite":

        def write(m, p, s):
            return _write_tflite(m, p, s, fp16)

        target = model
    else:
        target = _as_float16(model) if fp16 else model

        def write(m, p, s):
            if format == "saved_model":
                return _write_saved_model(m, p, s, cast16=fp16)
            return _write_onnx(m, p, s, cast16=fp16, opset=opset)

    _cleanup(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = write(target, path, specs)
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
    if check:
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
    return written


def _import_onnxruntime(why):
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"{why}: running ONNX needs onnxruntime; {_INSTALL}.") from None
    return onnxruntime


# sizes tried for the check when the input size is free: odd first (it catches padding and
# index bugs), then one divisible by 16 for models that need it (PixelUnshuffle, TAD)
_CHECK_SIZES = ((17, 23), (48, 64))


def check_export(model, path, format=None, dtype="fp32", input_shape=None, size=None, seed=0, batch=1):
    """Max abs difference between ``model`` and its export at ``path`` on a random input.

    The input is uniform in [0, 1] of ``size`` (H, W); by default the export's fixed size, else
    17x23, else 48x64 (the first the Keras model runs at).  The bound is
    ``CHECK_TOLERANCE[dtype] * max(1, max |keras output|)``, or 10x the model's own float32
    noise if that is larger: the difference between the Keras model run eagerly and as a
    ``tf.function`` (kernels fused and ordered differently).  That noise is ~1e-6 for a
    trained model, but an untrained deep one can amplify round-off enormously (full RCAN with
    random weights: outputs ~5e6 that move by ~1e4 between the two Keras runs).

    Returns ``{'max_abs_diff', 'max_abs_ref', 'keras_noise', 'relative', 'tolerance', 'ok',
    'size'}`` (``relative`` = diff / max(1, max |ref|); ``tolerance`` absolute).
    """
    import tensorflow as tf

    _check_choice(dtype, DTYPES, "dtype")
    fmt = format or format_from_path(path)
    specs = _input_specs(model, input_shape)
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
    graph = _outputs(tf.function(_serving_fn(model, cast16=False))(*xs))
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


def load_exported(path, format=None, num_threads=None):
    """A function ``f(*nhwc_float32_arrays) -> numpy array`` (a list for several outputs)
    that runs an export in its own runtime: TensorFlow (SavedModel), the TFLite interpreter
    (resized to each input's shape) or onnxruntime.  ``format`` defaults from the path."""
    path = Path(path)
    fmt = format or format_from_path(path)
    _check_choice(fmt, FORMATS, "format")
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
