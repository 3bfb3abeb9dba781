"""BSR and DRRN: the Lp loss term, parameter counts against the papers, DRRN's shared weights (one variable,
gradients from every use, intact after a safe_mode reload), and short training runs on T91."""

import csv
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import visionfw
from visionfw.errors import ConfigError
from visionfw.tasks.losses import LP_EPS, parse_loss
from visionfw.train import TrainConfig, train
from visionfw.train.resolve import resolve_config

# ----------------------------------------------------------------------------- the Lp term


def test_lp_term_and_bsr_loss_string():
    t = tf.zeros([1, 2, 2, 1])
    p = tf.reshape(tf.constant([1.0, -2.0, 0.0, 0.5]), [1, 2, 2, 1])
    errs = np.array([1.0, 2.0, 0.0, 0.5])
    assert float(parse_loss("lp(2)")(t, p)) == pytest.approx(np.mean(errs**2))
    assert float(parse_loss("lp(p=1)")(t, p)) == pytest.approx(0.875)
    half = np.mean((errs + LP_EPS) ** 0.5 - LP_EPS**0.5)  # p < 1: shifted so the slope at 0 is bounded
    assert float(parse_loss("lp")(t, p)) == pytest.approx(half, rel=1e-5)
    bsr = parse_loss("l2+0.1*l1+0.01*lp")
    assert repr(bsr) == "l2+0.1*l1+0.01*lp"
    assert float(bsr(t, p)) == pytest.approx(1.3125 + 0.1 * 0.875 + 0.01 * half, rel=1e-5)
    assert repr(parse_loss("l2 + 0.01*lp(0.8)")) == "l2+0.01*lp(0.8)"
    # no exploding gradient at a zero error
    with tf.GradientTape() as tape:
        tape.watch(p)
        loss = parse_loss("lp(0.5)")(t, p)
    assert np.all(np.isfinite(tape.gradient(loss, p).numpy()))
    for bad in ("lp(0)", "l1(2)", "lp(q=2)", "lp(", "0.1*lq"):
        with pytest.raises(ConfigError):
            parse_loss(bad)


# ----------------------------------------------------------------------------- sizes


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_bsr_size_and_depth():
    model = visionfw.get_model("bsr", scale=2)
    assert _trainable(model) == model.count_params() == 4_875_767
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    attention = [c for c in convs if c.name.endswith("_sa")]  # one 7x7 map per block
    assert (len(convs), len(attention)) == (191, 60)  # "under 200 conv layers"
    assert all(c.kernel_size == (7, 7) and c.filters == 1 for c in attention)
    info = visionfw.model_info("bsr")
    assert info.recipe["loss"] == "l2+0.1*l1+0.01*lp" and info.recipe["sampler"] == "pic"
    assert info.published_psnr("Set5", 2) == 38.30


