"""The thin CLI: flags derived from the config dataclasses, per-command defaults, errors named as flags,
a quiet console, closed pipes."""

import dataclasses
import importlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from visionfw.cli import COMMANDS, common, parse_command, run
from visionfw.errors import ConfigError
from visionfw.train import TrainConfig

# every command module in one process, in both orders: a flag's default must not depend on it
MODULES = sorted({module for module, _ in COMMANDS.values()})


@pytest.mark.parametrize("order", [MODULES, MODULES[::-1]])
def test_each_command_has_its_own_defaults_whatever_was_imported(order):
    for module in order:
        importlib.import_module(module)
    defaults = {
        "train": ("--model=espcn",),
        "test": (),
        "compare": (),
        "rank-datasets": ("--model=espcn",),
        "downscale": (),
        "upscale": (),
    }
    configs = {cmd: parse_command(cmd, args)[1] for cmd, args in defaults.items()}
    # --scale: train 2, test "the model's own", compare 2, rank-datasets 4, TAD "the model's own"
    assert [configs[c].scale for c in defaults] == [2, None, 2, 4, None, None]
    assert configs["train"].protocol is None and configs["test"].protocol == "auto"
    assert configs["train"].val_data == ["auto"] and configs["test"].test_data == ["Set5", "Set14"]
    assert configs["compare"].models == ["srcnn_915", "fsrcnn", "espcn", "vdsr", "edsr_baseline"]
    assert configs["rank-datasets"].train_sets == ["T91", "BSD200", "BSDS500_test200"]
    # train's config is TrainConfig itself, with the dataclass defaults
    assert configs["train"] == TrainConfig(model="espcn")


def test_train_flags_are_the_config_fields():
    fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)}
    flags = {c.field: c.flag for c in common.cli_fields(TrainConfig)}
    assert set(flags) == fields and flags["jit_compile"] == "xla"
    assert all(c.help for c in common.cli_fields(TrainConfig))
    _, c = parse_command(
        "train",
        [
            "--model=vdsr",
            "--scale=3",
            "--xla",
            "--noaugment",
            "--val_data=",
            "--model_kwargs=depth=5,filters=8",
            "--schedule_kwargs=milestones=10:20",
            "--lr=5e-4",
            "--schedule=multistep",
            '--task_options={"alpha": 5}',
        ],
    )
    assert (c.model, c.scale, c.jit_compile, c.augment, c.val_data, c.lr) == ("vdsr", 3, True, False, [], 5e-4)
    assert c.model_kwargs == {"depth": 5, "filters": 8} and c.schedule_kwargs == {"milestones": [10, 20]}
    assert c.task_options == {"alpha": 5} and c.schedule == "multistep"
    # an unset dict flag whose field defaults to None stays None (the preset fills it)
    assert parse_command("train", ["--model=vdsr"])[1].optimizer_kwargs is None


def test_flag_values_are_checked_and_named():
    _, c = parse_command("test", ["--scale=2,3,4", "--test_data=Set5"])
    assert c.scale == [2, 3, 4] and c.test_data == ["Set5"]
    with pytest.raises(ConfigError, match="--scale=2,x: use int values"):
        parse_command("test", ["--scale=2,x"])
    with pytest.raises(ConfigError, match="--protocol"):
        parse_command("test", ["--protocol=matlab"])
    with pytest.raises(ConfigError, match="Did you mean: steps"):
        parse_command("train", ["--model=espcn", "--stepz=3"])
    with pytest.raises(ConfigError, match="--model is required"):
        parse_command("rank-datasets", [])
    with pytest.raises(ConfigError, match="unexpected arguments"):
        parse_command("compare", ["Set5"])


def test_library_errors_are_shown_with_flag_names(tmp_path, capsys):
    msg = "lr_patch=0 must be a positive integer; steps=0 too; change lr_patch. The model's steps stay."
    assert common.flag_names(msg, TrainConfig) == (
        "--lr_patch=0 must be a positive integer; --steps=0 too; change --lr_patch. The model's steps stay."
    )
    assert common.flag_names("jit_compile=True; see /runs/lr_patch/x and --lr_patch=2", TrainConfig) == (
        "--xla=True; see /runs/lr_patch/x and --lr_patch=2"
    )
    # end to end: the trainer's ConfigError names the field, the command line shows the flag
    status = run(["visionfw", "train", "--model=espcn", "--lr_patch=0", "--val_data=", f"--workdir={tmp_path}"])
    err = capsys.readouterr().err
    assert status == 1 and "visionfw train: error: --lr_patch=0 must be a positive integer." in err


