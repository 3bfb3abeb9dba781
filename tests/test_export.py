"""Exports (TF SavedModel, TFLite, ONNX) match the Keras model they come from.

Each export is run in its own runtime -- ``tf.saved_model.load``, ``tf.lite.Interpreter``
(resized to the input), ``onnxruntime`` -- on a random 17x23 input (odd: it exercises
padding, PixelShuffle and the mirrored border indices at a size no export was traced at),
and compared with the Keras model.  Bounds on max |export - keras| / max(1, max |keras|):

* fp32: 1e-5.  Measured on these four models at most ~3e-6 (the runtimes' own kernels
  sum in other orders; float32 round-off through up to 35 convolutions).
* fp16: 1e-2.  float16 has a unit round-off of 2**-11 = 4.9e-4; weights and activations
  rounded at every layer of EDSR-baseline (35 convs, random weights whose outputs reach
  |y| ~ 5) measured up to ~2.6e-3; TFLite's fp16 rounds only the weights (~1.3e-3).  The
  bound leaves about 4x margin and still catches any real conversion error (those are
  ~1e-1, e.g. the tf2onnx floormod bug this file guards against).

ONNX tests skip with the reason when tf2onnx or onnxruntime is missing
(``pip install 'visionfw[export]'``).
"""

import importlib.util
import sys

import numpy as np
import pytest

import visionfw
from visionfw.errors import ConfigError
from visionfw.export import check_export, export_model, load_exported

FP32_BOUND = 1e-5
FP16_BOUND = 1e-2
SIZE = (17, 23)
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX,
    reason="tf2onnx/onnxruntime not installed: pip install 'visionfw[export]' (or the test extras) to run ONNX checks",
)
FORMATS = ["saved_model", "tflite", pytest.param("onnx", marks=needs_onnx)]
MODELS = ["srcnn_915", "espcn", "edsr_baseline", "rcan_small"]


def _build(name):
    import keras

    keras.utils.set_random_seed(0)
    if name == "rcan_small":
        from visionfw.model_defs.rcan import rcan

        return visionfw.build_model(rcan(n_groups=2, n_blocks=2, scale=2))
    return visionfw.get_model(name, scale=3 if name == "srcnn_915" else 2)


@pytest.fixture(scope="module")
def models():
    return {name: _build(name) for name in MODELS}


def _run_saved_model(path, x):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (out,) = serve(input_0=tf.constant(x)).values()
    return out.numpy()


