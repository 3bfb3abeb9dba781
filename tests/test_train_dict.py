"""Your own dict trains: meta read from the model and checked, the default recipe, the README's block."""

import re
import subprocess
import sys

import pytest
from conftest import REPO

import visionfw
from visionfw.train import TrainConfig, resolve_config, train
from visionfw.train.presets import USER_DEFAULT

# the README's tiny_vdsr dict, smaller: a Y-channel, pre-upsampled model with a global residual, no meta
TINY_VDSR = {
    "name": "tiny_vdsr_test",
    "inputs": [(None, None, 1)],
    "defaults": {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same"}},
    "block": [(0, 1), (1, 2)],
    "block_sub": ["conv_relu", "conv_out"],
    "merge": [(0, 2, 3)],
    "merge_sub": ["Add"],
}


@pytest.fixture(autouse=True)
def registry_restored(monkeypatch):
    """The models these tests register are gone afterwards (other tests list the zoo)."""
    from visionfw.zoo import registry

    registry.list_models()  # the zoo loaded first, so the copy holds it
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())


def _register(name, spec):
    visionfw.register_model(name, lambda: dict(spec, name=name))
    return name


def test_a_dict_without_meta_trains_with_the_default_recipe(tmp_path):
    name = _register("tiny_vdsr_test", TINY_VDSR)
    config = TrainConfig(
        model=name,
        scale=2,
        steps=3,
        val_data=[],
        workdir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        lr_patch=8,
        batch_size=2,
    )
    resolved = resolve_config(config)
    assert (resolved.lr, resolved.schedule, resolved.loss) == (USER_DEFAULT["lr"], "cosine", "l1")
    assert resolved.protocol == "srcnn"  # a Y model, read from its 1-channel input
    result = train(config)  # before: "expected axis -1 of input shape to have value 1" inside autograph
    assert result["steps"] == 3
    model = visionfw.build_model(visionfw.get_spec(name))
    from visionfw.tasks.base import checked_sr_meta

    meta = checked_sr_meta(visionfw.get_spec(name), model, 2)
    assert (meta["channels"], meta["upsampled_input"], meta["scale"]) == ("y", True, 2)


@pytest.mark.parametrize(
    "meta, key",
    [
        ({"channels": "rgb"}, "meta['channels']='rgb'"),
        ({"upsampled_input": False}, "meta['upsampled_input']=False"),
        ({"scale": 3}, "meta['scale']=3"),
    ],
)
def test_a_meta_the_model_contradicts_is_one_line_before_the_first_step(tmp_path, meta, key):
    name = _register(f"bad_meta_{len(key)}", dict(TINY_VDSR, meta=meta))
    config = TrainConfig(
        model=name,
        scale=2,
        steps=3,
        val_data=[],
        workdir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        lr_patch=8,
        batch_size=2,
    )
    with pytest.raises(visionfw.SpecError) as err:
        train(config)
    assert key in str(err.value) and "\n" not in str(err.value)
    assert (
        not (tmp_path / "run" / "train_log.csv").exists()
        or "step" not in (tmp_path / "run" / "train_log.csv").read_text()
    )


@pytest.mark.slow
def test_readme_train_your_own_dict_block(tmp_path):
    """The README block as written (1500 steps each on the embedded photos). Measured on 2 shared CPU
    cores: 644 s as a test; tiny_vdsr 35.92 dB vs bicubic 33.66 (Set5 x2, srcnn protocol), espcn_like 34.22 vs 33.67
    (edsr protocol; seed 1: 34.19)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- readme-command: train-dict -->\s*```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "block.py").write_text(block)
    out = subprocess.run([sys.executable, "block.py"], capture_output=True, text=True, timeout=3600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    scores = {
        m[0]: (float(m[1]), float(m[2]))
        for m in re.findall(r"^(\w+): ([\d.]+) dB, bicubic ([\d.]+) dB$", out.stdout, re.M)
    }
    psnr, bicubic = scores["tiny_vdsr"]
    assert psnr >= bicubic + 0.3
    psnr, bicubic = scores["espcn_like"]
    assert psnr >= bicubic + 0.3
    assert not re.search(r"ended -[\d.]+ dB against bicubic", out.stderr)  # no below-bicubic warning


def test_a_run_that_ends_below_bicubic_warns_with_what_usually_helps():
    import types

    from visionfw.train.trainer import warn_below_bicubic

    # measured: conv 16 5x5 -> conv 12 3x3 -> PReLU -> shuffle (no activation between the convolutions)
    below = {"steps": 1500, "val": {"Set5": {"psnr": 33.29, "bicubic_psnr": 33.67}}}
    with pytest.warns(
        UserWarning,
        match=r"'linear_convs' ended -0.38 dB against bicubic on Set5 after 1500 steps "
        r"with the default recipe .* a nonlinearity between its convolutions",
    ):
        warn_below_bicubic(types.SimpleNamespace(model="linear_convs", preset_source=USER_DEFAULT["source"]), below)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        above = {"steps": 1500, "val": {"Set5": {"psnr": 34.0, "bicubic_psnr": 33.67}}}
        warn_below_bicubic(types.SimpleNamespace(model="espcn", preset_source="x"), above)