def test_step_delay_is_a_test_hook_not_a_flag(capsys):
    assert "step_delay" not in {f.name for f in dataclasses.fields(TrainConfig)}
    assert run(["visionfw", "train", "--model=espcn", "--step_delay=0.5"]) == 1
    assert "Unknown command line flag 'step_delay'" in capsys.readouterr().err


def test_help_lists_every_flag_with_its_default(capsys):
    assert run(["visionfw", "train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: visionfw train [--flags]")
    assert re.search(
        r"^  --model: The model: a registry name \(see `visionfw models`\), or your own function .*"
        r"path/to/file\.py:function or package\.module:function .*\(required\)$",
        out,
        re.M,
    )
    assert "  --import: Modules to import first" in out
    assert "  --scale: Upscaling factor" in out and "(default: 2)" in out
    assert "  --[no]xla: " in out and "  --protocol: " in out and "one of edsr, srcnn" in out
    assert "preset_source" not in out
    assert run(["visionfw", "rank-datasets", "-h"]) == 0
    assert "  --scale: Upscaling factor. (default: 4)" in capsys.readouterr().out


# TensorFlow / CUDA start-up lines: absl's pre-init warning, oneDNN, cudart stubs, cuInit, CPU features
_TF_NOISE = (
    "absl::InitializeLog",
    "I0000",
    "W0000",
    "E0000",
    "port.cc",
    "cudart_stub",
    "cuInit",
    "cpu_feature_guard",
    "oneDNN",
)
REPO = Path(__file__).resolve().parents[1]


def _cli(args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    return subprocess.run(
        [sys.executable, "-m", "visionfw.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        **kw,
    )


def test_console_shows_only_our_output():
    """No TensorFlow/CUDA start-up line on a command that loads TensorFlow, unless --verbosity asks."""
    proc = _cli(["train", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: visionfw train [--flags]") and "--verbosity=N" in proc.stdout
    noise = [ln for ln in (proc.stdout + proc.stderr).splitlines() if any(t in ln for t in _TF_NOISE)]
    assert not noise, noise
    assert proc.stderr == ""
    models = _cli(["models"])
    assert models.returncode == 0 and models.stderr == ""
    assert models.stdout.splitlines()[0].split()[:3] == ["name", "family", "task"]


def test_verbosity_is_a_flag_of_every_command():
    from visionfw.cli import pop_verbosity

    assert pop_verbosity(["train", "--verbosity=1", "--model=x"]) == (["train", "--model=x"], 1)
    assert pop_verbosity(["test", "--verbosity", "2"]) == (["test"], 2)
    assert pop_verbosity(["models"]) == (["models"], None)
    with pytest.raises(ConfigError, match="--verbosity=x: use an integer"):
        pop_verbosity(["models", "--verbosity=x"])
    assert run(["visionfw", "models", "--verbosity=1", "--pattern=espcn"]) == 0


def test_warnings_are_one_plain_line(capsys):
    from visionfw.cli import _console

    before = warnings.showwarning
    with _console("train", None):
        warnings.warn(
            "Skipping 2 training image(s) smaller than one 64x64 HR patch: a.png (40x10), b.png (9x9)", stacklevel=1
        )
    assert warnings.showwarning is before  # restored: run() is also called in-process
    err = capsys.readouterr().err
    assert err == (
        "visionfw train: warning: Skipping 2 training image(s) smaller than one 64x64 HR patch: "
        "a.png (40x10), b.png (9x9)\n"
    )


def test_flag_names_leave_quoted_code_alone():
    msg = (
        "Set5 not found. Fix: pass --data_dir=DIR; or download it with "
        "visionfw.data.benchmarks.download_dataset('Set5', data_dir). Or data_dir=x, `data_dir`."
    )
    assert common.flag_names(msg, TrainConfig) == (
        "Set5 not found. Fix: pass --data_dir=DIR; or download it with "
        "visionfw.data.benchmarks.download_dataset('Set5', data_dir). Or --data_dir=x, `data_dir`."
    )


def test_closed_pipe_is_one_line_not_a_traceback():
    """`visionfw describe --dot | dot -Tpng` without graphviz: the reader is gone before we write."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "visionfw.cli", "describe", "--model=vdsr", "--dot"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
        text=True,
    )
    proc.stdout.close()  # like a `dot` that is not there
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("visionfw describe: the output pipe was closed")
    assert "graphviz" in lines[0]
