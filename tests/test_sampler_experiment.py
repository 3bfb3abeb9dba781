"""Pure helpers of experiments/sampler_convergence.py on hand-made curves (no training)."""

import math

import pytest
from conftest import load_experiment


@pytest.fixture(scope="module")
def sc():
    return load_experiment("sampler_convergence")


def test_steps_to_reach_interpolates_first_crossing(sc):
    # 32 -> 34 between steps 500 and 750: 33 is reached half-way, at 625 (time 25 s)
    assert sc.steps_to_reach([250, 500, 750], [30.0, 32.0, 34.0], 33.0, [10, 20, 30]) == (625.0, 25.0)
    # non-monotone curve: the first crossing counts (30 -> 33.5 over 250 steps: 3/3.5 of the way)
    step, t = sc.steps_to_reach([250, 500, 750, 1000], [30.0, 33.5, 32.0, 34.0], 33.0)
    assert step == pytest.approx(250 + 250 * 3.0 / 3.5)
    assert t is None
    # a point exactly at the target is reached there
    assert sc.steps_to_reach([250, 500], [30.0, 33.0], 33.0)[0] == pytest.approx(500.0)


def test_steps_to_reach_edge_cases(sc):
    assert sc.steps_to_reach([250, 500], [30.0, 32.9], 33.0) is None  # never reached
    assert sc.steps_to_reach([250, 500], [33.5, 34.0], 33.0, [7, 14]) == (250.0, 7.0)  # upper bound
    # NaN validations are skipped: crossing between 250 (31) and 750 (35)
    assert sc.steps_to_reach([250, 500, 750], [31.0, float("nan"), 35.0], 33.0)[0] == pytest.approx(500.0)


def test_mean_std_uses_sample_std(sc):
    m, s = sc.mean_std([1.0, 3.0])
    assert m == 2.0 and s == pytest.approx(math.sqrt(2.0))
    assert sc.mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in sc.mean_std([]))


def _log():
    # trainer log: time stamped before validating; val at 100 took 4 s, at 200 took 5 s
    return [
        {"step": "50", "time": "5", "val_Set5_psnr": "", "val_Set14_psnr": ""},
        {"step": "100", "time": "10", "val_Set5_psnr": "30.5", "val_Set14_psnr": "28.25"},
        {"step": "150", "time": "19", "val_Set5_psnr": "", "val_Set14_psnr": ""},
        {"step": "200", "time": "25", "val_Set5_psnr": "31.0", "val_Set14_psnr": "29.0"},
    ]


def test_rows_from_log_removes_earlier_validations(sc):
    rows = sc.rows_from_log(_log(), {100: 4.0, 200: 5.0}, "pic", 3)
    assert [r["step"] for r in rows] == [100, 200]
    assert rows[0]["train_s"] == 10.0 and rows[0]["wall_s"] == 10.0
    assert rows[1]["train_s"] == 21.0 and rows[1]["wall_s"] == 25.0  # 25 - 4; its own 5 s come later
    assert rows[1]["set14_psnr"] == 29.0 and rows[1]["sampler"] == "pic" and rows[1]["seed"] == 3


def test_step_time_ms_median_without_validation(sc):
    # intervals 50->100: 5 s, 100->150: 9 s - 4 s val, 150->200: 6 s -> 100, 100, 120 ms/step
    assert sc.step_time_ms(_log(), {100: 4.0, 200: 5.0}) == pytest.approx(100.0)


def _rows():
    rows = []
    curves = {  # (sampler, seed): Set5 values at steps 250, 500
        ("uniform", 0): [30.0, 32.0],
        ("uniform", 1): [30.0, 34.0],  # final mean 33.0
        ("psnr_hist", 0): [31.0, 34.0],
        ("psnr_hist", 1): [33.0, 36.0],  # mean 32 -> 35
        ("pic", 0): [29.0, 31.0],
        ("pic", 1): [29.0, 31.0],
    }
    for (sampler, seed), values in curves.items():
        for step, v, t in zip((250, 500), values, (10.0, 20.0)):
            rows.append(
                {
                    "sampler": sampler,
                    "seed": seed,
                    "step": step,
                    "wall_s": t + 1,
                    "train_s": t,
                    "set5_psnr": v,
                    "set14_psnr": v - 2.0,
                }
            )
    return rows


def test_summarize_and_table(sc):
    s = sc.summarize(_rows(), ["uniform", "psnr_hist", "pic"], {"uniform": [10.0, 12.0]})
    assert s["uniform"]["Set5"]["target"] == 33.0
    assert s["uniform"]["Set5"]["final"] == pytest.approx((33.0, math.sqrt(2.0)))
    assert s["uniform"]["Set5"]["reach_step"] == pytest.approx(500.0)
    # psnr_hist mean curve 32 -> 35: reaches 33 one third of the way, step 250 + 250/3
    assert s["psnr_hist"]["Set5"]["reach_step"] == pytest.approx(250 + 250 / 3)
    assert s["psnr_hist"]["Set5"]["reach_train_s"] == pytest.approx(10 + 10 / 3)
    # paired per-seed differences +2, +2
    assert s["psnr_hist"]["Set5"]["paired_diff_vs_baseline"] == (2.0, 0.0)
    assert s["pic"]["Set14"]["reach_step"] is None
    # last-3 mean over the 2 validations: seeds 32.5 and 34.5
    assert s["psnr_hist"]["Set5"]["tail_mean"] == pytest.approx((33.5, math.sqrt(2.0)))
    assert s["uniform"]["step_ms"] == pytest.approx((11.0, math.sqrt(2.0)))
    table = sc.format_summary(s, "Y, shave 2")
    lines = table.splitlines()
    pic_row = next(line for line in lines if line.startswith("| pic"))
    assert "not reached" in pic_row and "31.000 +- 0.000" in pic_row and "-2.000" in pic_row
    hist_row = next(line for line in lines if line.startswith("| psnr_hist"))
    assert "333 / 500" in hist_row and "35.000 +- 1.414" in hist_row and "33.500 +- 1.414" in hist_row
    assert "Set5 33.000 dB" in table and lines[0] == "Protocol: Y, shave 2"


def test_csv_round_trip_and_plot(sc, tmp_path):
    rows = _rows()
    path = tmp_path / "out" / "curves.csv"
    sc.write_csv(path, rows)
    header = path.read_text().splitlines()[0]
    assert header == "sampler,seed,step,wall_s,train_s,set5_psnr,set14_psnr"
    back = sc.read_csv(path)
    assert back == rows
    png = tmp_path / "c.png"
    sc.plot(rows, ["uniform", "psnr_hist"], png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_val_times_keeps_last_entry(sc, tmp_path):
    p = tmp_path / "val_times.csv"
    p.write_text("step,seconds\n250,3.5\n500,4.0\n500,4.5\n")
    assert sc.read_val_times(p) == {250: 3.5, 500: 4.5}
    assert sc.read_val_times(tmp_path / "missing.csv") == {}