def _run_tflite(path, x):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still the one in TF 2.21
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape_signature"][1:3]) == [-1, -1]  # dynamic H and W
    interpreter.resize_tensor_input(inp["index"], list(x.shape), strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    (out,) = interpreter.get_output_details()
    return interpreter.get_tensor(out["index"])


def _run_onnx(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape[1:3] == ["height", "width"] and inp.shape[0] == "batch"
    (out,) = session.run(None, {inp.name: x})
    return out


RUNNERS = {"saved_model": _run_saved_model, "tflite": _run_tflite, "onnx": _run_onnx}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_exports_match_keras(models, fmt, dtype, tmp_path):
    rows = []
    for name, model in models.items():
        x = np.random.default_rng(1).random((1,) + SIZE + (model.inputs[0].shape[-1],), dtype=np.float32)
        ref = np.asarray(model(x, training=False))
        path = export_model(model, tmp_path / name, format=fmt, dtype=dtype, check=False)
        out = RUNNERS[fmt](path, x)
        assert out.shape == ref.shape and out.dtype == np.float32
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        rel = diff / max(1.0, float(np.abs(ref).max()))
        rows.append((name, diff, rel))
        print(
            f"{fmt:<12} {dtype} {name:<14} max|diff| {diff:.3g}  relative {rel:.3g}  (max|y| {np.abs(ref).max():.3g})"
        )
    bound = FP32_BOUND if dtype == "fp32" else FP16_BOUND
    assert all(rel <= bound for _, _, rel in rows), rows
    if dtype == "fp16":  # fp16 is really applied: not bit-identical to fp32 anywhere
        assert all(diff > 0 for _, diff, _ in rows), rows


def test_fp16_saved_model_stores_float16_weights(models, tmp_path):
    import tensorflow as tf

    path = export_model(models["espcn"], tmp_path / "espcn16", dtype="fp16")
    dtypes = {v.dtype for v in tf.saved_model.load(str(path)).variables}
    assert dtypes == {tf.float16}
    x = np.random.default_rng(0).random((2, 9, 7, 3), dtype=np.float32)  # a batch of 2: batch is dynamic too
    assert load_exported(path)(x).dtype == np.float32


def test_fixed_input_shape_and_load_exported(models, tmp_path):
    model = models["espcn"]
    path = export_model(model, tmp_path / "fixed", format="tflite", input_shape=(12, 10))
    details = load_exported(path).interpreter.get_input_details()[0]
    assert list(details["shape_signature"]) == [-1, 12, 10, 3]
    report = check_export(model, path, input_shape=(12, 10))
    assert report["ok"] and report["size"] == (12, 10) and report["max_abs_diff"] < 1e-5
    with pytest.raises(ConfigError, match=r"input_shape=\(12, 10, 1\).*takes 3 channel"):
        export_model(model, tmp_path / "bad", input_shape=(12, 10, 1))


def _bicubic_model():
    import keras

    from visionfw.zoo.layers import BicubicResize

    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(3, 3, padding="same", name="conv")(x)
    return keras.Model(x, BicubicResize(scale=2.0, name="bicubic_up")(y))


@needs_onnx
def test_onnx_bicubic_resize_at_any_size_is_exact(tmp_path):
    # tf2onnx writes integer floormod with a truncating Div; BicubicResize's mirrored border
    # indices then went negative and ONNX gathered wrong pixels (errors ~0.2). export.py fixes it.
    model = _bicubic_model()
    path = export_model(model, tmp_path / "bic.onnx", format="onnx")
    for size in (SIZE, (8, 31)):
        x = np.random.default_rng(2).random((1,) + size + (3,), dtype=np.float32)
        assert np.abs(_run_onnx(path, x) - np.asarray(model(x))).max() < 1e-6


def test_tflite_bicubic_resize_needs_a_fixed_size(tmp_path):
    model = _bicubic_model()
    with pytest.raises(ConfigError, match=r"'bicubic_up' \(BicubicResize\).*float64.*input_shape=\(H, W\)"):
        export_model(model, tmp_path / "bic", format="tflite")
    path = export_model(model, tmp_path / "bic", format="tflite", input_shape=SIZE)
    x = np.random.default_rng(3).random((1,) + SIZE + (3,), dtype=np.float32)
    assert np.abs(load_exported(path)(x) - np.asarray(model(x))).max() < 1e-6


def _model_with_unconvertible_layer():
    import keras
    import tensorflow as tf

    class Igamma(keras.layers.Layer):  # an op neither TFLite builtins nor ONNX have
        def call(self, x):
            return tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0)

    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(3, 3, padding="same")(x)
    return keras.Model(x, keras.layers.Conv2D(3, 3, padding="same")(Igamma(name="odd_one")(y)))


@pytest.mark.parametrize("fmt", ["tflite", pytest.param("onnx", marks=needs_onnx)])
def test_a_layer_the_format_cannot_take_is_named(fmt, tmp_path):
    model = _model_with_unconvertible_layer()
    with pytest.raises(ConfigError, match=r"layer 'odd_one' \(Igamma\), which this format cannot take.*Igamma"):
        export_model(model, tmp_path / "m", format=fmt)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    assert len(model.get_layer("odd_one")._inbound_nodes) == 1  # probing did not touch the model


def test_missing_package_and_bad_options(models, tmp_path, monkeypatch):
    model = models["espcn"]
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    with pytest.raises(ConfigError, match=r"tf2onnx.*pip install 'visionfw\[export\]'"):
        export_model(model, tmp_path / "m.onnx", format="onnx")
    with pytest.raises(ConfigError, match="format='coreml'.*saved_model, tflite, onnx"):
        export_model(model, tmp_path / "m", format="coreml")
    with pytest.raises(ConfigError, match="dtype='int8'.*fp32, fp16"):
        export_model(model, tmp_path / "m", dtype="int8")


def test_cli_export(models, tmp_path, monkeypatch, capsys):
    from visionfw.cli import COMMANDS, run

    # the line visionfw/cli/__init__.py is to get
    monkeypatch.setitem(
        COMMANDS, "export", ("visionfw.cli.export", "write a model as a TF SavedModel, TFLite or ONNX file")
    )
    weights = tmp_path / "espcn.keras"
    models["espcn"].save(weights)
    out = tmp_path / "espcn_x2"
    assert (
        run(["visionfw", "export", f"--weights={weights}", "--format=tflite", "--dtype=fp16", f"--output={out}"]) == 0
    )
    printed = capsys.readouterr().out
    assert f"written to {out}.tflite" in printed and "check: max |export - keras|" in printed
    x = np.random.default_rng(0).random((1,) + SIZE + (3,), dtype=np.float32)
    assert np.abs(_run_tflite(f"{out}.tflite", x) - np.asarray(models["espcn"](x))).max() < 1e-2
    assert run(["visionfw", "export", "--model=espcn", "--format=saved_model", f"--output={out}"]) == 1
    assert "--weights=PATH or --pretrained is required" in capsys.readouterr().err
    assert run(["visionfw", "export", "--model=espcn", "--allow_random"]) == 1
    assert "--output is required" in capsys.readouterr().err
