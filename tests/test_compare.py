"""visionfw.studies.compare (with visionfw.studies.profiling and visionfw.studies.runs): MAC counts by hand, the
comparison
table, its outputs and its cache."""

import csv
import json

import numpy as np
import pytest
from conftest import count_calls, write_noise_images

from visionfw.errors import ConfigError
from visionfw.studies import compare as cmp
from visionfw.studies import profiling as prof
from visionfw.studies import runs

TINY = [
    {"label": "srcnn_tiny", "model": "srcnn_915", "hyper": {"n1": 8, "n2": 4}},
    {"label": "espcn_tiny", "model": "espcn", "hyper": {"n1": 8, "n2": 4}},
]
TRAIN_OPTS = {"batch_size": 4, "lr_patch": 8, "data_options": {"patches_per_image": 2}}


_write_images = write_noise_images


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp_data")
    _write_images(root / "bench" / "Set5", 2, 24, 0)
    _write_images(root / "train", 4, 40, 1)
    return root


def conv_spec(layer_code, cls, params, inputs=(None, None, 1)):
    return {
        "name": "one_layer",
        "inputs": [inputs],
        layer_code: [(0, 1)],
        f"{layer_code}_sub": [cls],
        f"{layer_code}_par": [params],
    }


def test_macs_of_one_conv_by_hand():
    spec = conv_spec("convo", "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"})
    r = prof.count_macs(spec, (10, 12, 1), per_layer=True)
    assert r["macs"] == 10 * 12 * 4 * (3 * 3 * 1)  # 4320: per output pixel k*k*Cin*Cout
    assert r["activation_bytes"] == 10 * 12 * 4 * 4  # one float32 output map
    assert r["layers"] == [("conv0_n1", "Conv2D", 4320)]  # the builder names layers <code><link>_n<node>
    # 'valid' padding: only the 8x10 output pixels cost
    valid = conv_spec("convo", "Conv2D", {"filters": 4, "kernel_size": 3, "padding": "valid"})
    assert prof.count_macs(valid, (10, 12, 1))["macs"] == 8 * 10 * 4 * 9


def test_macs_transposed_conv_and_zoo_models_by_hand():
    # transposed conv: per INPUT pixel k*k*Cin*Cout (8*8 inputs, 9x9 kernel, 4 -> 1, stride 2)
    spec = conv_spec(
        "convo",
        "Conv2DTranspose",
        {"filters": 1, "kernel_size": 9, "strides": 2, "padding": "same"},
        inputs=(None, None, 4),
    )
    assert prof.count_macs(spec, (8, 8, 4))["macs"] == 8 * 8 * 81 * 4
    # ESPCN(n1=8, n2=4) x2 on a 16x16 RGB LR input: 5x5 3->8, 3x3 8->4, 3x3 4->12 at 16x16
    import visionfw

    espcn = visionfw.get_spec("espcn", scale=2, n1=8, n2=4)
    assert prof.count_macs(espcn, (16, 16, 3))["macs"] == 256 * (75 * 8 + 72 * 4 + 36 * 12)
    # SRCNN 9-1-5 (64/32): 8,032 MACs per HR pixel (its weights minus biases), counted on the HR size
    srcnn = visionfw.get_spec("srcnn_915", scale=2)
    shape = prof.model_input_shape(srcnn, "16x16", 2)
    assert shape == (32, 32, 1)
    assert prof.count_macs(srcnn, shape)["macs"] == 32 * 32 * (81 * 64 + 64 * 32 + 25 * 32)
    # a built keras.Model gives the same count as its spec
    assert prof.count_macs(visionfw.build_model(espcn), (16, 16, 3))["macs"] == 256 * (600 + 288 + 432)


def test_profiling_shares_evaluations_compiled_forward_pass():
    """Latency, memory and evaluation run one cached tf.function per model, traced once."""
    import visionfw
    from visionfw.inference import forward_fn, super_resolve

    model = visionfw.build_model(visionfw.get_spec("espcn", scale=2, n1=8, n2=4))
    fn = forward_fn(model)
    assert prof.measure_latency(model, (8, 8, 3), runs=2, warmup=1)["runs"] == 2
    assert prof.measure_peak_memory(model, (12, 10, 3))["peak_mb"] >= 0
    assert super_resolve(model, np.zeros((5, 6, 3), np.float32)).shape == (10, 12, 3)
    assert forward_fn(model) is fn and fn.experimental_get_tracing_count() == 1


def test_parsers_reject_bad_flags():
    assert cmp.parse_input_size("48x64") == (48, 64)
    assert cmp.parse_input_size("32") == (32, 32)
    for bad in ("48x", "axb", "0x4", "1x2x3"):
        with pytest.raises(ConfigError, match="input_size"):
            cmp.parse_input_size(bad)
    assert cmp.parse_weights("vdsr=a.mat, srcnn_915=official") == {"vdsr": "a.mat", "srcnn_915": "official"}
    with pytest.raises(ConfigError, match="name=path"):
        cmp.parse_weights("vdsr")
    with pytest.raises(ConfigError, match="twice"):
        cmp.parse_models("espcn,espcn")
    with pytest.raises(ConfigError, match="not in models="):
        cmp.compare_models("espcn", "Set5", 2, weights="vdsr=x.mat")


