"""visionfw.studies.reports: every report file is written atomically, and a disk error reads as a one-line
TrainingError naming the file."""

import errno
import json
import os

import pytest

from visionfw.errors import TrainingError
from visionfw.studies import report_html, reports


def _rank_result():
    table = {
        "tests": ["Set5"],
        "trains": ["A", "B"],
        "gains": {"Set5": {"A": 1.5, "B": 1.0}},
        "ranks": {"Set5": {"A": 1, "B": 2}},
        "best": {"Set5": "A"},
        "min_diff": {"Set5": 0.5},
        "mean_rank": {"A": 1.0, "B": 2.0},
        "mean_gain": {"A": 1.5, "B": 1.0},
        "overall": ["A", "B"],
        "overall_rank": {"A": 1, "B": 2},
    }
    return {
        "model": "espcn",
        "scale": 2,
        "steps": 2,
        "seed": 0,
        "protocol": "srcnn",
        "protocol_description": "Y channel",
        "table": table,
        "per_image": {"Set5": {"A": [1.0, 2.0], "B": [0.5, 1.5]}},
        "bicubic_psnr": {"Set5": 30.0},
        "markdown": "| table |",
    }


def test_a_failed_write_keeps_the_old_file_and_names_the_new_one(tmp_path, monkeypatch):
    result = _rank_result()
    reports.write_rank_reports(result, tmp_path, plot=False)
    old = (tmp_path / "ranking.json").read_text()
    real_replace = os.replace

    def full_disk_for_the_json(src, dst):  # the JSON's rename into place fails: a write error
        if str(dst).endswith("ranking.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_for_the_json)
    result["markdown"] = "| another table |"
    with pytest.raises(TrainingError, match="ranking.json") as info:
        reports.write_rank_reports(result, tmp_path, plot=False)
    assert "\n" not in str(info.value)
    assert (tmp_path / "ranking.json").read_text() == old
    assert json.loads(old)["markdown"] == "| table |"
    assert (tmp_path / "ranking.md").read_text() == "| another table |\n"  # written before the JSON failed


def test_tables_plots_and_page_go_through_the_atomic_writer(tmp_path, monkeypatch):
    written = []
    atomic = reports.atomic_write
    monkeypatch.setattr(reports, "atomic_write", lambda path, data: written.append(path.name) or atomic(path, data))
    result = _rank_result()
    files = reports.write_rank_reports(result, tmp_path)
    page = report_html.write_rank_report(result, tmp_path)
    compare = {
        "rows": [
            {
                "model": "m",
                "weights": "random",
                "params": 1,
                "macs": 2,
                "latency_ms": 3.0,
                "peak_mem_mb": 4.0,
                "act_mem_mb": 5.0,
                "metrics": {"Set5": {"psnr": 30.5, "ssim": 0.9, "bicubic_psnr": 29.0}},
            }
        ],
        "datasets": ["Set5"],
        "scale": 2,
        "protocol": "srcnn",
        "input_size": [8, 8],
        "device": "CPU: 2 threads",
    }
    reports.write_compare_csv(compare, tmp_path / "compare.csv")
    assert written == ["ranking.md", "gain_distributions.png", "ranking.json", "report.html", "compare.csv"]
    assert (tmp_path / "compare.csv").read_text().splitlines()[
        1
    ] == "m,random,1,2,3.0,4.0,5.0,30.5,0.9,29.0,2,srcnn,8x8,CPU: 2 threads"
    assert (tmp_path / "gain_distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert files["plot"] == str(tmp_path / "gain_distributions.png") and page == tmp_path / "report.html"
    assert not list(tmp_path.glob("*.tmp"))


def test_a_page_that_cannot_be_written_is_a_training_error(tmp_path):
    (tmp_path / "report.html").mkdir()  # a folder where the page goes: the rename fails
    with pytest.raises(TrainingError, match="report.html"):
        report_html.write_rank_report(_rank_result(), tmp_path)
