"""Training loop: losses, schedules, presets, run directory, exact resume, crash recovery, NaN stop."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import kill_9_after

from visionfw.errors import ConfigError, TrainingError
from visionfw.tasks.losses import parse_loss
from visionfw.train import TrainConfig, train
from visionfw.train.checkpoint import load_state
from visionfw.train.presets import get_preset
from visionfw.train.resolve import resolve_config
from visionfw.train.schedules import CosineLR, MultiStepLR, StepLR, make_schedule

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VISIONFW_SHARED_DATA", REPO.parent / "shared" / "data"))
TINY_ESPCN = {"n1": 8, "n2": 4}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Six smooth 48x48 RGB images (tiny, so a dataset builds in well under a second)."""
    from PIL import Image, ImageFilter

    folder = tmp_path_factory.mktemp("train_images")
    rng = np.random.default_rng(0)
    for i in range(6):
        noise = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
        im = Image.fromarray(noise).resize((48, 48), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1))
        im.save(folder / f"img{i}.png")
    return str(folder)


def tiny_config(workdir, image_dir, **kw):
    base = dict(
        model="espcn",
        scale=2,
        model_kwargs=dict(TINY_ESPCN),
        train_data=image_dir,
        val_data=[],
        steps=6,
        batch_size=4,
        lr_patch=8,
        log_every=1,
        ckpt_every=3,
        val_every=0,
        seed=3,
        deterministic=True,
        workdir=str(workdir),
        progress=False,
        tensorboard=False,
        data_options={"patches_per_image": 2},
    )
    base.update(kw)
    return TrainConfig(**base)


def ckpt_arrays(path):
    arrays, meta = load_state(path)
    return arrays, meta


# ----------------------------------------------------------------------------- losses


def test_losses_hand_values():
    t = tf.zeros([1, 2, 2, 1])
    p = tf.reshape(tf.constant([1.0, -2.0, 0.0, 0.5]), [1, 2, 2, 1])
    assert float(parse_loss("l1")(t, p)) == pytest.approx(0.875)
    assert float(parse_loss("mse")(t, p)) == pytest.approx(1.3125)
    eps2 = 1e-6
    charb = (math.sqrt(1 + eps2) + math.sqrt(4 + eps2) + math.sqrt(eps2) + math.sqrt(0.25 + eps2)) / 4
    assert float(parse_loss("charbonnier")(t, p)) == pytest.approx(charb, rel=1e-6)
    mix = parse_loss("0.8*l1 + 0.2*charbonnier")
    assert float(mix(t, p)) == pytest.approx(0.8 * 0.875 + 0.2 * charb, rel=1e-6)
    assert repr(mix) == "0.8*l1+0.2*charbonnier"
    for bad in ("l3", "0.5*", "l1+", ""):
        with pytest.raises(ConfigError):
            parse_loss(bad)


def test_schedules_values_and_serialisation():
    import keras

    s = StepLR(1e-4, step_size=200_000, gamma=0.5)
    assert [float(s(k)) for k in (0, 199_999, 200_000, 400_000)] == pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5])
    m = MultiStepLR(1.0, [10, 20], gamma=0.1)
    assert [float(m(k)) for k in (9, 10, 19, 20)] == pytest.approx([1.0, 0.1, 0.1, 0.01])
    c = CosineLR(1.0, total_steps=110, warmup=10)
    assert [float(c(k)) for k in (0, 5, 10, 60, 110, 200)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0], abs=1e-6)
    assert float(make_schedule("constant", 3e-4)(12345)) == pytest.approx(3e-4)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(back, StepLR) and float(back(200_000)) == pytest.approx(5e-5)
    with pytest.raises(ConfigError):
        make_schedule("step", 1e-3, milestones=[1])


