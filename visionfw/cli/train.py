"""`visionfw train --model=NAME --scale=S [--train_data=DIR] [--val_data=Set5] ...`.

Unset optimisation flags come from the model family's paper preset
(:mod:`visionfw.train.presets`); every flag overrides its preset value.
"""

from absl import flags

from visionfw.cli.common import define_flag, parse_kv

FLAGS = flags.FLAGS
define_flag("string", "model", None, "Registry name of the model (see `visionfw models`).")
define_flag("integer", "scale", 2, "Upscaling factor.")
define_flag("string", "task", "sr", "Training task (sr; others register with visionfw.train.register_task).")
define_flag("string", "model_kwargs", "", "Model hyper-parameters: 'n1=32,n2=16' or a JSON object.")
define_flag("string", "task_options", "", "Task options, e.g. TAD 'alpha=10,beta=1,epsilon=10,quantize_from=5000', "
                    "colorize 'lam=0.5'.")
define_flag("string", "train_data", None, "Folder of HR images or an .h5 patch file; unset: the embedded photos.")
define_flag("string", "data_options", "", "More input-pipeline options (TrainDataConfig fields), e.g. "
            "'patch_order=crop_then_downscale,patches_per_image=16'.")
define_flag("string", "lr_source", "bicubic", "'bicubic' (MATLAB bicubic of the HR) or a folder of LR images.")
define_flag("list", "val_data", ["Set5"], "Benchmark sets validated on (comma list); empty: no validation.")
define_flag("string", "data_dir", None, "Where benchmark sets live (default: visionfw.data.benchmarks search path).")
define_flag("enum", "protocol", None, enum_values=["edsr", "srcnn"], help_text="PSNR protocol (default: edsr for RGB, srcnn for Y models).")
define_flag("integer", "steps", 1000, "Training steps (optimizer updates).")
define_flag("integer", "batch_size", None, "Global batch size (default: the preset's).")
define_flag("integer", "lr_patch", None, "LR patch size; the HR patch is lr_patch*scale (default: the preset's).")
define_flag("string", "loss", None, "Loss: l1, l2/mse, charbonnier or a mix like '0.8*l1+0.2*charbonnier'.")
define_flag("float", "lr", None, "Initial learning rate (for the global batch).")
define_flag("enum", "schedule", None, enum_values=["constant", "step", "multistep", "cosine"], help_text="Learning-rate schedule.")
define_flag("string", "schedule_kwargs", "", "Schedule options: 'step_size=1000,gamma=0.5', "
                    "'milestones=1000:2000', 'warmup=100' or a JSON object.")
define_flag("enum", "optimizer", None, enum_values=["adam", "adamw", "sgd"], help_text="Optimizer.")
define_flag("string", "optimizer_kwargs", "", "Optimizer options, e.g. 'beta_1=0.9,epsilon=1e-8' or JSON.")
define_flag("float", "clipnorm", None, "Clip the gradient's global norm to this value.")
define_flag("float", "ema", None, "Keep an exponential moving average of the weights with this decay "
                   "(e.g. 0.999); validation and model.keras use it.")
define_flag("enum", "mixed_precision", None, enum_values=["bfloat16", "float16"], help_text="Mixed-precision compute dtype.")
define_flag("boolean", "xla", False, "jit-compile the replica step with XLA (slower on CPU here).")
define_flag("integer", "seed", 0, "Seed of data order, crops, augmentation and initialisation.")
define_flag("boolean", "deterministic", False, "Deterministic ops (tf.config.experimental.enable_op_determinism).")
define_flag("enum", "distribute", None, enum_values=["mirrored", "multi_worker"], help_text="Data-parallel strategy "
                  "(multi_worker reads TF_CONFIG).")
define_flag("integer", "num_devices", None, "mirrored: number of devices to use (default: all).")
define_flag("string", "workdir", None, "Run directory (default runs/<model>_x<scale>).")
define_flag("string", "resume", "auto", "auto (last checkpoint in workdir), never, or a checkpoint .npz path.")
define_flag("integer", "val_every", 1000, "Validate every N steps (0: only at the end).")
define_flag("integer", "ckpt_every", 1000, "Checkpoint every N steps (0: only at the end).")
define_flag("integer", "log_every", 100, "Log (CSV, TensorBoard, progress bar) every N steps.")
define_flag("integer", "keep_checkpoints", 2, "How many recent checkpoints to keep (plus best.npz).")
define_flag("boolean", "augment", True, "Random flips and 90-degree rotations of training patches.")
define_flag("boolean", "tensorboard", True, "Write TensorBoard summaries to <workdir>/tb.")
define_flag("enum", "sampler", None, enum_values=["uniform", "psnr_hist", "pic"], help_text="Draw batches from a pool of "
                  "--pool_size random crops with this sampler (default: the input pipeline).")
define_flag("integer", "pool_size", 10000, "Patches in the sampler's pool.")
define_flag("string", "sampler_kwargs", "", "Sampler options, e.g. 'bins=10' (psnr_hist), 'intervals=10' (pic).")
define_flag("float", "step_delay", 0.0, "Sleep this many seconds after each step (for crash tests).")



def main(command, argv):
    from visionfw.errors import ConfigError
    from visionfw.train import TrainConfig, train

    if not FLAGS.model:
        raise ConfigError("train needs --model=NAME (see `visionfw models`).")
    config = TrainConfig(
        model=FLAGS.model, scale=FLAGS.scale, task=FLAGS.task,
        model_kwargs=parse_kv(FLAGS.model_kwargs, "model_kwargs"),
        task_options=parse_kv(FLAGS.task_options, "task_options"),
        train_data=FLAGS.train_data, lr_source=FLAGS.lr_source, augment=FLAGS.augment,
        data_options=parse_kv(FLAGS.data_options, "data_options"),
        val_data=[s for s in FLAGS.val_data if s], data_dir=FLAGS.data_dir, protocol=FLAGS.protocol,
        steps=FLAGS.steps, batch_size=FLAGS.batch_size, lr_patch=FLAGS.lr_patch, loss=FLAGS.loss,
        lr=FLAGS.lr, schedule=FLAGS.schedule,
        schedule_kwargs=parse_kv(FLAGS.schedule_kwargs, "schedule_kwargs") if FLAGS.schedule_kwargs else None,
        optimizer=FLAGS.optimizer,
        optimizer_kwargs=parse_kv(FLAGS.optimizer_kwargs, "optimizer_kwargs") if FLAGS.optimizer_kwargs else None,
        clipnorm=FLAGS.clipnorm, ema=FLAGS.ema, mixed_precision=FLAGS.mixed_precision,
        jit_compile=FLAGS.xla, seed=FLAGS.seed, deterministic=FLAGS.deterministic,
        distribute=FLAGS.distribute, num_devices=FLAGS.num_devices, sampler=FLAGS.sampler,
        pool_size=FLAGS.pool_size, sampler_kwargs=parse_kv(FLAGS.sampler_kwargs, "sampler_kwargs"),
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
