"""Every zoo model builds at every scale, has the published parameter count, and round-trips .keras."""
import numpy as np
import pytest

import keras
import visionfw
from visionfw import registry

# (name, hyper, expected count_params, expected trainable) from the issue / the papers' layouts.
PARAM_COUNTS = [
    ("srcnn_915", {}, 8_129, None),
    ("srcnn_935", {}, 24_513, None),
    ("srcnn_955", {}, 57_281, None),
    ("vdsr", {}, 665_921, None),
    ("edsr_baseline", {"scale": 2}, None, 1_369_859),
    ("edsr", {"scale": 4}, None, 43_089_923),
    ("rcan", {"scale": 4}, None, 15_592_355),
    ("srresnet", {"scale": 4}, 1_554_883, None),
]


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name,hyper,total,trainable", PARAM_COUNTS, ids=[p[0] for p in PARAM_COUNTS])
def test_parameter_counts(name, hyper, total, trainable):
    model = visionfw.get_model(name, **hyper)
    if total is not None:
        assert model.count_params() == total
    if trainable is not None:
        assert _trainable(model) == trainable


SR_MODELS = registry.list_models(task="sr")


def test_zoo_has_required_names():
    for name in ["srcnn_915", "srcnn_935", "srcnn_955", "fsrcnn", "espcn", "vdsr", "srresnet",
                 "edsr_baseline", "edsr", "rcan"]:
        assert name in visionfw.list_models()


def _small_hyper(name):
    """Small variants of the big models, through their family functions, so the suite stays fast."""
    return {"edsr": {"n_blocks": 2, "filters": 32}, "rcan": {"n_groups": 2, "n_blocks": 2},
            "srresnet": {"n_blocks": 2}}.get(name, {})


@pytest.mark.parametrize("name", SR_MODELS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_forward_odd_size(name, scale):
    entry = registry.model_entry(name)
    spec = entry.fn(**{**entry.hyper, **_small_hyper(name), "scale": scale})
    model = visionfw.build_model(spec)
    meta = spec["meta"]
    channels = model.input_shape[-1]
    h, w = 17, 23
    x = np.random.default_rng(0).random((1, h, w, channels), dtype=np.float32)
    y = model(x)
    factor = 1 if meta["upsampled_input"] else scale
    assert tuple(y.shape) == (1, h * factor, w * factor, channels)
    assert np.isfinite(np.asarray(y)).all()


@pytest.mark.parametrize("name", SR_MODELS)
def test_keras_round_trip(name, tmp_path):
    scale = 3
    hyper = {"scale": scale}
    if name in ("rcan", "edsr"):
        entry = registry.model_entry(name)
        model = visionfw.build_model(entry.fn(**{**entry.hyper, **_small_hyper(name), **hyper}))
    else:
        model = visionfw.get_model(name, **hyper)
    x = np.random.default_rng(1).random((2, 12, 10, model.input_shape[-1]), dtype=np.float32)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert loaded.count_params() == model.count_params()


def test_full_size_rcan_round_trip(tmp_path):
    model = visionfw.get_model("rcan", scale=2)
    path = tmp_path / "rcan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).random((1, 9, 11, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))


def test_unknown_model_suggests():
    with pytest.raises(visionfw.errors.ModelNotFoundError, match="edsr_baseline"):
        visionfw.get_spec("edsr_basline")


def test_unsupported_scale_is_config_error():
    with pytest.raises(visionfw.errors.ConfigError, match="scales"):
        visionfw.get_spec("espcn", scale=5)


def test_fixed_hyper_cannot_be_overridden():
    with pytest.raises(visionfw.errors.ConfigError, match="n_blocks"):
        visionfw.get_spec("edsr_baseline", n_blocks=3)


def test_edsr_rgb_range_255_matches_range_1():
    """rgb_range=255 (EDSR-PyTorch weights) gives the same function when the head/tail absorb the range."""
    from model_defs.edsr import edsr

    m1 = visionfw.build_model(edsr(n_blocks=1, filters=8, scale=2, rgb_range=1))
    m255 = visionfw.build_model(edsr(n_blocks=1, filters=8, scale=2, rgb_range=255))
    assert m1.count_params() == m255.count_params()
    x = np.random.default_rng(3).random((1, 6, 6, 3), dtype=np.float32)
    # With identical weights a [0,255] network differs only through biases; check the range bookkeeping:
    # zero the biases, then the networks are linear-homogeneous apart from the ReLUs (positively homogeneous).
    for model in (m1, m255):
        for layer in model.layers:
            if hasattr(layer, "bias") and layer.bias is not None:
                layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    m255.set_weights(m1.get_weights())
    np.testing.assert_allclose(np.asarray(m1(x)), np.asarray(m255(x)), rtol=1e-4, atol=1e-5)
