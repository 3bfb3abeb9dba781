"""visionfw.studies.rank_datasets: ranks, min diff and labels on hand-made numbers; the resumable experiment."""

import json

import numpy as np
import pytest
from conftest import count_calls, write_noise_images

from visionfw.errors import ConfigError, DataError
from visionfw.studies import rank_datasets as rd
from visionfw.studies import reports

# rows = test sets, columns = training sets (mean PSNR gain, dB)
GAINS = {
    "Set5": {"T91": 2.0, "BSD200": 2.5, "BSDS500": 2.4},
    "Set14": {"T91": 1.0, "BSD200": 0.8, "BSDS500": 1.0},
    "Urban100": {"T91": 0.3, "BSD200": 0.9, "BSDS500": 0.6},
}


def test_rank_matrix_hand_values():
    t = rd.rank_matrix(GAINS)
    assert t["tests"] == ["Set5", "Set14", "Urban100"] and t["trains"] == ["T91", "BSD200", "BSDS500"]
    assert t["ranks"]["Set5"] == {"BSD200": 1, "BSDS500": 2, "T91": 3}
    assert t["ranks"]["Set14"] == {"T91": 1, "BSDS500": 1, "BSD200": 3}  # a tie shares rank 1
    assert t["ranks"]["Urban100"] == {"BSD200": 1, "BSDS500": 2, "T91": 3}
    assert t["best"] == {"Set5": "BSD200", "Set14": "T91", "Urban100": "BSD200"}
    assert t["min_diff"]["Set5"] == pytest.approx(0.1)
    assert t["min_diff"]["Set14"] == 0.0
    assert t["min_diff"]["Urban100"] == pytest.approx(0.3)
    assert t["mean_rank"] == pytest.approx({"T91": 7 / 3, "BSD200": 5 / 3, "BSDS500": 5 / 3})
    assert t["mean_gain"] == pytest.approx({"T91": 1.1, "BSD200": 4.2 / 3, "BSDS500": 4.0 / 3})
    # BSD200 and BSDS500 tie on mean rank; BSD200 has the larger mean gain
    assert t["overall"] == ["BSD200", "BSDS500", "T91"]
    assert t["overall_rank"] == {"BSD200": 1, "BSDS500": 2, "T91": 3}


def test_rank_matrix_ties_on_rank_and_gain_fall_back_to_name():
    t = rd.rank_matrix({"A": {"x": 1.0, "y": 2.0}, "B": {"x": 2.0, "y": 1.0}})
    assert t["mean_rank"] == {"x": 1.5, "y": 1.5} and t["overall"] == ["x", "y"]
    one = rd.rank_matrix({"A": {"only": 0.5}})
    assert one["min_diff"] == {"A": None} and one["overall"] == ["only"]
    with pytest.raises(ConfigError, match="every row needs every column"):
        rd.rank_matrix({"A": {"x": 1.0, "y": 2.0}, "B": {"x": 2.0}})


def test_table_labels_sit_next_to_their_own_values():
    """The original research's table had its row labels shifted by one: check each label's row."""
    t = rd.rank_matrix(GAINS)
    md = reports.format_rank_table(t)
    assert reports.parse_rank_table(md) == GAINS
    lines = md.splitlines()
    assert lines[0] == "| test set \\ train set | T91 | BSD200 | BSDS500 | best | min diff |"
    assert lines[2] == "| Set5 | +2.000 (3) | +2.500 (1) | +2.400 (2) | BSD200 | 0.100 |"
    assert lines[3] == "| Set14 | +1.000 (1) | +0.800 (3) | +1.000 (1) | T91 | 0.000 |"
    assert lines[4] == "| Urban100 | +0.300 (3) | +0.900 (1) | +0.600 (2) | BSD200 | 0.300 |"
    assert lines[5] == "| mean gain | +1.100 | +1.400 | +1.333 | | |"
    assert lines[6] == "| mean rank | 2.33 | 1.67 | 1.67 | | |"
    assert lines[7] == "| overall rank | 3 | 1 | 2 | | |"
    assert "Overall ranking: BSD200 > BSDS500 > T91" in md


_write_images = write_noise_images


def test_resolve_train_sets(tmp_path):
    _write_images(tmp_path / "root" / "A", 1, 16, 0)
    _write_images(tmp_path / "elsewhere" / "B", 1, 16, 0)
    found = rd.resolve_train_sets(f"A,{tmp_path / 'elsewhere' / 'B'}", train_root=tmp_path / "root")
    assert found == {"A": str(tmp_path / "root" / "A"), "B": str(tmp_path / "elsewhere" / "B")}
    with pytest.raises(DataError, match="'C' not found under --train_root"):
        rd.resolve_train_sets("C", train_root=tmp_path / "root")


