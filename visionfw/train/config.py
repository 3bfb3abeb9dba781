"""The training run's configuration, :class:`TrainConfig`, apart from the trainer so that the
command line can read and check ``visionfw train``'s flags before TensorFlow is imported."""

from __future__ import annotations

import dataclasses
import json

from visionfw.data.paths import data_dir_help

__all__ = ["TrainConfig"]


def _opt(default=dataclasses.MISSING, help="", **meta):
    """A config field with its help text (``visionfw train --help`` shows it; the CLI derives
    the flag from the field, see :mod:`visionfw.cli.common`).  ``default`` may be a callable
    for mutable defaults; ``meta``: ``choices``, ``flag`` (another flag name), ``cli=False``."""
    meta = dict(meta, help=help)
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; ``visionfw train`` has one flag per field.

    Each field is typed and carries its help text (``visionfw train --help`` shows it, or
    ``dataclasses.fields(TrainConfig)[i].metadata['help']``).  ``None`` fields are filled from the
    model's preset (:mod:`visionfw.train.presets`) by :func:`~visionfw.train.resolve.resolve_config`.
    """

    model: str = _opt(
        help="The model: a registry name (see `visionfw models`), or your own function returning a "
        "spec dict: path/to/file.py:function or package.module:function (called with "
        "--model_kwargs, and scale= when it takes one; trained with the default recipe of a "
        "model without a family)."
    )
    scale: int = _opt(2, "Upscaling factor (ignored by models without one, e.g. colorization).")
    task: str = _opt("sr", "Training task: sr, tad, colorize (others register with visionfw.train.register_task).")
    task_options: dict = _opt(
        dict, "Task options, e.g. TAD 'alpha=10,beta=1,epsilon=10,quantize_from=5000', colorize 'lam=0.5'."
    )
    model_kwargs: dict = _opt(dict, "Model hyper-parameters: 'n1=32,n2=16' or a JSON object.")
    imports: list = _opt(
        list,
        "Modules to import first (names or .py paths, comma-separated), e.g. the one that "
        "registers your layers (visionfw.register_layer) or your models.",
        flag="import",
    )
    # data
    train_data: str | None = _opt(None, "Folder of HR images or an .h5 patch file; unset: the embedded photos.")
    lr_source: str = _opt("bicubic", "'bicubic' (MATLAB bicubic of the HR) or a folder of LR images.")
    augment: bool = _opt(True, "Random flips and 90-degree rotations of training patches.")
    degradation: str | None = _opt(
        None,
        "Realistic LR instead of bicubic (visionfw.degradation): 'realsr', "
        "'bsrgan-like', 'bsrgan-like@passes=2', 'realesrgan-like' or a spec "
        "such as 'blur(sigma=0.2:3)+down(methods=bicubic|area)"
        "+noise(sigma=1:25)+jpeg(q=30:95)'; seeded by (seed, step), so resume "
        "is exact.",
    )
    degradation_pool: str | None = _opt(
        None, "A RealSR noise/kernel pool (.npz from `visionfw degradation-pool`) that --degradation injects."
    )
    max_image_pixels: int | None = _opt(
        None,
        "Refuse a training image whose header claims more pixels than "
        "this, before decoding it (default 80000000; memory: about 10 "
        "bytes per pixel of the largest image while the cache is built).",
    )
    data_options: dict = _opt(
        dict,
        "More input-pipeline options (TrainDataConfig fields), e.g. "
        "'patch_order=crop_then_downscale,patches_per_image=16'.",
    )
    val_data: list = _opt(
        lambda: ["auto"],
        "Validation sets (comma list): benchmark names or folders, 'heldout' "
        "(photos held out of the embedded training set) or 'auto': Set5 when it "
        "is on the data search path, else 'heldout' when training on the "
        "embedded photos. Empty: no validation.",
    )
    data_dir: str | None = _opt(None, data_dir_help("benchmark sets"))
    protocol: str | None = _opt(
        None, "PSNR protocol (default: edsr for RGB, srcnn for Y models).", choices=("edsr", "srcnn")
    )
    # optimisation
    steps: int = _opt(1000, "Training steps (optimizer updates).")
    batch_size: int | None = _opt(None, "Global batch size (default: the preset's).")
    lr_patch: int | None = _opt(None, "LR patch size; the HR patch is lr_patch*scale (default: the preset's).")
    loss: str | None = _opt(
        None, "Loss: l1, l2/mse, charbonnier or a mix like '0.8*l1+0.2*charbonnier' (in Python also a callable)."
    )
    lr: float | None = _opt(None, "Initial learning rate (for the global batch).")
    schedule: str | None = _opt(
        None, "Learning-rate schedule (default: the preset's).", choices=("constant", "step", "multistep", "cosine")
    )
    schedule_kwargs: dict | None = _opt(
        None, "Schedule options: 'step_size=1000,gamma=0.5', 'milestones=1000:2000', 'warmup=100' or a JSON object."
    )
    optimizer: str | None = _opt(None, "Optimizer (default: the preset's).", choices=("adam", "adamw", "sgd"))
    optimizer_kwargs: dict | None = _opt(None, "Optimizer options, e.g. 'beta_1=0.9,epsilon=1e-8' or JSON.")
    clipnorm: float | None = _opt(None, "Clip the gradient's global norm to this value.")
    ema: float | None = _opt(
        None,
        "Keep an exponential moving average of the weights with this decay "
        "(e.g. 0.999); validation and model.keras use it.",
    )
    mixed_precision: str | None = _opt(
        None,
        "Mixed-precision compute dtype; 'auto': bfloat16 on CPUs with "
        "AVX512_BF16/AMX and GPUs of compute capability >= 8.0, float32 "
        "elsewhere (config.json records the choice).",
        choices=("auto", "bfloat16", "float16"),
    )
    jit_compile: bool = _opt(False, "jit-compile the replica step with XLA (slower on CPU here).", flag="xla")
    seed: int = _opt(0, "Seed of data order, crops, augmentation and initialisation.")
    deterministic: bool = _opt(False, "Deterministic ops (tf.config.experimental.enable_op_determinism).")
    distribute: str | None = _opt(
        None, "Data-parallel strategy (multi_worker reads TF_CONFIG).", choices=("mirrored", "multi_worker")
    )
    num_devices: int | None = _opt(None, "mirrored: number of devices to use (default: all).")
    sampler: str | None = _opt(
        None,
        "Draw batches from a pool of pool_size random crops with this sampler (default: the input pipeline).",
        choices=("uniform", "psnr_hist", "pic"),
    )
    sampler_kwargs: dict = _opt(dict, "Sampler options, e.g. 'bins=10' (psnr_hist), 'intervals=10' (pic).")
    pool_size: int = _opt(10000, "Patches in the sampler's pool.")
    # bookkeeping
    workdir: str | None = _opt(
        None, "Run directory (default runs/<model>_x<scale>; for file.py:function, runs/<function>_x<scale>)."
    )
    resume: str = _opt("auto", "auto (last checkpoint in workdir), never, or a checkpoint .npz path.")
    val_every: int = _opt(1000, "Validate every N steps (0: only at the end).")
    ckpt_every: int = _opt(1000, "Checkpoint every N steps (0: only at the end).")
    log_every: int = _opt(100, "Log (CSV, TensorBoard, progress bar) every N steps.")
    keep_checkpoints: int = _opt(2, "How many recent checkpoints to keep (plus best.npz).")
    tensorboard: bool = _opt(True, "Write TensorBoard summaries to <workdir>/tb.")
    progress: bool = _opt(True, "Show a progress bar (on a terminal).")
    preset_source: str = _opt("", "Where the preset comes from (filled by resolve_config).", cli=False)
    preset_notes: str = _opt("", "Where the preset deviates from the paper (filled by resolve_config).", cli=False)
    precision_note: str = _opt("", "The compute precision and why (filled by resolve_config).", cli=False)

    def to_json(self) -> str:
        """The config as JSON (sorted keys; ``config.json`` of a run and a checkpoint's meta)."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=str)
