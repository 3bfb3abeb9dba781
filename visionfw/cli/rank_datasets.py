"""`visionfw rank-datasets --model=NAME --scale=4 --train_sets=T91,BSD200 --test_sets=Set5,Set14 --steps=N`.

Trains one network per training set (same budget and seed), prints the PSNR-gain matrix
(rows: test sets, columns: training sets) with ranks, min diff and the overall ranking;
see :mod:`visionfw.rank_datasets`.
"""
import sys

from absl import flags

FLAGS = flags.FLAGS


def _define(kind, name, default, help_text, **kw):
    # command modules share flag names; a process importing two of them must not redefine one
    if name not in FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name=name, default=default, help=help_text, **kw)


_define("string", "model", None, "Registry name of the model (see `visionfw models`).")
_define("string", "model_kwargs", "", "Model hyper-parameters: 'n1=32,n2=16' or a JSON object.")
_define("integer", "scale", 4, "Upscaling factor.")
_define("string", "train_sets", "T91,BSD200,BSDS500_test200", "Training sets: names under --train_root or folders.")
_define("string", "test_sets", "Set5,Set14", "Benchmark sets (names or folders).")
_define("integer", "steps", 1000, "Training steps per training set.")
_define("integer", "batch_size", None, "Batch size (default: the model's preset), the same for every set.")
_define("integer", "lr_patch", None, "LR patch size (default: the model's preset).")
_define("string", "data_dir", None, "Where the benchmark sets live.")
_define("string", "train_root", None, "Folder holding the training sets (default: ../shared/data/train).")
_define("string", "out", "runs/rank_datasets", "Output folder (models, cache, tables, plot).")
_define("integer", "seed", 0, "Seed of initialisation, data order and crops (the same for every set).")
_define("enum", "protocol", None, "PSNR protocol (default: srcnn for Y models, edsr for RGB).",
        enum_values=["srcnn", "edsr"])


def _parse_kv(text):
    import json

    from visionfw.errors import ConfigError

    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--model_kwargs: invalid JSON ({exc}).") from None
    out = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"--model_kwargs={text!r}: write key=value pairs joined by commas.")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


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
                           model_kwargs=_parse_kv(FLAGS.model_kwargs), protocol=FLAGS.protocol,
                           train_options=options, progress=sys.stderr.isatty())
    print(result["markdown"])
    print()
    c = result["computed"]
    print(f"computed now: {c['train']} trainings, {c['eval']} evaluations (the rest came from the cache)")
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0
