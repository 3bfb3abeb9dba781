"""Deep Image Prior: the hourglass, the three data terms, early stopping for denoising, and `visionfw dip`."""

import numpy as np
import pytest

import visionfw
from visionfw import dip
from visionfw.errors import ConfigError, DataError
from visionfw.metrics import psnr_ssim as metrics

# 3 levels of 16 channels: a CPU-sized hourglass for tests (the zoo's has 5 levels of 128)
TINY = {"down": (16,) * 3, "up": (16,) * 3, "skip": (4,) * 3}


@pytest.fixture(scope="module")
def clean(shared_data):
    from visionfw.data.image_io import read_image

    return dip.as_float_image(read_image(shared_data / "benchmark" / "Set5" / "baby.png"))[200:264, 200:264]


def test_hourglass_in_the_zoo():
    info = visionfw.model_info("dip_hourglass")
    assert info.task == "dip" and info.scales == () and "Ulyanov" in info.paper
    spec = visionfw.get_spec("dip_hourglass", **TINY)
    assert spec["meta"]["multiple_of"] == 8
    model = visionfw.build_model(spec)
    y = np.asarray(model(np.random.default_rng(0).random((1, 16, 24, 32), dtype=np.float32)))
    assert y.shape == (1, 16, 24, 3) and y.min() > 0 and y.max() < 1  # sigmoid output
    with pytest.raises(visionfw.SpecError, match="one entry per level"):
        visionfw.get_spec("dip_hourglass", down=(8, 8), up=(8,), skip=(4, 4))


def test_noise_estimate_and_degradations(clean):
    noisy, mask = dip.degrade("denoise", clean, sigma=0.1, seed=1)
    assert mask is None and dip.estimate_noise_sigma(noisy) == pytest.approx(0.1, rel=0.15)
    lr, _ = dip.degrade("sr", clean, scale=4)
    assert lr.shape == (16, 16, 3)
    holes, mask = dip.degrade("inpaint", clean, drop=0.5, seed=1)
    assert mask.shape == (64, 64, 1) and 0.4 < mask.mean() < 0.6
    np.testing.assert_array_equal(holes[mask[..., 0] == 0], 0)
    with pytest.raises(ConfigError, match="needs mask"):
        dip.deep_image_prior("inpaint", holes, steps=1)
    with pytest.raises(ConfigError, match="only used by task='inpaint'"):
        dip.deep_image_prior("sr", lr, mask=mask, steps=1)
    with pytest.raises(DataError, match="does not match the output size"):
        dip.deep_image_prior("sr", lr, scale=4, steps=1, reference=clean[:60])


def test_denoising_stops_early_and_beats_the_noisy_input(clean):
    noisy, _ = dip.degrade("denoise", clean, sigma=25 / 255, seed=0)
    out, history = dip.deep_image_prior(
        "denoise", noisy, steps=500, reference=clean, model_kwargs=TINY, log_every=25, progress=False
    )
    before, after = metrics.psnr(np.clip(noisy, 0, 1), clean), metrics.psnr(out, clean)
    assert history["stopped_at"] is not None and history["stopped_at"] < 500  # stopped by the rule
    assert history["loss"][-1] <= history["noise_sigma"] ** 2
    assert after > before + 5, (before, after, history["psnr"])
    assert out.shape == clean.shape


@pytest.mark.slow  # two DIP fits traced and run: about 25 s of CPU; `python -m pytest -m slow`
def test_super_resolution_and_inpainting_fit_their_data_terms(clean, tmp_path):
    lr, _ = dip.degrade("sr", clean[:60, :44], scale=4)  # 15x11 LR: the noise is padded to 64x48, cropped
    out, history = dip.deep_image_prior(
        "sr", lr, scale=4, steps=30, model_kwargs=TINY, log_every=10, progress=False, tensorboard=str(tmp_path / "tb")
    )
    assert out.shape == (60, 44, 3) and history["stopped_at"] is None and history["steps_run"] == 30
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["psnr"] == [None] * 3  # no reference given
    assert any(p.name.startswith("events") for p in (tmp_path / "tb").iterdir())

    holes, mask = dip.degrade("inpaint", clean, drop=0.5, seed=3)
    out, history = dip.deep_image_prior(
        "inpaint", holes, mask=mask, steps=50, reference=clean, model_kwargs=TINY, log_every=25, progress=False
    )
    missing = mask[..., 0] == 0
    filled = metrics.psnr(out[missing], clean[missing])
    assert filled > metrics.psnr(holes[missing], clean[missing]) + 10, filled


@pytest.mark.slow  # 300 steps of dip_hourglass_small: about 27 s of CPU; `python -m pytest -m slow`
def test_dip_command(clean, tmp_path):
    from visionfw.cli import common
    from visionfw.cli import dip as dip_cli
    from visionfw.data.image_io import write_image

    write_image(tmp_path / "clean.png", clean)
    config, _ = common.parse_args(
        dip_cli.DipConfig,
        [
            "visionfw dip",
            "--task=denoise",
            f"--image={tmp_path / 'clean.png'}",
            "--simulate",
            "--sigma=25",
            "--steps=300",
            f"--output={tmp_path / 'out.png'}",
            "--noprogress",
            "--log_every=25",
            "--model=dip_hourglass_small",
            f"--history={tmp_path / 'history.json'}",
        ],
    )
    assert (config.task, config.steps, config.simulate, config.early_stop) == ("denoise", 300, True, None)
    path, history, scores = dip_cli.run(config)
    assert path.is_file() and scores["psnr"] > scores["baseline"] + 3, scores
    assert history["stopped_at"] is not None
    import json

    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["stopped_at"] == history["stopped_at"] and saved["scores"]["psnr"] == scores["psnr"]
    bad, _ = common.parse_args(dip_cli.DipConfig, ["visionfw dip", "--task=sr", f"--image={tmp_path / 'clean.png'}"])
    with pytest.raises(ConfigError, match="--output"):
        dip_cli.run(bad)


def test_progress_is_plain_lines_when_not_a_terminal(capsys):
    """Off a terminal (a file, a pipe): a first line at once saying what runs, a line after the first
    step (which traces the graph) and one every log_every steps; nothing else."""
    lr = np.random.default_rng(4).random((8, 8, 3)).astype(np.float32)
    dip.deep_image_prior("sr", lr, scale=2, steps=4, model_kwargs=TINY, log_every=2, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("dip sr: fitting") and "output 16x16, 4 steps" in lines[0]
    assert [line.split()[3] for line in lines[1:]] == ["1/4", "2/4", "4/4"]
    assert "ETA" not in lines[1]  # the tracing step gives no rate
