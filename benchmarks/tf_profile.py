"""Where our EDSR-baseline train step spends its time, by TensorFlow op, from a TF profiler trace.

Traces ``--steps`` steps of the compiled train step that ``visionfw train`` runs (fp32 and mixed
bfloat16, after ``--warmup``) with ``tf.profiler`` (host tracer level 3: every executed op), reads the
trace's XSpace protobuf directly (no TensorBoard plugin needed) and prints, per step:

  * op time summed by op type (``_MklNativeConv2DBackpropFilterWithBias``, ``Cast``, ...) and by
    group (conv forward / backward-input / backward-filter, casts, optimizer update, other);
  * the step's wall time and how much op time ran in parallel (op time / wall time), which is
    why oneDNN's per-primitive sums (``onednn_profile.py``) exceed the wall time on TF's side.

    python benchmarks/tf_profile.py [--steps 3] [--warmup 2] [--batch 16] [--patch 48] [--top 12]
                                    [--inter_op N] [--intra_op N]
"""

import argparse
import collections
import glob
import sys
import tempfile
import time

import tensorflow as tf
import train_throughput as tt  # this folder

GROUPS = (  # (group, predicate on the op type), first match wins
    ("conv backward filter", lambda t: "BackpropFilter" in t),
    ("conv backward input", lambda t: "BackpropInput" in t),
    ("conv forward", lambda t: "Conv2D" in t),
    ("cast", lambda t: "Cast" in t),
    (
        "optimizer update",
        lambda t: (
            t
            in {"AssignVariableOp", "AssignSubVariableOp", "AssignAddVariableOp", "ReadVariableOp", "ResourceApplyAdam"}
        ),
    ),
    ("pixel shuffle", lambda t: t in {"DepthToSpace", "SpaceToDepth"}),
)


def group_of(op_type):
    for name, pred in GROUPS:
        if pred(op_type):
            return name
    return "other (element-wise, loss, Adam maths)"


def op_events(logdir):
    """[(thread, op name, op type, start ps, duration ps)] of the TF ops in the newest trace of ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))
    if not files:
        raise SystemExit(f"no profiler trace was written under {logdir}")
    space = xplane_pb2.XSpace()
    with open(files[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            if not (line.name.startswith("tf_Compute") or "Eigen" in line.name or line.name.startswith("tf_inter")):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" not in name or "::" in name:  # ops are "name:Type"; runtime events use "::"
                    continue
                op_name, op_type = name.rsplit(":", 1)
                start = line.timestamp_ns * 1000 + ev.offset_ps
                events.append((line.name, op_name, op_type, start, ev.duration_ps))
    return events


def profile(run, steps):
    logdir = tempfile.mkdtemp(prefix="visionfw_tfprof_")
    options = tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=3, python_tracer_level=0, device_tracer_level=0
    )
    tf.profiler.experimental.start(logdir, options=options)
    start = time.perf_counter()
    run(steps)
    wall = (time.perf_counter() - start) / steps * 1e3  # ms
    tf.profiler.experimental.stop()
    return op_events(logdir), wall


def summarise(events, steps):
    by_type, by_group = collections.Counter(), collections.Counter()
    for _, _, op_type, _, dur in events:
        by_type[op_type] += dur / 1e9 / steps  # ps -> ms, per step
        by_group[group_of(op_type)] += dur / 1e9 / steps
    # busy wall time: the union of the op intervals (ms per step)
    spans = sorted((s, s + d) for *_, s, d in events)
    busy, cur_s, cur_e = 0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    return by_type, by_group, busy / 1e9 / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tt.add_step_arguments(parser, steps=3)
    parser.add_argument("--top", type=int, default=12, help="op types listed per side")
    tt.add_thread_arguments(parser)
    args = parser.parse_args()
    tt.apply_thread_arguments(args)
    print(
        f"EDSR-baseline x2 train step, batch {args.batch} of {args.patch}x{args.patch}; TF profiler trace of "
        f"{args.steps} steps after {args.warmup} warm-up; ms per step"
    )
    results = {}
    for side, mixed in (("fp32", None), ("bf16", "bfloat16")):
        run, _, _ = tt.visionfw_stepper(args, mixed=mixed)
        events, wall = profile(run, args.steps)
        results[side] = summarise(events, args.steps) + (wall, len(events) / args.steps)

    groups = [g for g, _ in GROUPS] + [group_of("?")]
    print(f"\n{'group':42s} {'fp32':>9s} {'bf16':>9s}")
    for g in groups:
        print(f"{g:42s} " + " ".join(f"{results[s][1].get(g, 0.0):9.1f}" for s in ("fp32", "bf16")))
    for label, idx in (("sum of op time", None), ("ops busy (union of intervals)", 2), ("step wall time", 3)):
        vals = [sum(results[s][1].values()) if idx is None else results[s][idx] for s in ("fp32", "bf16")]
        print(f"{label:42s} " + " ".join(f"{v:9.1f}" for v in vals))
    for s in ("fp32", "bf16"):
        by_type, by_group, busy, wall, n_ops = results[s]
        print(
            f"\n{s}: {n_ops:.0f} ops per step, op time / wall {sum(by_group.values()) / wall:.2f} "
            f"(> 1: ops ran concurrently); top op types:"
        )
        for op_type, ms in by_type.most_common(args.top):
            print(f"  {op_type:48s} {ms:8.1f} ms  {100 * ms / sum(by_type.values()):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
