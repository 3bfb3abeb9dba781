"""Helpers of experiments/tad_thesis.py: training-set choice, step plan, the table beside the thesis' (no training)."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_experiment


@pytest.fixture(scope="module")
def tt():
    return load_experiment("tad_thesis")


def _images(folder, names):
    from visionfw.data.image_io import write_image

    for name in names:
        write_image(folder / name, np.zeros((8, 8, 3), np.uint8))


def test_training_set_links_t91_and_bsd200_without_div2k(tt, tmp_path):
    _images(tmp_path / "data" / "train" / "T91", ["t1.png", "t2.png"])
    _images(tmp_path / "data" / "train" / "BSD200", ["2092.png"])
    folder, described = tt.training_set(tmp_path / "results", data_dir=str(tmp_path / "data"))
    links = sorted(Path(folder).iterdir())
    assert [p.name for p in links] == ["BSD200_2092.png", "T91_t1.png", "T91_t2.png"]
    assert all(p.is_symlink() for p in links)  # nothing copied
    assert described == "T91 + BSD200 (3 images; no DIV2K on the data search path)"
    # again: the same folder, no error on existing links
    assert tt.training_set(tmp_path / "results", data_dir=str(tmp_path / "data"))[0] == folder
    _images(tmp_path / "data" / "train" / "DIV2K", ["0001.png"])
    assert tt.training_set(tmp_path / "results", data_dir=str(tmp_path / "data")) == (
        str(tmp_path / "data" / "train" / "DIV2K"),
        "DIV2K",
    )


def test_table_puts_ours_beside_the_thesis(tt, tmp_path):
    ours = {
        "aetad_very_small": {
            "Set5": {"psnr": 29.5, "bicubic_psnr": 28.429},
            "Set14": {"psnr": 26.25, "bicubic_psnr": 25.994},
        }
    }
    text = tt.table(ours, {"aetad_very_small": "1000 of 1000 planned steps"})
    lines = text.splitlines()
    assert lines[0] == (
        "| dataset | Kim et al. | aetad_skip2 | aetad_very_small | ours: aetad_very_small | bicubic (ours) |"
    )
    assert lines[2] == "| Set5 | 31.810 | 31.814 | 31.102 | 29.500 | 28.429 |"
    assert lines[3] == "| Set14 | 28.630 | 28.665 | 28.334 | 26.250 | 25.994 |"
    assert lines[5] == "| Urban100 | 26.630 | 24.156 | 23.084 | absent | absent |"
    assert "ours aetad_very_small: 1000 of 1000 planned steps" in text


def test_a_step_plan_quantises_from_half_and_halves_lr_at_three_quarters(tt, tmp_path, monkeypatch):
    import visionfw.train

    class Args:
        steps, results = 1000, str(tmp_path)

    trained = []

    def fake_config(
        args, model, workdir, data, steps, quantize_from, lr_halved_at=None, lr=None, val_every=100, task_options=None
    ):
        trained.append((steps, quantize_from, lr_halved_at, val_every))

    monkeypatch.setattr(tt, "config_for", fake_config)
    monkeypatch.setattr(visionfw.train, "train", lambda config: None)
    plan = tt.train_model(Args, "m", "data", stop_at=0)
    assert plan == {"steps": 1000, "quantize_from": 500, "lr_halved_at": 750}
    assert trained == [(1000, 500, 750, 83)]
    assert json.loads((tmp_path / "m" / "plan.json").read_text()) == plan
    Args.steps = 2000  # a larger --steps continues the same plan
    assert tt.train_model(Args, "m", "data", stop_at=0)["steps"] == 2000
    assert trained[-1] == (2000, 500, 750, 166)
