"""Data-parallel training equals single-device training for the same global batch and seed.

Each strategy runs in fresh subprocesses: logical CPU devices must be configured before
TensorFlow initialises, and MultiWorkerMirroredStrategy needs one process per worker.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    args = json.loads(sys.argv[1])
    if args.get("logical_cpus"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
    from visionfw.train import TrainConfig, train
    result = train(TrainConfig(**args["config"]))
    print("RESULT", json.dumps({"steps": result["steps"], "loss": result["final_loss"],
                                "replicas": result["replicas"]}))
""")


def _images(folder):
    from PIL import Image, ImageFilter

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        noise = (rng.random((10, 10, 3)) * 255).astype(np.uint8)
        Image.fromarray(noise).resize((40, 40), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1)).save(
            folder / f"im{i}.png"
        )
    return str(folder)


def _config(workdir, images, **kw):
    cfg = dict(
        model="espcn",
        scale=2,
        model_kwargs={"n1": 8, "n2": 4},
        train_data=images,
        val_data=[],
        steps=5,
        batch_size=4,
        lr_patch=8,
        log_every=5,
        ckpt_every=5,
        seed=7,
        workdir=str(workdir),
        progress=False,
        tensorboard=False,
        clipnorm=0.05,
        data_options={"patches_per_image": 2},
    )
    cfg.update(kw)
    return cfg


def _launch(args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _model_weights(workdir, step=5):
    with np.load(Path(workdir) / "checkpoints" / f"ckpt-{step:08d}.npz") as data:
        return {k: data[k] for k in data.files if k.startswith("model/")}


def _assert_close(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        # same batches and global-mean loss; only the summation order of gradients differs
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-6, err_msg=key)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    images = _images(root / "images")
    result = _finish(_launch({"config": _config(root / "single", images)}))
    return root, images, result, _model_weights(root / "single")


@pytest.mark.slow  # fresh processes with 2 logical CPUs: about 19 s of CPU; `python -m pytest -m slow`
def test_mirrored_two_cpus_matches_single_device(single_device):
    root, images, ref, ref_w = single_device
    got = _finish(_launch({"logical_cpus": 2, "config": _config(root / "mirrored", images, distribute="mirrored")}))
    assert got["steps"] == 5 and got["replicas"] == 2 and ref["replicas"] == 1
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-4)
    # Adam moves every weight ~1e-3 per step, so a run that skipped updates could not match
    _assert_close(_model_weights(root / "mirrored"), ref_w)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow  # three fresh processes (two workers): about 19 s of CPU; `python -m pytest -m slow`
def test_multi_worker_two_processes_matches_single_device(single_device):
    root, images, ref, ref_w = single_device
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        workdir = root / "multi" if index == 0 else root / f"multi_worker{index}"
        procs.append(
            _launch(
                {"config": _config(workdir, images, distribute="multi_worker")}, {"TF_CONFIG": json.dumps(tf_config)}
            )
        )
    results = [_finish(p) for p in procs]
    assert [r["steps"] for r in results] == [5, 5] and results[0]["replicas"] == 2
    assert results[0]["loss"] == pytest.approx(ref["loss"], rel=1e-4)
    assert results[1]["loss"] == pytest.approx(results[0]["loss"], rel=1e-6)
    _assert_close(_model_weights(root / "multi"), ref_w)
    # only the chief writes the run directory
    assert not (root / "multi_worker1" / "checkpoints" / "ckpt-00000005.npz").exists()
