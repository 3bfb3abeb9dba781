"""Speed of the MATLAB-exact bicubic: TF (eager and tf.function) vs the numpy reference.

Workload: every Set14 image (uint8, mod-cropped to 4) downscaled x4 and upscaled x4 back,
as when making bicubic baselines / SRCNN-style inputs.  Prints the median time over
``--repeats`` runs of the whole set, and the ratio to numpy.

    python benchmarks/bicubic_speed.py [--data ../shared/data/benchmark] [--repeats 5]
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from visionfw.data.benchmarks import resolve_dataset
from visionfw.data.image_io import list_images, read_image_uint8
from visionfw.data.imresize import imresize, imresize_numpy, modcrop

SCALE = 4


def _median_seconds(fn, images, repeats):
    fn(images[0])  # warm-up (traces graphs, fills caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for img in images:
            out = fn(img)
        if isinstance(out, tf.Tensor):
            out.numpy()  # make sure the work is done
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding Set14 (default: the usual places)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    folder = resolve_dataset("Set14", args.data)
    images = [modcrop(read_image_uint8(p), SCALE) for p in list_images(folder)]

    def numpy_round_trip(img):
        return imresize_numpy(imresize_numpy(img, scale=1 / SCALE), scale=SCALE)

    def tf_eager(img):
        return imresize(imresize(img, scale=1 / SCALE), scale=SCALE)

    graph = tf.function(
        lambda img: imresize(imresize(img, scale=1 / SCALE), scale=SCALE),
        input_signature=[tf.TensorSpec([None, None, None], tf.uint8)],
    )

    # all three must agree exactly before we time them
    for img in images[:3]:
        ref = numpy_round_trip(img)
        assert np.array_equal(tf_eager(img).numpy(), ref) and np.array_equal(graph(img).numpy(), ref)

    pixels = sum(i.shape[0] * i.shape[1] for i in images)
    print(
        f"Set14 x{SCALE} down+up, {len(images)} images, {pixels / 1e6:.2f} MPix HR, "
        f"median of {args.repeats}, TF {tf.__version__}, intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}"
    )
    t_np = _median_seconds(numpy_round_trip, images, args.repeats)
    t_eager = _median_seconds(tf_eager, images, args.repeats)
    t_graph = _median_seconds(lambda img: graph(img), images, args.repeats)
    print(f"numpy reference   : {t_np:7.3f} s")
    print(f"TF eager          : {t_eager:7.3f} s  (numpy/TF = {t_np / t_eager:.2f}x)")
    print(f"TF tf.function    : {t_graph:7.3f} s  (numpy/TF = {t_np / t_graph:.2f}x)")


if __name__ == "__main__":
    main()