def test_presets_and_overrides():
    edsr = get_preset("edsr", 2)
    assert (edsr["loss"], edsr["lr"], edsr["batch_size"], edsr["lr_patch"]) == ("l1", 1e-4, 16, 48)
    assert edsr["schedule_kwargs"] == {"step_size": 200_000, "gamma": 0.5}
    assert edsr["optimizer_kwargs"] == {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    assert get_preset("srcnn", 3)["lr_patch"] == 11  # 33x33 HR sub-images
    assert get_preset("srresnet", 4)["lr_patch"] == 24  # 96x96 HR
    assert get_preset("fsrcnn", 3)["lr_patch"] == 7
    c = resolve_config(TrainConfig(model="edsr_baseline", scale=2, lr=5e-4, batch_size=8))
    assert (c.lr, c.batch_size, c.loss, c.lr_patch, c.protocol) == (5e-4, 8, "l1", 48, "edsr")
    assert c.workdir == os.path.join("runs", "edsr_baseline_x2") and "Lim et al." in c.preset_source
    assert resolve_config(TrainConfig(model="vdsr", scale=2)).protocol == "srcnn"
    with pytest.raises(ConfigError):
        resolve_config(TrainConfig(model="espcn", mixed_precision="float8"))
    # the demo recipe's warm-up (50 steps) is cut to a tenth of a shorter run; a flag is taken as given
    assert resolve_config(TrainConfig(model="espcn", steps=1500)).schedule_kwargs == {"warmup": 50, "total_steps": 1500}
    assert resolve_config(TrainConfig(model="espcn", steps=200)).schedule_kwargs["warmup"] == 20
    assert (
        resolve_config(TrainConfig(model="espcn", steps=200, schedule_kwargs={"warmup": 80})).schedule_kwargs["warmup"]
        == 80
    )


# ----------------------------------------------------------------------------- runs


def test_short_run_writes_run_dir_and_model_reloads(tmp_path, image_dir):
    import keras

    val = ["Set5"] if (SHARED / "benchmark" / "Set5").is_dir() else []
    cfg = tiny_config(
        tmp_path / "run",
        image_dir,
        steps=4,
        ckpt_every=2,
        log_every=2,
        val_every=4,
        val_data=val,
        tensorboard=True,
        data_dir=str(SHARED / "benchmark") if val else None,
    )
    result = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    assert saved["loss"] == "l1" and saved["lr"] == 2e-3 and saved["model_kwargs"] == TINY_ESPCN
    assert saved["schedule"] == "cosine" and saved["schedule_kwargs"] == {"warmup": 0, "total_steps": 4}
    assert "Demo recipe" in saved["preset_source"]
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    cols = ["step", "loss", "lr", "time", "steps_per_sec"] + [f"val_{n}_{m}" for n in val for m in ("psnr", "ssim")]
    assert list(rows[0].keys()) == cols
    assert [int(r["step"]) for r in rows] == [2, 4] and all(float(r["loss"]) > 0 for r in rows)
    assert sorted(os.listdir(run / "checkpoints")) == (["best.npz"] if val else []) + [
        "ckpt-00000002.npz",
        "ckpt-00000004.npz",
    ]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(run / "tb"))
    if val:
        assert 5.0 < float(rows[-1]["val_Set5_psnr"]) < 40.0 and result["val_psnr"] == pytest.approx(
            float(rows[-1]["val_Set5_psnr"]), abs=1e-4
        )
        assert "edsr" in result["protocol"]
    # model.keras: safe-mode load, same outputs as the checkpointed weights in a fresh model
    loaded = keras.saving.load_model(run / "model.keras", safe_mode=True)
    arrays, meta = ckpt_arrays(run / "checkpoints" / "ckpt-00000004.npz")
    assert meta["step"] == 4
    from visionfw.zoo.registry import get_model

    fresh = get_model("espcn", scale=2, **TINY_ESPCN)
    fresh.set_weights([arrays[k] for k in sorted(a for a in arrays if a.startswith("model/"))])
    x = np.random.default_rng(1).random((1, 10, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), fresh(x).numpy())
    assert loaded(x).shape == (1, 20, 24, 3)


