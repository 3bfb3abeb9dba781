"""One-line errors (not Keras or TensorFlow tracebacks, not hangs) for specs and options at their limits:
deep chains, names Keras refuses, counts that are not positive ints, shuffles and merges whose shapes
cannot match, typed task options, degradation specs too large for the patch or too many passes."""

import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import write_noise_images

from visionfw.degradation import MAX_BLUR_SIZE, MAX_PASSES, check_fits, make_degrader, parse_spec
from visionfw.errors import ConfigError, SpecError
from visionfw.tasks.options import typed_options
from visionfw.zoo.builder import build_model
from visionfw.zoo.spec_format import MAX_SPEC_LINKS


def _chain(n, **kw):
    return dict(
        {"name": "chain", "inputs": [(None, None, 1)], "act": [(i, i + 1) for i in range(n)], "act_sub": ["relu"] * n},
        **kw,
    )


# ----------------------------------------------------------------------------- deep and large specs


def test_chain_past_the_python_recursion_limit_builds_runs_and_clones():
    """Keras makes a Model by a recursive walk, when it builds, clones or loads one (default limit
    1000 frames: 1200 layers raised RecursionError): the limit is raised to what the model needs."""
    import keras

    n = 1500
    model = build_model(_chain(n))
    assert len(model.layers) == n + 1 and sys.getrecursionlimit() > 2 * n
    x = np.array([[[[-1.0], [2.0]]]], np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), [[[[0.0], [2.0]]]])
    np.testing.assert_array_equal(np.asarray(keras.models.clone_model(model)(x)), [[[[0.0], [2.0]]]])


@pytest.mark.slow  # about 2 minutes: saving and loading 1500 layers, and a fresh process
def test_deep_keras_file_loads_in_a_fresh_process(tmp_path):
    import subprocess

    build_model(_chain(1500)).save(tmp_path / "deep.keras")
    code = (
        "import sys, keras; from visionfw.weights.keras_files import verify_keras_file; "
        "verify_keras_file(sys.argv[1]); "
        "print(len(keras.saving.load_model(sys.argv[1]).layers))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "deep.keras")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout.split()[-1] == "1501", done.stderr[-2000:]


@pytest.mark.slow  # about 20-60 s: Keras creates each of the 5000 layers
def test_chain_of_5000_layers_builds():
    t0 = time.perf_counter()
    model = build_model(_chain(MAX_SPEC_LINKS))
    assert len(model.layers) == MAX_SPEC_LINKS + 1
    print(f"5000-layer chain built in {time.perf_counter() - t0:.1f} s")


def test_too_many_links_refused_before_anything_is_built():
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=rf"spec 'chain': has 20000 links; a spec may hold at most {MAX_SPEC_LINKS}"):
        build_model(_chain(20000))
    assert time.perf_counter() - t0 < 2.0


def test_name_with_slash_is_a_spec_error():
    with pytest.raises(SpecError, match=r"key 'name': 'a/b' contains '/', which Keras refuses.*'a_b'"):
        build_model(_chain(1, name="a/b"))


def _shuffle_spec(filters=12, **shuffle_par):
    return {
        "name": "up",
        "conv": [(0, 1)],
        "conv_par": [{"filters": filters, "kernel_size": 3, "padding": "same"}],
        "shuffle": [(1, 2)],
        "shuffle_par": [{"scale": 2, **shuffle_par}],
    }


@pytest.mark.parametrize("value", [True, 0, -1, 2.5, "64"])
def test_filters_must_be_a_positive_int(value):
    with pytest.raises(
        SpecError,
        match=rf"key 'conv_par', link 0: Conv2D filters={value!r} must be a positive int "
        r"\(a bool is refused\)",
    ):
        build_model(_shuffle_spec(filters=value))


