"""ESRGAN / SRGAN: the networks, the losses by hand, and GAN training in the shared loop.

The training runs use a *random* VGG19 (``vgg_weights='random'``: seeded He-normal weights, no
download): the perceptual term then has no perceptual meaning, but it exercises the same graph
as the real one.  They train a one-RRDB RRDBNet x4 (16 features, growth 8: its step compiles in
seconds, ``rrdbnet_small``'s in about 40 s here) against ``srgan_discriminator_small`` on 16x16 HR
patches of eight T91 images with the ESRGAN objective (1e-2 L1 + VGG conv5_4 before ReLU + 5e-3
RaGAN).
"""

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, SHARED_DATA, kill_9_after

import visionfw
from visionfw.errors import ConfigError
from visionfw.tasks.gan import (
    REAL_ESRGAN_LAYERS,
    GANObjective,
    GANTask,
    PerceptualLoss,
    parse_vgg_layers,
    relativistic_d_loss,
    relativistic_g_loss,
    standard_d_loss,
    standard_g_loss,
    vgg19_features,
)
from visionfw.train import TrainConfig, train
from visionfw.train.checkpoint import load_state
from visionfw.train.resolve import resolve_config
from visionfw.train.schedules import ConstantLR, CosineLR, ScaledLR

T91 = SHARED_DATA / "train" / "T91"
GAN_OPTIONS = {"discriminator": "srgan_discriminator_small", "vgg_weights": "random"}
TINY_RRDB = {"n_blocks": 1, "filters": 16, "growth": 8}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def gan_config(workdir, images, **kw):
    base = dict(
        model="rrdbnet",
        scale=4,
        model_kwargs=dict(TINY_RRDB),
        task="gan",
        task_options=dict(GAN_OPTIONS),
        train_data=images,
        val_data=[],
        steps=6,
        batch_size=4,
        lr_patch=4,
        log_every=1,
        ckpt_every=3,
        seed=5,
        schedule="constant",
        deterministic=True,
        workdir=str(workdir),
        progress=False,
        tensorboard=False,
        data_options={"patches_per_image": 4},
    )
    base.update(kw)
    return TrainConfig(**base)


