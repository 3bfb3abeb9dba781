"""Inference speed of EDSR-baseline on CPU: visionfw vs our ONNX export in onnxruntime vs PyTorch.

Measures, in one run, with the same weights everywhere:
  * x2 on one 256x256 LR image (whole image);
  * x4 on a 2040x1356 HR-size image (LR 510x339), tiled: visionfw through
    ``visionfw.inference.super_resolve(tile=, tile_overlap=)`` (its cached ``tf.function``),
    onnxruntime and PyTorch through the same tile loop;
  * for each: visionfw (Keras, tf.function; and computing in bfloat16 with a float32 head, the
    opt-in ``--precision=bfloat16``), onnxruntime on the model exported with
    ``visionfw.export.export_model(format='onnx')``, and the same network written in PyTorch
    (channels_last, ``inference_mode``) with our weights copied in; outputs are checked to match;
  * the median of ``--reps`` interleaved repetitions (A B C A B C ...), printed as ratios;
  * peak RSS of the tiled x4 case (and, for contrast, the whole-image x4 case) in a fresh
    subprocess (goal: tiled <= 2 GiB);
  * max |tiled - whole image| of the x4 output (EDSR-baseline is local, so tiling with an
    overlap of its receptive radius is exact up to float round-off).

Usage: python benchmarks/inference_speed.py [--reps 3] [--tile 256] [--threads N] [--no-whole-rss]
Needs ``pip install -e ".[export,bench]"`` (tf2onnx, onnxruntime, torch); a missing runtime is
skipped with the reason.  Timings on a shared machine are noisy; compare the ratios of one run.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
GIB = 1024**3
LR_X4 = (339, 510)  # H, W of the LR of a 2040x1356 (W x H) DIV2K-size image at x4


def build(scale):
    import keras

    import visionfw

    keras.utils.set_random_seed(0)
    return visionfw.get_model("edsr_baseline", scale=scale)


def lr_image(hw, seed=0):
    """A smooth random LR image (noise upscaled), HWC float32 in [0, 1]."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    small = rng.random((1, hw[0] // 8 + 1, hw[1] // 8 + 1, 3), dtype=np.float32)
    return tf.image.resize(small, hw, method="bilinear").numpy()[0]


# --------------------------------------------------------------------------- PyTorch twin


