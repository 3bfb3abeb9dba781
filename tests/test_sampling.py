"""Tests of visionfw.data.sampling: the PSNR-gain histogram rule, PIC sampling, the patch pool."""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from visionfw.data.patch_pool import PatchPool
from visionfw.data.sampling import (
    PicSampler,
    PsnrHistSampler,
    UniformSampler,
    compute_pic,
    make_sampler,
    per_patch_psnr_gain,
)
from visionfw.errors import ConfigError, DataError


def _set_p(sampler, p):
    sampler.variable.assign(np.asarray(p, np.float32))


# ----------------------------------------------------------------------------- the rule


def test_hand_worked_update_k4_n6_b3():
    s = PsnrHistSampler(6, bins=3, seed=0)
    p = np.array([0.10, 0.20, 0.15, 0.25, 0.05, 0.25])
    _set_p(s, p)
    idx = [0, 2, 3, 5]
    gains = [0.0, 0.5, 1.0, 3.0]
    s.update(tf.constant(idx), tf.constant(gains))
    # By hand: range [0, 3], width 1, bins [0,1) [1,2) [2,3] -> f = (2, 1, 1).
    # val(bin1) = 1*2 + 1*1 + 1*1 = 4, val(bin2) = 1*1 + 1*1 = 2, val(bin3) = 1.
    # val = (4, 4, 2, 1), Agg = 11, P_S = 0.10 + 0.15 + 0.25 + 0.25 = 0.75.
    expected = p.copy()
    expected[idx] = np.array([4, 4, 2, 1]) / 11 * 0.75
    got = s.variable.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got[idx].sum(), 0.75, rtol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-6)


def test_inner_edge_belongs_to_upper_bin():
    s = PsnrHistSampler(4, bins=3, seed=0)  # uniform P = 0.25
    # range [-0.6, 1.2], width 0.6: -0.6 -> bin1, 0.0 (an inner edge) -> bin2, 0.3 -> bin2,
    # 1.2 -> bin3.  f = (1, 2, 1); val = 0.6*(4, 3, 3, 1) -> (2.4, 1.8, 1.8, 0.6), Agg = 6.6.
    s.update(tf.constant([0, 1, 2, 3]), tf.constant([-0.6, 0.0, 0.3, 1.2]))
    np.testing.assert_allclose(s.variable.numpy(), np.array([2.4, 1.8, 1.8, 0.6]) / 6.6, rtol=1e-6)


def test_low_gain_gains_probability_and_mass_preserved():
    n = 10
    s = PsnrHistSampler(n, bins=4, seed=0)
    idx = tf.constant([7, 1, 4, 9])
    s.update(idx, tf.constant([0.0, 1.0, 2.0, 3.0]))
    p = s.variable.numpy()
    # val = (4, 3, 2, 1) / 10 of the sample's mass 4/N.
    np.testing.assert_allclose(p[[7, 1, 4, 9]], np.array([4, 3, 2, 1]) / 10 * 0.4, rtol=1e-6)
    assert p[7] > 1 / n > p[9]
    assert p[[7, 1, 4, 9]].sum() == pytest.approx(0.4, rel=1e-6)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.delete(p, [7, 1, 4, 9]), 1 / n, rtol=1e-6)


def test_all_equal_gains_share_mass_equally():
    s = PsnrHistSampler(5, bins=3, seed=0)
    _set_p(s, [0.1, 0.4, 0.2, 0.2, 0.1])
    s.update(tf.constant([0, 1, 2]), tf.constant([1.5, 1.5, 1.5]))
    np.testing.assert_allclose(s.variable.numpy(), [0.7 / 3] * 3 + [0.2, 0.1], rtol=1e-6)


