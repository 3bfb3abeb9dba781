"""Finding benchmark sets on disk and loading them with MATLAB-exact LR images."""

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionfw.data import paths
from visionfw.data.benchmarks import DATASET_URLS, DATASETS, canonical_name, load_benchmark, resolve_dataset
from visionfw.errors import DataError

SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def _png(path, value=0, shape=(6, 6, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def test_names_and_aliases():
    assert canonical_name("b100") == "BSD100"
    assert canonical_name("DIV2K") == "DIV2K-valid"
    assert canonical_name("set5") == "Set5"
    with pytest.raises(DataError, match="Unknown benchmark dataset 'Set6'.*Urban100"):
        canonical_name("Set6")
    assert set(DATASET_URLS) == set(DATASETS)
    for entry in DATASET_URLS.values():  # never invented: a real sha256 or None
        assert entry["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])


def test_layouts_case_insensitive_hr_subfolder_and_aliases(tmp_path):
    _png(tmp_path / "set5" / "HR" / "baby.png")
    _png(tmp_path / "benchmark" / "B100" / "1.png")
    _png(tmp_path / "DIV2K_valid_HR" / "0801.png")
    assert resolve_dataset("Set5", tmp_path) == tmp_path / "set5" / "HR"
    assert resolve_dataset("BSD100", tmp_path) == tmp_path / "benchmark" / "B100"
    assert resolve_dataset("div2k", tmp_path) == tmp_path / "DIV2K_valid_HR"
    assert resolve_dataset(str(tmp_path / "set5"), None) == tmp_path / "set5"  # a path: as is


def _isolate_search_path(tmp_path, monkeypatch):
    """The search path made of tmp_path folders only: env root, cwd, no checkout, home."""
    monkeypatch.setenv("VISIONFW_DATA", str(tmp_path / "env"))
    monkeypatch.delenv("VISIONFW_SHARED_DATA", raising=False)
    monkeypatch.setattr(paths, "_checkout", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def test_missing_dataset_names_every_place_and_the_fix(tmp_path, monkeypatch):
    _isolate_search_path(tmp_path, monkeypatch)
    with pytest.raises(DataError) as err:
        resolve_dataset("Urban100")
    msg = str(err.value)
    for place in (
        tmp_path / "env" / "Urban100",
        tmp_path / "env" / "benchmark" / "Urban100",
        tmp_path / "cwd" / "data" / "benchmark" / "Urban100",
        tmp_path / "shared" / "data" / "benchmark" / "Urban100",
        tmp_path / "home" / ".visionfw" / "data" / "Urban100",
    ):
        assert str(place) in msg
    assert "--data_dir" in msg and "VISIONFW_DATA" in msg
    assert "download_dataset('Urban100', data_dir)" in msg
    _png(tmp_path / "env" / "Urban100" / "img_001.png")
    assert resolve_dataset("urban100") == tmp_path / "env" / "Urban100"


def test_data_dir_help_is_written_from_the_search_path(tmp_path, monkeypatch):
    """Every --data_dir flag's help comes from paths.data_dir_help, which names the roots in search order."""
    from visionfw.cli import compare, rank_datasets, test, upscale
    from visionfw.train.config import TrainConfig

    text = paths.data_dir_help("benchmark sets")
    order = "(then $VISIONFW_DATA, ./data, ../shared/data, ~/.visionfw/data)."
    assert text == "First place to look for benchmark sets " + order
    _isolate_search_path(tmp_path, monkeypatch)
    home = tmp_path / "home" / ".visionfw" / "data"
    named = [tmp_path / "env", tmp_path / "cwd" / "data", tmp_path / "shared" / "data", home]
    assert paths.candidate_roots(tmp_path / "arg")[1:] == named  # the help's order is the search order
    for config in (TrainConfig, compare.CONFIG, rank_datasets.CONFIG, test.CONFIG, upscale.CONFIG):
        (field,) = [f for f in dataclasses.fields(config) if f.name == "data_dir"]
        assert field.metadata["help"].startswith("First place to look for ")
        assert field.metadata["help"].endswith(order)


def test_one_search_path_in_order(tmp_path, monkeypatch):
    """data_dir, $VISIONFW_DATA, $VISIONFW_SHARED_DATA (alias), ./data, ../shared/data, the checkout, ~."""
    _isolate_search_path(tmp_path, monkeypatch)
    monkeypatch.setenv("VISIONFW_SHARED_DATA", str(tmp_path / "alias"))
    monkeypatch.setattr(paths, "_checkout", lambda: tmp_path / "repo")
    order = [
        tmp_path / "arg",
        tmp_path / "env",
        tmp_path / "alias",
        tmp_path / "cwd" / "data",
        tmp_path / "shared" / "data",
        tmp_path / "repo" / "data",
        tmp_path / "shared" / "data",
        tmp_path / "home" / ".visionfw" / "data",
    ]
    expected = list(dict.fromkeys(order))  # ../shared/data of cwd and of the checkout coincide here
    assert paths.candidate_roots(tmp_path / "arg") == expected
    assert paths.data_roots(tmp_path / "arg") == []
    # training sets and weights come from the first root that holds them; later roots are not used
    for root in (tmp_path / "home" / ".visionfw" / "data", tmp_path / "repo" / "data", tmp_path / "alias"):
        _png(root / "train" / "T91" / "t1.png")
    assert paths.find("train", "T91") == tmp_path / "alias" / "train" / "T91"
    _png(tmp_path / "arg" / "train" / "T91" / "t1.png")
    assert paths.find("train", "T91", tmp_path / "arg") == tmp_path / "arg" / "train" / "T91"
    with pytest.raises(DataError) as err:
        paths.find("weights", "srcnn/x2.mat", tmp_path / "arg", what="The official weights")
    msg = str(err.value)
    assert msg.startswith("The official weights not found") and "--data_dir" in msg
    for root in expected:
        assert str(root / "weights" / "srcnn" / "x2.mat") in msg


def test_load_benchmark_from_tmp_with_lr_dir_checks_sizes(tmp_path):
    _png(tmp_path / "Set5" / "a.png", 50, (7, 10, 3))
    _png(tmp_path / "lr" / "X2" / "ax2.png", 50, (3, 5, 3))
    recs = load_benchmark("Set5", 2, data_dir=tmp_path, lr_dir=tmp_path / "lr")
    assert [r.name for r in recs] == ["a"] and recs[0].hr.shape == (6, 10, 3)
    assert recs[0].lr.shape == (3, 5, 3)
    _png(tmp_path / "lr" / "X2" / "ax2.png", 50, (4, 5, 3))
    with pytest.raises(DataError, match="ax2.png has shape"):
        load_benchmark("Set5", 2, data_dir=tmp_path, lr_dir=tmp_path / "lr")


def test_load_shared_set14_matches_matlab_lr_files():
    if not (SHARED / "benchmark" / "Set14").is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED} (set VISIONFW_SHARED_DATA)")
    recs = load_benchmark("set14", 3, data_dir=SHARED / "benchmark")
    assert len(recs) == 14
    by_name = {r.name: r for r in recs}
    assert by_name["bridge"].hr.shape == (510, 510, 1)  # grey stays grey, mod-cropped
    ref_dir = SHARED / "reference" / "matlab_bicubic_lr" / "Set14"
    from_files = {r.name: r for r in load_benchmark("Set14", 3, data_dir=SHARED / "benchmark", lr_dir=ref_dir)}
    for name, rec in by_name.items():
        np.testing.assert_array_equal(rec.lr, from_files[name].lr, err_msg=name)
        np.testing.assert_array_equal(rec.hr, from_files[name].hr)
