"""The README's examples run as written."""

import re
import runpy
import subprocess
import sys

from conftest import REPO


def _readme_example(name):
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- readme-example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has lost its tested example block {name!r}"
    return match.group(1)


def _run(tmp_path, monkeypatch, capsys, name):
    """Runs the README block ``name`` as a script (``__main__``) from an empty folder; returns its stdout.

    In this process, as the own-model example is run: the examples are plain Python on the public API,
    and a fresh interpreter per example would cost a TensorFlow import each (the fresh-process
    guarantees are tested in test_saved_models.py and test_fast_failure.py)."""
    script = tmp_path / f"{name}.py"
    script.write_text(_readme_example(name))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out


def test_readme_graph_example_runs(tmp_path, monkeypatch, capsys):
    stdout = _run(tmp_path, monkeypatch, capsys, "graph")
    assert "(1, 24, 24, 1)" in stdout
    assert "tiny_vdsr" in stdout and "conv_relu" in stdout


def test_readme_dict_example_is_the_same_model(tmp_path, monkeypatch, capsys):
    stdout = _run(tmp_path, monkeypatch, capsys, "dict")
    assert stdout.strip().splitlines()[-1] == "9585"  # 160 + 4 x 2,320 + 145 weights and biases


def test_readme_five_letter_example_builds_identically(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, monkeypatch, capsys, "five-letter").strip().splitlines()[-1] == "(1, 16, 16, 3) True"


def test_cli_models_and_describe(capsys):
    from visionfw.cli import run

    out = subprocess.run([sys.executable, "-m", "visionfw.cli", "models"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ["srcnn_915", "fsrcnn", "espcn", "vdsr", "srresnet", "edsr_baseline", "edsr", "rcan"]:
        assert re.search(rf"^{name}\s", out.stdout, re.M), name
    # describe builds the model (TensorFlow): in this process, through the console script's entry point
    capsys.readouterr()
    assert run(["visionfw", "describe", "--model=edsr_baseline", "--scale=2"]) == 0
    assert "1,369,859" in capsys.readouterr().out


def test_cli_unknown_model_is_one_line_error():
    out = subprocess.run(
        [sys.executable, "-m", "visionfw.cli", "describe", "--model=edsr_basline"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1
    assert "visionfw describe: error: unknown model 'edsr_basline'" in out.stderr
    assert "Traceback" not in out.stderr