def torch_twin(model, scale, threads):
    """EDSR-baseline in PyTorch, channels_last, with ``model``'s weights (HWIO -> OIHW; the
    upsampler convs' output channels permuted from depth_to_space to nn.PixelShuffle order)."""
    import torch
    import torch_edsr
    from torch import nn

    torch.set_num_threads(threads)
    conv = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    mean = [layer for layer in model.layers if type(layer).__name__ == "MeanShift"][0].mean

    net = torch_edsr.edsr_baseline(scale, mean=tuple(float(m) for m in mean)).eval()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]  # module order == Keras conv order
    assert len(convs) == len(conv), (len(convs), len(conv))
    up_convs = {id(m) for m in net.up if isinstance(m, nn.Conv2d)}
    with torch.no_grad():
        for k_layer, t_layer in zip(conv, convs):
            kernel, bias = (w.numpy() for w in k_layer.weights)
            weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            if id(t_layer) in up_convs:  # torch channel c*r*r + i*r + j == tf channel (i*r + j)*C + c
                r = int(round((weight.shape[0] // weight.shape[1]) ** 0.5))
                c = weight.shape[0] // (r * r)
                perm = [(k % (r * r)) * c + k // (r * r) for k in range(weight.shape[0])]
                weight, bias = weight[perm], bias[perm]
            t_layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            t_layer.bias.copy_(torch.from_numpy(bias))
    net = net.to(memory_format=torch.channels_last)

    def run(image):  # HWC numpy -> HWC numpy
        with torch.inference_mode():
            x = torch.from_numpy(image[None]).permute(0, 3, 1, 2)  # NHWC memory == channels_last NCHW
            return net(x).permute(0, 2, 3, 1)[0].numpy()

    return run


# --------------------------------------------------------------------------- runners


def runners(model, scale, threads, tmp):
    """{name: run(HWC) -> HWC} for visionfw, onnxruntime and PyTorch, and skipped ones' reasons."""
    from visionfw.inference import forward_numpy, with_precision

    out = {"visionfw (Keras, tf.function)": lambda image: forward_numpy(model, image[None])[0]}
    skipped = {}
    try:
        import onnxruntime as ort

        from visionfw.export import export_model

        t = time.perf_counter()
        path = export_model(model, os.path.join(tmp, f"edsr_baseline_x{scale}.onnx"), format="onnx")
        export_s = time.perf_counter() - t
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out[f"onnxruntime {ort.__version__} (our ONNX export)"] = lambda image: session.run(None, {name: image[None]})[
            0
        ][0]
        print(f"  x{scale} ONNX export (with its parity check): {export_s:.1f} s")
    except Exception as exc:  # ImportError, or ConfigError naming the missing package
        skipped["onnxruntime"] = f"{type(exc).__name__}: {exc}"
    try:
        import torch

        out[f"PyTorch {torch.__version__} channels_last"] = torch_twin(model, scale, threads)
    except ImportError as exc:
        skipped["PyTorch"] = f"not installed ({exc}); pip install torch"
    bf16 = with_precision(model, "bfloat16")  # opt-in: `visionfw test --precision=bfloat16`
    out["visionfw bfloat16 (float32 head)"] = lambda image: forward_numpy(bf16, image[None])[0]
    return out, skipped


def bench(cases, reps):
    """Median seconds per case over ``reps`` interleaved repetitions (one warm-up call each)."""
    for fn in cases.values():
        fn()
    times = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in times.items()}, times


def report(title, medians, times):
    ours = next(iter(medians.values()))
    print(f"\n{title}")
    print(f"  {'runtime':<44} {'median s':>9} {'runs (s)':<24} {'time / visionfw':>15}")
    for name, m in medians.items():
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:<44} {m:9.3f} {runs:<24} {m / ours:14.2f}x")


def max_diff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


# --------------------------------------------------------------------------- peak RSS child


def peak_rss():
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec (Linux's ru_maxrss
    keeps the parent's peak from before the exec, so a child of a large parent reads large)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def rss_child(mode, tile, overlap, threads):
    """Runs one x4 super-resolution of the 510x339 LR image and prints peak RSS (bytes)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    from visionfw.inference import super_resolve

    model = build(4)
    image = lr_image(LR_X4)
    base = peak_rss()
    sr = super_resolve(model, image, tile=tile if mode == "tiled" else None, tile_overlap=overlap)
    peak = peak_rss()
    print(f"RSS {base} {peak} {sr.shape[0]} {sr.shape[1]}")


def measure_rss(mode, tile, overlap, threads):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--rss-child",
        mode,
        "--tile",
        str(tile),
        "--overlap",
        str(overlap),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RSS ")]
    if done.returncode or not line:
        return None, (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    _, base, peak, h, w = line[0].split()
    return (int(base), int(peak), int(h), int(w)), None


def new_shape_cost(model, image, tile, overlap):
    """Why the edge tiles may differ in size: the first call of ``forward_fn`` on a new input shape
    (one trace serves every shape; oneDNN makes its primitives for the new shape) vs a repeat, and
    how many more pixels same-size windows (shifted inwards at the edges) would compute."""
    from visionfw.inference import forward_numpy

    h, w = image.shape[:2]
    side = min(tile + 2 * overlap, h, w)
    first, repeat = [], []
    for k in range(3):  # shapes this process has not run yet
        piece = np.ascontiguousarray(image[: side - 1 - k, :side])
        for times in (first, repeat):
            t = time.perf_counter()
            forward_numpy(model, piece[None])
            times.append(time.perf_counter() - t)
    f, r = statistics.median(first), statistics.median(repeat)

    def covered(n):  # pixels along one axis, summed over the context windows of the tiles
        var = sum(min(n, y0 + tile + overlap) - max(0, y0 - overlap) for y0 in range(0, n, tile))
        return var, -(-n // tile) * min(n, tile + 2 * overlap)

    (vh, fh), (vw, fw) = covered(h), covered(w)
    print(
        f"new tile shape: first call {f * 1e3:.0f} ms vs repeat {r * 1e3:.0f} ms ({(f / r - 1) * 100:+.1f}%, "
        f"median of 3 shapes of ~{side}x{side}); same-size windows would compute {fh * fw / (vh * vw):.2f}x "
        f"the pixels of this image's tiles"
    )


# --------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tile", type=int, default=256, help="LR tile size of the x4 case")
    parser.add_argument("--overlap", type=int, default=None, help="tile overlap (default: the receptive radius)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-whole-rss", action="store_true", help="skip the whole-image x4 RSS subprocess")
    parser.add_argument("--rss-child", choices=("tiled", "whole"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.tile, args.overlap, args.threads)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras

    from visionfw.inference import receptive_radius, super_resolve, tiled_apply

    print(
        f"EDSR-baseline inference, CPU: {os.cpu_count()} cores visible, {args.threads} threads per runtime "
        f"(TF intra-op, onnxruntime intra-op, torch.set_num_threads); TF {tf.__version__}, Keras "
        f"{keras.__version__}; {args.reps} interleaved repetitions, median; random weights (seed 0), "
        "copied to every runtime. The machine is shared with other jobs: timings are noisy, ratios of "
        "one run are what to compare."
    )
    tmp = tempfile.mkdtemp(prefix="visionfw_bench_")

    # x2, 256x256 LR, whole image
    model2 = build(2)
    image2 = lr_image((256, 256))
    run2, skipped = runners(model2, 2, args.threads, tmp)
    outputs = {name: fn(image2) for name, fn in run2.items()}
    ref = next(iter(outputs.values()))
    for name, out in list(outputs.items())[1:]:
        print(
            f"  x2 256x256: max |{name.split(' (')[0]} - visionfw| = {max_diff(out, ref):.3g} "
            f"(max |output| {np.abs(ref).max():.3g})"
        )
    medians, times = bench({name: (lambda fn=fn: fn(image2)) for name, fn in run2.items()}, args.reps)
    report("x2, one 256x256 LR image -> 512x512 (whole image)", medians, times)

    # x4, 2040x1356 HR (510x339 LR), tiled
    model4 = build(4)
    image4 = lr_image(LR_X4)
    overlap = receptive_radius(model4) if args.overlap is None else args.overlap
    run4, skipped4 = runners(model4, 4, args.threads, tmp)
    skipped.update(skipped4)
    ours_name = next(iter(run4))
    cases = {ours_name: lambda: super_resolve(model4, image4, tile=args.tile, tile_overlap=overlap)}
    for name, fn in list(run4.items())[1:]:
        cases[name] = lambda fn=fn: tiled_apply(fn, image4, args.tile, overlap)
    outs = {name: fn() for name, fn in cases.items()}
    ref4 = outs[ours_name]
    for name, out in list(outs.items())[1:]:
        print(f"  x4 tiled: max |{name.split(' (')[0]} - visionfw| = {max_diff(out, ref4):.3g}")
    n_tiles = -(-LR_X4[0] // args.tile) * -(-LR_X4[1] // args.tile)
    medians, times = bench(cases, args.reps)
    report(
        f"x4, 510x339 LR -> 2040x1356, tiled: tile={args.tile}, tile_overlap={overlap} (receptive radius), "
        f"{n_tiles} tiles",
        medians,
        times,
    )

    new_shape_cost(model4, image4, args.tile, overlap)

    whole = super_resolve(model4, image4)
    print(
        f"\ntiled vs whole image (visionfw, x4, 2040x1356): max |tiled - whole| = {max_diff(ref4, whole):.3g} "
        f"(max |output| {np.abs(whole).max():.3g}; EDSR-baseline is local, so tiling is exact up to round-off)"
    )
    del whole

    for mode in ("tiled",) + (() if args.no_whole_rss else ("whole",)):
        result, error = measure_rss(mode, args.tile, overlap, args.threads)
        if result is None:
            print(f"peak RSS, x4 {mode}: failed ({error})")
            continue
        base, peak, h, w = result
        goal = "  (goal <= 2 GiB: " + ("met" if peak <= 2 * GIB else "NOT met") + ")" if mode == "tiled" else ""
        print(
            f"peak RSS, x4 {mode} ({f'tile={args.tile}' if mode == 'tiled' else 'no tiling'}) -> {w}x{h}, fresh "
            f"process: {peak / GIB:.2f} GiB ({base / GIB:.2f} GiB after importing TF and building the model){goal}"
        )
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")


if __name__ == "__main__":
    main()