def test_duplicates_aggregate_per_unique_index():
    n = 8
    s = PsnrHistSampler(n, bins=3, seed=0)
    # Patch 1 drawn twice with gains 0 and 2 -> one entry with mean gain 1.
    s.update(tf.constant([1, 1, 2, 3]), tf.constant([0.0, 2.0, 1.0, 3.0]))
    # Unique gains (1, 1, 3): width 2/3, f = (2, 0, 1), val = (3, 3, 1) * 2/3, Agg = 7 * 2/3.
    # P_S counts patch 1 once: 3/N.
    p = s.variable.numpy()
    np.testing.assert_allclose(p[[1, 2, 3]], np.array([3, 3, 1]) / 7 * 3 / n, rtol=1e-6)
    assert p[[1, 2, 3]].sum() == pytest.approx(3 / n, rel=1e-6)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)


def test_nan_gains_are_ignored():
    n = 6
    s = PsnrHistSampler(n, bins=2, seed=0)
    # Patch 0: only NaN -> keeps P.  Patch 2: NaN and 2.0 -> gain 2.0.
    s.update(tf.constant([0, 1, 2, 2, 3]), tf.constant([np.nan, 0.0, np.nan, 2.0, np.inf]))
    p = s.variable.numpy()
    assert p[0] == pytest.approx(1 / n) and p[3] == pytest.approx(1 / n)
    # Active {1: 0.0, 2: 2.0}: bins (1, 1), val = (2, 1), P_S = 2/N.
    np.testing.assert_allclose(p[[1, 2]], np.array([2, 1]) / 3 * 2 / n, rtol=1e-6)
    s.update(tf.constant([4, 5]), tf.constant([np.nan, np.nan]))
    assert np.isfinite(s.variable.numpy()).all()
    np.testing.assert_allclose(s.variable.numpy()[4:], 1 / n, rtol=1e-6)


def test_floor_keeps_every_patch_above_it():
    n, floor = 50, 0.5
    rng = np.random.default_rng(0)
    floored = PsnrHistSampler(n, bins=5, floor=floor, seed=1)
    plain = PsnrHistSampler(n, bins=5, floor=0.0, seed=1)
    update_floored, update_plain = tf.function(floored.update), tf.function(plain.update)
    for _ in range(60):
        idx = rng.choice(n, 8, replace=False).astype(np.int32)
        gains = (rng.normal(size=8) + (idx % 2) * 3).astype(np.float32)
        update_floored(tf.constant(idx), tf.constant(gains))
        update_plain(tf.constant(idx), tf.constant(gains))
    assert floored.variable.numpy().min() >= floor / n * (1 - 1e-5)
    assert plain.variable.numpy().min() < floor / n  # the floor did something
    assert floored.variable.numpy().sum() == pytest.approx(1.0, abs=1e-5)
    # One step by hand: N=10, floor 0.5 -> 0.05 reserved per patch of S, the rest by val.
    s = PsnrHistSampler(10, bins=2, floor=0.5, seed=0)
    s.update(tf.constant([0, 1]), tf.constant([0.0, 10.0]))
    np.testing.assert_allclose(s.variable.numpy()[:2], [0.05 + 0.1 * 2 / 3, 0.05 + 0.1 / 3], rtol=1e-6)


def test_init_scores_favour_low_psnr():
    scores = np.array([20.0, 30.0, 25.0, 40.0])
    s = PsnrHistSampler(4, bins=2, init=scores, seed=0)
    # Range [20, 40], bins [20,30) [30,40]: counts (2, 2); val = (4, 2, 4, 2) / 12.
    np.testing.assert_allclose(s.variable.numpy(), np.array([4, 2, 4, 2]) / 12, rtol=1e-6)
    with pytest.raises(DataError):
        PsnrHistSampler(2, init=[1.0, np.nan])
    with pytest.raises(ConfigError):
        PsnrHistSampler(3, init=[1.0, 2.0])


# ----------------------------------------------------------------------------- draws


