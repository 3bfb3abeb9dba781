"""Training at the edges: one run per workdir, resume past a damaged checkpoint, stale .tmp files,
full and read-only disks, a loss that grows without becoming NaN."""

import csv
import errno
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_noise_images

from visionfw.errors import TrainingError
from visionfw.train import TrainConfig, train
from visionfw.train import checkpoint as ckpt_mod
from visionfw.train.checkpoint import CheckpointManager, CorruptCheckpointError, load_state
from visionfw.train.workdir import LOCK_NAME, WorkdirBusyError, lock_workdir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    return str(write_noise_images(tmp_path_factory.mktemp("edge_images"), 6, 48, seed=0))


def tiny_config(workdir, image_dir, **kw):
    base = dict(
        model="espcn",
        scale=2,
        model_kwargs={"n1": 8, "n2": 4},
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
        schedule="constant",
        data_options={"patches_per_image": 2},
    )
    base.update(kw)
    return TrainConfig(**base)


def log_steps(workdir):
    with open(Path(workdir) / "train_log.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def assert_same_arrays(a_path, b_path):
    a, _ = load_state(a_path)
    b, _ = load_state(b_path)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------------------- one run per workdir


def test_workdir_lock_names_the_holder_and_is_released(tmp_path):
    with (
        lock_workdir(tmp_path / "run"),
        pytest.raises(
            WorkdirBusyError,
            match=rf"in use by another training run, pid {os.getpid()} "
            r"\(started \d{4}-\d\d-\d\d ",
        ),
        lock_workdir(tmp_path / "run"),
    ):
        pass
    with lock_workdir(tmp_path / "run"):  # released at the end of the block
        pass


def test_second_run_on_a_busy_workdir_stops_with_one_line_and_the_first_finishes_intact(tmp_path, image_dir, capsys):
    from visionfw.cli import run

    workdir = tmp_path / "shared"
    first = [
        sys.executable,
        "-m",
        "visionfw.cli",
        "train",
        "--model=espcn",
        "--scale=2",
        "--model_kwargs=n1=8,n2=4",
        f"--train_data={image_dir}",
        "--val_data=",
        "--steps=9",
        "--batch_size=4",
        "--lr_patch=8",
        "--log_every=1",
        "--ckpt_every=3",
        "--keep_checkpoints=2",
        "--seed=3",
        "--lr=0.001",
        "--schedule=constant",
        f"--workdir={workdir}",
        "--notensorboard",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", VISIONFW_TEST_STEP_DELAY="0.6")
    proc = subprocess.Popen(first, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while (
            not (workdir / "checkpoints" / "ckpt-00000003.npz").exists()
            and time.time() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
        # a second run with another seed and lr, while the first is training
        status = run(
            [
                "visionfw",
                "train",
                "--model=espcn",
                "--scale=2",
                "--model_kwargs=n1=8,n2=4",
                f"--train_data={image_dir}",
                "--val_data=",
                "--steps=9",
                "--batch_size=4",
                "--lr_patch=8",
                "--seed=7",
                "--lr=0.01",
                f"--workdir={workdir}",
                "--notensorboard",
                "--noprogress",
            ]
        )
        captured = capsys.readouterr()
        out = (captured.out + captured.err).strip()
        assert status == 1 and len(out.splitlines()) == 1, out
        assert f"workdir {workdir} is in use by another training run, pid {proc.pid}" in out, out
        assert "--workdir" in out
    finally:
        output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output[-2000:]
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["seed"] == 3 and saved["lr"] == 0.001
    assert log_steps(workdir) == list(range(1, 10))
    assert sorted(os.listdir(workdir / "checkpoints")) == ["ckpt-00000006.npz", "ckpt-00000009.npz"]
    _, meta = load_state(workdir / "checkpoints" / "ckpt-00000009.npz")
    assert meta["step"] == 9 and meta["config"]["seed"] == 3


def test_rotation_deletes_only_checkpoints_of_its_own_run(tmp_path):
    import tensorflow as tf

    groups = {"model": [tf.Variable([1.0, 2.0])]}
    other = CheckpointManager(tmp_path, keep=1, run_id="other-run")
    other.save(1, groups, {"step": 1})
    CheckpointManager(tmp_path, keep=1).save(2, groups, {"step": 2})  # no run id (an older version's file)
    earlier = CheckpointManager(tmp_path, keep=5, run_id="mine")
    earlier.save(3, groups, {"step": 3})  # this run before a resume
    mine = CheckpointManager(tmp_path, keep=1, run_id="mine")
    mine.save(4, groups, {"step": 4})
    mine.save(5, groups, {"step": 5})
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000001.npz", "ckpt-00000002.npz", "ckpt-00000005.npz"]
    assert load_state(tmp_path / "ckpt-00000005.npz")[1]["run_id"] == "mine"


# ----------------------------------------------------------------------------- damaged checkpoints


def flip_bits(path, where=0.5, count=3):
    data = bytearray(Path(path).read_bytes())
    at = int(len(data) * where)
    for i in range(count):
        data[at + 7 * i] ^= 0x24
    Path(path).write_bytes(bytes(data))


def test_damaged_checkpoints_are_one_line_errors(tmp_path):
    import tensorflow as tf

    manager = CheckpointManager(tmp_path, keep=3)
    groups = {"model": [tf.Variable(np.arange(4000, dtype=np.float32))]}
    flipped, truncated = manager.save(1, groups, {"step": 1}), manager.save(2, groups, {"step": 2})
    flip_bits(flipped)
    Path(truncated).write_bytes(Path(truncated).read_bytes()[:5000])
    with pytest.raises(CorruptCheckpointError, match=r"damaged \(BadZipFile: Bad CRC-32 for file 'model/0000.npy'"):
        load_state(flipped)
    with pytest.raises(CorruptCheckpointError, match="ckpt-00000002.npz' is damaged"):
        load_state(truncated)
    assert isinstance(CorruptCheckpointError("x", "y"), TrainingError)
    nan = manager.save(3, {"model": [tf.Variable([1.0, np.nan])]}, {"step": 3})
    with pytest.raises(CorruptCheckpointError, match="model/0000 holds non-finite values"):
        ckpt_mod.check_finite(nan, load_state(nan)[0])


def test_resume_skips_a_bit_flipped_newest_checkpoint_and_ends_bit_equal(tmp_path, image_dir):
    full = train(tiny_config(tmp_path / "a", image_dir, steps=9))
    assert full["resumed_from"] is None
    train(tiny_config(tmp_path / "b", image_dir, steps=6))
    ckpts = tmp_path / "b" / "checkpoints"
    flip_bits(ckpts / "ckpt-00000006.npz")
    (ckpts / "ckpt-00000007.npz.tmp").write_bytes(b"partial write of a killed run")
    (tmp_path / "b" / ".model.tmp.keras").write_bytes(b"partial")
    with pytest.warns(UserWarning) as record:
        resumed = train(tiny_config(tmp_path / "b", image_dir, steps=9))
    lines = [str(w.message) for w in record if "corrupt" in str(w.message)]
    assert len(lines) == 1 and "ckpt-00000006.npz (BadZipFile: Bad CRC-32" in lines[0], lines
    assert lines[0].endswith(f"resuming from {ckpts / 'ckpt-00000003.npz'}.")
    assert resumed["resumed_from"] == str(ckpts / "ckpt-00000003.npz")
    # the damaged file is kept aside; rotation (keep 2) removed this run's ckpt-3 once 6 and 9 were rewritten
    assert sorted(os.listdir(ckpts)) == ["ckpt-00000006.npz", "ckpt-00000006.npz.corrupt", "ckpt-00000009.npz"]
    assert not list(Path(tmp_path / "b").rglob("*.tmp")) and not (tmp_path / "b" / ".model.tmp.keras").exists()
    assert_same_arrays(tmp_path / "a" / "checkpoints" / "ckpt-00000009.npz", ckpts / "ckpt-00000009.npz")
    assert log_steps(tmp_path / "b") == list(range(1, 10))


# ----------------------------------------------------------------------------- disks that refuse writes


def test_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_good_one(tmp_path, image_dir, monkeypatch):
    calls = []
    real = ckpt_mod._write_npz

    def fills_the_disk(f, arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"x" * 1000)  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, arrays)

    monkeypatch.setattr(ckpt_mod, "_write_npz", fills_the_disk)
    ckpts = tmp_path / "full" / "checkpoints"
    with pytest.raises(TrainingError) as info:
        train(tiny_config(tmp_path / "full", image_dir, steps=9))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write {ckpts / 'ckpt-00000006.npz'}: No space left on device [Errno 28]")
    assert f"the last good checkpoint {ckpts / 'ckpt-00000003.npz'} is kept" in message
    assert "the disk is full" in message
    assert sorted(os.listdir(ckpts)) == ["ckpt-00000003.npz"]  # no partial .tmp left
    assert load_state(ckpts / "ckpt-00000003.npz")[1]["step"] == 3


def test_read_only_workdir_is_one_line_and_touches_nothing(tmp_path, image_dir, monkeypatch, capsys):
    from visionfw.cli import run
    from visionfw.train import workdir as workdir_mod

    workdir = tmp_path / "ro"
    train(tiny_config(workdir, image_dir, steps=3))
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # root ignores chmod: a read-only mount says EROFS
        if str(path).startswith(str(workdir)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(workdir_mod.os, "open", read_only)
    status = run(
        [
            "visionfw",
            "train",
            "--model=espcn",
            "--scale=2",
            "--model_kwargs=n1=8,n2=4",
            f"--train_data={image_dir}",
            "--val_data=",
            "--steps=6",
            "--batch_size=4",
            "--lr_patch=8",
            f"--workdir={workdir}",
            "--notensorboard",
            "--noprogress",
        ]
    )
    monkeypatch.undo()
    captured = capsys.readouterr()
    out = (captured.out + captured.err).strip()
    assert status == 1 and len(out.splitlines()) == 1, out
    assert f"cannot write {workdir / LOCK_NAME}: Read-only file system [Errno 30]" in out
    assert "pass a writable --workdir" in out
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_read_only_error_in_the_loop_is_one_line(tmp_path, image_dir, monkeypatch):
    from visionfw.train import workdir as workdir_mod

    def refuse(self, row):
        raise OSError(errno.EROFS, "Read-only file system", self.path)

    monkeypatch.setattr(workdir_mod.CsvLog, "write", refuse)
    with pytest.raises(TrainingError) as info:
        train(tiny_config(tmp_path / "loop", image_dir, steps=3))
    log = tmp_path / "loop" / "train_log.csv"
    assert str(info.value).startswith(f"cannot write {log}: Read-only file system [Errno 30]; ")


# ----------------------------------------------------------------------------- divergence that stays finite


def test_a_loss_that_grows_a_thousandfold_warns_once(tmp_path, image_dir):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = train(tiny_config(tmp_path / "huge_lr", image_dir, steps=6, lr=1e6, optimizer="adam", ckpt_every=0))
        calm = train(tiny_config(tmp_path / "calm", image_dir, steps=6, ckpt_every=0))
    grew = [str(w.message) for w in record if "training loss grew" in str(w.message)]
    assert len(grew) == 1, grew
    assert "at step 1 to" in grew[0] and "lower --lr (now 1e+06)" in grew[0]
    assert result["final_loss"] > 1000 * 0.01 and calm["final_loss"] < 1.0