def read_log(workdir):
    with open(os.path.join(workdir, "train_log.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def t91_images(tmp_path_factory):
    """Eight T91 images (a folder of the real training set, small enough to load in a second)."""
    if not T91.is_dir():
        pytest.skip(f"T91 not found at {T91}")
    folder = tmp_path_factory.mktemp("t91")
    for i in range(1, 9):
        shutil.copy(T91 / f"t{i}.bmp", folder)
    return str(folder)


# ----------------------------------------------------------------------------- networks


def test_rrdbnet_x4_has_the_official_parameter_count():
    # RRDB_ESRGAN_x4.pth (the authors' release) holds 16,697,987 parameters; built only, no forward
    model = visionfw.get_model("rrdbnet", scale=4)
    assert model.count_params() == _trainable(model) == 16_697_987
    assert model.get_layer("RRDB_trunk_22_RDB3_conv5").kernel.shape == (3, 3, 64 + 4 * 32, 64)
    info = visionfw.model_info("rrdbnet")
    assert "ESRGAN" in info.paper and info.recipe["hr_patch"] == 128 and info.recipe["lr"] == 1e-4


def test_small_networks_shapes():
    sr = visionfw.get_model("rrdbnet_small", scale=4)
    assert sr(np.zeros((1, 5, 7, 3), np.float32)).shape == (1, 20, 28, 3)
    d = visionfw.get_model("srgan_discriminator_small", input_size=32)
    assert d.input_shape == (None, 32, 32, 3) and d.output_shape == (None, 1)
    assert visionfw.model_info("srgan_discriminator").task == "discriminator"
    unet = visionfw.get_model("unet_discriminator")
    assert _trainable(unet) == 4_376_897  # Real-ESRGAN's UNetDiscriminatorSN(3, 64)
    small = visionfw.get_model("unet_discriminator", filters=8)
    assert small(np.zeros((2, 16, 24, 3), np.float32)).shape == (2, 16, 24, 1)


def test_esrgan_discriminator_matches_the_official_layout():
    d = visionfw.get_model("esrgan_discriminator")
    # Discriminator_VGG_128(3, 64), by hand: convs 13,674,240 + BN gamma/beta 5,760 + dense 819,300 + 101
    assert _trainable(d) == 13_674_240 + 5_760 + 819_300 + 101 == 14_499_401
    assert d.input_shape == (None, 128, 128, 3) and d.output_shape == (None, 1)
    assert d.get_layer("conv4_1").kernel.shape == (4, 4, 512, 512) and d.get_layer("conv0_0").bias is not None
    assert d.get_layer("conv1_0").bias is None and d.get_layer("linear1").kernel.shape == (512 * 4 * 4, 100)
    small = visionfw.get_model("esrgan_discriminator", filters=8, input_size=32)
    assert small(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 1)  # 4x4 stride 2 halves exactly
    # linear1 sees the features flattened in PyTorch's (C, H, W) order: official weights need no permutation
    d64 = visionfw.get_model("esrgan_discriminator", filters=8, input_size=64)
    x = np.random.default_rng(0).random((2, 64, 64, 3), np.float32)
    features = keras.Model(d64.input, d64.get_layer("to_chw").input)(x).numpy()  # NHWC, 2x2x64
    flat = keras.Model(d64.input, d64.get_layer("linear1").input)(x).numpy()
    np.testing.assert_array_equal(flat, features.transpose(0, 3, 1, 2).reshape(2, -1))
    assert not np.array_equal(flat, features.reshape(2, -1))  # (H, W, C) order would differ
    with pytest.raises(visionfw.errors.SpecError, match="multiple of 32"):
        visionfw.get_spec("esrgan_discriminator", input_size=48)


def test_each_preset_trains_against_its_papers_discriminator(tmp_path, t91_images):
    for objective, name in (
        ("esrgan", "esrgan_discriminator"),
        ("srgan", "srgan_discriminator"),
        ("realesrgan", "unet_discriminator"),
    ):
        task = GANTask(resolve_config(gan_config(tmp_path, t91_images, task_options={"objective": objective})))
        assert task.discriminator_name == name
    # the default D is sized to the HR patch: 4 * 4 = 16 is no multiple of 32
    task = GANTask(resolve_config(gan_config(tmp_path, t91_images, task_options={"vgg_weights": "random"})))
    with pytest.raises(ConfigError, match=r"esrgan_discriminator.*HR patch.*= 16.*unet_discriminator"):
        task.discriminator_spec()
    task = GANTask(resolve_config(gan_config(tmp_path, t91_images, lr_patch=8, task_options={"vgg_weights": "random"})))
    assert task.discriminator_spec()["meta"]["input_size"] == 32


def _esrgan_key(keras_name, style):
    """The official PyTorch module name of an RRDBNet conv: ESRGAN's release ('old') or BasicSR /
    Real-ESRGAN's ('new', e.g. RealESRGAN_x4plus.pth)."""
    parts = keras_name.split("_")
    if keras_name.startswith("RRDB_trunk_"):  # RRDB_trunk_3_RDB2_conv4
        block, rdb, conv = parts[2], parts[3], parts[4]
        return f"RRDB_trunk.{block}.{rdb}.{conv}" if style == "old" else f"body.{block}.{rdb.lower()}.{conv}"
    new = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr"}
    return keras_name if style == "old" else new.get(keras_name, keras_name)


@pytest.mark.parametrize("style", ["old", "new"])
def test_official_rrdbnet_state_dicts_load(style, tmp_path):
    """Both official key layouts (ESRGAN's RRDB_ESRGAN_x4.pth, Real-ESRGAN's body.N.rdbK) load into
    ``rrdbnet`` by structure; no official file is here, so the state dict is written from a model."""
    source = visionfw.get_model("rrdbnet", scale=4, n_blocks=2, filters=16, growth=8)
    rng = np.random.default_rng(0)
    state = {}
    for layer in source.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = (rng.standard_normal(w.shape).astype(np.float32) * 0.05 for w in layer.get_weights())
            layer.set_weights([kernel, bias])
            key = _esrgan_key(layer.name, style)
            state[f"{key}.weight"], state[f"{key}.bias"] = kernel.transpose(3, 2, 0, 1), bias  # HWIO -> OIHW
    assert "conv_first.weight" in state and (
        ("RRDB_trunk.1.RDB3.conv5.weight" in state)
        if style == "old"
        else ("body.1.rdb3.conv5.weight" in state and "conv_hr.bias" in state)
    )
    np.savez(tmp_path / "rrdb.npz", **state)
    target = visionfw.get_model("rrdbnet", scale=4, n_blocks=2, filters=16, growth=8)
    visionfw.load_weights(target, str(tmp_path / "rrdb.npz"))
    x = rng.random((1, 12, 10, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(target(x)), np.asarray(source(x)))


def test_spectral_conv_normalises_and_round_trips(tmp_path):
    from visionfw.zoo.layers import SpectralConv2D

    layer = SpectralConv2D(8, 3, padding="same")
    x = tf.random.stateless_normal((2, 6, 6, 4), seed=(1, 2))
    layer(x)
    # a kernel with known singular values 3, 1, 0.9, ...: the power iteration converges as (1/3)^2 per call
    # (a random kernel's top two values can be close, which makes any fixed number of calls a gamble)
    rng = np.random.default_rng(0)
    left, _ = np.linalg.qr(rng.standard_normal((36, 8)))
    right, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    singular = np.array([3.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    layer.kernel.assign(((left * singular) @ right.T).reshape(3, 3, 4, 8).astype(np.float32))
    for _ in range(30):  # each training call advances the power iteration
        layer(x, training=True)
    w = np.asarray(layer.normalized_kernel()).reshape(-1, 8)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), singular / 3.0, rtol=1e-4)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x, training=True))
    assert tape.gradient(y, layer.kernel) is not None
    model = visionfw.get_model("unet_discriminator", filters=8)
    img = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    model.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(model(img)), np.asarray(loaded(img)))


