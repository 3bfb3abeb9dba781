"""Hostile weight files, and the time and peak memory visionfw takes to refuse each.

Each builder writes a small file that used to cost far more than its size when read: a pickle whose
lists share each other (exponential to walk), a pickle memo index of 2**28 (a 4 GB memo table), a zip
member inflating to a gigabyte behind a tensor of 10 floats, a tensor with stride 0 over one element
(a 1.6 GB copy). ``tests/test_hostile_files.py`` builds the same files and asserts the bounds.

    python benchmarks/hostile_files.py          # one row per file: size, seconds, peak RSS growth, outcome
    python benchmarks/hostile_files.py --python=../main/.venv/bin/python   # the same with another checkout

Each file is read in a fresh subprocess (numpy and visionfw.weights.torch_checkpoint only, no TensorFlow), whose
peak RSS growth over its state just before the read is reported (``ru_maxrss``), with a 120 s limit.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

_FLOAT_PID = "ctorch\nFloatStorage\n"


def pickle_str(text):
    """Opcodes pushing ``text`` (BINUNICODE)."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def pickle_int(value):
    """Opcodes pushing a 32-bit int (BININT)."""
    return b"J" + struct.pack("<i", value)


def pickle_ints(values):
    """Opcodes pushing a tuple of ints."""
    return b"(" + b"".join(pickle_int(v) for v in values) + b"t"


def tensor_ops(size, stride, numel, key="0"):
    """Pickle opcodes of _rebuild_tensor_v2(FloatStorage ``key`` (numel elements), 0, size, stride)."""
    pid = (
        b"("
        + pickle_str("storage")
        + _FLOAT_PID.encode()
        + pickle_str(key)
        + pickle_str("cpu")
        + pickle_int(numel)
        + b"tQ"
    )
    return (
        b"ctorch._utils\n_rebuild_tensor_v2\n("
        + pid
        + pickle_int(0)
        + pickle_ints(size)
        + pickle_ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtR"
    )


def dict_pickle(entries):
    """A protocol-2 pickle of a dict from ``[(key, value opcodes)]``."""
    return b"\x80\x02}(" + b"".join(pickle_str(k) + ops for k, ops in entries) + b"u."


def tensor_pickle(size, stride, numel, key="0"):
    """A protocol-2 pickle of {'w': one tensor} (see :func:`tensor_ops`)."""
    return dict_pickle([("w", tensor_ops(size, stride, numel, key))])


def write_torch_zip(path, data_pkl, storages=(), compress=False):
    """A torch.save-style zip: ``ckpt/data.pkl`` plus ``ckpt/data/<key>`` records."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("ckpt/data.pkl", data_pkl)
        for key, raw in dict(storages).items():
            z.writestr(f"ckpt/data/{key}", raw)
    return Path(path)


def dag_pickle(levels):
    """Lists where level k holds level k-1 twice, by memo reference: tiny, 2**levels leaves when walked."""
    ops = [b"\x80\x02]r" + struct.pack("<I", 0)]
    for k in range(1, levels + 1):
        get = b"j" + struct.pack("<I", k - 1)
        ops.append(b"0](" + get + get + b"er" + struct.pack("<I", k))
    return b"".join(ops) + b"."


def write_dag(path, levels=40):
    return write_torch_zip(path, dag_pickle(levels))


def write_memo_bomb(path, index=0x0FFFFFF0):
    """A pickle that memoizes one empty list at a huge index (the unpickler sizes its memo table to it)."""
    return write_torch_zip(path, b"\x80\x02]r" + struct.pack("<I", index) + b".")


def write_zip_bomb(path, inflated=1 << 30):
    """A tensor of 10 floats whose storage record inflates to ``inflated`` zero bytes (deflate, ~1/1000)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("ckpt/data.pkl", tensor_pickle((10,), (1,), 10))
        info = zipfile.ZipInfo("ckpt/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as member:
            block = bytes(1 << 24)
            for _ in range(inflated // len(block)):
                member.write(block)
    return Path(path)


def write_stride0(path, side=20000):
    """One stored float viewed as a side x side tensor with strides (0, 0)."""
    return write_torch_zip(path, tensor_pickle((side, side), (0, 0), 1), {"0": struct.pack("<f", 1.0)})


TORCH_FILES = {
    "dag_40_levels.pth": write_dag,
    "memo_index_2e28.pth": write_memo_bomb,
    "zip_bomb_1GB.pth": write_zip_bomb,
    "stride0_20000x20000.pth": write_stride0,
}

_CHILD = """
import json, resource, sys, time
from visionfw.weights.torch_checkpoint import read_torch_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    read_torch_checkpoint(sys.argv[1])
    outcome = "loaded"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - t0
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"seconds": seconds, "peak_mb": grown / 1024, "outcome": outcome}))
"""


def measure_read(path, timeout=120, python=sys.executable):
    """``{'seconds', 'peak_mb', 'outcome'}`` of reading ``path`` in a fresh subprocess of ``python``."""
    try:
        done = subprocess.run(
            [python, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=timeout, cwd=Path(path).parent
        )  # not this checkout's folder
    except subprocess.TimeoutExpired:
        return {"seconds": float(timeout), "peak_mb": float("nan"), "outcome": f"killed after {timeout} s"}
    if done.returncode:
        return {
            "seconds": float("nan"),
            "peak_mb": float("nan"),
            "outcome": f"exit {done.returncode}: {done.stderr.strip()[-200:]}",
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter to read with (e.g. another checkout's venv, for a before/after)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a read is killed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'file':26} {'bytes':>8} {'seconds':>8} {'peak MB':>8}  outcome")
        for name, write in TORCH_FILES.items():
            path = write(Path(tmp) / name)
            r = measure_read(path, args.timeout, args.python)
            print(f"{name:26} {path.stat().st_size:8d} {r['seconds']:8.2f} {r['peak_mb']:8.1f}  {r['outcome'][:150]}")


if __name__ == "__main__":
    main()
