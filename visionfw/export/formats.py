"""The converters behind :mod:`visionfw.export.exporter`: input signatures, the float16 copy of a model, and
the writers of a TF SavedModel, a TFLite file and an ONNX file.

Conversion goes through TensorFlow: SavedModel via Keras's ``ExportArchive``; TFLite via
``tf.lite.TFLiteConverter`` on that SavedModel, builtin ops only (so the file runs in any
TFLite/LiteRT runtime); ONNX via ``tf2onnx``, with its integer ``FloorMod`` replaced by a correct
one (see :func:`_floormod_handler`).
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import ConfigError

__all__ = [
    "FORMATS",
    "DTYPES",
    "DEFAULT_OPSET",
    "INSTALL_HINT",
    "SUFFIXES",
    "InputSpecs",
    "check_choice",
    "format_from_path",
    "import_tf2onnx",
    "input_specs",
    "as_float16",
    "serving_fn",
    "write_saved_model",
    "write_tflite",
    "write_onnx",
]

FORMATS = ("saved_model", "tflite", "onnx")
DTYPES = ("fp32", "fp16")
DEFAULT_OPSET = 17
INSTALL_HINT = "pip install 'visionfw[export]'"
SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx"}
# one (input name, batch shape (None, H, W, C)) per model input; H, W None where the size is free
InputSpecs = list[tuple[str, tuple[Any, ...]]]


# --------------------------------------------------------------------------- checks


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """ConfigError naming ``what`` and the choices when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{what}={value!r} is not supported; use one of {', '.join(choices)}.")


def format_from_path(path: str | Path) -> str:
    """The export format a path names.

    Args:
      path: the export's file or folder.

    Returns:
      'tflite' / 'onnx' from the file suffix, else 'saved_model' (a folder).
    """
    suffix = Path(path).suffix.lower()
    return {".tflite": "tflite", ".onnx": "onnx"}.get(suffix, "saved_model")


def import_tf2onnx() -> Any:
    """The ``tf2onnx`` module; ConfigError with the pip command when it is missing or broken."""
    try:
        import tf2onnx  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"format='onnx' needs the tf2onnx package ({exc}); {INSTALL_HINT}.") from None
    except Exception as exc:  # installed but broken against this TensorFlow/protobuf
        raise ConfigError(
            f"format='onnx': tf2onnx failed to import ({type(exc).__name__}: {exc}); reinstall it with {INSTALL_HINT}."
        ) from None
    return tf2onnx


def input_specs(model: Any, input_shape: Any) -> InputSpecs:
    """One (name, batch_shape) per model input; ``input_shape`` fixes H, W (and checks C).

    Args:
      model: a ``keras.Model``.
      input_shape: None (any H x W), (H, W) / (H, W, C), or one of them per input.

    Returns:
      ``[(name, (None, H, W, C))]`` with H, W None where the size is free.

    Raises:
      ConfigError: not a Keras model, or a shape that contradicts the model's inputs.
    """
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


def as_float16(model: Any) -> Any:
    """A copy of ``model`` whose weights and compute are float16 (Keras's ``float16`` dtype policy).

    Raises:
      ConfigError: the model cannot be rebuilt under that policy.
    """
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


def serving_fn(model: Any, cast16: bool) -> Any:
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


def write_saved_model(model: Any, path: str | Path, specs: InputSpecs, cast16: bool) -> Path:
    """Writes a SavedModel folder whose ``serve`` endpoint takes and returns float32 (cast to float16
    inside when ``cast16``); returns its path."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serving_fn(model, cast16), input_signature=_tensor_specs(specs))
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


def write_tflite(model: Any, path: str | Path, specs: InputSpecs, fp16: bool) -> Path:
    """Writes a ``.tflite`` file (builtin ops only; float16 weights when ``fp16``); returns its path."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="visionfw_tflite_") as tmp:
        saved = write_saved_model(model, Path(tmp) / "saved_model", specs, cast16=False)
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


def write_onnx(model: Any, path: str | Path, specs: InputSpecs, cast16: bool, opset: int) -> Path:
    """Writes a ``.onnx`` file with tf2onnx at ``opset`` (outputs named ``output_0`` ...); returns its path.

    Raises:
      ValueError: TensorFlow ops that ONNX has no equivalent for.
    """
    import logging

    import tensorflow as tf

    tf2onnx = import_tf2onnx()
    signature = _tensor_specs(specs)
    fn = tf.function(serving_fn(model, cast16), input_signature=signature)
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
