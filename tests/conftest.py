import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VISIONFW_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_sessionstart(session):
    """Under CI the reference data must be there: skipping every paper check would pass empty."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and not (SHARED_DATA / "README.md").exists():
        raise pytest.UsageError(
            f"CI is set but the reference data is missing at {SHARED_DATA}: lay ../shared/data "
            "beside the checkout (or set VISIONFW_SHARED_DATA); without it the paper checks "
            "would all skip."
        )


@pytest.fixture(scope="session")
def shared_data():
    """The read-only reference data folder (../shared/data); skips when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set VISIONFW_SHARED_DATA)")
    return SHARED_DATA


def write_noise_images(folder, n, size, seed):
    """``n`` smooth random RGB PNGs of ``size`` x ``size`` in ``folder`` (tiny train/test sets for tests)."""
    import numpy as np
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        noise = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        im = Image.fromarray(noise).resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1))
        im.save(folder / f"im{i}.png")
    return folder


def count_calls(monkeypatch, targets):
    """Wraps ``{name: (module, attribute)}`` so each call is counted; returns the live ``{name: count}``."""
    calls = dict.fromkeys(targets, 0)
    for name, (module, attr) in targets.items():
        fn = getattr(module, attr)

        def wrapper(*args, _name=name, _fn=fn, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)

        monkeypatch.setattr(module, attr, wrapper)
    return calls


def kill_9_after(args, checkpoint, step_delay, timeout=300):
    """Runs the CLI ``args`` (from the repository root) with the trainer's per-step pause hook
    (``VISIONFW_TEST_STEP_DELAY``, not a flag) and SIGKILLs it as soon as ``checkpoint`` exists, so the
    kill lands between two checkpoints; returns the environment the resumed command should use."""
    import os
    import signal
    import subprocess
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        args,
        env=dict(env, VISIONFW_TEST_STEP_DELAY=str(step_delay)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert checkpoint.exists(), proc.communicate()[0].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return env


def load_experiment(name):
    """The module ``experiments/<name>.py``, loaded by path (``experiments/`` is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
