"""Colorization (Zhang et al. ECCV 2016): Lab, gamut bins, soft encoding, rebalancing, decoding, metrics, nets."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import visionfw
from visionfw.tasks import colorization as C


def test_lab_of_reference_colours():
    rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    lab = C.rgb_to_lab(rgb)
    # standard sRGB/D65 values (e.g. Lindbloom's calculator)
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.02)


def test_lab_round_trip_numpy_and_tf_agree():
    rgb = np.random.default_rng(0).random((2, 5, 7, 3)).astype(np.float32)
    lab_np = C.rgb_to_lab(rgb)
    lab_tf = C.rgb_to_lab(tf.constant(rgb)).numpy()
    np.testing.assert_allclose(lab_np, lab_tf, atol=2e-3)
    np.testing.assert_allclose(C.lab_to_rgb(lab_np), rgb, atol=1e-4)
    np.testing.assert_allclose(C.lab_to_rgb(tf.constant(lab_np)).numpy(), rgb, atol=1e-3)


def test_in_gamut_bins():
    """Q = 261 cells of the ab grid (10) hold an 8-bit sRGB colour; the paper's looser set has 313."""
    bins = C.ab_bins()
    assert bins.shape == (261, 2) == (C.N_AB_BINS, 2)
    assert np.all(bins % 10 == 0)
    assert [0, 0] in bins.tolist()
    assert bins[:, 0].min() == -90 and bins[:, 0].max() == 100
    assert bins[:, 1].min() == -110 and bins[:, 1].max() == 90
    # saturated sRGB primaries land in kept cells
    red_ab = C.rgb_to_lab(np.array([1.0, 0.0, 0.0], np.float32))[1:]
    assert (np.round(red_ab / 10) * 10).tolist() in bins.tolist()


def test_soft_encoding_hand_worked():
    bins = np.array([[0, 0], [10, 0], [-10, 0], [0, 10], [0, -10], [10, 10], [50, 50]], np.float32)
    enc = C.soft_encode_np(np.array([[0.0, 0.0]]), bins)[0]
    # 5 nearest: the centre (d=0) and its 4 neighbours (d=10): weights 1 : exp(-100/50)
    centre = 1.0 / (1.0 + 4.0 * math.exp(-2.0))
    np.testing.assert_allclose(enc[:5], [centre] + [(1 - centre) / 4] * 4, rtol=1e-5)
    assert enc[5] == 0 and enc[6] == 0
    enc_tf = C.soft_encode(tf.constant([[0.0, 0.0], [3.0, 4.0]]), bins).numpy()
    np.testing.assert_allclose(enc_tf, C.soft_encode_np(np.array([[0.0, 0.0], [3.0, 4.0]]), bins), atol=1e-6)
    np.testing.assert_allclose(enc_tf.sum(-1), 1.0, atol=1e-6)


