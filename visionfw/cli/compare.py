"""`visionfw compare --models=a,b --test_data=Set5,Set14 --scale=2 [--weights=a=path] [--train_steps=N]`.

One table (Markdown, CSV, JSON) with parameters, multiply-adds, latency, peak memory and
PSNR/SSIM per dataset, and a PSNR-vs-MACs plot; see :mod:`visionfw.compare`.
"""
import sys

from absl import flags

from visionfw.cli.common import define_flag

FLAGS = flags.FLAGS



define_flag("string", "models", "srcnn_915,fsrcnn,espcn,vdsr,edsr_baseline", "Registry names, comma separated.")
define_flag("string", "test_data", "Set5,Set14", "Benchmark sets (names or folders), comma separated.")
define_flag("integer", "scale", 2, "Upscaling factor.")
define_flag("string", "weights", "", "name=path pairs (comma separated); path 'official' picks the official "
        "SRCNN/VDSR file from the reference data.")
define_flag("integer", "train_steps", 0, "Models without --weights are trained this many steps (0: random weights).")
define_flag("string", "train_data", None, "Training images for --train_steps (folder; unset: the embedded photos).")
define_flag("integer", "train_batch_size", None, "Batch size of that training (default: the model's preset).")
define_flag("integer", "train_lr_patch", None, "LR patch size of that training (default: the model's preset).")
define_flag("string", "out", "runs/compare", "Output folder (tables, plot, cache, trained models).")
define_flag("string", "input_size", "64x64", "LR input size HxW for MACs, latency and memory (pre-upsampled "
        "models get scale times that).")
define_flag("enum", "protocol", "srcnn", "PSNR/SSIM protocol for every model.", enum_values=["srcnn", "edsr"])
define_flag("string", "data_dir", None, "Where the benchmark sets live.")
define_flag("integer", "latency_runs", 10, "Timed forward passes (the median is reported).")
define_flag("integer", "warmup", 3, "Untimed forward passes before timing.")
define_flag("integer", "seed", 0, "Seed of training and of random initialisation.")


def main(command, argv):
    from visionfw.compare import compare_models, format_markdown

    options = {}
    if FLAGS.train_batch_size:
        options["batch_size"] = FLAGS.train_batch_size
    if FLAGS.train_lr_patch:
        options["lr_patch"] = FLAGS.train_lr_patch
    result = compare_models(FLAGS.models, FLAGS.test_data, FLAGS.scale, weights=FLAGS.weights,
                            train_steps=FLAGS.train_steps, train_data=FLAGS.train_data, out=FLAGS.out,
                            input_size=FLAGS.input_size, protocol=FLAGS.protocol, data_dir=FLAGS.data_dir,
                            latency_runs=FLAGS.latency_runs, warmup=FLAGS.warmup, seed=FLAGS.seed,
                            train_options=options, progress=sys.stderr.isatty())
    print(format_markdown(result))
    print()
    c = result["computed"]
    print(f"computed now: {c['train']} trainings, {c['eval']} evaluations, {c['cost']} cost rows "
          "(the rest came from the cache)")
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0
