"""`visionfw rank-datasets --model=NAME --scale=4 --train_sets=T91,BSD200 --test_sets=Set5,Set14 --steps=N`.

Trains one network per training set (same budget and seed), prints the PSNR-gain matrix
(rows: test sets, columns: training sets) with ranks, min diff and the overall ranking;
see :mod:`visionfw.rank_datasets`.
"""
import sys

from absl import flags

from visionfw.cli.common import define_flag, parse_kv

FLAGS = flags.FLAGS



define_flag("string", "model", None, "Registry name of the model (see `visionfw models`).")
define_flag("string", "model_kwargs", "", "Model hyper-parameters: 'n1=32,n2=16' or a JSON object.")
define_flag("integer", "scale", 4, "Upscaling factor.")
define_flag("string", "train_sets", "T91,BSD200,BSDS500_test200", "Training sets: names under --train_root or folders.")
define_flag("string", "test_sets", "Set5,Set14", "Benchmark sets (names or folders).")
define_flag("integer", "steps", 1000, "Training steps per training set.")
define_flag("integer", "batch_size", None, "Batch size (default: the model's preset), the same for every set.")
define_flag("integer", "lr_patch", None, "LR patch size (default: the model's preset).")
define_flag("string", "data_dir", None, "Where the benchmark sets live.")
define_flag("string", "train_root", None, "Folder holding the training sets (default: ../shared/data/train).")
define_flag("string", "out", "runs/rank_datasets", "Output folder (models, cache, tables, plot).")
define_flag("integer", "seed", 0, "Seed of initialisation, data order and crops (the same for every set).")
define_flag("enum", "protocol", None, "PSNR protocol (default: srcnn for Y models, edsr for RGB).",
        enum_values=["srcnn", "edsr"])



def main(command, argv):
    from visionfw.errors import ConfigError
    from visionfw.rank_datasets import rank_datasets

    if not FLAGS.model:
        raise ConfigError("rank-datasets needs --model=NAME (e.g. --model=espcn).")
    options = {}
    if FLAGS.batch_size:
        options["batch_size"] = FLAGS.batch_size
    if FLAGS.lr_patch:
        options["lr_patch"] = FLAGS.lr_patch
    result = rank_datasets(FLAGS.model, FLAGS.scale, FLAGS.train_sets, FLAGS.test_sets, FLAGS.steps, FLAGS.out,
                           data_dir=FLAGS.data_dir, train_root=FLAGS.train_root, seed=FLAGS.seed,
                           model_kwargs=parse_kv(FLAGS.model_kwargs, "model_kwargs"), protocol=FLAGS.protocol,
                           train_options=options, progress=sys.stderr.isatty())
    print(result["markdown"])
    print()
    c = result["computed"]
    print(f"computed now: {c['train']} trainings, {c['eval']} evaluations (the rest came from the cache)")
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0
