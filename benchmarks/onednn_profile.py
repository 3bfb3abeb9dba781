"""Where the EDSR-baseline train step spends its time, by oneDNN primitive, ours vs PyTorch.

Runs each side (visionfw fp32 / mixed bf16, PyTorch channels_last fp32 / autocast bf16) in its own
process with ``ONEDNN_VERBOSE=1`` for ``--steps`` steps after ``--warmup``, and sums the execution
times oneDNN reports per primitive kind (convolution forward / backward data / backward weights,
reorder, eltwise, ...), per step.  Time outside oneDNN (TF's own kernels, the optimizer update,
Python) is the step time minus that sum.

    python benchmarks/onednn_profile.py [--steps 3] [--warmup 2] [--batch 16] [--patch 48]
"""

import argparse
import collections
import os
import subprocess
import sys
import time

import train_throughput as tt  # this folder: the step, its flags

SIDES = ("visionfw fp32", "visionfw bf16", "PyTorch fp32", "PyTorch bf16")
MARK = "ONEDNN_PROFILE_MARK"


def child(side, args):
    """Runs ``side``'s steps; prints a mark line between warm-up and the timed steps."""
    if side.startswith("visionfw"):
        run, _, _ = tt.visionfw_stepper(args, mixed="bfloat16" if side.endswith("bf16") else None)
    else:
        run, _ = tt.torch_stepper(args, bf16=side.endswith("bf16"))
    begin, start = time.time() * 1e3, time.perf_counter()  # oneDNN stamps its lines in epoch ms
    run(args.steps)
    step_ms = (time.perf_counter() - start) / args.steps * 1e3
    print(f"{MARK} {begin:.3f} {time.time() * 1e3:.3f} {step_ms:.1f}", flush=True)


def summarise(text, steps):
    """{primitive kind: ms per step} of the exec lines stamped inside the timed steps, and the step time.
    (oneDNN's C stdio output reaches the pipe out of order with Python's, so lines go by timestamp.)"""
    marks = [line.split() for line in text.splitlines() if line.startswith(MARK)]
    if not marks:
        raise SystemExit("the child run did not finish:\n" + "\n".join(text.splitlines()[-20:]))
    begin, end, step_ms = (float(v) for v in marks[-1][1:4])
    totals = collections.Counter()
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 8 or parts[0] != "onednn_verbose" or parts[4] != "exec":
            continue
        try:
            stamp, ms = float(parts[2]), float(parts[-1])
        except ValueError:
            continue
        if begin <= stamp <= end:
            totals[f"{parts[6]} {parts[8]}".strip()] += ms
    return {k: v / steps for k, v in totals.most_common()}, step_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tt.add_step_arguments(ap, steps=3)
    ap.add_argument("--side", choices=SIDES, help="(internal) run one side")
    args = ap.parse_args()
    if args.side:
        return child(args.side, args)
    env = dict(os.environ, ONEDNN_VERBOSE="1", ONEDNN_VERBOSE_TIMESTAMP="1", TF_CPP_MIN_LOG_LEVEL="3")
    rows = {}
    for side in SIDES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--side",
                side,
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--batch",
                str(args.batch),
                "--patch",
                str(args.patch),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        rows[side] = summarise(out.stdout, args.steps)
    kinds = sorted(
        {k for prims, _ in rows.values() for k in prims}, key=lambda k: -max(rows[s][0].get(k, 0.0) for s in SIDES)
    )
    print(
        f"EDSR-baseline x2 train step, batch {args.batch} of {args.patch}x{args.patch}: ms per step by oneDNN "
        f"primitive (exec times from ONEDNN_VERBOSE, mean of {args.steps} steps; verbose logging slows every side)"
    )
    print(f"| primitive | {' | '.join(SIDES)} |")
    print("|---" * (len(SIDES) + 1) + "|")
    for k in kinds:
        if max(rows[s][0].get(k, 0.0) for s in SIDES) >= 1.0:
            print(f"| {k} | " + " | ".join(f"{rows[s][0].get(k, 0.0):.1f}" for s in SIDES) + " |")
    print("| all oneDNN | " + " | ".join(f"{sum(rows[s][0].values()):.1f}" for s in SIDES) + " |")
    print("| step (wall) | " + " | ".join(f"{rows[s][1]:.1f}" for s in SIDES) + " |")
    print("| outside oneDNN | " + " | ".join(f"{rows[s][1] - sum(rows[s][0].values()):.1f}" for s in SIDES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
