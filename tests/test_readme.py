"""The README's examples run as written."""

import re
import subprocess
import sys

from conftest import REPO


def _readme_example(name):
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- readme-example: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has lost its tested example block {name!r}"
    return match.group(1)


def _run(tmp_path, name):
    script = tmp_path / f"{name}.py"
    script.write_text(_readme_example(name))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_readme_graph_example_runs(tmp_path):
    stdout = _run(tmp_path, "graph")
    assert "(1, 24, 24, 1)" in stdout
    assert "tiny_vdsr" in stdout and "conv_relu" in stdout


def test_readme_dict_example_is_the_same_model(tmp_path):
    stdout = _run(tmp_path, "dict")
    assert stdout.strip().splitlines()[-1] == "9585"  # 160 + 4 x 2,320 + 145 weights and biases


def test_readme_five_letter_example_builds_identically(tmp_path):
    assert _run(tmp_path, "five-letter").strip().splitlines()[-1] == "(1, 16, 16, 3) True"


def test_cli_models_and_describe():
    out = subprocess.run([sys.executable, "-m", "visionfw.cli", "models"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ["srcnn_915", "fsrcnn", "espcn", "vdsr", "srresnet", "edsr_baseline", "edsr", "rcan"]:
        assert re.search(rf"^{name}\s", out.stdout, re.M), name
    out = subprocess.run(
        [sys.executable, "-m", "visionfw.cli", "describe", "--model=edsr_baseline", "--scale=2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1,369,859" in out.stdout


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