def test_rank_datasets_end_to_end_and_resume(tmp_path, monkeypatch):
    import visionfw.evaluate as ev
    import visionfw.train as tr

    root = tmp_path / "train"
    _write_images(root / "A", 4, 40, 1)
    _write_images(root / "B", 4, 40, 2)
    _write_images(tmp_path / "bench" / "Set5", 2, 24, 0)
    calls = count_calls(monkeypatch, {"train": (tr, "train"), "eval": (ev, "evaluate_model")})
    out = tmp_path / "out"
    kw = dict(
        data_dir=str(tmp_path / "bench"),
        train_root=str(root),
        model_kwargs={"n1": 8, "n2": 4},
        train_options={"batch_size": 4, "lr_patch": 8, "data_options": {"patches_per_image": 2}},
    )
    r = rd.rank_datasets("espcn", 2, "A,B", ["Set5"], 2, out, **kw)
    assert calls == {"train": 2, "eval": 2} and r["computed"] == {"train": 2, "eval": 2}
    t = r["table"]
    assert t["tests"] == ["Set5"] and t["trains"] == ["A", "B"]
    # the matrix holds each run's own evaluation (cache cells keyed by train|test)
    cache = json.loads((out / "rank_cache.json").read_text())["cells"]
    for train in ("A", "B"):
        cell = next(v for k, v in cache.items() if k.startswith(f"{train}|Set5|x2|edsr|"))
        assert t["gains"]["Set5"][train] == cell["gain_psnr"]
        assert cell["gain_psnr"] == pytest.approx(np.mean([im["gain_psnr"] for im in cell["images"]]))
        assert r["per_image"]["Set5"][train] == [im["gain_psnr"] for im in cell["images"]]
        assert (out / train / "model.keras").is_file()
    assert r["protocol"] == "edsr"  # espcn is an RGB model
    assert (out / "gain_distributions.png").read_bytes()[:4] == b"\x89PNG"
    assert "| test set \\ train set | A | B | best | min diff |" in (out / "ranking.md").read_text()

    # rerun: everything finished is skipped
    again = rd.rank_datasets("espcn", 2, "A,B", ["Set5"], 2, out, **kw)
    assert calls == {"train": 2, "eval": 2} and again["computed"] == {"train": 0, "eval": 0}
    assert again["table"]["gains"] == t["gains"]
    # lose B's model and cache cell: only B is trained and evaluated again
    (out / "B" / "model.keras").unlink()
    data = json.loads((out / "rank_cache.json").read_text())
    data["cells"] = {k: v for k, v in data["cells"].items() if not k.startswith("B|")}
    (out / "rank_cache.json").write_text(json.dumps(data))
    third = rd.rank_datasets("espcn", 2, "A,B", ["Set5"], 2, out, **kw)
    assert third["computed"] == {"train": 1, "eval": 1} and calls == {"train": 3, "eval": 3}


def test_interrupt_writes_the_ranking_of_the_finished_sets(tmp_path, monkeypatch):
    import visionfw.train as tr
    from visionfw.train import TrainingInterrupted

    root = tmp_path / "train"
    _write_images(root / "A", 4, 40, 1)
    _write_images(root / "B", 4, 40, 2)
    _write_images(tmp_path / "bench" / "Set5", 2, 24, 0)
    real_train = tr.train

    def interrupted(config, label=None):
        if config.train_data.endswith("B"):
            raise KeyboardInterrupt  # a second Ctrl-C, or one outside a training step
        return real_train(config, label=label)

    monkeypatch.setattr(tr, "train", interrupted)
    out = tmp_path / "out"
    kw = dict(
        data_dir=str(tmp_path / "bench"),
        train_root=str(root),
        model_kwargs={"n1": 8, "n2": 4},
        plot=False,
        train_options={"batch_size": 4, "lr_patch": 8, "data_options": {"patches_per_image": 2}},
    )
    with pytest.raises(
        TrainingInterrupted,
        match=r"rank-datasets interrupted while training on B \(2/2\); the "
        r"table of the 1 finished training set\(s\) is in .*ranking.md",
    ):
        rd.rank_datasets("espcn", 2, "A,B", ["Set5"], 2, out, **kw)
    md = (out / "ranking.md").read_text()
    assert "| test set \\ train set | A | best | min diff |" in md and "PARTIAL TABLE" in md
    assert json.loads((out / "ranking.json").read_text())["partial"] == "interrupted after 1 of 2 training sets"