def test_rebalance_weights_hand_worked():
    w = C.rebalance_weights(np.array([0.5, 0.5, 0.0, 0.0]), lam=0.5)
    # raw 1/(0.25 + 0.125) for seen classes, 1/0.125 for unseen; normalised by sum(p w) = 2.667
    np.testing.assert_allclose(w, [1.0, 1.0, 3.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(C.rebalance_weights(np.full(5, 0.2)), np.ones(5), rtol=1e-6)


def test_empirical_distribution_is_smoothed_and_normalised():
    bins = C.ab_bins()
    p = C.empirical_distribution(np.zeros((100, 2)), bins)
    assert abs(p.sum() - 1) < 1e-9
    i0 = bins.tolist().index([0, 0])
    i1 = bins.tolist().index([10, 0])
    # neighbours of the only observed bin get exp(-100/50) of its mass before normalisation
    np.testing.assert_allclose(p[i1] / p[i0], math.exp(-2.0), rtol=1e-6)


def test_annealed_mean():
    bins = np.array([[0, 0], [10, 0]], np.float32)
    np.testing.assert_allclose(C.annealed_mean(np.array([0.5, 0.5]), bins), [5.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(C.annealed_mean(np.array([0.6, 0.4]), bins, t=1.0), [4.0, 0.0], atol=1e-5)
    a, b = 0.6 ** (1 / 0.38), 0.4 ** (1 / 0.38)
    np.testing.assert_allclose(C.annealed_mean(np.array([0.6, 0.4]), bins), [10 * b / (a + b), 0.0], atol=1e-4)
    tf_out = C.annealed_mean(tf.constant([[0.6, 0.4]]), bins).numpy()[0]
    np.testing.assert_allclose(tf_out, [10 * b / (a + b), 0.0], atol=1e-4)


def test_ab_auc():
    ab = np.zeros((4, 4, 2))
    assert C.ab_auc(ab, ab) == 1.0
    off = ab + np.array([6.0, 8.0])  # error 10 everywhere: accurate for t = 10..150
    np.testing.assert_allclose(C.ab_auc(off, ab), 141 / 151)
    assert C.ab_auc(ab + 200, ab) == 0.0


def test_rgb_psnr():
    a = np.zeros((4, 4, 3))
    b = a.copy()
    b[0, 0, 0] = 1.0
    np.testing.assert_allclose(C.rgb_psnr(a, b), 10 * math.log10(255**2 / (255**2 / 48)))


def test_network_shapes_and_counts():
    model = visionfw.get_model("colorization_small")
    x = np.random.default_rng(1).random((2, 32, 40, 1)).astype(np.float32) * 100
    out = model(x)
    assert out.shape == (2, 8, 10, 261)
    np.testing.assert_allclose(np.asarray(out).sum(-1), 1.0, atol=1e-5)
    full = visionfw.get_spec("colorization_eccv16", n_bins=313)
    assert full["meta"]["n_bins"] == 313
    dilations = [p.get("dilation_rate", 1) for p in full["conv_par"]]
    assert dilations.count(2) == 6 and len(full["norm"]) == 7


def test_loss_trains_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    model = visionfw.get_model("colorization_small")
    bins = C.ab_bins()
    rng = np.random.default_rng(2)
    images = [rng.random((40, 40, 3)).astype(np.float32) for _ in range(2)]
    p = C.empirical_distribution(C.sample_ab(images), bins)
    obj = C.ColorizeObjective(bins, C.rebalance_weights(p))
    batch = tf.constant(np.stack([im[:32, :32] for im in images]))
    loss0, _ = obj.compute_loss(model, batch, True)
    assert np.isfinite(float(loss0)) and float(loss0) > 0
    opt = keras.optimizers.SGD(0.05)
    for _ in range(3):  # eager steps on one batch: the weighted cross-entropy goes down
        with tf.GradientTape() as tape:
            loss, _ = obj.compute_loss(model, batch, True)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    loss1, _ = obj.compute_loss(model, batch, True)
    assert float(loss1) < float(loss0)
    out = C.colorize(model, images[0][:32, :32])
    assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 1
    model.save(tmp_path / "c.keras")
    loaded = keras.saving.load_model(tmp_path / "c.keras", safe_mode=True)
    x = np.full((1, 16, 16, 1), 50.0, np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))


def test_nearest_bin_matches_exhaustive_search():
    bins = C.ab_bins()
    ab = np.random.default_rng(3).uniform(-130, 130, (3000, 2)).astype(np.float32)
    fast = C.nearest_bin(ab, bins)
    d_fast = ((ab - bins[fast]) ** 2).sum(-1)
    d_all = ((ab[:, None] - bins) ** 2).sum(-1).min(-1)
    np.testing.assert_allclose(d_fast, d_all, rtol=1e-6)


def test_cli_colorize_trains_on_the_embedded_photos_and_logs_its_loss(tmp_path, capsys):
    """`visionfw train --task=colorize` without --train_data: the embedded photos (it raised TypeError);
    the task's cross-entropy is logged next to the loss."""
    import csv

    from visionfw.cli import run

    workdir = tmp_path / "run"
    status = run(
        [
            "visionfw",
            "train",
            "--task=colorize",
            "--model=colorization_small",
            "--steps=2",
            "--batch_size=2",
            "--lr_patch=16",
            "--log_every=1",
            "--val_data=",
            f"--workdir={workdir}",
            "--notensorboard",
            "--noprogress",
            "--data_options=patches_per_image=1",
        ]
    )
    assert status == 0, capsys.readouterr().err[-2000:]
    assert "model:" in capsys.readouterr().out
    with open(workdir / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert list(rows[0])[:6] == ["step", "loss", "lr", "time", "steps_per_sec", "train_ce"]
    for r in rows:
        assert np.isfinite(float(r["loss"])) and np.isfinite(float(r["train_ce"])) and float(r["train_ce"]) > 0
    assert keras.saving.load_model(workdir / "model.keras", safe_mode=True).output_shape[-1] == C.N_AB_BINS


def test_official_bins_contain_every_derived_bin(shared_data):
    official = C.ab_bins("official", data_dir=shared_data)
    assert official.shape == (313, 2)
    assert official[:, 0].min() == -90 and official[:, 0].max() == 100
    assert official[:, 1].min() == -110 and official[:, 1].max() == 100
    derived = {tuple(p) for p in C.ab_bins().tolist()}
    assert len(derived) == 261 and derived <= {tuple(p) for p in official.tolist()}
    assert len(C.bins_for(313, data_dir=shared_data)) == 313 and len(C.bins_for(261)) == 261
    with pytest.raises(visionfw.errors.ConfigError, match="matches neither"):
        C.bins_for(300)


def test_missing_official_bins_list_the_places(tmp_path, monkeypatch):
    from visionfw.data import paths

    monkeypatch.chdir(tmp_path)  # no ./data, no ../shared/data, no checkout, no ~/.visionfw here
    monkeypatch.setattr(paths, "_checkout", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in (paths.ENV, paths.ENV_ALIAS):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(
        visionfw.errors.DataError,
        match=r"official 313 ab bins \(pts_in_hull.npy\) not found\. "
        r"Looked in: .*--data_dir",
    ):
        C.ab_bins("official", data_dir=tmp_path / "nowhere")
