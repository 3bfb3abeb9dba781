"""experiments/tad_color.py end to end on tiny data: the grey baseline model, its training through the
TAD task, the colour evaluation (hand-worked values) and the table with its protocol."""

import csv
import math

import numpy as np
import pytest
from conftest import load_experiment, write_noise_images


@pytest.fixture(scope="module")
def tc():
    return load_experiment("tad_color")


def _baseline():
    from visionfw.model_defs.tad import aetad_color_grey_baseline
    from visionfw.zoo.builder import build_model

    return build_model(aetad_color_grey_baseline())


def test_grey_baseline_is_the_colour_decoder_on_the_8bit_luma():
    import keras

    import visionfw
    from visionfw.tasks import tad

    model = _baseline()
    encoder, decoder = tad.split_model(model)
    colour_decoder = tad.split_model(visionfw.get_model("aetad_color"))[1]
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert count(encoder) == 0  # no learned encoder
    assert count(model) == count(decoder) == count(colour_decoder) == 282_147
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.2, 0.4, 0.6]]], np.float32)
    # 0.299, 0.587, 0.114 and 0.2*0.299 + 0.4*0.587 + 0.6*0.114 = 0.3630, each rounded to 8 bits
    want = np.array([[76, 150], [29, 93]]) / 255.0
    np.testing.assert_allclose(tad.downscale(encoder, rgb)[..., 0], want, atol=1e-7)
    assert all(not isinstance(layer, keras.layers.Lambda) for layer in model._flatten_layers())


def test_colour_evaluation_hand_worked():
    from visionfw.tasks import tad

    red = np.zeros((12, 12, 3), np.uint8)
    red[..., 0] = 255  # luma 0.299 * 255 = 76.245 -> 76
    grey = np.full((12, 12, 3), 90, np.uint8)  # no colour: left out
    r = tad.evaluate_color_tad(_baseline(), [red, grey, grey[..., 0]])
    assert (r["count"], r["skipped"]) == (1, 2)
    # grey replicated vs red: errors (255-76, 76, 76) per pixel
    mse = ((255 - 76) ** 2 + 2 * 76**2) / 3 / 255**2
    assert r["grey_psnr"] == pytest.approx(-10 * math.log10(mse), abs=1e-9)
    assert r["latent_psnr"] == math.inf  # the baseline's grey image is the luma itself
    assert r["protocol"] == tad.COLOR_PROTOCOL and "RGB" in r["protocol"] and "no shave" in r["protocol"]


def test_grey_baseline_trains_through_the_experiment_and_its_loss_falls(tc, tmp_path):
    import tad_thesis

    from visionfw.data.image_io import read_image_uint8
    from visionfw.tasks import tad

    train_data = write_noise_images(tmp_path / "train", 4, 48, seed=1)
    set5 = write_noise_images(tmp_path / "data" / "benchmark" / "Set5", 2, 24, seed=2)

    class Args:
        steps, results, scale, batch, patch, lr, epsilon, seed = 30, str(tmp_path / "runs"), 1, 4, 16, 2e-3, 10.0, 0
        data_dir = str(tmp_path / "data")

    model, options, _ = tc.RUNS["grey_baseline"]
    plan = tad_thesis.train_model(
        Args, model, str(train_data), stop_at=0, run_name="grey_baseline", task_options=options, validations=2
    )
    assert plan == {"steps": 30, "quantize_from": 15, "lr_halved_at": 22}
    with open(tmp_path / "runs" / "grey_baseline" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < 0.7 * losses[0], losses  # L1 of RGB from the luma falls
    # the validation curve is the colour protocol's RGB PSNR (Set5 here: two tiny colour images)
    curve = [(s, p) for s, _, p in tad_thesis.curve(tmp_path / "runs" / "grey_baseline") if p is not None]
    assert [s for s, _ in curve] == [15, 30]
    ours = tc.evaluate(str(tmp_path / "runs" / "grey_baseline" / "model.keras"), Args.data_dir, sets=("Set5",))
    hr = [read_image_uint8(p) for p in sorted(set5.iterdir())]
    assert ours["Set5"]["psnr"] == pytest.approx(curve[-1][1], abs=1e-3)
    assert ours["Set5"]["grey_psnr"] == pytest.approx(tad.evaluate_color_tad(_baseline(), hr)["grey_psnr"])


def test_table_states_the_protocol_and_no_thesis_numbers(tc):
    from visionfw.tasks.tad import COLOR_PROTOCOL

    res = lambda p, g, lat: {"psnr": p, "grey_psnr": g, "latent_psnr": lat, "count": 12}  # noqa: E731
    ours = {"aetad_color": {"Set14": res(30.0, 20.0, 35.5)}, "grey_baseline": {"Set14": res(25.004, 20.0, math.inf)}}
    text = tc.table(ours, {"aetad_color": "100 of 100 planned steps"})
    lines = text.splitlines()
    assert lines[2] == "| Set14 (12) | 30.00 | 25.00 | 20.00 | not available | 35.50 |"
    assert len(lines[: lines.index("")]) == 3  # no Set5 row: not evaluated
    assert COLOR_PROTOCOL in text and "not available to this repository" in text
    assert "colour TAD (aetad_color, R=3): 100 of 100 planned steps" in text
