"""Training throughput of EDSR-baseline x2 (batch 16 of 48x48 LR patches, L1, Adam).

Measures, in one run:
  * visionfw's compiled train step (the one ``visionfw train`` uses), fp32 and mixed bfloat16,
    on in-memory tensors and with the real input pipeline (embedded photos);
  * the same network in PyTorch (channels_last), when torch is installed;
  * the machine's fp32 (and bf16) matmul peak with a large ``tf.matmul``, and the FLOP rate
    the train step achieves (forward FLOPs from the TF profiler; a train step is counted as
    3x forward: forward + input gradient + weight gradient).

  * PyTorch under ``torch.autocast('cpu', bfloat16)`` against our mixed bfloat16.

Every side is timed ``--repeats`` times, interleaved round-robin, and the median is reported, so a
load change on a shared machine hits every side alike.

Usage: python benchmarks/train_throughput.py [--steps 4] [--repeats 3] [--warmup 2] [--batch 16] [--patch 48]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import torch_edsr  # this folder: the PyTorch twin of edsr_baseline


def matmul_peak(dtype, n=4096, reps=5):
    a = tf.random.uniform([n, n], dtype=tf.float32)
    b = tf.random.uniform([n, n], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    f = tf.function(lambda x, y: tf.matmul(x, y))
    f(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a, b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def forward_flops(model, batch, patch):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([batch, patch, patch, 3], tf.float32)
    )
    frozen = convert_variables_to_constants_v2(fn)
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = model_analyzer.profile(frozen.graph, options=opts)
    return float(info.total_float_ops)


def visionfw_stepper(args, mixed=None, pipeline=False, xla=False):
    """(run(n) -> seconds per step over n steps, dataset build seconds, model) for our compiled step."""
    import keras

    from visionfw.train import TrainConfig, Trainer, resolve_config

    cfg = resolve_config(
        TrainConfig(
            model="edsr_baseline",
            scale=2,
            batch_size=args.batch,
            lr_patch=args.patch,
            steps=10,
            val_data=[],
            progress=False,
            tensorboard=False,
            mixed_precision=mixed,
            jit_compile=xla,
            workdir=tempfile.mkdtemp(),
        )
    )
    previous = keras.config.dtype_policy()
    try:
        trainer = Trainer(cfg)
        build = 0.0
        if pipeline:
            t = time.perf_counter()
            iterator = trainer.make_iterator(0)
            build = time.perf_counter() - t
        else:
            rng = np.random.default_rng(0)
            hr = rng.random((args.batch, 2 * args.patch, 2 * args.patch, 3), dtype=np.float32)
            lr = tf.image.resize(hr, [args.patch, args.patch], method="bicubic")
            iterator = iter(tf.data.Dataset.from_tensors((lr, tf.constant(hr))).repeat())
        step = trainer.build_step()
        for _ in range(args.warmup):
            loss = step(iterator)
        float(loss.numpy())
    finally:
        keras.config.set_dtype_policy(previous)

    def run(n):
        t = time.perf_counter()
        for _ in range(n):
            loss = step(iterator)
        float(loss.numpy())  # one host sync at the end, as in training
        return (time.perf_counter() - t) / n

    return run, build, trainer.model


def torch_stepper(args, bf16=False):
    """(run(n) -> seconds per step, description) for the same network in PyTorch, channels_last;
    ``bf16``: the forward under ``torch.autocast('cpu', torch.bfloat16)``.  (None, reason) without torch."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch not installed (pip install torch): skipped"
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)

    model = torch_edsr.edsr_baseline(scale=2).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    lr = torch.rand(args.batch, 3, args.patch, args.patch).to(memory_format=torch.channels_last)
    hr = torch.rand(args.batch, 3, 2 * args.patch, 2 * args.patch).to(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            sr = model(lr)
        loss = torch.nn.functional.l1_loss(sr.float(), hr)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()

    def run(n):
        t = time.perf_counter()
        for _ in range(n):
            loss = step()
        float(loss.detach())
        return (time.perf_counter() - t) / n

    return run, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def add_step_arguments(parser, steps):
    """The flags :func:`visionfw_stepper` and :func:`torch_stepper` read, shared with the profiling
    scripts so every benchmark times the same step: ``--steps`` (timed), ``--warmup``, ``--batch``,
    ``--patch``."""
    parser.add_argument("--steps", type=int, default=steps, help="timed steps (per repetition)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)


def add_thread_arguments(parser):
    """``--inter_op`` / ``--intra_op``; :func:`apply_thread_arguments` sets them before TF starts work."""
    parser.add_argument("--inter_op", type=int, default=None, help="TensorFlow inter-op threads (default: TF's)")
    parser.add_argument("--intra_op", type=int, default=None, help="TensorFlow intra-op threads (default: TF's)")


def apply_thread_arguments(args):
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)


def interleaved_medians(runners, repeats, steps):
    """Times every runner ``repeats`` times, round-robin (so load changes hit every side alike);
    returns {name: (median, [seconds per step of each repetition])}."""
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(run(steps))
    return {name: (statistics.median(ts), ts) for name, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_step_arguments(parser, steps=4)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions per side (median)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--xla", action="store_true", help="also time our steps jit-compiled with XLA (--xla)")
    add_thread_arguments(parser)
    parser.add_argument("--skip-peak", action="store_true", help="skip the matmul peak measurement")
    args = parser.parse_args()
    apply_thread_arguments(args)
    b = args.batch
    print(
        f"EDSR-baseline x2 train step, batch {b} of {args.patch}x{args.patch} LR patches; median of "
        f"{args.repeats} interleaved repetitions of {args.steps} steps after {args.warmup} warm-up; "
        f"{os.cpu_count()} CPU cores"
    )

    peak32 = float("nan") if args.skip_peak else matmul_peak(tf.float32)
    peak16 = float("nan") if args.skip_peak else matmul_peak(tf.bfloat16)
    print(f"matmul peak (4096^2, best of 5): fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.1f} GFLOP/s")

    ours32, _, model = visionfw_stepper(args)
    fwd = forward_flops(model, b, args.patch)
    train_flops = 3.0 * fwd
    print(f"forward {fwd / b / 1e9:.2f} GFLOP/patch (TF profiler); train step ~3x = {train_flops / 1e9:.0f} GFLOP")
    runners = {"visionfw fp32": ours32, "visionfw bf16": visionfw_stepper(args, mixed="bfloat16")[0]}
    torch32, note = torch_stepper(args)
    if torch32 is not None:
        runners["PyTorch fp32"] = torch32
        runners["PyTorch bf16 autocast"] = torch_stepper(args, bf16=True)[0]
    else:
        print(note)
    if args.xla:
        runners["visionfw fp32 XLA"] = visionfw_stepper(args, xla=True)[0]
        runners["visionfw bf16 XLA"] = visionfw_stepper(args, mixed="bfloat16", xla=True)[0]
    if not args.skip_pipeline:
        run, build, _ = visionfw_stepper(args, pipeline=True)
        runners["visionfw fp32, real pipeline"] = run
    med = interleaved_medians(runners, args.repeats, args.steps)
    for name, (t, ts) in med.items():
        extra = ""
        if name == "visionfw fp32":
            extra = f"  {train_flops / t / 1e9:6.1f} GFLOP/s = {train_flops / t / peak32:.2f} x fp32 matmul peak"
        elif name == "visionfw bf16":
            extra = f"  {train_flops / t / peak16:.2f} x bf16 matmul peak"
        print(
            f"{name:30s} {t * 1e3:8.1f} ms/step  {b / t:7.1f} patches/s  "
            f"(runs: {', '.join(f'{x * 1e3:.0f}' for x in ts)} ms){extra}"
        )
    t32, tbf = med["visionfw fp32"][0], med["visionfw bf16"][0]
    print(f"visionfw bf16/fp32 speed-up: {t32 / tbf:.2f}x")
    if "visionfw fp32, real pipeline" in med:
        print(
            f"real pipeline / in-memory step time: {med['visionfw fp32, real pipeline'][0] / t32:.2f}x "
            f"(dataset build {build:.1f} s, not timed)"
        )
    if torch32 is not None:
        print(f"({note})")
        print(f"visionfw/PyTorch patches/s ratio, fp32: {med['PyTorch fp32'][0] / t32:.2f}")
        print(
            f"visionfw/PyTorch patches/s ratio, bf16 (ours mixed_bfloat16 vs torch.autocast): "
            f"{med['PyTorch bf16 autocast'][0] / tbf:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
