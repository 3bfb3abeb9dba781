"""What a new user sees first: the quick start from a normal (non-editable) install in an empty folder,
errors that list every place data was looked for, and the demo recipe beating bicubic.

The "installed" copy is laid out as the wheel lays it out (site-packages/visionfw with the zoo as
visionfw/model_defs) and run from a temporary folder with its own HOME, so neither the checkout
nor ../shared/data nor ~/.visionfw/data can be found by accident.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder, working folder, environment) of a non-editable install with no data around it."""
    root = tmp_path_factory.mktemp("first_run")
    site = root / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "visionfw", site / "visionfw", ignore=ignore)
    shutil.copytree(REPO / "model_defs", site / "visionfw" / "model_defs", ignore=ignore)
    work = root / "work" / "project"  # ../shared/data does not exist next to it either
    work.mkdir(parents=True)
    (root / "home").mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VISIONFW_DATA", "VISIONFW_SHARED_DATA", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")
    }
    env.update(PYTHONPATH=str(site), HOME=str(root / "home"))
    return site, work, env


def _cli(installed, *args, env=None):
    site, work, base = installed
    return subprocess.run(
        [sys.executable, "-m", "visionfw.cli", *args],
        cwd=work,
        env=dict(base, **(env or {})),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_installed_copy_is_the_one_that_runs(installed):
    site, work, env = installed
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import visionfw, visionfw.data.paths as p; "
            "print(visionfw.__file__); print(p._checkout()); print(*p.candidate_roots(), sep='|')",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    where, checkout, roots = out.stdout.splitlines()[-3:]
    assert where == str(site / "visionfw" / "__init__.py") and checkout == "None"
    assert roots.split("|") == [
        str(work / "data"),
        str(work.parent / "shared" / "data"),
        str(Path(env["HOME"]) / ".visionfw" / "data"),
    ]


def test_quick_start_without_benchmarks_validates_on_held_out_photos(installed):
    site, work, env = installed
    proc = _cli(
        installed, "train", "--model=espcn", "--scale=2", "--steps=20", "--model_kwargs=n1=8,n2=4", "--log_every=10"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "validating on heldout (astronaut, chelsea, coffee: photos held out of the embedded training set" in proc.stderr
    )
    assert "train espcn x2: step 10/20" in proc.stderr  # not a terminal: plain progress lines
    assert "val heldout: PSNR" in proc.stdout and "gain" in proc.stdout and "nan" not in proc.stdout
    saved = json.loads((work / "runs" / "espcn_x2" / "config.json").read_text())
    assert saved["val_data"] == ["heldout"] and saved["data_options"] == {"embedded_holdout": True}
    assert (work / "runs" / "espcn_x2" / "model.keras").is_file()


def test_missing_benchmark_lists_every_place_and_leaves_nothing_behind(installed):
    site, work, env = installed
    proc = _cli(installed, "train", "--model=espcn", "--val_data=Set5", "--workdir=runs/failed")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("visionfw train: error: Benchmark dataset 'Set5'")
    for place in (work / "data", work.parent / "shared" / "data", Path(env["HOME"]) / ".visionfw" / "data"):
        assert str(place / "benchmark" / "Set5") in lines[0]
    assert "pass --data_dir=DIR" in lines[0] and "download_dataset('Set5', data_dir)" in lines[0]
    assert "--val_data=heldout" in lines[0]
    assert not (work / "runs" / "failed").exists()
    test = _cli(installed, "test", "--model=espcn", "--allow_random", "--test_data=Set5", "--scale=2")
    assert test.returncode == 1 and "Looked in: " + str(work / "data" / "benchmark" / "Set5") in test.stderr


def test_benchmarks_found_through_visionfw_data(installed, shared_data):
    proc = _cli(
        installed,
        "test",
        "--model=espcn",
        "--allow_random",
        "--test_data=Set5",
        "--scale=2",
        "--protocol=edsr",
        env={"VISIONFW_DATA": str(shared_data)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| Set5 | x2 | 5 |" in proc.stdout and "| 33.673 |" in proc.stdout  # bicubic, edsr protocol
    assert proc.stderr.startswith("evaluate Set5 x2: image 5/5")


def test_shared_beside_the_work_folder_serves_test_and_compare(installed, shared_data):
    """With ../shared/data beside the working folder (as in the README), `visionfw test --pretrained`
    and `compare --weights=official` find the benchmark and the official weights by themselves."""
    site, work, env = installed
    beside = work.parent / "beside" / "project"
    beside.mkdir(parents=True)
    (beside.parent / "shared").mkdir()
    (beside.parent / "shared" / "data").symlink_to(shared_data, target_is_directory=True)
    run = dict(installed=(site, beside, env))
    test = _cli(run["installed"], "test", "--model=srcnn_915", "--pretrained", "--test_data=Set5", "--scale=3")
    assert test.returncode == 0, test.stderr[-2000:]
    assert "| Set5 | x3 | 5 | 32.390 |" in test.stdout and "915_91images/x3.mat" in test.stdout
    cmp = _cli(
        run["installed"],
        "compare",
        "--models=srcnn_915",
        "--weights=official",
        "--test_data=Set5",
        "--scale=3",
        "--out=runs/cmp",
        "--latency_runs=1",
        "--warmup=1",
    )
    assert cmp.returncode == 0, cmp.stderr[-2000:]
    assert "| srcnn_915 | official srcnn/915_91images/x3.mat |" in cmp.stdout and "32.390" in cmp.stdout
    assert (beside / "runs" / "cmp" / "psnr_vs_macs.png").is_file()


# The quick start's recipe (model_defs/espcn.py RECIPE) at a shorter budget, 3 seeds: a real margin over
# bicubic on Set5 x2 (edsr protocol): measured +0.51, +0.39, +0.43 dB for seeds 0, 1, 2 at 1200 steps.
GUARD_STEPS, GUARD_GAIN = 1200, 0.2


@pytest.mark.slow  # ~4 minutes for the three seeds: `python -m pytest -m slow`
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_recipe_beats_bicubic(seed, tmp_path, shared_data):
    from visionfw.train import TrainConfig, train

    result = train(
        TrainConfig(
            model="espcn",
            scale=2,
            steps=GUARD_STEPS,
            seed=seed,
            val_data=["Set5"],
            data_dir=str(shared_data),
            val_every=0,
            ckpt_every=0,
            workdir=str(tmp_path),
            progress=False,
            tensorboard=False,
        )
    )
    r = result["val"]["Set5"]
    assert r["bicubic_psnr"] == pytest.approx(33.673, abs=0.002)
    assert r["psnr"] - r["bicubic_psnr"] >= GUARD_GAIN, (seed, r)
