"""`visionfw train --model=NAME --scale=S [--train_data=DIR] [--val_data=Set5] ...`.

Unset optimisation flags come from the model family's paper preset
(:mod:`visionfw.train.presets`); every flag overrides its preset value.
"""
import json

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Registry name of the model (see `visionfw models`).")
flags.DEFINE_integer("scale", 2, "Upscaling factor.")
flags.DEFINE_string("task", "sr", "Training task (sr; others register with visionfw.train.register_task).")
flags.DEFINE_string("model_kwargs", "", "Model hyper-parameters: 'n1=32,n2=16' or a JSON object.")
flags.DEFINE_string("task_options", "", "Task options, e.g. TAD 'alpha=10,beta=1,epsilon=10,quantize_from=5000', "
                    "colorize 'lam=0.5'.")
flags.DEFINE_string("train_data", None, "Folder of HR images or an .h5 patch file; unset: the embedded photos.")
flags.DEFINE_string("lr_source", "bicubic", "'bicubic' (MATLAB bicubic of the HR) or a folder of LR images.")
flags.DEFINE_list("val_data", ["Set5"], "Benchmark sets validated on (comma list); empty: no validation.")
flags.DEFINE_string("data_dir", None, "Where benchmark sets live (default: visionfw.data.benchmarks search path).")
flags.DEFINE_enum("protocol", None, ["edsr", "srcnn"], "PSNR protocol (default: edsr for RGB, srcnn for Y models).")
flags.DEFINE_integer("steps", 1000, "Training steps (optimizer updates).")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: the preset's).")
flags.DEFINE_integer("lr_patch", None, "LR patch size; the HR patch is lr_patch*scale (default: the preset's).")
flags.DEFINE_string("loss", None, "Loss: l1, l2/mse, charbonnier or a mix like '0.8*l1+0.2*charbonnier'.")
flags.DEFINE_float("lr", None, "Initial learning rate (for the global batch).")
flags.DEFINE_enum("schedule", None, ["constant", "step", "multistep", "cosine"], "Learning-rate schedule.")
flags.DEFINE_string("schedule_kwargs", "", "Schedule options: 'step_size=1000,gamma=0.5', "
                    "'milestones=1000:2000', 'warmup=100' or a JSON object.")
flags.DEFINE_enum("optimizer", None, ["adam", "adamw", "sgd"], "Optimizer.")
flags.DEFINE_string("optimizer_kwargs", "", "Optimizer options, e.g. 'beta_1=0.9,epsilon=1e-8' or JSON.")
flags.DEFINE_float("clipnorm", None, "Clip the gradient's global norm to this value.")
flags.DEFINE_float("ema", None, "Keep an exponential moving average of the weights with this decay "
                   "(e.g. 0.999); validation and model.keras use it.")
flags.DEFINE_enum("mixed_precision", None, ["bfloat16", "float16"], "Mixed-precision compute dtype.")
flags.DEFINE_boolean("xla", False, "jit-compile the replica step with XLA (slower on CPU here).")
flags.DEFINE_integer("seed", 0, "Seed of data order, crops, augmentation and initialisation.")
flags.DEFINE_boolean("deterministic", False, "Deterministic ops (tf.config.experimental.enable_op_determinism).")
flags.DEFINE_enum("distribute", None, ["mirrored", "multi_worker"], "Data-parallel strategy "
                  "(multi_worker reads TF_CONFIG).")
flags.DEFINE_integer("num_devices", None, "mirrored: number of devices to use (default: all).")
flags.DEFINE_string("workdir", None, "Run directory (default runs/<model>_x<scale>).")
flags.DEFINE_string("resume", "auto", "auto (last checkpoint in workdir), never, or a checkpoint .npz path.")
flags.DEFINE_integer("val_every", 1000, "Validate every N steps (0: only at the end).")
flags.DEFINE_integer("ckpt_every", 1000, "Checkpoint every N steps (0: only at the end).")
flags.DEFINE_integer("log_every", 100, "Log (CSV, TensorBoard, progress bar) every N steps.")
flags.DEFINE_integer("keep_checkpoints", 2, "How many recent checkpoints to keep (plus best.npz).")
flags.DEFINE_boolean("augment", True, "Random flips and 90-degree rotations of training patches.")
flags.DEFINE_boolean("tensorboard", True, "Write TensorBoard summaries to <workdir>/tb.")
flags.DEFINE_enum("sampler", None, ["uniform", "psnr_hist", "pic"], "Draw batches from a pool of "
                  "--pool_size random crops with this sampler (default: the input pipeline).")