def test_draw_frequencies_follow_p():
    # N = 7 -> a 3x3 grid in the two-level draw, with 2 padding cells that must never win.
    s = PsnrHistSampler(7, seed=123)
    p = np.array([0.35, 0.3, 0.15, 0.1, 0.05, 0.0, 0.05])
    _set_p(s, p)
    n_draw = 20000
    counts = np.bincount(s.draw(n_draw).numpy(), minlength=7)
    assert counts.size == 7 and counts[5] == 0  # zero probability is never drawn
    keep = p > 0
    expected = p[keep] * n_draw
    chi2 = ((counts[keep] - expected) ** 2 / expected).sum()
    assert chi2 < 30.0  # 5 dof: P(chi2 > 30) ~ 1.5e-5
    # Mass spread over rows of a larger grid: only the non-zero patches come out.
    big = PsnrHistSampler(1000, seed=4)
    q = np.zeros(1000)
    q[[0, 31, 32, 500, 999]] = [0.1, 0.2, 0.3, 0.2, 0.2]
    _set_p(big, q)
    counts = np.bincount(big.draw(5000).numpy(), minlength=1000)
    assert set(np.flatnonzero(counts)) == {0, 31, 32, 500, 999}
    np.testing.assert_allclose(counts[[0, 31, 32, 500, 999]] / 5000, q[[0, 31, 32, 500, 999]], atol=0.03)


def test_draws_advance_and_depend_on_seed():
    a, b, c = (PsnrHistSampler(1000, seed=sd) for sd in (7, 7, 8))
    first = a.draw(32).numpy()
    np.testing.assert_array_equal(first, b.draw(32).numpy())
    assert not np.array_equal(first, a.draw(32).numpy())
    assert not np.array_equal(first, c.draw(32).numpy())


def test_gumbel_top_k_unique_and_weighted():
    n = 200
    s = PsnrHistSampler(n, replacement=False, seed=3)
    p = np.full(n, 1.0)
    p[:10] = 1000.0  # 10 heavy patches
    p[-20:] = 0.0  # never drawn
    _set_p(s, p / p.sum())
    heavy = 0
    for _ in range(20):
        idx = s.draw(20).numpy()
        assert len(set(idx.tolist())) == 20
        assert idx.max() < n - 20
        heavy += np.sum(idx < 10)
    assert heavy > 0.9 * 200  # almost every heavy patch is in every batch
    with pytest.raises(ConfigError):
        s.draw(n + 1)


def test_uniform_sampler():
    u = make_sampler("uniform", 30, seed=2)
    assert isinstance(u, UniformSampler)
    counts = np.bincount(u.draw(30000).numpy(), minlength=30)
    assert counts.min() > 850 and counts.max() < 1150
    u.update(tf.constant([1]), tf.constant([1.0]))
    np.testing.assert_allclose(u.probabilities().numpy(), 1 / 30)
    w = UniformSampler(30, replacement=False, seed=2)
    assert len(set(w.draw(30).numpy().tolist())) == 30


def test_make_sampler_and_config_round_trip():
    s = make_sampler("psnr_hist", 100, bins=7, floor=0.1, seed=5)
    cfg = s.get_config()
    assert cfg == {"name": "psnr_hist", "num_patches": 100, "replacement": True, "seed": 5, "bins": 7, "floor": 0.1}
    assert make_sampler(**cfg).get_config() == cfg
    pic = make_sampler("pic", 20, pic_values=np.arange(20.0), intervals=4, seed=1)
    assert make_sampler(**pic.get_config(), pic_values=np.arange(20.0)).get_config() == pic.get_config()
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_sampler("nope", 10)
    with pytest.raises(ConfigError):
        make_sampler("psnr_hist", 10, bogus=1)
    with pytest.raises(ConfigError):
        make_sampler("psnr_hist", 10, floor=2.0)


def test_checkpoint_restores_probabilities(tmp_path):
    s = PsnrHistSampler(10, bins=3, seed=0)
    s.update(tf.constant([0, 1, 2]), tf.constant([0.0, 1.0, 2.0]))
    path = tf.train.Checkpoint(sampler=s).save(str(tmp_path / "ckpt"))
    t = PsnrHistSampler(10, bins=3, seed=0)
    tf.train.Checkpoint(sampler=t).restore(path)
    np.testing.assert_array_equal(t.variable.numpy(), s.variable.numpy())


# ----------------------------------------------------------------------------- XLA


