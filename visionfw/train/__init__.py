"""Training: the shared loop (:func:`train`), tasks, losses, lr schedules, paper presets, checkpoints.

The names below load on first use, so that ``visionfw train``'s flags (:class:`TrainConfig`,
:mod:`visionfw.train.config`) are read and checked before TensorFlow is imported."""

import importlib

# public name -> the module that defines it (tasks and losses live in visionfw.tasks)
_EXPORTS = {
    "charbonnier": "visionfw.tasks.losses",
    "l1": "visionfw.tasks.losses",
    "l2": "visionfw.tasks.losses",
    "parse_loss": "visionfw.tasks.losses",
    "get_preset": "visionfw.train.presets",
    "preset_for_model": "visionfw.train.presets",
    "make_schedule": "visionfw.train.schedules",
    "TASKS": "visionfw.tasks.base",
    "SRTask": "visionfw.tasks.base",
    "Task": "visionfw.tasks.base",
    "get_task": "visionfw.tasks.base",
    "register_task": "visionfw.tasks.base",
    "TrainConfig": "visionfw.train.config",
    "Trainer": "visionfw.train.trainer",
    "resolve_config": "visionfw.train.resolve",
    "train": "visionfw.train.trainer",
    "TrainingInterrupted": "visionfw.train.guards",
}

__all__ = [
    "TrainConfig",
    "Trainer",
    "train",
    "resolve_config",
    "TrainingInterrupted",
    "Task",
    "SRTask",
    "TASKS",
    "register_task",
    "get_task",
    "parse_loss",
    "l1",
    "l2",
    "charbonnier",
    "make_schedule",
    "get_preset",
    "preset_for_model",
]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'visionfw.train' has no attribute {name!r}")
