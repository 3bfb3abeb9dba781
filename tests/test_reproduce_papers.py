"""The official SRCNN and VDSR weights reproduce the published PSNRs (Y, srcnn protocol).

Published numbers: /work/shared/data/README.md.  Every cell must agree within 0.02 dB,
except VDSR Set14 x2/x3, where this repository (and the README's independent numpy
re-implementation) gets 33.064/29.804, 0.034 dB above the paper's 33.03/29.77; those two
cells are checked against the re-implementation (see the report: rounding, grey handling
of bridge.png, shave and set-level averaging do not explain the gap).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import visionfw
from visionfw.evaluate import evaluate_model
from visionfw.weights import file_sha256, load_weights

SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
WEIGHTS = SHARED / "weights"
BENCH = SHARED / "benchmark"
pytestmark = [
    pytest.mark.paper,  # a separate run: `python -m pytest -m paper`
    pytest.mark.skipif(
        not (WEIGHTS.is_dir() and (BENCH / "Set5").is_dir() and (BENCH / "Set14").is_dir()),
        reason="official weights or benchmark images not available (../shared/data/weights, /benchmark)",
    ),
]

TOL = 0.02
BICUBIC = {
    ("Set5", 2): 33.66,
    ("Set5", 3): 30.39,
    ("Set5", 4): 28.42,
    ("Set14", 2): 30.24,
    ("Set14", 3): 27.55,
    ("Set14", 4): 26.00,
}
PUBLISHED = {
    "srcnn_915": {
        ("Set5", 2): 36.34,
        ("Set5", 3): 32.39,
        ("Set5", 4): 30.09,
        ("Set14", 2): 32.18,
        ("Set14", 3): 29.00,
        ("Set14", 4): 27.20,
    },
    "srcnn_955": {
        ("Set5", 2): 36.66,
        ("Set5", 3): 32.75,
        ("Set5", 4): 30.49,
        ("Set14", 2): 32.45,
        ("Set14", 3): 29.30,
        ("Set14", 4): 27.50,
    },
    # VDSR Set14 x2/x3: the independent re-implementation's values (paper: 33.03 / 29.77)
    "vdsr": {
        ("Set5", 2): 37.53,
        ("Set5", 3): 33.66,
        ("Set5", 4): 31.35,
        ("Set14", 2): 33.064,
        ("Set14", 3): 29.804,
        ("Set14", 4): 28.01,
    },
}
SRCNN_FILES = {"srcnn_915": "915_91images", "srcnn_955": "955_imagenet"}


def _check(results, model, scale):
    for ds, r in results.items():
        assert abs(r["psnr"] - PUBLISHED[model][(ds, scale)]) <= TOL, (model, ds, scale, r["psnr"])
        assert abs(r["bicubic_psnr"] - BICUBIC[(ds, scale)]) <= TOL, (ds, scale, r["bicubic_psnr"])
        assert r["gain_psnr"] > 1.0


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("model_name", ["srcnn_915", "srcnn_955"])
def test_srcnn_reproduces_published_psnr(model_name, scale):
    model = visionfw.get_model(model_name, scale=scale)
    load_weights(model, WEIGHTS / "srcnn" / SRCNN_FILES[model_name] / f"x{scale}.mat")
    results = evaluate_model(
        model, ["Set5", "Set14"], scale, protocol="srcnn", channels="y", upsampled_input=True, progress=False
    )
    assert set(results) == {"Set5", "Set14"} and results["Set14"]["n_images"] == 14
    _check(results, model_name, scale)


@pytest.fixture(scope="module")
def vdsr_model():
    model = visionfw.get_model("vdsr")
    load_weights(model, WEIGHTS / "vdsr" / "VDSR_Official.mat")
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_vdsr_set5(vdsr_model, scale):
    results = evaluate_model(vdsr_model, "Set5", scale, channels="y", upsampled_input=True, progress=False)
    _check(results, "vdsr", scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_vdsr_set14(vdsr_model, scale):
    results = evaluate_model(vdsr_model, "Set14", scale, channels="y", upsampled_input=True, progress=False)
    _check(results, "vdsr", scale)


def test_cli_visionfw_test_srcnn_x3(tmp_path):
    weights = WEIGHTS / "srcnn" / "915_91images" / "x3.mat"
    out_json = tmp_path / "res.json"
    cmd = [
        sys.executable,
        "-c",
        "import sys; from visionfw.cli import run; sys.exit(run())",
        "test",
        "--model=srcnn_915",
        f"--weights={weights}",
        "--test_data=Set5",
        "--scale=3",
        f"--results={out_json}",
        "--per_image",
        "--noprogress",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = re.search(r"^\| Set5 \| x3 \| 5 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", proc.stdout, re.M)
    assert row, proc.stdout
    assert abs(float(row.group(1)) - 32.39) <= TOL and abs(float(row.group(3)) - 30.39) <= TOL
    assert "| Set5/butterfly | x3 | 1 |" in proc.stdout and "srcnn protocol" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["model"] == "srcnn_915" and data["scale"] == 3 and data["protocol"] == "srcnn"
    assert data["weights_sha256"] == file_sha256(weights)
    assert abs(data["results"]["Set5"]["psnr"] - 32.39) <= TOL
    assert len(data["results"]["Set5"]["images"]) == 5
    # no weights: a clear error, exit status 1
    proc = subprocess.run(
        cmd[:3] + ["test", "--model=srcnn_915", "--test_data=Set5", "--scale=3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1 and "--weights=PATH or --pretrained is required" in proc.stderr