def test_draw_update_compile_with_xla():
    n, k = 10**6, 16
    s = PsnrHistSampler(n, bins=10, seed=11)
    g = PsnrHistSampler(10**4, bins=10, replacement=False, seed=11)
    pic = PicSampler(1000, pic_values=np.random.default_rng(0).random(1000), intervals=8, seed=1)
    u = UniformSampler(n, seed=1)

    @tf.function(jit_compile=True)
    def step(gain_shift):
        idx = s.draw(k)
        gains = tf.cast(idx % 7, tf.float32) + gain_shift
        s.update(idx, gains)
        idx_g = g.draw(k)
        g.update(idx_g, tf.cast(idx_g % 5, tf.float32))
        return idx, idx_g, pic.draw(k), u.draw(k)

    seen = set()
    for t in range(3):
        idx, idx_g, idx_p, idx_u = (x.numpy() for x in step(tf.constant(float(t))))
        assert idx.shape == (k,) and idx.min() >= 0 and idx.max() < n
        assert len(set(idx_g.tolist())) == k
        assert idx_p.max() < 1000 and idx_u.max() < n
        seen.update(idx.tolist())
    assert len(seen) > 2 * k  # the counter advanced between calls
    for smp in (s, g):
        p = smp.variable.numpy()
        assert p.sum() == pytest.approx(1.0, abs=1e-5)
        assert (p != np.float32(1 / smp.num_patches)).sum() >= k  # updates happened


# ----------------------------------------------------------------------------- PIC


def _step_edge(size=5, left=2):
    patch = np.zeros((size, size), np.float32)
    patch[:, left:] = 1.0
    return patch


def test_pic_constant_and_step_edge():
    const = np.full((1, 6, 6, 3), 0.7, np.float32)
    assert compute_pic(const).numpy()[0] == 0.0
    # 5x5 step edge (columns 0-1 = 0, 2-4 = 1), VALID 3x3 interior.  Sobel gx at a pixel
    # = (1+2+1) * (I[x+1] - I[x-1]): 4 at x=1 and x=2, 0 at x=3; gy = 0.  3 rows -> 24.
    edge = _step_edge()
    assert compute_pic(edge[None, :, :, None]).numpy()[0] == pytest.approx(24.0)
    assert compute_pic(edge.T[None, :, :, None]).numpy()[0] == pytest.approx(24.0)
    rgb = np.stack([edge, edge, np.zeros_like(edge)], -1)[None]
    assert compute_pic(rgb).numpy()[0] == pytest.approx(48.0)  # summed over channels
    as_u8 = (rgb * 255).astype(np.uint8)
    assert compute_pic(as_u8).numpy()[0] == pytest.approx(48.0)


def test_pic_intervals_and_quotas():
    n, intervals, k = 100, 7, 10
    pic_values = np.random.default_rng(4).permutation(n).astype(np.float64)
    s = PicSampler(n, pic_values=pic_values, intervals=intervals, seed=9)
    group = s.interval_of
    sizes = np.bincount(group, minlength=intervals)
    assert sorted(set(sizes.tolist())) == [14, 15] and sizes.sum() == n
    for j in range(intervals - 1):  # equal-count quantiles, ascending PIC
        assert pic_values[group == j].max() < pic_values[group == j + 1].min()
    total = np.zeros(intervals, int)
    for _ in range(intervals):
        q = np.bincount(group[s.draw(k).numpy()], minlength=intervals)
        # k = 10 over 7 intervals: quota 1 each, 3 intervals get a second slot.
        assert sorted(q.tolist()) == [1, 1, 1, 1, 2, 2, 2]
        total += q
    np.testing.assert_array_equal(total, 10)  # round-robin: equal share over 7 batches
    p = s.probabilities().numpy()
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    assert p[group == int(np.argmax(sizes))][0] == pytest.approx(1 / (intervals * sizes.max()))


# ----------------------------------------------------------------------------- PSNR gain