def test_compare_table_outputs_and_cache(tiny_data, tmp_path, monkeypatch):
    import visionfw
    from visionfw.data.benchmarks import load_benchmark
    from visionfw.metrics.psnr_ssim import bicubic_baseline

    # espcn_tiny gets a weights file (its column names the file), srcnn_tiny is trained
    espcn = visionfw.build_model(visionfw.get_spec("espcn", scale=2, n1=8, n2=4))
    espcn.save_weights(tmp_path / "espcn_tiny.weights.h5")
    models = [dict(TINY[0]), dict(TINY[1], weights=str(tmp_path / "espcn_tiny.weights.h5"))]
    out = tmp_path / "cmp"
    kw = dict(
        train_steps=3,
        train_data=str(tiny_data / "train"),
        out=out,
        input_size="16x16",
        data_dir=str(tiny_data / "bench"),
        latency_runs=3,
        warmup=1,
        train_options=TRAIN_OPTS,
    )
    r = cmp.compare_models(models, ["Set5"], 2, **kw)
    assert r["computed"] == {"train": 1, "eval": 2, "cost": 2}
    rows = {row["model"]: row for row in r["rows"]}
    assert list(rows) == ["srcnn_tiny", "espcn_tiny", "bicubic"]
    assert rows["srcnn_tiny"]["weights"] == "trained 3 steps on train"
    assert rows["espcn_tiny"]["weights"] == "espcn_tiny.weights.h5"
    assert rows["srcnn_tiny"]["params"] == 81 * 8 + 8 + 8 * 4 + 4 + 25 * 4 + 1
    assert rows["srcnn_tiny"]["macs"] == 32 * 32 * (81 * 8 + 8 * 4 + 25 * 4)
    assert rows["espcn_tiny"]["input_shape"] == [16, 16, 3]
    assert rows["espcn_tiny"]["latency_ms"] > 0 and rows["espcn_tiny"]["peak_mem_mb"] >= 0
    # the bicubic row is the evaluation's baseline: mean over the 2 images, srcnn protocol
    recs = load_benchmark("Set5", 2, data_dir=str(tiny_data / "bench"))
    expect = np.mean([bicubic_baseline(rec.hr, 2, "srcnn")["psnr"] for rec in recs])
    assert rows["bicubic"]["metrics"]["Set5"]["psnr"] == pytest.approx(expect, abs=1e-9)

    md = (out / "compare.md").read_text()
    header = md.splitlines()[0]
    assert header == (
        "| model | weights | params | GMACs | latency_ms | peak_mem_MB | act_mem_MB | Set5 PSNR | Set5 SSIM |"
    )
    assert "protocol: srcnn" in md and "16x16 LR input (32x32 HR" in md
    with open(out / "compare.csv") as f:
        lines = list(csv.DictReader(f))
    assert [ln["model"] for ln in lines] == ["srcnn_tiny", "espcn_tiny", "bicubic"]
    assert float(lines[1]["Set5_psnr"]) == pytest.approx(rows["espcn_tiny"]["metrics"]["Set5"]["psnr"])
    saved = json.loads((out / "compare.json").read_text())
    assert saved["protocol"] == "srcnn" and saved["datasets"] == ["Set5"]
    assert (out / "psnr_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun computes nothing: count the calls of every expensive step
    import visionfw.evaluate as ev
    import visionfw.train as tr

    calls = count_calls(
        monkeypatch, {"train": (tr, "train"), "eval": (ev, "evaluate_model"), "latency": (prof, "measure_latency")}
    )
    again = cmp.compare_models(models, ["Set5"], 2, **kw)
    assert calls == {"train": 0, "eval": 0, "latency": 0}
    assert again["computed"] == {"train": 0, "eval": 0, "cost": 0}
    assert [row["metrics"] for row in again["rows"]] == [row["metrics"] for row in r["rows"]]
    # a new cell (another protocol) is computed, the cached ones are not
    third = cmp.compare_models(models, ["Set5"], 2, protocol="edsr", **kw)
    assert third["computed"] == {"train": 0, "eval": 2, "cost": 0} and calls["eval"] == 2


def test_official_weights_reproduce_srcnn(shared_data, tmp_path):
    """SRCNN 9-1-5 x2 with the official file: Set5 36.34 dB (TPAMI 2016), bicubic 33.66 dB."""
    r = cmp.compare_models(
        "srcnn_915",
        "Set5",
        2,
        weights="srcnn_915=official",
        out=tmp_path,
        input_size="16x16",
        latency_runs=1,
        warmup=1,
        data_dir=shared_data,
        plot=False,
    )
    row, bic = r["rows"]
    assert row["weights"] == "official srcnn/915_91images/x2.mat"
    assert row["params"] == 8129
    assert row["metrics"]["Set5"]["psnr"] == pytest.approx(36.34, abs=0.015)
    assert bic["metrics"]["Set5"]["psnr"] == pytest.approx(33.661, abs=0.002)


def test_cli_compare_writes_the_table(tiny_data, tmp_path, capsys):
    from visionfw.cli import run

    out = tmp_path / "cli"
    argv = [
        "visionfw",
        "compare",
        "--models=fsrcnn",
        f"--test_data={tiny_data / 'bench' / 'Set5'}",
        "--scale=2",
        "--train_steps=0",
        f"--out={out}",
        "--input_size=8x8",
        "--latency_runs=1",
        "--warmup=1",
    ]
    capsys.readouterr()
    status = run(argv)  # the console script's entry point, in this process
    stdout, stderr = capsys.readouterr()
    assert status == 0, stderr[-2000:]
    assert "| fsrcnn | random | 12,809 |" in stdout
    assert "computed now: 0 trainings, 1 evaluations, 1 cost rows" in stdout
    assert {p.name for p in out.iterdir()} >= {
        "compare.md",
        "compare.csv",
        "compare.json",
        "psnr_vs_macs.png",
        "compare_cache.json",
        "report.html",
        "sr_images",
    }


def test_train_or_reuse_decisions(tmp_path, monkeypatch):
    """Same config + model -> reuse; same config, no model -> resume; other config -> fresh start."""
    import visionfw.train as tr

    seen = []

    def fake_train(config, label=None):
        seen.append(config)
        (tmp_path / "model.keras").write_text("m")
        return {"model_path": str(tmp_path / "model.keras")}

    monkeypatch.setattr(tr, "train", fake_train)
    cfg = dict(
        model="espcn",
        scale=2,
        model_kwargs={"n1": 8},
        steps=5,
        seed=0,
        batch_size=4,
        workdir=str(tmp_path),
        progress=False,
    )
    saved = dict(cfg, lr=0.001, log_every=100)  # the trainer's resolved config holds more fields
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "model.keras").write_text("m")
    assert runs.train_or_reuse(**cfg) == (str(tmp_path / "model.keras"), False) and not seen
    (tmp_path / "model.keras").unlink()
    (tmp_path / "checkpoints").mkdir()
    assert runs.train_or_reuse(**cfg)[1] is True
    assert (tmp_path / "checkpoints").is_dir()  # kept: the interrupted run resumes from it
    assert runs.train_or_reuse(**dict(cfg, batch_size=8))[1] is True
    assert not (tmp_path / "checkpoints").exists()  # another config: old checkpoints removed
    assert [c.batch_size for c in seen] == [4, 8]