# ----------------------------------------------------------------------------- losses


def _softplus(x):
    return np.log1p(np.exp(x))


def test_adversarial_losses_by_hand():
    real = np.array([[1.0], [-0.5], [2.0]], np.float32)
    fake = np.array([[0.3], [-1.2], [0.0]], np.float32)
    # BCE(sigmoid(x), 1) = softplus(-x), BCE(sigmoid(x), 0) = softplus(x)
    r_rel, f_rel = real - fake.mean(), fake - real.mean()
    ra_d = 0.5 * (_softplus(-r_rel).mean() + _softplus(f_rel).mean())
    ra_g = 0.5 * (_softplus(r_rel).mean() + _softplus(-f_rel).mean())
    assert float(relativistic_d_loss(real, fake)) == pytest.approx(ra_d, rel=1e-6)
    assert float(relativistic_g_loss(real, fake)) == pytest.approx(ra_g, rel=1e-6)
    assert float(standard_d_loss(real, fake)) == pytest.approx(
        _softplus(-real).mean() + _softplus(fake).mean(), rel=1e-6
    )
    assert float(standard_g_loss(real, fake)) == pytest.approx(_softplus(-fake).mean(), rel=1e-6)
    # per-pixel logits (U-Net discriminator): the averages run over every element
    real_map, fake_map = real.reshape(3, 1, 1, 1) * np.ones((1, 2, 2, 1)), fake.reshape(3, 1, 1, 1)
    assert float(relativistic_d_loss(real_map, fake_map)) == pytest.approx(ra_d, rel=1e-6)


def test_objective_presets_and_options():
    esrgan = GANObjective.from_options({})
    assert (esrgan.pixel_weight, esrgan.perceptual_weight, esrgan.adversarial_weight) == (1e-2, 1.0, 5e-3)
    assert esrgan.adversarial == "relativistic" and esrgan.before_activation and esrgan.vgg_layer == "block5_conv4"
    srgan = GANObjective.from_options({"objective": "srgan"})
    assert (srgan.pixel_weight, srgan.adversarial_weight, srgan.adversarial) == (0.0, 1e-3, "standard")
    assert not srgan.before_activation and srgan.feature_criterion == "l2"
    assert GANObjective.from_options({"adversarial_weight": 0.1}).adversarial_weight == 0.1
    for bad in ({"objective": "wgan"}, {"adverserial_weight": 1}, {"adversarial": "hinge"}):
        with pytest.raises(ConfigError):
            GANObjective.from_options(bad)


