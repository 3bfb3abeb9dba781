"""Training throughput of EDSR-baseline x2 (batch 16 of 48x48 LR patches, L1, Adam).

Measures, in one run:
  * visionfw's compiled train step (the one ``visionfw train`` uses), fp32 and mixed bfloat16,
    on in-memory tensors and with the real input pipeline (embedded photos);
  * the same network in PyTorch (channels_last), when torch is installed;
  * the machine's fp32 (and bf16) matmul peak with a large ``tf.matmul``, and the FLOP rate
    the train step achieves (forward FLOPs from the TF profiler; a train step is counted as
    3x forward: forward + input gradient + weight gradient).

Usage: python benchmarks/train_throughput.py [--steps 4] [--warmup 2] [--batch 16] [--patch 48]
Timings on a shared machine are noisy; compare ratios taken in the same run.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf


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
    return 2.0 * n ** 3 / best


def forward_flops(model, batch, patch):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([batch, patch, patch, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(fn)
    opts = option_builder.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = model_analyzer.profile(frozen.graph, options=opts)
    return float(info.total_float_ops)


def time_steps(step, iterator, warmup, steps):
    for _ in range(warmup):
        loss = step(iterator)
    float(loss.numpy())
    t = time.perf_counter()
    for _ in range(steps):
        loss = step(iterator)
    float(loss.numpy())  # one host sync at the end, as in training
    return (time.perf_counter() - t) / steps


def visionfw_step_time(args, mixed=None, pipeline=False):
    import keras

    from visionfw.train.trainer import Trainer, TrainConfig, resolve_config

    cfg = resolve_config(TrainConfig(model="edsr_baseline", scale=2, batch_size=args.batch, lr_patch=args.patch,
                                     steps=10, val_data=[], progress=False, tensorboard=False,
                                     mixed_precision=mixed, workdir=tempfile.mkdtemp()))
    previous = keras.config.dtype_policy()
    try:
        trainer = Trainer(cfg)
        if pipeline:
            t = time.perf_counter()
            iterator = trainer.make_iterator(0)
            build = time.perf_counter() - t
        else:
            rng = np.random.default_rng(0)
            hr = rng.random((args.batch, 2 * args.patch, 2 * args.patch, 3), dtype=np.float32)
            lr = tf.image.resize(hr, [args.patch, args.patch], method="bicubic")
            iterator = iter(tf.data.Dataset.from_tensors((lr, tf.constant(hr))).repeat())
            build = 0.0
        step = trainer.build_step()
        return time_steps(step, iterator, args.warmup, args.steps), build, trainer.model
    finally:
        keras.config.set_dtype_policy(previous)


def torch_step_time(args):
    try:
        import torch
        from torch import nn
    except ImportError:
        return None, "PyTorch not installed (pip install torch): skipped"
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)

    class ResBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(c, c, 3, padding=1))

        def forward(self, x):
            return x + self.body(x)

    class EDSRBaseline(nn.Module):
        def __init__(self, c=64, blocks=16, scale=2):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))
            self.head = nn.Conv2d(3, c, 3, padding=1)
            self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)], nn.Conv2d(c, c, 3, padding=1))
            self.up = nn.Sequential(nn.Conv2d(c, c * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
            self.tail = nn.Conv2d(c, 3, 3, padding=1)

        def forward(self, x):
            h = self.head(x - self.mean)
            h = h + self.body(h)
            return self.tail(self.up(h)) + self.mean

    model = EDSRBaseline().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    lr = torch.rand(args.batch, 3, args.patch, args.patch).to(memory_format=torch.channels_last)
    hr = torch.rand(args.batch, 3, 2 * args.patch, 2 * args.patch).to(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss.detach())
    return (time.perf_counter() - t) / args.steps, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    b = args.batch
    print(f"EDSR-baseline x2 train step, batch {b} of {args.patch}x{args.patch} LR patches, "
          f"{args.steps} timed steps after {args.warmup} warm-up; {os.cpu_count()} CPU cores")

    peak32 = matmul_peak(tf.float32)
    peak16 = matmul_peak(tf.bfloat16)
    print(f"matmul peak (4096^2, best of 5): fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.1f} GFLOP/s")

    t32, _, model = visionfw_step_time(args)
    fwd = forward_flops(model, b, args.patch)
    train_flops = 3.0 * fwd
    print(f"forward {fwd / b / 1e9:.2f} GFLOP/patch (TF profiler); train step ~3x = {train_flops / 1e9:.0f} GFLOP")
    print(f"visionfw fp32, in-memory:   {t32 * 1e3:8.1f} ms/step  {b / t32:7.1f} patches/s  "
          f"{train_flops / t32 / 1e9:6.1f} GFLOP/s = {train_flops / t32 / peak32:.2f} x fp32 matmul peak")
    tbf, _, _ = visionfw_step_time(args, mixed="bfloat16")
    print(f"visionfw bf16, in-memory:   {tbf * 1e3:8.1f} ms/step  {b / tbf:7.1f} patches/s  "
          f"bf16/fp32 speed-up {t32 / tbf:.2f}x")
    if not args.skip_pipeline:
        tpipe, build, _ = visionfw_step_time(args, pipeline=True)
        print(f"visionfw fp32, real pipeline: {tpipe * 1e3:6.1f} ms/step  {b / tpipe:7.1f} patches/s  "
              f"(pipeline/in-memory step time {tpipe / t32:.2f}x; dataset build {build:.1f} s, not timed)")
    tt, note = torch_step_time(args)
    if tt is None:
        print(note)
    else:
        print(f"PyTorch fp32 channels_last: {tt * 1e3:8.1f} ms/step  {b / tt:7.1f} patches/s  ({note})")
        print(f"visionfw/PyTorch patches/s ratio (fp32): {tt / t32:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