def test_per_patch_psnr_gain():
    hr = np.zeros((3, 4, 4, 3), np.float32)
    sr = np.full_like(hr, 0.1)  # mse 0.01 -> 20 dB
    bic = np.full_like(hr, 0.2)  # mse 0.04 -> 13.98 dB
    sr[1] = 0.0  # identical -> eps -> 100 dB
    sr[2] = -0.5  # clipped to 0 -> identical
    bic[2] = 0.1
    g = per_patch_psnr_gain(sr, hr, bic).numpy()
    np.testing.assert_allclose(g, [20 * math.log10(2), 100 - 10 * math.log10(1 / 0.04), 80.0], rtol=1e-5)


# ----------------------------------------------------------------------------- pool


def _avg_down(hr):
    return tf.nn.avg_pool2d(hr, 2, 2, "VALID")


def test_patch_pool_from_images_and_patches():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 17, 3), dtype=np.uint8), rng.integers(0, 256, (9, 30, 3), dtype=np.uint8)]
    coords = PatchPool.random_coords([im.shape[:2] for im in images], 8, 50, seed=1)
    assert coords[:, 2].min() == 0 and coords[:, 2].max() == 1
    pool = PatchPool.from_images(images, coords, 8, downscale_fn=_avg_down)
    idx = np.array([0, 5, 49, 5])
    lr, hr = pool.gather(tf.constant(idx))
    want = np.stack([images[c[2]][c[0] : c[0] + 8, c[1] : c[1] + 8] for c in coords[idx]])
    np.testing.assert_allclose(hr.numpy(), want / 255.0, atol=1e-7)
    assert lr.shape == (4, 4, 4, 3)
    np.testing.assert_allclose(lr.numpy()[0, 0, 0], want[0, :2, :2].mean(axis=(0, 1)) / 255, rtol=1e-5)
    jit = tf.function(lambda i: pool.gather(i), jit_compile=True)
    np.testing.assert_allclose(jit(tf.constant(idx))[1].numpy(), hr.numpy())
    pre = PatchPool.from_patches(want)
    np.testing.assert_allclose(pre.gather(tf.constant([2]))[1].numpy()[0], want[2] / 255.0)
    pic = pool.compute_pic(batch_size=16)
    np.testing.assert_allclose(pic, compute_pic(pool.gather(tf.range(50))[0]).numpy(), rtol=1e-5)
    with pytest.raises(DataError, match="outside"):
        PatchPool.from_images(images, [[15, 0, 0]], 8)


# ----------------------------------------------------------------------------- distribution

_MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from visionfw.data.sampling import PsnrHistSampler, PicSampler
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        s = PsnrHistSampler(40, bins=4, seed=5)
        pic = PicSampler(40, pic_values=np.arange(40.0), intervals=4, seed=2)
    ref = PsnrHistSampler(40, bins=4, seed=5)   # single device, fed the merged sample

    @tf.function
    def step():
        def fn():
            idx = s.draw(6)
            s.update(idx, tf.cast(idx, tf.float32) * 0.1)
            return idx, pic.draw(3)
        return strategy.run(fn)

    for _ in range(3):
        idx, pidx = step()
        i0, i1 = (v.numpy() for v in strategy.experimental_local_results(idx))
        assert not np.array_equal(i0, i1), (i0, i1)          # replicas draw differently
        merged = np.concatenate([i0, i1])
        ref.update(tf.constant(merged), tf.constant(merged * 0.1, tf.float32))
        p0, p1 = (v.numpy() for v in s.variable.values)
        np.testing.assert_array_equal(p0, p1)                # copies stay identical
        np.testing.assert_allclose(p0, ref.variable.numpy(), rtol=1e-6)
        q = np.concatenate([v.numpy() for v in strategy.experimental_local_results(pidx)]) // 10
        assert sorted(np.bincount(q, minlength=4).tolist()) == [1, 1, 2, 2], q
    print("MIRRORED_OK")
""")


def test_mirrored_strategy_two_logical_cpus():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(
        [sys.executable, "-c", _MIRRORED],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    assert res.returncode == 0 and "MIRRORED_OK" in res.stdout, res.stderr[-3000:]