def test_vgg_features_before_and_after_relu(monkeypatch, tmp_path):
    x = np.random.default_rng(1).random((1, 8, 8, 3), dtype=np.float32) * 200 - 100
    pre = np.asarray(vgg19_features("block1_conv2", weights="random")(x))
    post = np.asarray(vgg19_features("block1_conv2", weights="random", before_activation=False)(x))
    assert pre.min() < 0 and post.min() == 0
    np.testing.assert_allclose(post, np.maximum(pre, 0), rtol=1e-6, atol=1e-6)  # same seed, same weights
    assert vgg19_features("block5_conv4", weights="random")(np.zeros((1, 16, 16, 3))).shape == (1, 1, 1, 512)
    with pytest.raises(ConfigError, match="block5_conv4"):
        vgg19_features("conv5_4", weights="random")
    import visionfw.weights.pretrained

    monkeypatch.setattr(visionfw.weights.pretrained, "weights_dirs", lambda data_dir=None: [tmp_path])
    with pytest.raises(ConfigError, match="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        vgg19_features(weights="auto")


def test_several_vgg_layers_sum_with_their_weights():
    assert parse_vgg_layers("block5_conv4") == {"block5_conv4": 1.0}
    # any order in, VGG order out (the order of the feature model's outputs)
    assert list(parse_vgg_layers("block3_conv4+0.1*block1_conv2").items()) == [
        ("block1_conv2", 0.1),
        ("block3_conv4", 1.0),
    ]
    # the text survives the command line's k=v,k=v option parser as one string
    from visionfw.cli.common import parse_kv

    assert (
        parse_kv(f"vgg_layer={REAL_ESRGAN_LAYERS},vgg_weights=random", "task_options")["vgg_layer"]
        == REAL_ESRGAN_LAYERS
    )
    assert parse_vgg_layers({"block2_conv2": 0.5}) == {"block2_conv2": 0.5}
    assert list(parse_vgg_layers(REAL_ESRGAN_LAYERS).values()) == [0.1, 0.1, 1.0, 1.0, 1.0]
    for bad, match in (
        ("conv5_4", "not a VGG19 conv"),
        ("x*block1_conv2", "not a number"),
        ("block1_conv2+block1_conv2", "twice"),
        ("", "give a VGG19 conv"),
        (3, "give a VGG19"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_vgg_layers(bad)
    rng = np.random.default_rng(2)
    hr, sr = rng.random((2, 16, 16, 3), dtype=np.float32), rng.random((2, 16, 16, 3), dtype=np.float32)
    both = PerceptualLoss("0.1*block1_conv2+2*block3_conv4", weights="random")
    one = [float(PerceptualLoss(name, weights="random")(hr, sr)) for name in ("block1_conv2", "block3_conv4")]
    assert float(both(hr, sr)) == pytest.approx(0.1 * one[0] + 2 * one[1], rel=1e-5)
    assert len(both.features.outputs) == 2 and both.features.layers[-1].name == "block3_conv4"


def test_realesrgan_preset_and_discriminator_lr_scale(tmp_path, t91_images):
    preset = GANObjective.from_options({"objective": "realesrgan"})
    assert (preset.pixel_weight, preset.perceptual_weight, preset.adversarial_weight) == (1.0, 1.0, 0.1)
    assert preset.adversarial == "standard" and preset.before_activation
    config = resolve_config(
        gan_config(
            tmp_path / "run",
            t91_images,
            lr=2e-4,
            task_options={"objective": "realesrgan", "vgg_weights": "random", "d_lr_scale": 0.5},
        )
    )
    task = GANTask(config)
    generator = task.build_model()
    task.build_training_state(generator, CosineLR(2e-4, total_steps=10))
    assert task.discriminator_name == "unet_discriminator"  # the preset's D when none is named
    assert task.discriminator.output_shape == (None, None, None, 1)  # per-pixel logits
    assert float(task.d_optimizer.learning_rate) == pytest.approx(1e-4)  # at step 0: 0.5 * 2e-4
    schedule = ScaledLR(CosineLR(2e-4, total_steps=10), 0.5)
    assert float(schedule(5)) == pytest.approx(0.5 * float(CosineLR(2e-4, total_steps=10)(5)))
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again.schedule, CosineLR) and float(again(5)) == pytest.approx(float(schedule(5)))
    assert float(ScaledLR(ConstantLR(1e-3), 0.1)(0)) == pytest.approx(1e-4)
    for bad in (0, -1, "fast", True):
        with pytest.raises(ConfigError, match="d_lr_scale"):
            GANTask(
                resolve_config(gan_config(tmp_path / "bad", t91_images, task_options=dict(GAN_OPTIONS, d_lr_scale=bad)))
            )


def test_generator_starts_from_a_psnr_trained_file(tmp_path, t91_images):
    psnr_model = visionfw.get_model("rrdbnet", scale=4, **TINY_RRDB)
    psnr_model.save_weights(tmp_path / "psnr.weights.h5")
    config = resolve_config(
        gan_config(
            tmp_path / "run", t91_images, task_options=dict(GAN_OPTIONS, pretrained=str(tmp_path / "psnr.weights.h5"))
        )
    )
    task = GANTask(config)
    generator = task.build_model()
    task.build_training_state(generator, lambda step: 1e-4)
    for a, b in zip(generator.weights, psnr_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert task.discriminator.input_shape == (None, 16, 16, 3)  # built for the HR patch, 4 * 4


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, t91_images):
    """40 uninterrupted deterministic steps, checkpoints at 20 and 40."""
    workdir = tmp_path_factory.mktemp("gan") / "full"
    result = train(gan_config(workdir, t91_images, steps=40, log_every=10, ckpt_every=20))
    return workdir, result


# a 40-step GAN run with checkpoints: about 2 minutes on 2 cores; the presets' test trains GANs in the default run
@pytest.mark.slow
def test_gan_trains_end_to_end(gan_run):
    workdir, result = gan_run
    rows = read_log(workdir)
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    first, last = rows[0], rows[-1]
    for key in (
        "train_g_loss",
        "train_d_loss",
        "train_d_real",
        "train_d_fake",
        "train_pixel",
        "train_perceptual",
        "train_adversarial",
    ):
        assert np.isfinite([float(r[key]) for r in rows]).all(), key
    assert float(first["loss"]) == pytest.approx(float(first["train_g_loss"]))
    # both players move: the generator's objective falls, the discriminator's loss leaves its start
    assert float(last["train_g_loss"]) < 0.8 * float(first["train_g_loss"])
    assert float(last["train_perceptual"]) < float(first["train_perceptual"])
    assert abs(float(last["train_d_loss"]) - float(first["train_d_loss"])) > 0.01
    # the exported model is the generator
    model = keras.saving.load_model(result["model_path"], safe_mode=True)
    assert model.output_shape == (None, None, None, 3)
    arrays, _ = load_state(workdir / "checkpoints" / "ckpt-00000040.npz")
    n_d = len(visionfw.get_model("srgan_discriminator_small", input_size=16).weights)
    assert len([k for k in arrays if k.startswith("task/")]) > n_d  # D weights and D optimizer slots


@pytest.mark.slow  # a GAN with five VGG layers traced and trained: about 26 s of CPU; `-m slow`
def test_realesrgan_objective_trains_end_to_end(tmp_path, t91_images):
    """Five VGG layers in the compiled step, the U-Net discriminator's per-pixel logits, half D lr."""
    options = {
        "objective": "realesrgan",
        "vgg_weights": "random",
        "discriminator_kwargs": {"filters": 8},
        "d_lr_scale": 0.5,
    }
    train(gan_config(tmp_path, t91_images, steps=10, log_every=5, ckpt_every=10, lr_patch=8, task_options=options))
    rows = read_log(tmp_path)
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("train_g_loss", "train_d_loss", "train_perceptual"))
    assert float(rows[-1]["train_perceptual"]) < float(rows[0]["train_perceptual"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task_options"]["objective"] == "realesrgan"


@pytest.mark.slow  # two GAN trainings in fresh processes, one killed: a minute or more; `-m slow`
def test_kill_9_then_resume_auto_equals_the_uninterrupted_run(gan_run, tmp_path, t91_images):
    """`visionfw train --task=gan` killed with SIGKILL after its step-20 checkpoint; the same command with
    --resume=auto gives the uninterrupted run's losses and state bit for bit (both networks, both optimizers)."""
    full, _ = gan_run
    killed = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "visionfw.cli",
        "train",
        "--task=gan",
        "--model=rrdbnet",
        "--scale=4",
        f"--model_kwargs={json.dumps(TINY_RRDB)}",
        f"--task_options={json.dumps(GAN_OPTIONS)}",
        f"--train_data={t91_images}",
        "--val_data=",
        "--steps=40",
        "--batch_size=4",
        "--lr_patch=4",
        "--log_every=10",
        "--ckpt_every=20",
        "--seed=5",
        "--schedule=constant",
        "--deterministic",
        "--data_options=patches_per_image=4",
        f"--workdir={killed}",
        "--notensorboard",
        "--noprogress",
    ]
    env = kill_9_after(args, killed / "checkpoints" / "ckpt-00000020.npz", step_delay=0.2)
    assert not (killed / "checkpoints" / "ckpt-00000040.npz").exists()
    done = subprocess.run(args + ["--resume=auto"], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    columns = ["loss", "train_g_loss", "train_d_loss", "train_d_real", "train_d_fake"]
    assert [[r[c] for c in columns] for r in read_log(killed)] == [[r[c] for c in columns] for r in read_log(full)]
    a, _ = load_state(full / "checkpoints" / "ckpt-00000040.npz")
    b, _ = load_state(killed / "checkpoints" / "ckpt-00000040.npz")
    assert sorted(a) == sorted(b) and any(k.startswith("task/") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from visionfw.train import TrainConfig, train
    out = {}
    for label, config in json.loads(sys.argv[1]).items():
        result = train(TrainConfig(**config))
        out[label] = {"loss": result["final_loss"], "replicas": result["replicas"]}
    print("RESULT", json.dumps(out))
""")


# the discriminators under test: batch norm (synchronised when distributed), spectral norm (u all-reduced)
DISCRIMINATORS = {"srgan": {}, "unet": {"discriminator": "unet_discriminator", "discriminator_kwargs": {"filters": 8}}}


def _assert_same_training(a, b):
    trained = sorted(k for k in a if k.startswith(("model/", "task/")))  # both networks, D's optimizer
    assert trained == sorted(k for k in b if k.startswith(("model/", "task/")))
    mismatched = total = 0
    for key in trained:
        assert np.abs(b[key] - a[key]).max() <= 2e-4, key
        mismatched += int(np.sum(~np.isclose(b[key], a[key], rtol=1e-3, atol=1e-5)))
        total += a[key].size
    assert mismatched < 1e-3 * total, (mismatched, total)


def _run_distributed(configs):
    """``{label: TrainConfig fields}`` trained in order in one subprocess with 2 logical CPUs."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    out = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED, json.dumps(configs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow  # about a minute each on 2 cores: two GAN trainings traced in a fresh process; `-m slow`
@pytest.mark.parametrize("d_name", sorted(DISCRIMINATORS))
def test_mirrored_two_cpus_matches_single_device(tmp_path, t91_images, d_name):
    """4 steps on one device, then under MirroredStrategy on 2 logical CPUs, in one subprocess per
    discriminator (logical devices must be set before TensorFlow starts; a second MirroredStrategy
    in one process can reuse collective keys).  The relativistic averages and the batch-norm
    statistics are global-batch ones, so only the summation order differs: losses agree to 1e-4
    relative; all but 0.1% of the weights to rtol 1e-3 / atol 1e-5, and every weight to 2e-4: Adam
    moves a weight by up to lr = 1e-4 a step even where its gradient is at rounding level (e.g. the
    discriminator's last bias, which RaGAN's differences C(hr) - E[C(sr)] cancel), so such a weight
    may take a step of the other sign."""
    configs = {}
    for label, distribute in (("single", None), ("mirrored", "mirrored")):
        configs[label] = dataclasses.asdict(
            gan_config(
                tmp_path / label,
                t91_images,
                steps=4,
                log_every=4,
                ckpt_every=4,
                deterministic=False,
                distribute=distribute,
                task_options=dict(GAN_OPTIONS, **DISCRIMINATORS[d_name]),
            )
        )
    got = _run_distributed(configs)
    assert (got["single"]["replicas"], got["mirrored"]["replicas"]) == (1, 2)
    assert got["mirrored"]["loss"] == pytest.approx(got["single"]["loss"], rel=1e-4)
    a, _ = load_state(tmp_path / "single" / "checkpoints" / "ckpt-00000004.npz")
    b, _ = load_state(tmp_path / "mirrored" / "checkpoints" / "ckpt-00000004.npz")
    _assert_same_training(a, b)
