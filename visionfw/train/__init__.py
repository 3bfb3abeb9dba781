"""Training: the shared loop (:func:`train`), tasks, losses, lr schedules, paper presets, checkpoints.

The names below load on first use, so that ``visionfw train``'s flags (:class:`TrainConfig`,
:mod:`visionfw.train.config`) are read and checked before TensorFlow is imported."""
import importlib

# public name -> the submodule that defines it
_EXPORTS = {
    "charbonnier": "losses", "l1": "losses", "l2": "losses", "parse_loss": "losses",
    "get_preset": "presets", "preset_for_model": "presets",
    "make_schedule": "schedules",
    "TASKS": "tasks", "SRTask": "tasks", "Task": "tasks", "get_task": "tasks", "register_task": "tasks",
    "TrainConfig": "config",
    "Trainer": "trainer", "resolve_config": "trainer", "train": "trainer",
}

__all__ = ["TrainConfig", "Trainer", "train", "resolve_config", "Task", "SRTask", "TASKS", "register_task",
           "get_task", "parse_loss", "l1", "l2", "charbonnier", "make_schedule", "get_preset",
           "preset_for_model"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"visionfw.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'visionfw.train' has no attribute {name!r}")
