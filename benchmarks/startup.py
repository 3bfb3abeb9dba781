"""Start-up time of `visionfw models` against a bare `python -c "import tensorflow"`.

`visionfw models` loads the builder and the zoo, never the training stack, so it should cost
little more than TensorFlow's own import (goal: ratio <= 1.2).  Both commands run as fresh
processes, interleaved, ``--repeats`` times each; the medians and their ratio are printed.

    python benchmarks/startup.py [--repeats 7]
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import tensorflow": [sys.executable, "-c", "import tensorflow"],
    "visionfw models": [
        sys.executable,
        "-c",
        "import sys; from visionfw.cli import run; sys.argv = ['visionfw', 'models']; sys.exit(run())",
    ],
}


def _seconds(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache once
        _seconds(cmd)
    times = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
        for name, cmd in COMMANDS.items():
            times[name].append(_seconds(cmd))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:<18} median {medians[name]:.2f} s  (min {min(t):.2f}, max {max(t):.2f}, n={len(t)})")
    ratio = medians["visionfw models"] / medians["import tensorflow"]
    print(f"ratio visionfw models / import tensorflow: {ratio:.2f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
