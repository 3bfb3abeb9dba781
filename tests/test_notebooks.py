"""The notebooks run top to bottom with small settings (VISIONFW_NOTEBOOK_SMOKE=1) and show real results."""

import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to run the notebooks")
    pytest.importorskip("nbclient", reason="nbclient is needed to run the notebooks")
    pytest.importorskip("ipykernel", reason="ipykernel is needed to run the notebooks")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel: run `python -m ipykernel install --user --name python3`")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        from run_all import execute
    finally:
        sys.path.remove(str(NOTEBOOKS))
    execute(nb, tmp_path, smoke=True, timeout=300)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out["text"])
            elif "data" in out:
                texts.append(out["data"].get("text/markdown", "") or out["data"].get("text/plain", ""))
    return nb, "\n".join(texts)


def _has_png(nb):
    return any("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


def test_quickstart_runs(tmp_path):
    nb, text = _run("quickstart", tmp_path)
    assert "30 steps in" in text
    # the evaluation table names its protocol; the figure is drawn
    assert "Protocol:" in text and "edsr protocol" in text
    m = re.search(r"bicubic ([\d.]+) dB, tiny_espcn ([\d.]+) dB", text)
    assert m and 15.0 < float(m.group(1)) < 60.0 and float(m.group(2)) > 0.0
    assert _has_png(nb)


def test_zoo_tour_runs(tmp_path):
    nb, text = _run("zoo_tour", tmp_path)
    # parameter counts of the zoo (README table) from the models built in the notebook
    assert re.search(r"srcnn_915\s+x2\s+8,129", text)
    assert re.search(r"vdsr\s+x2\s+665,921", text)
    assert re.search(r"edsr_baseline\s+x2\s+1,369,859", text)
    assert "| model | weights | params | GMACs |" in text and "protocol: srcnn" in text
    assert _has_png(nb)


def test_dataset_ranking_runs(tmp_path):
    nb, text = _run("dataset_ranking", tmp_path)
    # the hand-made example: Set14 has a tie (min diff 0); BSDS500 is best nowhere but wins on mean
    # rank (1.5), and BSD200 beats T91 (both 2.0) on mean gain (1.65 > 1.5)
    assert "| Set14 | +1.000 (1) | +0.800 (3) | +1.000 (1) | T91 | 0.000 |" in text
    assert "Overall ranking: BSDS500 > BSD200 > T91" in text
    assert re.search(r"overall ranking: (photos > textures|textures > photos)", text)
    assert _has_png(nb)


@pytest.mark.parametrize("name", ["quickstart", "zoo_tour", "dataset_ranking"])
def test_committed_notebooks_carry_their_outputs(name):
    """The repository's notebooks are saved executed (notebooks/run_all.py), small, and without
    TensorFlow's start-up lines."""
    import json

    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.stat().st_size < 800 * 1024, f"{path.name}: {path.stat().st_size // 1024} kB"
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name} is not saved executed: run notebooks/run_all.py"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))  # top to bottom, once
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "absl::InitializeLog" not in text and "I0000" not in text


def test_run_all_drops_tensorflow_start_up_lines():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", NOTEBOOKS / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "x",
                outputs=[
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=(
                            "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                            "I0000 00:00:1795928209.291640   17690 port.cc:153] oneDNN custom operations are on.\n"
                        ),
                    ),
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text="I0000 00:00:1.2 1 cudart_stub.cc:31] no cuda\ntraining data: 16 images\n",
                    ),
                    nbformat.v4.new_output("stream", name="stdout", text="I0000 is printed by us\n"),
                ],
            )
        ]
    )
    outs = run_all.clean_outputs(nb).cells[0].outputs
    assert [o["text"] for o in outs] == ["training data: 16 images\n", "I0000 is printed by us\n"]
