"""What the TAD experiments share: the training data, the shared-loop config, the test sets.

Both scripts train through the one training loop (:func:`visionfw.train.train`) and find their
data on the library's search path (:mod:`visionfw.data.paths`: ``--data_dir``, then
``$VISIONFW_DATA``, ``./data``, ``../shared/data``, ...).
"""

import sys


def train_data(data_dir=None):
    """T91 (``train/T91`` on the data search path); exits with the places looked in when absent."""
    from visionfw.data import paths
    from visionfw.errors import DataError

    try:
        return str(paths.find("train", "T91", data_dir, what="The training set T91"))
    except DataError as exc:
        sys.exit(str(exc))


def hr_images(name, scale, data_dir=None):
    """The uint8 HR images of benchmark set ``name``, mod-cropped to ``scale``."""
    from visionfw.data.benchmarks import load_benchmark

    return [rec.hr for rec in load_benchmark(name, scale, data_dir=data_dir)]


def train_config(model, workdir, steps, batch, hr_patch, lr, seed, data_dir=None, scale=2, **fields):
    """A TrainConfig of the experiments' recipe: Adam ``lr`` halved at 3/4 of the steps, random
    ``hr_patch`` crops of T91 from the shared input pipeline, no validation, a fresh run."""
    from visionfw.train import TrainConfig

    return TrainConfig(
        model=model,
        scale=scale,
        train_data=train_data(data_dir),
        steps=steps,
        batch_size=batch,
        lr_patch=hr_patch // scale,
        lr=lr,
        optimizer="adam",
        schedule="step",
        schedule_kwargs={"step_size": max(1, int(steps * 0.75)), "gamma": 0.5},
        seed=seed,
        val_data=[],
        workdir=str(workdir),
        resume="never",
        ckpt_every=0,
        log_every=max(1, steps // 8),
        tensorboard=False,
        progress=False,
        **fields,
    )