def test_drrn_size_against_the_paper():
    model = visionfw.get_model("drrn", scale=3)
    kernels = sum(int(np.prod(w.shape)) for w in model.weights if w.path.endswith("kernel"))
    assert kernels == 1 * 128 * 9 + 2 * 128 * 128 * 9 + 128 * 9 == 297_216  # the paper's "297K" (B1U25)
    assert _trainable(model) == 310_659 and model.count_params() == 323_717  # + biases, BN (see drrn.py)
    convs = {layer.name: len(layer._inbound_nodes) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert len(convs) == 4 and sorted(convs.values()) == [1, 1, 25, 25]  # 52 conv applications, 4 layers
    assert model.input_shape == (None, None, None, 1)


# ----------------------------------------------------------------------------- sharing


def _unshared(spec):
    """The same graph with every conv link owning its layer; maps twin conv names to the shared ones."""
    twin = dict(spec, conv_par=[{k: v for k, v in p.items() if k != "share"} for p in spec["conv_par"]])
    name_of = {link[-1]: f"conv{i}_n{link[-1]}" for i, link in enumerate(spec["conv"])}
    source = {}
    for i, (link, par) in enumerate(zip(spec["conv"], spec["conv_par"])):
        source[f"conv{i}_n{link[-1]}"] = name_of[par["share"]] if "share" in par else f"conv{i}_n{link[-1]}"
    return twin, source


def test_drrn_shared_unit_is_one_variable_and_every_use_adds_its_gradient(tmp_path):
    from visionfw.model_defs.drrn import drrn

    spec = drrn(n_blocks=2, n_units=3, filters=6)
    shared = visionfw.build_model(spec)
    twin_spec, source = _unshared(spec)
    twin = visionfw.build_model(twin_spec)
    kernels = [w for w in shared.trainable_weights if w.path.endswith("kernel")]
    assert len(kernels) == 2 * 3 + 1  # per block: H0 conv + the unit's two convs; the output conv
    assert len({id(w) for w in kernels}) == len(kernels)
    for layer in twin.layers:
        other = shared.get_layer(source.get(layer.name, layer.name))
        layer.set_weights(other.get_weights())
    x = np.random.default_rng(0).random((2, 10, 12, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(shared(x)), np.asarray(twin(x)), rtol=1e-5, atol=1e-6)

    def grads(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=False) ** 2)
        return {
            w.path: np.asarray(g) for w, g in zip(model.trainable_weights, tape.gradient(loss, model.trainable_weights))
        }

    g_shared, g_twin = grads(shared), grads(twin)
    checked = 0
    for name in {v for k, v in source.items() if k != v}:  # the shared conv layers
        users = [k for k, v in source.items() if v == name]
        assert len(users) == 3  # U = 3 recursions
        total = sum(g_twin[f"{u}/kernel"] for u in users)
        np.testing.assert_allclose(g_shared[f"{name}/kernel"], total, rtol=1e-4, atol=1e-6)
        checked += 1
    assert checked == 4  # 2 blocks x 2 convs
    # saved and loaded with safe_mode: still one variable per shared conv, same outputs
    path = tmp_path / "drrn.keras"
    shared.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.count_params() == shared.count_params()
    assert len(loaded.trainable_weights) == len(shared.trainable_weights)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(shared(x)), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- training on T91


def _losses(workdir):
    with open(f"{workdir}/train_log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _run(shared_data, tmp_path, name, **kw):
    base = dict(
        scale=2,
        train_data=str(shared_data / "train" / "T91"),
        val_data=[],
        steps=200,
        batch_size=8,
        lr_patch=12,
        lr=1e-3,
        schedule="constant",
        log_every=50,
        ckpt_every=0,
        val_every=0,
        seed=1,
        workdir=str(tmp_path / name),
        resume="never",
        progress=False,
        tensorboard=False,
    )
    base.update(kw)
    config = TrainConfig(model=name, **base)
    return resolve_config(config), train(config)


def test_bsr_recipe_brings_its_sampler_and_pipeline_opts_out():
    base = dict(model="bsr", steps=10, val_data=[])
    c = resolve_config(TrainConfig(**base))
    assert (c.sampler, c.sampler_kwargs, c.loss) == ("pic", {"intervals": 10}, "l2+0.1*l1+0.01*lp")
    assert resolve_config(TrainConfig(**base, sampler_kwargs={"intervals": 4})).sampler_kwargs == {"intervals": 4}
    assert resolve_config(TrainConfig(**base, sampler="pipeline")).sampler is None
    assert resolve_config(TrainConfig(model="edsr_baseline", steps=10, val_data=[])).sampler is None


@pytest.mark.slow  # 200 steps on T91 with the PIC sampler: about 13 s of CPU; `python -m pytest -m slow`
def test_bsr_trains_with_the_pic_sampler_and_its_loss(shared_data, tmp_path):
    resolved, result = _run(
        shared_data,
        tmp_path,
        "bsr",
        sampler="pic",
        sampler_kwargs={"intervals": 4},
        pool_size=256,
        model_kwargs={"n_groups": 2, "n_blocks": 2, "filters": 16},
    )
    assert resolved.loss == "l2+0.1*l1+0.01*lp"  # from the recipe
    losses = _losses(resolved.workdir)
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    model = keras.saving.load_model(result["model_path"], safe_mode=True)
    x = np.random.default_rng(2).random((1, 9, 11, 3), dtype=np.float32)
    assert model(x).shape == (1, 18, 22, 3)


@pytest.mark.slow  # 200 steps on T91: about 10 s of CPU; `python -m pytest -m slow`
def test_drrn_trains_and_reloads_with_shared_weights(shared_data, tmp_path):
    resolved, result = _run(shared_data, tmp_path, "drrn", model_kwargs={"n_units": 3, "filters": 16})
    losses = _losses(resolved.workdir)
    assert losses[-1] < losses[0], losses
    assert resolved.protocol == "srcnn"  # a Y model
    model = keras.saving.load_model(result["model_path"], safe_mode=True)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert sorted(len(c._inbound_nodes) for c in convs) == [1, 1, 3, 3]
    from visionfw.model_defs.drrn import drrn

    assert model.count_params() == visionfw.build_model(drrn(n_units=3, filters=16)).count_params()
