"""Peak memory (RSS) of ``visionfw train`` on one big training image, and of ``imresize_numpy``.

Each case runs in its own child process; its peak resident set size is read with
``os.wait4`` (the child's own ``ru_maxrss``), so cases do not see each other's peaks.

* ``train WxH``: ``visionfw train`` of a tiny ESPCN (n1=8, n2=4), x2, 1 step, batch 4, LR
  patch 8, no validation, no TensorBoard, on a folder holding one smooth-noise JPEG photo
  of W x H pixels (RGB).  The ``baseline`` case is the same command on one 64x64 image:
  what TensorFlow, Keras and the model cost whatever the data.
* ``imresize_numpy HxWx3``: ``imresize_numpy(uint8 image, scale=1/2)`` in a child that
  first makes the image (the reported figure is the peak minus the RSS just before the
  call, also measured in the child).

    python benchmarks/train_memory.py [--sizes 4000 6000] [--imresize 4000] [--keep DIR]

Prints one line per case: peak RSS in MB and, for training, the excess over the baseline.
Memory only: times are not measured here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_photo(path, size, seed=0):
    """A size x size RGB JPEG of smooth noise (a stand-in for a photo: not compressible to nothing)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((size // 50 + 2, size // 50 + 2, 3)) * 255).astype(np.uint8))
    image = small.resize((size, size), Image.BICUBIC)
    del small
    grain = Image.fromarray(rng.integers(0, 24, (size, size), dtype=np.uint8)).convert("RGB")
    Image.blend(image, grain, 0.1).save(path, quality=90)


def _peak_mb(args, env=None):
    """(exit status, peak RSS of the child in MB, its output)."""
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024.0, out


def train_peak(folder, workdir, extra=()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    args = [
        sys.executable,
        "-m",
        "visionfw.cli",
        "train",
        "--model=espcn",
        "--scale=2",
        "--model_kwargs=n1=8,n2=4",
        f"--train_data={folder}",
        "--val_data=",
        "--steps=1",
        "--batch_size=4",
        "--lr_patch=8",
        f"--workdir={workdir}",
        "--notensorboard",
        "--noprogress",
        *extra,
    ]
    return _peak_mb(args, env)


_IMRESIZE_CHILD = """
import resource, sys
import numpy as np
from visionfw.data.imresize import imresize_numpy
n = int(sys.argv[1])
img = np.random.default_rng(0).integers(0, 256, (n, n, 3), dtype=np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = imresize_numpy(img, scale=0.5)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(after - before) / 1024.0:.0f}")
"""


def imresize_peak(size):
    status, peak, out = _peak_mb([sys.executable, "-c", _IMRESIZE_CHILD, str(size)])
    if status != 0:
        raise SystemExit(f"imresize_numpy child failed:\n{out[-2000:]}")
    return peak, float(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[4000, 6000],
        help="side lengths of the square training photos (default 4000 6000)",
    )
    parser.add_argument(
        "--imresize",
        type=int,
        nargs="*",
        default=[4000],
        help="side lengths for the imresize_numpy case (default 4000)",
    )
    parser.add_argument("--keep", default=None, help="make the images and run dirs here (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for size in args.imresize:
            peak, added = imresize_peak(size)
            print(
                f"imresize_numpy {size}x{size}x3 uint8, scale 1/2: child peak {peak:.0f} MB, "
                f"added by the call {added:.0f} MB",
                flush=True,
            )
        cases = [("baseline", 64)] + [(f"{s}x{s}", s) for s in args.sizes]
        base = None
        for name, size in cases:
            folder = root / f"photo_{size}"
            folder.mkdir(parents=True, exist_ok=True)
            photo = folder / f"photo_{size}.jpg"
            if not photo.exists():
                make_photo(photo, size)
            # a fresh run directory: a finished one would make the command return at once
            status, peak, out = train_peak(folder, tempfile.mkdtemp(prefix=f"run_{size}_", dir=root))
            if status != 0:
                print(f"train {name}: exit status {status}, peak {peak:.0f} MB; last output:\n{out[-1500:]}")
                continue
            if base is None:
                base = peak
                print(f"train {name} (one 64x64 image): peak RSS {peak:.0f} MB", flush=True)
            else:
                print(f"train {name} photo: peak RSS {peak:.0f} MB, {peak - base:.0f} MB over the baseline", flush=True)


if __name__ == "__main__":
    main()