flags.DEFINE_integer("pool_size", 10000, "Patches in the sampler's pool.")
flags.DEFINE_string("sampler_kwargs", "", "Sampler options, e.g. 'bins=10' (psnr_hist), 'intervals=10' (pic).")
flags.DEFINE_float("step_delay", 0.0, "Sleep this many seconds after each step (for crash tests).")


def _parse_kv(text, flag):
    from visionfw.errors import ConfigError

    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--{flag}: invalid JSON ({exc}).") from None
    out = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"--{flag}={text!r}: write key=value pairs joined by commas.")
        key, value = (s.strip() for s in item.split("=", 1))
        if ":" in value:
            out[key] = [json.loads(v) for v in value.split(":")]
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(command, argv):
    from visionfw.errors import ConfigError
    from visionfw.train import TrainConfig, train

    if not FLAGS.model:
        raise ConfigError("train needs --model=NAME (see `visionfw models`).")
    config = TrainConfig(
        model=FLAGS.model, scale=FLAGS.scale, task=FLAGS.task,
        model_kwargs=_parse_kv(FLAGS.model_kwargs, "model_kwargs"),
        task_options=_parse_kv(FLAGS.task_options, "task_options"),
        train_data=FLAGS.train_data, lr_source=FLAGS.lr_source, augment=FLAGS.augment,
        val_data=[s for s in FLAGS.val_data if s], data_dir=FLAGS.data_dir, protocol=FLAGS.protocol,
        steps=FLAGS.steps, batch_size=FLAGS.batch_size, lr_patch=FLAGS.lr_patch, loss=FLAGS.loss,
        lr=FLAGS.lr, schedule=FLAGS.schedule,
        schedule_kwargs=_parse_kv(FLAGS.schedule_kwargs, "schedule_kwargs") if FLAGS.schedule_kwargs else None,
        optimizer=FLAGS.optimizer,
        optimizer_kwargs=_parse_kv(FLAGS.optimizer_kwargs, "optimizer_kwargs") if FLAGS.optimizer_kwargs else None,
        clipnorm=FLAGS.clipnorm, ema=FLAGS.ema, mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.xla, seed=FLAGS.seed, deterministic=FLAGS.deterministic,
        distribute=FLAGS.distribute, num_devices=FLAGS.num_devices, sampler=FLAGS.sampler,
        pool_size=FLAGS.pool_size, sampler_kwargs=_parse_kv(FLAGS.sampler_kwargs, "sampler_kwargs"),
        workdir=FLAGS.workdir, resume=FLAGS.resume, val_every=FLAGS.val_every, ckpt_every=FLAGS.ckpt_every,
        log_every=FLAGS.log_every, keep_checkpoints=FLAGS.keep_checkpoints, tensorboard=FLAGS.tensorboard,
        step_delay=FLAGS.step_delay)
    result = train(config)
    print(f"model: {result['model_path']}  ({result['steps']} steps, {result['time_s']:.1f} s, "
          f"{result['steps_per_sec']:.2f} steps/s this session)")
    for name, r in result["val"].items():
        gain = r["psnr"] - r["bicubic_psnr"]
        print(f"val {name}: PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}  "
              f"(bicubic {r['bicubic_psnr']:.3f} dB, gain {gain:+.3f} dB)")
    if result["protocol"]:
        print(f"protocol: {result['protocol']}")
    if result["best_psnr"] is not None:
        print(f"best val PSNR {result['best_psnr']:.3f} dB at step {result['best_step']}")
    return 0