def test_interrupt_writes_the_partial_table(tiny_data, tmp_path, monkeypatch):
    """The first Ctrl-C while the second model trains: the table of the first one is written, one
    TrainingInterrupted says where it is and how to finish; the rerun trains only what is missing."""
    import visionfw.train as tr
    from visionfw.train import TrainingInterrupted

    real_train = tr.train

    def interrupted(config, label=None):
        if config.model == "espcn":
            raise TrainingInterrupted("interrupted at step 2 of 3", signum=15, step=2, checkpoint="ckpt.npz")
        return real_train(config, label=label)

    monkeypatch.setattr(tr, "train", interrupted)
    out = tmp_path / "cmp"
    kw = dict(
        train_steps=3,
        train_data=str(tiny_data / "train"),
        out=out,
        input_size="16x16",
        data_dir=str(tiny_data / "bench"),
        latency_runs=1,
        warmup=1,
        train_options=TRAIN_OPTS,
        plot=False,
    )
    with pytest.raises(TrainingInterrupted) as info:
        cmp.compare_models(TINY, ["Set5"], 2, **kw)
    msg = str(info.value)
    assert info.value.exit_status == 128 + 15
    assert msg.startswith(
        "compare interrupted while training espcn_tiny (2/2) at step 2; the table of the 1 "
        f"finished model(s) is in {out / 'compare.md'}. Run the same command again"
    )
    assert "the training resumes from its checkpoint" in msg
    md = (out / "compare.md").read_text()
    assert "| srcnn_tiny | trained 3 steps on train |" in md and "espcn_tiny" not in md
    assert "PARTIAL TABLE: interrupted after 1 of 2 models" in md
    monkeypatch.setattr(tr, "train", real_train)
    again = cmp.compare_models(TINY, ["Set5"], 2, **kw)
    assert again["computed"]["train"] == 1 and "partial" not in again
    assert "PARTIAL" not in (out / "compare.md").read_text()
