"""Every zoo model builds at every scale, has the published parameter count, and round-trips .keras."""

import keras
import numpy as np
import pytest

import visionfw
from visionfw.zoo import registry

# Every (name, scale, count) the zoo's metadata states (visionfw.model_info(name).params); the
# papers' counts among them: SRCNN 8,129 / 24,513 / 57,281, VDSR 665,921, EDSR-baseline x2
# 1,369,859 and EDSR x4 43,089,923 trainable, RCAN x4 15,592,355, SRResNet x4 1,554,883.
PARAM_COUNTS = [
    (name, scale, count, registry.model_info(name).params_counted)
    for name in registry.list_models()
    for scale, count in registry.model_info(name).params
]


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_the_papers_counts_are_in_the_metadata():
    stated = {(n, s): c for n, s, c, _ in PARAM_COUNTS}
    assert stated[("srcnn_915", None)] == 8_129 and stated[("srcnn_955", None)] == 57_281
    assert stated[("vdsr", None)] == 665_921 and stated[("edsr_baseline", 2)] == 1_369_859
    assert stated[("edsr", 4)] == 43_089_923 and stated[("rcan", 4)] == 15_592_355
    assert stated[("srresnet", 4)] == 1_554_883
    sr_names = registry.list_models(task="sr")
    assert all(registry.model_info(n).params for n in sr_names), "every SR model states its size"


@pytest.mark.parametrize("name,scale,count,counted", PARAM_COUNTS, ids=[f"{p[0]}-x{p[1]}" for p in PARAM_COUNTS])
def test_parameter_counts(name, scale, count, counted):
    model = visionfw.get_model(name, scale=scale)
    assert (model.count_params() if counted == "total" else _trainable(model)) == count


SR_MODELS = registry.list_models(task="sr")


def test_zoo_has_required_names():
    for name in [
        "srcnn_915",
        "srcnn_935",
        "srcnn_955",
        "fsrcnn",
        "espcn",
        "vdsr",
        "srresnet",
        "edsr_baseline",
        "edsr",
        "rcan",
    ]:
        assert name in visionfw.list_models()


def _small_hyper(name):
    """Small variants of the big models, through their family functions, so the suite stays fast."""
    return {
        "edsr": {"n_blocks": 2, "filters": 32},
        "rcan": {"n_groups": 2, "n_blocks": 2},
        "srresnet": {"n_blocks": 2},
        "rrdbnet": {"n_blocks": 1, "filters": 16, "growth": 8},
    }.get(name, {})


# every SR model at every scale it supports (LapSRN: 2, 4, 8)
SR_SCALES = [(name, s) for name in SR_MODELS for s in registry.model_entry(name).scales]


@pytest.mark.parametrize("name,scale", SR_SCALES, ids=[f"{n}-x{s}" for n, s in SR_SCALES])
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
    scales = registry.model_entry(name).scales
    scale = 3 if 3 in scales else scales[0]
    hyper = {"scale": scale}
    if name in ("rcan", "edsr", "rrdbnet"):  # at full size in test_full_size_round_trip (slow)
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


# RCAN (16M parameters) and RRDBNet (16.7M) at their papers' sizes saved and loaded: 1.5 minutes and 15 s;
# small ones round-trip by default
@pytest.mark.slow
@pytest.mark.parametrize("name", ["rcan", "rrdbnet"])
def test_full_size_round_trip(name, tmp_path):
    scale = 2 if 2 in registry.model_entry(name).scales else 4
    model = visionfw.get_model(name, scale=scale)
    path = tmp_path / f"{name}.keras"
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
    from visionfw.model_defs.edsr import edsr

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
