"""Share of a small SR training step spent in the PSNR-gain histogram sampler.

For pool sizes N (default 10^4, 10^5, 10^6) this times one compiled training step of a
tiny ESPCN-like x2 model (4 convs + depth_to_space, batch 16 of 32x32 LR patches)

* with ``UniformSampler``: draw -> gather from a device-resident ``PatchPool`` -> step;
* with ``PsnrHistSampler``: the same plus the per-patch PSNR gain over bicubic (from the
  same forward pass) and the histogram update,

and prints the sampler's share ``(t_hist - t_uniform) / t_hist`` in percent, plus the
sampler alone (draw + update with fake gains, no model) per call and as a percentage
of the psnr_hist step (the steadier estimate on a loaded machine).

Protocol: synthetic 16 images of 512x512x3 (smooth random noise), N random 64x64 crop
coordinates (``PatchPool.from_images``); LR = 2x2 average pooling (a cheap stand-in for
the project's MATLAB bicubic, identical in both runs); the gain's bicubic is an
XLA-compilable x2 Keys-cubic (a=-0.5, symmetric border) upscaler written here; PSNR on
RGB, no shave.  Timings: best of
``--repeats`` runs of ``--steps`` steps after warm-up, loss fetched at the end.

    python benchmarks/sampler_overhead.py [--sizes 10000 100000 1000000] [--steps 50] [--no-xla]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from visionfw.data.patch_pool import PatchPool  # noqa: E402
from visionfw.data.sampling import make_sampler, per_patch_psnr_gain  # noqa: E402

SCALE = 2


def tiny_espcn(channels=3, width=32):
    inp = keras.Input((None, None, channels))
    x = keras.layers.Conv2D(width, 5, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    out = keras.layers.Conv2D(channels * SCALE * SCALE, 3, padding="same")(x)
    return keras.Model(inp, out)  # depth_to_space is applied in the step


def downscale(hr):
    return tf.nn.avg_pool2d(hr, SCALE, SCALE, "VALID")


# Keys cubic (a = -0.5) taps for x2 upscaling with half-pixel centres: output 2i sits at
# input i - 0.25 (taps i-2..i+1), output 2i+1 at i + 0.25 (taps i-1..i+2).
_W_EVEN = (-0.0234375, 0.2265625, 0.8671875, -0.0703125)
_W_ODD = (-0.0703125, 0.8671875, 0.2265625, -0.0234375)


def _bicubic_up2_axis(x, axis):
    n = x.shape[axis]
    pads = [[0, 0]] * 4
    pads[axis] = [2, 2]
    xp = tf.pad(x, pads, "SYMMETRIC")

    def tap(j):
        return tf.gather(xp, tf.range(j, j + n), axis=axis)

    even = sum(w * tap(k) for k, w in enumerate(_W_EVEN))
    odd = sum(w * tap(k + 1) for k, w in enumerate(_W_ODD))
    out = tf.stack([even, odd], axis=axis + 1)
    shape = [-1 if i == 0 else d for i, d in enumerate(x.shape)]
    shape[axis] = 2 * n
    return tf.reshape(out, shape)


def bicubic_up2(lr):
    """x2 bicubic upscaling, XLA-compilable (tf.image.resize bicubic is not)."""
    return _bicubic_up2_axis(_bicubic_up2_axis(lr, 1), 2)


def synthetic_images(count=16, size=512, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.random((count, size // 16, size // 16, 3)).astype(np.float32)
    big = tf.image.resize(small, (size, size), "bicubic").numpy()
    big += 0.05 * rng.standard_normal(big.shape).astype(np.float32)
    return [np.clip(im * 255, 0, 255).astype(np.uint8) for im in big]


def build_step(model, optimizer, pool, sampler, batch, learn, jit):
    def step():
        idx = sampler.draw(batch)
        lr, hr = pool.gather(idx)
        with tf.GradientTape() as tape:
            sr = tf.nn.depth_to_space(model(lr, training=True), SCALE)
            loss = tf.reduce_mean(tf.square(sr - hr))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        if learn:
            bic = bicubic_up2(lr)
            sampler.update(idx, per_patch_psnr_gain(tf.stop_gradient(sr), hr, bic))
        return loss

    return tf.function(step, jit_compile=jit)


def time_fns(fns, steps, repeats, warmup=5):
    """Best-of-``repeats`` seconds per call of each fn; runs are interleaved so that
    load from other processes hits every fn alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
        fn().numpy()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(steps):
                out = fn()
            out.numpy()
            best[i] = min(best[i], (time.perf_counter() - start) / steps)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr-size", type=int, default=32)
    ap.add_argument("--no-xla", action="store_true", help="plain tf.function instead of jit")
    args = ap.parse_args(argv)
    jit = not args.no_xla
    hr_patch = args.lr_size * SCALE
    images = synthetic_images()
    dev = tf.config.list_logical_devices("GPU")
    print(
        f"device: {'GPU ' + dev[0].name if dev else 'CPU'}  xla={jit}  batch={args.batch} "
        f"LR {args.lr_size}x{args.lr_size} x{SCALE}; ms per step (best of {args.repeats}x{args.steps})"
    )
    print(f"{'N':>9} {'uniform':>9} {'psnr_hist':>10} {'share %':>8} {'sampler-only':>13} {'only/step %':>9}")
    for n in args.sizes:
        coords = PatchPool.random_coords([im.shape[:2] for im in images], hr_patch, n, seed=1)
        pool = PatchPool.from_images(images, coords, hr_patch, downscale_fn=downscale)
        steps = {}
        for name in ("uniform", "psnr_hist"):
            keras.utils.set_random_seed(0)
            model = tiny_espcn()
            opt = keras.optimizers.Adam(1e-4)
            opt.build(model.trainable_variables)
            sampler = make_sampler(name, n, seed=0)
            steps[name] = build_step(model, opt, pool, sampler, args.batch, name == "psnr_hist", jit)
        # The sampler alone: draw + update with fake gains.
        alone = make_sampler("psnr_hist", n, seed=0)

        def sampler_only(sampler=alone):
            idx = sampler.draw(args.batch)
            sampler.update(idx, tf.cast(idx % 13, tf.float32))
            return idx

        t_uni, t_hist, t_only = time_fns(
            [steps["uniform"], steps["psnr_hist"], tf.function(sampler_only, jit_compile=jit)], args.steps, args.repeats
        )
        share = 100.0 * (t_hist - t_uni) / t_hist
        print(
            f"{n:>9} {t_uni * 1e3:>9.2f} {t_hist * 1e3:>10.2f} {share:>8.1f} "
            f"{t_only * 1e3:>11.3f}ms {100.0 * t_only / t_hist:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