def test_resume_equals_uninterrupted(tmp_path, image_dir):
    # a constant lr: a cosine schedule depends on `steps`, which the first half would not share
    full = train(tiny_config(tmp_path / "a", image_dir, steps=6, schedule="constant"))
    train(tiny_config(tmp_path / "b", image_dir, steps=3, schedule="constant"))
    resumed = train(tiny_config(tmp_path / "b", image_dir, steps=6, schedule="constant"))
    assert full["resumed_from"] is None and resumed["resumed_from"].endswith("ckpt-00000003.npz")
    a, _ = ckpt_arrays(tmp_path / "a" / "checkpoints" / "ckpt-00000006.npz")
    b, meta = ckpt_arrays(tmp_path / "b" / "checkpoints" / "ckpt-00000006.npz")
    assert meta["step"] == 6 and sorted(a) == sorted(b)
    assert any(k.startswith("optimizer/") for k in a)
    for key in a:  # weights, Adam slots, iterations, RNG state: bit-identical
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the log of the resumed run continues the first one without duplicates
    with open(tmp_path / "b" / "train_log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_psnr_hist_sampler_learns_and_resumes_exactly(tmp_path, image_dir):
    """--sampler=psnr_hist: batches drawn in the step, P updated, sampler state checkpointed."""
    kw = dict(sampler="psnr_hist", pool_size=48, ckpt_every=2, log_every=2, schedule="constant")
    train(tiny_config(tmp_path / "a", image_dir, steps=4, **kw))
    train(tiny_config(tmp_path / "b", image_dir, steps=2, **kw))
    train(tiny_config(tmp_path / "b", image_dir, steps=4, **kw))
    a, _ = ckpt_arrays(tmp_path / "a" / "checkpoints" / "ckpt-00000004.npz")
    b, _ = ckpt_arrays(tmp_path / "b" / "checkpoints" / "ckpt-00000004.npz")
    probs = [a[k] for k in a if k.startswith("sampler/") and a[k].shape == (48,)]
    assert len(probs) == 1 and probs[0].sum() == pytest.approx(1.0, abs=1e-5)
    assert probs[0].max() > 1.5 / 48  # no longer uniform: low-gain patches gained mass
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_registered_task_metrics_are_logged(tmp_path, image_dir):
    from visionfw.tasks.losses import l2
    from visionfw.train import SRTask, register_task

    class SRWithMSE(SRTask):
        metric_names = ("mse",)

        def compute_loss(self, model, batch, training):
            loss, metrics = super().compute_loss(model, batch, training)
            return loss, dict(metrics, mse=l2(batch[1], metrics["_outputs"]))

    register_task("sr_mse_test", SRWithMSE)
    train(tiny_config(tmp_path / "m", image_dir, task="sr_mse_test", steps=2, log_every=2, ckpt_every=0))
    with open(tmp_path / "m" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:6] == ["step", "loss", "lr", "time", "steps_per_sec", "train_mse"]
    # |error| < 1 everywhere, so the mean squared error is below the mean absolute error (the loss)
    assert 0.0 < float(rows[0]["train_mse"]) < float(rows[0]["loss"])
    with pytest.raises(ConfigError):
        register_task("bad", object)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, image_dir):
    calls = tf.Variable(0, dtype=tf.int64)

    def poisoned_l1(y_true, y_pred):
        calls.assign_add(1)
        bad = tf.where(calls >= 5, tf.constant(np.nan, tf.float32), 0.0)
        return tf.reduce_mean(tf.abs(tf.cast(y_pred, tf.float32) - y_true)) + bad

    cfg = tiny_config(tmp_path / "nan", image_dir, steps=8, ckpt_every=2, loss=poisoned_l1)
    with pytest.raises(TrainingError, match="non-finite") as info:
        train(cfg)
    assert "ckpt-00000004.npz" in str(info.value)
    ckpts = sorted(os.listdir(tmp_path / "nan" / "checkpoints"))
    assert ckpts == ["ckpt-00000002.npz", "ckpt-00000004.npz"]
    arrays, _ = ckpt_arrays(tmp_path / "nan" / "checkpoints" / ckpts[-1])
    assert all(np.all(np.isfinite(v)) for k, v in arrays.items() if v.dtype.kind == "f")
    assert not (tmp_path / "nan" / "model.keras").exists()
    with open(tmp_path / "nan" / "train_log.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert int(last["step"]) == 5 and math.isnan(float(last["loss"]))


def cli_train_args(image_dir, workdir, log_every, ckpt_every):
    """`visionfw train` of tiny_config's run (12 steps) as a subprocess command line."""
    return [
        sys.executable,
        "-m",
        "visionfw.cli",
        "train",
        "--model=espcn",
        "--scale=2",
        "--model_kwargs=n1=8,n2=4",
        f"--train_data={image_dir}",
        "--val_data=",
        "--steps=12",
        "--batch_size=4",
        "--lr_patch=8",
        f"--log_every={log_every}",
        f"--ckpt_every={ckpt_every}",
        "--seed=3",
        "--deterministic",
        f"--workdir={workdir}",
        "--notensorboard",
    ]


def _resume_in_process(args, capsys):
    """The killed command line again with --resume=auto, through the console script's entry point in this
    process (the kill needed a process of its own; the resume does not): (status, stdout, stderr)."""
    from visionfw.cli import run

    capsys.readouterr()
    status = run(["visionfw", *args[3:], "--resume=auto"])  # args[:3]: python -m visionfw.cli
    return (status, *capsys.readouterr())


def test_sigkill_then_resume_auto_matches_uninterrupted(tmp_path, image_dir, capsys):
    """kill -9 the CLI after its first checkpoint; --resume=auto finishes with the same weights."""
    reference = train(tiny_config(tmp_path / "ref", image_dir, steps=12, ckpt_every=3, log_every=3, data_options={}))
    assert reference["steps"] == 12
    args = cli_train_args(image_dir, tmp_path / "killed", log_every=3, ckpt_every=3)
    kill_9_after(args, tmp_path / "killed" / "checkpoints" / "ckpt-00000003.npz", step_delay=0.5, timeout=120)
    assert not (tmp_path / "killed" / "checkpoints" / "ckpt-00000012.npz").exists()
    status, stdout, stderr = _resume_in_process(args, capsys)
    assert status == 0, stdout[-2000:] + stderr[-2000:]
    assert "model:" in stdout
    a, _ = ckpt_arrays(tmp_path / "ref" / "checkpoints" / "ckpt-00000012.npz")
    b, _ = ckpt_arrays(tmp_path / "killed" / "checkpoints" / "ckpt-00000012.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_unknown_data_option_is_config_error():
    from visionfw.errors import ConfigError
    from visionfw.tasks.base import SRTask
    from visionfw.train import TrainConfig, resolve_config

    config = resolve_config(TrainConfig(model="espcn", scale=2, data_options={"patch_ordr": "crop_then_downscale"}))
    with pytest.raises(ConfigError, match="patch_ordr"):
        SRTask(config).data_config()


def test_sigint_writes_a_checkpoint_and_resume_auto_continues(tmp_path, image_dir, capsys):
    """The first Ctrl-C: a checkpoint of the step reached within a couple of seconds, one line on how to
    resume, status 130; --resume=auto then ends with the weights of an uninterrupted run."""
    reference = train(tiny_config(tmp_path / "ref", image_dir, steps=12, ckpt_every=100, log_every=1, data_options={}))
    assert reference["steps"] == 12
    args = cli_train_args(image_dir, tmp_path / "int", log_every=1, ckpt_every=100)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # the trainer's test hook: half a second per step, so the signal lands mid-run
    proc = subprocess.Popen(
        args,
        env=dict(env, VISIONFW_TEST_STEP_DELAY="0.5"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:  # not a terminal: one plain progress line per --log_every steps
        lines.append(line)
        if "step 3/12" in line:
            break
    assert any("step 3/12" in ln for ln in lines), "".join(lines)[-2000:]
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    rest = []
    for line in proc.stderr:
        rest.append(line)
        if "interrupted" in line:
            break
    said = time.perf_counter() - sent  # the checkpoint is written before this line
    rest = "".join(rest) + proc.stderr.read()
    status = proc.wait(timeout=60)
    took = time.perf_counter() - sent  # plus TensorFlow's interpreter shutdown
    assert status == 130, rest
    # a couple of seconds to the message (half a step of test delay + the checkpoint), even on a loaded
    # machine; the exit adds TensorFlow's interpreter shutdown
    assert said < 3.0 and took < 15.0, f"{said:.2f} s from SIGINT to the message, {took:.2f} s to exit"
    message = rest.strip().splitlines()[-1]
    assert message.startswith("visionfw train: interrupted at step ") and "of 12" in message
    assert "run the same command again (--resume=auto" in message and "Traceback" not in rest
    step = int(message.split("interrupted at step ")[1].split()[0])
    assert 3 <= step < 12
    ckpt = tmp_path / "int" / "checkpoints" / f"ckpt-{step:08d}.npz"
    assert str(ckpt) in message and ckpt.exists() and ckpt_arrays(ckpt)[1]["step"] == step
    assert not (tmp_path / "int" / "model.keras").exists()
    status, stdout, stderr = _resume_in_process(args, capsys)
    assert status == 0, stderr[-2000:]
    assert f"steps {step} -> 12 (resumed)" in stderr and "model:" in stdout
    a, _ = ckpt_arrays(tmp_path / "ref" / "checkpoints" / "ckpt-00000012.npz")
    b, _ = ckpt_arrays(tmp_path / "int" / "checkpoints" / "ckpt-00000012.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    print(f"SIGINT after step 3: message after {said:.2f} s, exit after {took:.2f} s, checkpoint at step {step}")


def test_rerun_of_a_finished_run_says_so(tmp_path, image_dir, capsys):
    from visionfw.cli import run

    cfg = tiny_config(tmp_path / "done", image_dir, steps=3, ckpt_every=3)
    assert train(cfg)["already_complete"] is False
    again = train(cfg)
    assert again["already_complete"] is True and again["steps"] == 3
    args = [
        "visionfw",
        "train",
        "--model=espcn",
        "--scale=2",
        "--model_kwargs=n1=8,n2=4",
        f"--train_data={image_dir}",
        "--val_data=",
        "--steps=3",
        "--batch_size=4",
        "--lr_patch=8",
        "--seed=3",
        "--deterministic",
        f"--workdir={tmp_path / 'done'}",
        "--notensorboard",
        "--noprogress",
        "--data_options=patches_per_image=2",
    ]
    assert run(args) == 0
    out = capsys.readouterr().out
    assert (
        f"visionfw train: {tmp_path / 'done'} is already complete at step 3 (use --steps=M to continue or a "
        "new --workdir)"
    ) in out


def test_failing_start_leaves_no_run_directory(tmp_path, image_dir):
    from visionfw.errors import DataError

    workdir = tmp_path / "never"
    with pytest.raises(DataError, match="val_data=heldout") as info:
        train(tiny_config(workdir, image_dir, val_data=[str(tmp_path / "no_such_set")]))
    assert not workdir.exists(), os.listdir(workdir)
    assert "no_such_set" in str(info.value)
    # a start that fails later (no usable training image) cleans up too
    (tmp_path / "tiny").mkdir()
    from PIL import Image

    Image.new("RGB", (6, 6)).save(tmp_path / "tiny" / "a.png")
    with pytest.raises(DataError, match="No usable training image"):
        train(tiny_config(workdir, str(tmp_path / "tiny")))
    assert not workdir.exists()


def test_val_data_auto_and_heldout(tmp_path):
    from visionfw.data.embedded import EMBEDDED_HELDOUT, HELDOUT
    from visionfw.train.resolve import describe_val_data

    heldout = resolve_config(TrainConfig(model="espcn", val_data=[HELDOUT]))
    assert heldout.val_data == [HELDOUT] and heldout.data_options == {"embedded_holdout": True}
    assert "astronaut, chelsea, coffee" in describe_val_data(heldout)
    # a folder to train on: the held-out photos are not in it, nothing to leave out
    assert resolve_config(TrainConfig(model="espcn", val_data=[HELDOUT], train_data=str(tmp_path))).data_options == {}
    # colorize has no validation: auto picks nothing
    assert resolve_config(TrainConfig(model="colorization_small", task="colorize")).val_data == []
    from visionfw.data.pipeline import TrainDataConfig, load_train_images

    names, _, _ = load_train_images(TrainDataConfig(embedded_holdout=True))
    assert not set(EMBEDDED_HELDOUT) & set(names) and len(names) == 16
    with pytest.raises(ConfigError, match="embedded_holdout"):
        TrainDataConfig(source=str(tmp_path), embedded_holdout=True)
    auto = resolve_config(TrainConfig(model="espcn"))
    if (SHARED / "benchmark" / "Set5").is_dir():
        assert auto.val_data == ["Set5"] and auto.data_options == {}


def test_mixed_precision_auto_follows_the_hardware(tmp_path, monkeypatch):
    """'auto' picks bfloat16 only where the CPU lists bf16 units (or the GPU is Ampere or later), and
    the resolved choice with its reason is what config.json records."""
    import functools

    from visionfw.errors import ConfigError
    from visionfw.train import precision
    from visionfw.train.resolve import resolve_config

    with_bf16 = tmp_path / "cpuinfo_bf16"
    with_bf16.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512_bf16\n")
    without = tmp_path / "cpuinfo_plain"
    without.write_text("processor : 0\nflags : fpu sse2 avx2\n")
    assert precision.cpu_has_fast_bf16(with_bf16) and not precision.cpu_has_fast_bf16(without)
    assert not precision.cpu_has_fast_bf16(tmp_path / "missing")
    monkeypatch.setattr(precision, "gpu_has_fast_bf16", lambda: (False, False))
    real = precision.cpu_has_fast_bf16
    for info, want in ((with_bf16, "bfloat16"), (without, None)):
        monkeypatch.setattr(precision, "cpu_has_fast_bf16", functools.partial(real, info))
        c = resolve_config(
            TrainConfig(model="espcn", steps=10, val_data=[], mixed_precision="auto", workdir=str(tmp_path / "run"))
        )
        assert c.mixed_precision == want and c.precision_note.startswith("auto: ")
        assert resolve_config(c).precision_note == c.precision_note  # resolving again keeps the reason
    monkeypatch.setattr(precision, "gpu_has_fast_bf16", lambda: (True, False))
    assert precision.resolve_mixed_precision("auto") == (
        None,
        "auto: float32 (a GPU without fast bfloat16, compute capability < 8.0)",
    )
    with pytest.raises(ConfigError, match="use auto, bfloat16, float16"):
        resolve_config(TrainConfig(model="espcn", val_data=[], mixed_precision="fp8"))


DEGRADATION = "blur(sigma=0.5:1.5,size=5)+down(methods=bicubic|area)+noise(sigma=1:10)+jpeg(q=50:95)"


def test_degradation_feeds_training_and_resumes_exactly(tmp_path, image_dir):
    """--degradation replaces the bicubic LR of the input pipeline with the seeded degradation of the
    same HR patches: batch k of a run restarted at step n is batch n+k of the first run, and a
    trained-and-resumed run equals an uninterrupted one."""
    from visionfw.tasks.base import SRTask

    config = resolve_config(tiny_config(tmp_path / "d", image_dir, degradation=DEGRADATION))
    task = SRTask(config)
    first = [tuple(np.asarray(t) for t in b) for b in task.make_dataset(0).take(4)]
    later = [tuple(np.asarray(t) for t in b) for b in task.make_dataset(2).take(2)]
    for (lr_a, hr_a), (lr_b, hr_b) in zip(first[2:], later):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)
    plain = [
        tuple(np.asarray(t) for t in b)
        for b in SRTask(resolve_config(tiny_config(tmp_path / "p", image_dir))).make_dataset(0).take(1)
    ]
    lr, hr = first[0]
    np.testing.assert_array_equal(hr, plain[0][1])  # the same HR patches...
    assert lr.shape == plain[0][0].shape and np.abs(lr - plain[0][0]).mean() > 1e-3  # ...degraded, not bicubic
    np.testing.assert_array_equal(np.round(lr * 255), lr * 255)  # 8-bit, as an LR file would hold

    kw = dict(degradation=DEGRADATION, schedule="constant")  # a cosine schedule depends on `steps`
    whole = train(tiny_config(tmp_path / "whole", image_dir, **kw))
    train(tiny_config(tmp_path / "split", image_dir, steps=3, **kw))
    resumed = train(tiny_config(tmp_path / "split", image_dir, **kw))
    assert resumed["resumed_from"] and resumed["steps"] == whole["steps"] == 6
    a, _ = ckpt_arrays(tmp_path / "whole" / "checkpoints" / "ckpt-00000006.npz")
    b, _ = ckpt_arrays(tmp_path / "split" / "checkpoints" / "ckpt-00000006.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_degradation_options_are_checked_before_training(tmp_path, image_dir):
    with pytest.raises(ConfigError, match="degradation"):
        resolve_config(tiny_config(tmp_path, image_dir, degradation="blur(sigma=oops)"))
    with pytest.raises(ConfigError, match="cannot be combined with --sampler"):
        resolve_config(tiny_config(tmp_path, image_dir, degradation="realsr", sampler="uniform"))
    with pytest.raises(ConfigError, match="degradation_pool needs --degradation"):
        resolve_config(tiny_config(tmp_path, image_dir, degradation_pool="pool.npz"))
