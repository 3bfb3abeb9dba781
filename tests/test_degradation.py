"""visionfw.degradation: each op pinned with measured values, the spec parser, pools, fusion, CLI.

Tolerances (stated per test): kernel moments 1e-3 relative (31-tap kernels, sigma <= 2.5, so
truncation is < 1e-6); noise std 2% and Poisson variance 5% (~200k / 65k samples: sampling
error ~0.2% / ~0.6%).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from visionfw import degradation as D
from visionfw.errors import ConfigError, DataError


def _moments(kernel):
    """(sum, covariance [[xx, xy], [xy, yy]]) of a kernel, x = column offset, y = row offset."""
    k = np.asarray(kernel, np.float64)
    r = (k.shape[0] - 1) / 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    total = k.sum()
    cov = np.array([[np.sum(k * x * x), np.sum(k * x * y)], [np.sum(k * x * y), np.sum(k * y * y)]]) / total
    return total, cov


def _flat(value, shape=(1, 256, 256, 3)):
    return tf.fill(shape, np.float32(value))


def _natural_patch(shared_data, size=128):
    from visionfw.data.image_io import read_image

    image = (
        read_image(shared_data / "benchmark" / "Set5" / "HR" / "baby.png")
        if (shared_data / "benchmark" / "Set5" / "HR" / "baby.png").exists()
        else None
    )
    if image is None:
        from visionfw.data.image_io import list_images

        image = read_image(list_images(shared_data / "benchmark" / "Set5")[0])
    return tf.constant(image[None, 100 : 100 + size, 100 : 100 + size, :3], tf.float32)


# ----------------------------------------------------------------- blur


@pytest.mark.parametrize("sigma", [0.8, 1.5, 2.5])
def test_isotropic_kernel_sums_to_one_with_second_moment_sigma_squared(sigma):
    total, cov = _moments(D.make_kernels(31, sigma)[0])
    assert total == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.diag(cov), [sigma**2] * 2, rtol=1e-3)
    assert abs(cov[0, 1]) < 1e-5


def test_anisotropic_kernel_covariance_is_rotated_diagonal():
    s1, s2, theta = 2.5, 1.0, math.pi / 6
    total, cov = _moments(D.make_kernels(31, s1, s2, theta=theta)[0])
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    want = rot @ np.diag([s1**2, s2**2]) @ rot.T
    assert total == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(cov, want, atol=1e-3 * s1**2)


def test_generalized_and_plateau_kernels_are_normalised_and_non_negative():
    for kind in ("generalized", "plateau"):
        k = D.make_kernels(15, [1.0, 2.0], [2.0, 0.5], theta=[0.3, 1.0], beta=[0.7, 1.5], kind=kind).numpy()
        assert k.shape == (2, 15, 15) and k.min() >= 0
        np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)


@pytest.mark.parametrize("omega", [math.pi / 4, math.pi / 3, math.pi / 2])  # stop band 1.4 omega < pi
def test_sinc_kernel_is_a_circular_low_pass_with_cut_off_omega(omega):
    size = 63
    k = D.make_kernels(size, 1.0, kind="sinc", omega=omega)[0].numpy().astype(np.float64)
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(k, k.T, atol=1e-7)  # circular: symmetric under transposition
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    # the continuous kernel's centre is omega^2 / (4 pi); normalising the truncated one raises it a little
    assert k[size // 2, size // 2] == pytest.approx(omega**2 / (4 * math.pi), rel=0.1)
    # frequency response (radians per pixel): ~1 inside the cut-off (the truncation's ripple measured
    # 1-5% on average), ~0 outside (measured < 0.5%)
    n = 256
    response = np.abs(np.fft.fft2(k, (n, n)))
    w = 2 * math.pi * np.fft.fftfreq(n)
    radius = np.hypot(*np.meshgrid(w, w, indexing="ij"))
    assert np.abs(response[radius < 0.6 * omega] - 1).mean() < 0.08
    assert response[(radius > 1.4 * omega) & (radius < math.pi)].mean() < 0.01


def test_sinc_is_a_blur_kind_and_checks_its_cut_off():
    spec = D.parse_spec("blur(kinds=sinc,omega=1:2,size=21)+down(methods=nearest)")
    assert spec.ops[0]["kinds"] == ("sinc",) and spec.ops[0]["omega"] == (1.0, 2.0)
    hr = tf.random.stateless_uniform([2, 48, 48, 3], seed=[1, 2])
    lr = D.make_degrader(spec, 1, seed=0)(hr, 0)
    assert float(tf.math.reduce_std(lr)) < 0.8 * float(tf.math.reduce_std(hr))  # low-passed noise
    for bad in ("omega=0:1", "omega=1:4"):
        with pytest.raises(ConfigError, match="sinc cut-off"):
            D.parse_spec(f"blur(kinds=sinc,{bad})+down")


def test_blurred_delta_returns_each_images_kernel():
    rng = np.random.default_rng(0)
    kernels = rng.random((2, 7, 7)).astype(np.float32)  # asymmetric: pins convolution, not correlation
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    image = np.zeros((2, 21, 25, 3), np.float32)
    image[:, 10, 12, :] = 1.0
    out = D.apply_kernels(image, kernels).numpy()
    for i in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[i, 7:14, 9:16, c], kernels[i], atol=1e-6)
    assert out.sum() == pytest.approx(6.0, abs=1e-4)


# ----------------------------------------------------------------- resize


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_resize_method_gives_the_exact_lr_size(scale):
    hr = tf.random.stateless_uniform([2, 48, 36, 3], seed=[0, scale])
    for method in D.RESIZE_METHODS:
        out = D.downscale(hr, [48 // scale, 36 // scale], method)
        assert tuple(out.shape) == (2, 48 // scale, 36 // scale, 3), method
        flat = D.downscale(_flat(0.25, (1, 48, 36, 3)), [48 // scale, 36 // scale], method)
        np.testing.assert_allclose(flat.numpy(), 0.25, atol=1e-5, err_msg=method)
    spec = "down(methods=nearest|bilinear|bicubic|lanczos|area|matlab)"
    lr = D.make_degrader(spec, scale, seed=0)(tf.random.stateless_uniform([6, 50, 37, 3], seed=[1, 1]), 0)
    assert tuple(lr.shape) == (6, 50 // scale, 37 // scale, 3)


# ----------------------------------------------------------------- noise


def test_gaussian_noise_has_the_requested_std():
    # 196,608 samples: the std of the measured std is ~0.16%; tolerance 2%
    sigma = np.float32(10 / 255)
    noise = D.gaussian_noise(_flat(0.5), tf.constant([sigma]), tf.constant([False]), tf.constant([3, 4], tf.int64))
    assert float(tf.math.reduce_std(noise)) == pytest.approx(sigma, rel=0.02)
    assert abs(float(tf.reduce_mean(noise))) < 1e-3
    grey = D.gaussian_noise(_flat(0.5), tf.constant([sigma]), tf.constant([True]), tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(grey[..., 0].numpy(), grey[..., 2].numpy())
    # through the pipeline (flat 0.5 image, identity resize): 8-bit rounding adds var 1/12 level^2
    lr = D.make_degrader("down(methods=nearest)+noise(sigma=10,gray=0)", 1, seed=5)(_flat(0.5), 0)
    measured = float(tf.math.reduce_std(lr - 0.5)) * 255
    assert measured == pytest.approx(math.sqrt(100 + 1 / 12), rel=0.02)


@pytest.mark.parametrize("value,scale", [(0.2, 1.0), (0.8, 1.0), (0.2, 2.0)])
def test_poisson_noise_variance_is_scale_squared_x_over_255(value, scale):
    noise = D.poisson_noise(
        _flat(value, (2, 128, 128, 3)), tf.constant([scale]), tf.constant([False]), tf.constant([1, 2], tf.int64)
    )
    want = scale**2 * value / 255
    assert float(tf.math.reduce_variance(noise)) == pytest.approx(want, rel=0.05)
    assert abs(float(tf.reduce_mean(noise))) < 0.01 * math.sqrt(want) * 10


# ----------------------------------------------------------------- jpeg


def test_jpeg_error_decreases_with_quality(shared_data):
    hr = _natural_patch(shared_data)
    mses = [float(tf.reduce_mean(tf.square(D.jpeg(hr, [q]) - hr))) for q in (10, 30, 50, 70, 90)]
    assert all(a > b for a, b in zip(mses, mses[1:])), mses
    assert mses[0] > 4 * mses[-1]


# ----------------------------------------------------------------- the chain


def test_batches_are_reproducible_from_seed_and_step():
    hr = tf.random.stateless_uniform([3, 32, 32, 3], seed=[4, 2])
    for name in ("realsr", "bsrgan-like@passes=2"):
        fn = D.make_degrader(name, 2, seed=11)
        a, b, c = fn(hr, 5), fn(hr, 5), fn(hr, 6)
        other = D.make_degrader(name, 2, seed=12)(hr, 5)
        assert tuple(a.shape) == (3, 16, 16, 3)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert float(tf.reduce_mean(tf.abs(a - c))) > 1e-3 and float(tf.reduce_mean(tf.abs(a - other))) > 1e-3
        np.testing.assert_array_equal(np.round(a.numpy() * 255), a.numpy() * 255)  # 8-bit values
        assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0


@pytest.mark.parametrize("name", ["realsr", "bsrgan-like@passes=2"])
def test_degrader_runs_in_dataset_map_like_eager(name):
    hr = tf.random.stateless_uniform([2, 32, 32, 3], seed=[7, 7])
    fn = D.make_degrader(name, 4, seed=3)

    def degrade(step, batch):  # enumerate() yields (step, batch)
        return fn(batch, step)

    ds = tf.data.Dataset.from_tensors(hr).repeat(2).enumerate().map(degrade)
    got = [x.numpy() for x in ds]
    assert got[0].shape == (2, 8, 8, 3)
    # graph and eager agree up to one 8-bit level (float rounding can flip a level)
    assert np.abs(got[1] - fn(hr, 1).numpy()).max() <= 1 / 255 + 1e-6
    assert np.abs(got[0] - got[1]).mean() > 1e-3


def test_shuffle_changes_the_order_per_batch():
    # noise before a 4x area shrink is averaged over 16 pixels (std 20 -> 5 levels); after it, not
    fn = D.make_degrader("down(methods=area)+noise(sigma=20,gray=0)@shuffle=true", 4, seed=1)
    stds = [float(tf.math.reduce_std(fn(_flat(0.5, (1, 128, 128, 3)), step))) * 255 for step in range(8)]
    assert all(abs(v - 5) < 0.5 or abs(v - 20) < 1.0 for v in stds), stds
    assert min(stds) < 6 and max(stds) > 19


def test_second_order_chain_applies_every_op_twice():
    # pass 1 (64 -> 32) noise, halved by pass 2's 2x area shrink, plus pass 2 (32 -> 16) noise:
    # std 20 * sqrt(1/4 + 1) = 22.4 levels
    fn = D.make_degrader("down(methods=area)+noise(sigma=20,gray=0)@passes=2", 4, seed=2)
    lr = fn(_flat(0.5, (4, 64, 64, 3)), 0)
    assert tuple(lr.shape) == (4, 16, 16, 3)
    assert float(tf.math.reduce_std(lr)) * 255 == pytest.approx(20 * math.sqrt(1.25), rel=0.05)


def test_passes_can_differ():
    spec = D.parse_spec("down(methods=area);down(methods=area)+noise(sigma=20,gray=0)")
    assert spec.passes == 2 and [o.name for o in spec.later[0]] == ["down", "noise"]
    assert D.parse_spec(D.spec_to_string(spec)) == spec
    # only pass 2 (32 -> 16) adds noise: std 20, not pass 1's halved 10 on top (22.4 with both)
    lr = D.make_degrader(spec, 4, seed=2)(_flat(0.5, (4, 64, 64, 3)), 0)
    assert tuple(lr.shape) == (4, 16, 16, 3)
    assert float(tf.math.reduce_std(lr)) * 255 == pytest.approx(20, rel=0.05)
    # the same chain twice written out equals @passes=2
    hr = tf.random.stateless_uniform([2, 32, 32, 3], seed=[3, 1])
    twice = D.make_degrader("down(methods=bicubic)+noise(sigma=5);down(methods=bicubic)+noise(sigma=5)", 4, 9)
    np.testing.assert_array_equal(
        twice(hr, 3).numpy(), D.make_degrader("down(methods=bicubic)+noise(sigma=5)@passes=2", 4, 9)(hr, 3)
    )
    with pytest.raises(ConfigError, match="2 chains.*passes=3"):
        D.parse_spec("down;down@passes=3")
    with pytest.raises(ConfigError, match="a pass with 0 down ops"):
        D.parse_spec("down;noise")


def test_realesrgan_like_preset_runs_and_round_trips():
    spec = D.parse_spec("realesrgan-like")
    assert spec.passes == 2 and [o.name for o in spec.later[0]][-2:] == ["blur", "jpeg"]
    assert spec.later[0][-2]["kinds"] == ("sinc",) and spec.later[0][-2]["prob"] == 0.8
    assert D.parse_spec(D.spec_to_string(spec)) == spec
    hr = tf.random.stateless_uniform([2, 96, 96, 3], seed=[5, 5])
    fn = D.make_degrader("realesrgan-like", 4, seed=1)
    a = fn(hr, 0)
    assert tuple(a.shape) == (2, 24, 24, 3)
    np.testing.assert_array_equal(a.numpy(), fn(hr, 0).numpy())
    with pytest.raises(ConfigError, match="21x21 blur kernel"):
        fn(hr[:, :40, :40], 0)  # 40 / 4 = 10 LR pixels: the final 21-tap sinc needs more than 10


def test_batches_too_small_for_the_kernel_or_scale_are_refused():
    with pytest.raises(ConfigError, match="larger HR patch or a smaller blur size"):
        D.make_degrader("bsrgan-like", 4, seed=0)(tf.zeros([1, 24, 24, 3]), 0)  # LR 6 px < radius 7
    with pytest.raises(ConfigError, match="smaller than scale=4"):
        D.make_degrader("down", 4, seed=0)(tf.zeros([1, 3, 8, 3]), 0)
    with pytest.raises(ConfigError, match="scale"):
        D.make_degrader("realsr", 0, seed=0)


def test_pool_kernels_and_noise_are_used():
    image = tf.random.stateless_uniform([2, 16, 16, 3], seed=[2, 2])
    delta = np.zeros((1, 3, 3), np.float32)
    delta[0, 1, 1] = 1
    pool = D.DegradationPool(noise=np.full((2, 8, 8, 3), 0.1, np.float32), kernels=delta)
    spec = "blur(pool=1)+down(methods=nearest)+noise(pool=1,sigma=5)"
    lr = D.make_degrader(spec, 1, seed=0, pool=pool)(image, 0)
    np.testing.assert_allclose(lr.numpy(), D.quantize(image + 0.1).numpy(), atol=1e-6)
    # without a pool the same spec blurs and adds Gaussian noise
    assert float(tf.reduce_mean(tf.abs(D.make_degrader(spec, 1, seed=0)(image, 0) - lr))) > 0.02


# ----------------------------------------------------------------- spec strings


def test_spec_parser_round_trips_and_fills_defaults():
    text = "blur(sigma=0.2:3,size=15)+down(methods=bicubic|area)+noise(sigma=1:25)+jpeg(q=30:95)@passes=2"
    spec = D.parse_spec(text)
    assert [o.name for o in spec.ops] == ["blur", "down", "noise", "jpeg"] and spec.passes == 2
    assert spec.ops[0]["sigma"] == (0.2, 3.0) and spec.ops[0]["kinds"] == ("iso", "aniso")
    assert spec.ops[1]["methods"] == ("bicubic", "area") and spec.ops[3]["q"] == (30.0, 95.0)
    for s in (spec, D.parse_spec("realsr"), D.parse_spec("bsrgan-like@passes=2,shuffle=false")):
        canonical = D.spec_to_string(s)
        assert D.parse_spec(canonical) == s
        assert D.spec_to_string(D.parse_spec(canonical)) == canonical
    assert D.parse_spec("bsrgan-like").shuffle and D.parse_spec("bsrgan-like@passes=2").passes == 2


@pytest.mark.parametrize(
    "text,words",
    [
        ("blurr(sigma=1)+down", ["blurr", "unknown op", "blur, down, noise, jpeg"]),
        ("blur(sigmax=1)+down", ["sigmax", "takes sigma, size"]),
        ("blur(sigma=3:1)+down", ["3:1", "low:high"]),
        ("blur(size=14)+down", ["14", "odd"]),
        ("blur(sigma=a:b)+down", ["blur(sigma=a:b)", "low:high"]),
        ("down+jpeg(q=0:50)", ["0:50", "1..100"]),
        ("down(methods=bicubic|cubic)", ["cubic", "nearest|bilinear"]),
        ("blur+noise", ["0 down ops", "down(methods=bicubic)"]),
        ("down+down", ["2 down ops"]),
        ("realsr@passes=0", ["passes=0", "positive integer"]),
        ("realsr@order=2", ["order=2", "passes=N"]),
        ("down(methods=bicubic", ["parentheses"]),
        ("", ["empty", "realsr"]),
    ],
)
def test_spec_parser_rejects_bad_input_with_a_fix(text, words):
    with pytest.raises(ConfigError) as info:
        D.parse_spec(text)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


# ----------------------------------------------------------------- pools


def test_noise_pool_patches_are_flat_and_zero_mean(shared_data):
    from visionfw.data.image_io import list_images, read_image

    images = [read_image(p) for p in list_images(shared_data / "train" / "T91")[:12]]
    pool = D.extract_noise_pool(images, patch=16, var_threshold=20.0)
    assert pool.ndim == 4 and pool.shape[1:] == (16, 16, 3) and len(pool) >= 5
    assert np.abs(pool.mean(axis=(1, 2))).max() < 1e-5
    assert (pool.var(axis=(1, 2)) * 255**2).max() < 20.0
    few = D.extract_noise_pool(images, patch=16, var_threshold=20.0, max_patches=3)
    assert len(few) == 3 and (few.var(axis=(1, 2)).max(-1) <= pool.var(axis=(1, 2)).max(-1).max()).all()


def test_kernel_pool_validates_normalises_and_round_trips(tmp_path):
    good = tmp_path / "k"
    good.mkdir()
    np.save(good / "a.npy", np.ones((3, 3)))
    np.save(good / "b.npy", np.arange(25, dtype=np.float64).reshape(5, 5))
    kernels = D.load_kernel_pool(good)
    assert kernels.shape == (2, 5, 5)
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(kernels[0, 1:4, 1:4], 1 / 9, atol=1e-7)
    assert kernels[0, 0].sum() == 0  # zero-padded, centred
    for name, bad in [
        ("even", np.ones((4, 4))),
        ("neg", -np.eye(3)),
        ("cube", np.ones((3, 3, 3))),
        ("rect", np.ones((3, 5))),
    ]:
        np.save(tmp_path / f"{name}.npy", bad)
        with pytest.raises(DataError, match=name):
            D.load_kernel_pool([tmp_path / f"{name}.npy"])
    path = D.save_pool(
        tmp_path / "pool.npz", D.DegradationPool(noise=np.zeros((2, 4, 4, 3), np.float32), kernels=kernels)
    )
    back = D.load_pool(path)
    np.testing.assert_array_equal(back.kernels, kernels)
    assert back.noise.shape == (2, 4, 4, 3)


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_kernel_estimate_recovers_a_gaussian_blur(sigma):
    stripes = np.zeros((96, 96), np.float32)
    for x0 in range(0, 96, 24):
        stripes[:, x0 : x0 + 12] = 0.8
    stripes += 0.1
    blurred = D.apply_kernels(stripes[None, ..., None], D.make_kernels(31, sigma)).numpy()[0]
    kernel, estimate = D.estimate_kernel(blurred, size=15)
    assert estimate == pytest.approx(sigma, rel=0.15)
    assert kernel.shape == (15, 15) and kernel.sum() == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------- fusion


def test_gan_fusion_picks_the_branch_by_median_luma():
    dark = np.full((8, 8, 3), 0.1, np.float32)
    dark[:3] = 1.0  # the mean (0.44) is bright, the median (0.1) dark
    y_r = np.stack([dark, np.full((8, 8, 3), 0.9, np.float32)])
    y_s = np.zeros_like(y_r)
    out = D.gan_fusion(y_r, y_s, a=0.5, b=0.5, gamma=0.4).numpy()
    np.testing.assert_allclose(out[0], 0.5 * y_r[0], atol=1e-7)  # median Y of 0.1 grey: (16 + 21.9) / 255 = 0.149 < 0.4
    np.testing.assert_array_equal(out[1], y_r[1])


# ----------------------------------------------------------------- CLI


def test_cli_builds_a_pool(tmp_path, capsys):
    from conftest import write_noise_images

    from visionfw.cli import common, degradation_pool
    from visionfw.data.image_io import write_image

    write_noise_images(tmp_path / "src", 1, 64, seed=0)  # no flat window
    rng = np.random.default_rng(0)
    write_image(tmp_path / "src" / "flat.png", 0.5 + rng.normal(0, 2 / 255, (64, 64, 3)))  # std 2 levels
    (tmp_path / "k").mkdir()
    np.save(tmp_path / "k" / "box.npy", np.ones((5, 5)))
    config, _ = common.parse_args(
        degradation_pool.CONFIG,
        [
            "visionfw degradation-pool",
            f"--source={tmp_path / 'src'}",
            f"--out={tmp_path / 'pool.npz'}",
            f"--kernels={tmp_path / 'k'}",
            "--estimate_kernels",
            "--patch=8",
            "--var_threshold=50",
        ],
    )
    assert degradation_pool.main("degradation-pool", config) == 0
    pool = D.load_pool(tmp_path / "pool.npz")
    assert pool.kernels.shape == (3, 15, 15) and pool.noise.shape == (64, 8, 8, 3)
    assert "noise patches" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="var_threshold"):
        degradation_pool.main("degradation-pool", degradation_pool.CONFIG(source="x", out="y", var_threshold=0))