def test_filters_checked_in_defaults_and_inside_function_blocks():
    spec = dict(_shuffle_spec(), defaults={"Conv2D": {"filters": True}})
    with pytest.raises(SpecError, match=r"key 'defaults', class 'Conv2D': Conv2D filters=True must be a positive"):
        build_model(spec)
    block = {"name": "b", "block": [(0, 1)], "block_sub": ["conv_relu"], "block_par": [{"filters": False}]}
    with pytest.raises(SpecError, match=r"Conv2D filters=False must be a positive int"):
        build_model(block)


@pytest.mark.parametrize("scale", [-2, 0, True])
def test_shuffle_scale_must_be_a_positive_int(scale):
    with pytest.raises(
        SpecError,
        match=rf"key 'shuffle_par', link 0: PixelShuffle scale={scale!r} must be a "
        r"positive int",
    ):
        build_model(_shuffle_spec(scale=scale))


def test_shuffle_channels_must_divide_by_scale_squared():
    with pytest.raises(
        SpecError,
        match=r"key 'shuffle', link 0 \(PixelShuffle, nodes \(1,\) -> 2\): "
        r"PixelShuffle\(scale=2\) needs channels divisible by 4, but node 1 has 10",
    ):
        build_model(_shuffle_spec(filters=10))
    assert build_model(_shuffle_spec(filters=12)).output_shape == (None, None, None, 3)


def _two_branch(merge, second, inputs=((None, None, 3),)):
    """Node 1: a same-size conv of the input; node 2: ``second`` (a conv's kwargs) of it; then merge."""
    return {
        "name": "m",
        "inputs": list(inputs),
        "conv": [(0, 1), (0, 2)],
        "conv_par": [{"filters": 4, "kernel_size": 3, "padding": "same"}, {"filters": 4, **second}],
        "merge": [(1, 2, 3)],
        "merge_sub": [merge],
    }


@pytest.mark.parametrize("merge", ["Concatenate", "Add", "Multiply"])
def test_merge_of_different_spatial_sizes_refused_with_unknown_sizes(merge):
    """Height and width unknown (None): the strides tell node 2 is half node 1's size."""
    spec = _two_branch(merge, {"kernel_size": 3, "strides": 2, "padding": "same"})
    with pytest.raises(
        SpecError,
        match=rf"key 'merge', link 0 \({merge}, nodes \(1, 2\) -> 3\): {merge} of node 1 "
        r"\(1x the size of input 0\) and node 2 \(1/2x that size\): a merge needs "
        r"one spatial size",
    ):
        build_model(spec)


