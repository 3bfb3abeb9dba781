"""`visionfw train --model=file.py:function`: your own function trains from the command line with the
default recipe, resumes, and the saved model evaluates with the same reference; `--import` registers
your layers (and models) first."""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, write_noise_images

from visionfw.cli import run
from visionfw.train import TrainConfig, resolve_config
from visionfw.train.presets import USER_DEFAULT

MY_MODELS = '''
from visionfw.zoo.graph import Graph


def my_net(scale=2, filters=8):
    g = Graph("my_net", inputs=[(None, None, 3)], defaults={"Conv2D": {"padding": "same"}})
    x = g.conv(g.input, filters, 3, activation="relu")
    g.shuffle(g.conv(x, 3 * scale * scale, 3), scale)
    return g.spec()


def gained_net(filters=4):
    """Uses a layer that my_layers.py registers: it builds only once that module is imported."""
    g = Graph("gained_net", inputs=[(None, None, 1)], defaults={"Conv2D": {"padding": "same"}})
    x = g.layer("TrainRefGain", g.conv(g.conv(g.input, filters, 3, activation="relu"), 1, 3))
    g.add(g.input, x)
    return g.spec()


def tiny_vdsr():
    return {"name": "tiny_vdsr", "inputs": [(None, None, 1)],
            "defaults": {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same"}},
            "block": [(0, 1), (1, 2)], "block_sub": ["conv_relu", "conv_out"], "merge": [(0, 2, 3)],
            "merge_sub": ["Add"]}
'''

MY_LAYERS = '''
import keras
import visionfw


@visionfw.register_layer
class TrainRefGain(keras.layers.Layer):
    """A layer of the user's own: multiplies by 0.5."""

    def call(self, x):
        return 0.5 * x
'''

# a few steps on tiny patches, validated on the project's own images
SMALL = ["--lr_patch=8", "--batch_size=2", "--notensorboard", "--noprogress", "--val_every=0", "--ckpt_every=0"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(MY_MODELS))
    (tmp_path / "my_layers.py").write_text(textwrap.dedent(MY_LAYERS))
    write_noise_images(tmp_path / "train", 3, 40, seed=0)
    write_noise_images(tmp_path / "val", 2, 24, seed=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _log_steps(workdir):
    return [int(line.split(",")[0]) for line in (workdir / "train_log.csv").read_text().splitlines()[1:]]


def test_cli_trains_a_users_function_resumes_and_tests_it(project, capsys):
    ref = "my_models.py:my_net"
    args = [f"--model={ref}", "--model_kwargs=filters=4", "--scale=2", "--train_data=train", "--val_data=val", *SMALL]
    out = subprocess.run(
        [sys.executable, "-m", "visionfw.cli", "train", "--steps=3", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    workdir = project / "runs" / "my_net_x2"  # the function names the default workdir
    assert f"model: {os.path.join('runs', 'my_net_x2', 'model.keras')}" in out.stdout
    config = json.loads((workdir / "config.json").read_text())
    assert (config["model"], config["model_kwargs"]) == (ref, {"filters": 4})
    # no family: the default recipe, with no flag for it
    assert (config["lr"], config["loss"], config["preset_source"]) == (USER_DEFAULT["lr"], "l1", USER_DEFAULT["source"])
    # the same command with more steps resumes from step 3 (its log row is kept)
    assert run(["visionfw", "train", "--steps=5", *args]) == 0
    assert _log_steps(workdir) == [3, 5]
    trained = re.search(r"val val: PSNR ([\d.]+) dB", capsys.readouterr().out).group(1)
    # the reference recorded is the one that checks a resume: other kwargs are another model
    assert run(["visionfw", "train", "--steps=7", *args[:1], "--model_kwargs=filters=6", *args[2:]]) == 1
    assert "written with --model_kwargs={'filters': 4}" in capsys.readouterr().err
    # the saved model evaluates with the same reference, to the number validation gave
    assert (
        run(
            [
                "visionfw",
                "test",
                f"--model={ref}",
                "--model_kwargs=filters=4",
                "--scale=2",
                "--protocol=edsr",
                f"--weights={workdir / 'model.keras'}",
                "--test_data=val",
                "--noprogress",
                f"--results={project / 'r.json'}",
            ]
        )
        == 0
    )
    psnr = json.loads((project / "r.json").read_text())["results"]["val"]["psnr"]
    assert f"{psnr:.3f}" == trained


def test_import_registers_a_users_layer_before_the_model_builds(project, capsys):
    args = [
        "train",
        "--model=my_models.py:gained_net",
        "--scale=2",
        "--steps=2",
        "--train_data=train",
        "--val_data=",
        *SMALL,
    ]
    assert run(["visionfw", *args]) == 1
    assert "unknown class 'TrainRefGain'" in capsys.readouterr().err
    assert run(["visionfw", *args, "--import=my_layers.py"]) == 0
    model = project / "runs" / "gained_net_x2" / "model.keras"
    assert json.loads((model.parent / "config.json").read_text())["imports"] == ["my_layers.py"]
    # the .keras file loads where the layer's module is imported
    assert (
        run(
            [
                "visionfw",
                "test",
                f"--weights={model}",
                "--import=my_layers.py",
                "--scale=2",
                "--test_data=val",
                "--noprogress",
            ]
        )
        == 0
    )
    assert "| val | x2 | 2 |" in capsys.readouterr().out


def test_import_of_a_module_that_registers_a_model_gives_its_family_recipe(project, monkeypatch):
    from visionfw.zoo import registry

    registry.list_models()
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())  # the model registered here goes after
    (project / "registers.py").write_text(
        "import visionfw\nfrom my_models import my_net\n"
        "visionfw.register_model('my_espcn_like', my_net, family='espcn')\n"
    )
    monkeypatch.syspath_prepend(str(project))
    resolved = resolve_config(
        TrainConfig(model="my_espcn_like", imports=["registers.py"], steps=3, workdir=str(project / "run"), val_data=[])
    )
    espcn = resolve_config(TrainConfig(model="espcn", steps=3, workdir=str(project / "run"), val_data=[]))
    assert (
        (resolved.lr, resolved.preset_source)
        == (espcn.lr, espcn.preset_source)
        != (USER_DEFAULT["lr"], USER_DEFAULT["source"])
    )


def test_readme_cli_command_trains_the_function_in_my_models(project):
    """The README's command as written (a few steps on tiny patches appended: the last flag wins)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Train your own dict", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"```bash\n(visionfw train --model=my_models\.py:\S+.*?)\n```", section, re.S).group(1)
    argv = shlex.split(command)
    assert run([*argv, "--steps=2", "--train_data=train", "--val_data=", *SMALL]) == 0
    workdir = project / next(a.split("=", 1)[1] for a in argv if a.startswith("--workdir="))
    assert (workdir / "model.keras").is_file()
    assert json.loads((workdir / "config.json").read_text())["model"] == "my_models.py:tiny_vdsr"


def test_a_missing_model_file_fails_before_tensorflow(project):
    code = (
        "import sys\nfrom visionfw.cli import run\nstatus = run(['visionfw', 'test', '--model=nope.py:f'])\n"
        "print(status, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "False"] and "--model=nope.py: no such file." in out.stderr
