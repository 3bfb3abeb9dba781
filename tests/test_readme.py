"""The README's dict example runs as written."""
import re
import subprocess
import sys

from conftest import REPO


def _readme_example():
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- readme-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "README has lost its tested example block"
    return match.group(1)


def test_readme_dict_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_readme_example())
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(1, 24, 24, 1)" in out.stdout
    assert "tiny_vdsr" in out.stdout and "conv_relu" in out.stdout


def test_cli_models_and_describe():
    out = subprocess.run([sys.executable, "-m", "visionfw.cli", "models"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ["srcnn_915", "fsrcnn", "espcn", "vdsr", "srresnet", "edsr_baseline", "edsr", "rcan"]:
        assert re.search(rf"^{name}\s", out.stdout, re.M), name
    out = subprocess.run([sys.executable, "-m", "visionfw.cli", "describe", "--model=edsr_baseline", "--scale=2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1,369,859" in out.stdout


def test_cli_unknown_model_is_one_line_error():
    out = subprocess.run([sys.executable, "-m", "visionfw.cli", "describe", "--model=edsr_basline"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "visionfw describe: error: unknown model 'edsr_basline'" in out.stderr
    assert "Traceback" not in out.stderr