def test_merges_of_one_size_still_build():
    same = _two_branch("Concatenate", {"kernel_size": 1, "padding": "valid"})  # a 1x1 conv keeps the size
    assert build_model(same).output_shape == (None, None, None, 8)
    # down by a stride-2 conv, back up by a shuffle: the sizes match again
    spec = {
        "name": "ud",
        "conv": [(0, 1), (1, 2), (0, 4)],
        "conv_par": [
            {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"},
            {"filters": 12, "kernel_size": 3, "padding": "same"},
            {"filters": 3, "kernel_size": 3, "padding": "same"},
        ],
        "shuffle": [(2, 3)],
        "shuffle_par": [{"scale": 2}],
        "merge": [(3, 4, 5)],
        "merge_sub": ["Add"],
    }
    assert build_model(spec).output_shape == (None, None, None, 3)
    # valid padding: the sizes are not told exactly, so nothing is refused here (Keras checks static ones)
    valid = _two_branch("Add", {"kernel_size": 3, "padding": "valid"})
    assert build_model(valid).output_shape == (None, None, None, 4)


# ----------------------------------------------------------------------------- task options


def test_typed_options_name_the_option_and_the_type():
    schema = {"alpha": float, "quantize_from": (int, type(None))}
    assert typed_options({"alpha": 5, "quantize_from": None}, schema, "tad") == {"alpha": 5.0, "quantize_from": None}
    assert typed_options({"quantize_from": 100.0}, schema, "tad") == {"quantize_from": 100}
    with pytest.raises(
        ConfigError,
        match=r"^--task_options alpha='abc': tad option 'alpha' must be a number, not a "
        r"string\.$",
    ):
        typed_options({"alpha": "abc"}, schema, "tad")
    with pytest.raises(ConfigError, match=r"alpha=True: tad option 'alpha' must be a number, not true or false"):
        typed_options({"alpha": True}, schema, "tad")
    with pytest.raises(ConfigError, match=r"alpha=nan: tad option 'alpha' must be a finite number"):
        typed_options({"alpha": float("nan")}, schema, "tad")
    with pytest.raises(
        ConfigError,
        match=r"quantize_from=1.5: tad option 'quantize_from' must be an integer or "
        r"none, not a fraction\.$",
    ):
        typed_options({"quantize_from": 1.5}, schema, "tad")
    with pytest.raises(ConfigError, match=r"'gamma' is not a tad option; the options are alpha, quantize_from"):
        typed_options({"gamma": 1}, schema, "tad")


def test_tad_task_options_from_the_command_line_text():
    from visionfw.cli.common import parse_kv
    from visionfw.tasks.tad import TADTask

    config = SimpleNamespace(task_options=parse_kv("alpha=abc", "task_options"), scale=2, model=None)
    with pytest.raises(ConfigError, match=r"--task_options alpha='abc': tad option 'alpha' must be a number"):
        TADTask(config)
    config.task_options = parse_kv("alpha=5,beta=1,epsilon=10,quantize_from=100", "task_options")
    objective = TADTask(config).objective
    assert (objective.alpha, objective.beta, objective.epsilon, objective.quantize_from) == (5.0, 1.0, 10.0, 100)


# ----------------------------------------------------------------------------- degradation limits


def test_passes_capped_at_parse_time():
    t0 = time.perf_counter()
    for text in ("down(methods=bicubic)@passes=1000000", "down(methods=bicubic)@passes=" + "9" * 5000):
        with pytest.raises(ConfigError, match=rf"passes=.*(at most|1 <= N <=) {MAX_PASSES}"):
            parse_spec(text)
    assert time.perf_counter() - t0 < 1.0
    assert parse_spec(f"down(methods=bicubic)@passes={MAX_PASSES}").passes == MAX_PASSES


def test_blur_size_capped_and_checked_against_the_patch_before_tracing():
    with pytest.raises(
        ConfigError,
        match=rf"blur\(size=...\): kernel size 201 must be an odd integer from 3 to "
        rf"{MAX_BLUR_SIZE}",
    ):
        parse_spec("blur(size=201)+down(methods=bicubic)")
    spec = "blur(size=31)+down(methods=bicubic)"
    message = r"a 31x31 blur kernel needs images larger than 15 pixels, but the 14x14 HR batch at scale 2"
    with pytest.raises(ConfigError, match=message):
        check_fits(spec, 2, 14)
    with pytest.raises(ConfigError, match=message):  # raised by make_degrader itself, not while tracing
        make_degrader(spec, 2, seed=0, hr_size=14)
    check_fits(spec, 2, 64)  # a 64 patch fits a 31 kernel
    assert callable(make_degrader(spec, 2, seed=0, hr_size=64))


def test_training_config_refuses_a_blur_wider_than_the_patch(tmp_path):
    from visionfw.train import TrainConfig, resolve_config

    images = write_noise_images(tmp_path / "images", 2, 32, seed=0)
    config = TrainConfig(
        model="espcn",
        scale=2,
        train_data=str(images),
        val_data=[],
        steps=2,
        batch_size=2,
        lr_patch=8,
        workdir=str(tmp_path / "run"),
        degradation="blur(size=41)+down(methods=bicubic)",
    )
    with pytest.raises(ConfigError, match=r"a 41x41 blur kernel needs images larger than 20 pixels, but the 16x16 HR"):
        resolve_config(config)
    assert not (tmp_path / "run").exists()
