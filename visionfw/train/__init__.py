"""Training: the shared loop (:func:`train`), tasks, losses, lr schedules, paper presets, checkpoints."""
from visionfw.train.losses import charbonnier, l1, l2, parse_loss
from visionfw.train.presets import get_preset, preset_for_model
from visionfw.train.schedules import make_schedule
from visionfw.train.tasks import TASKS, SRTask, Task, get_task, register_task
from visionfw.train.trainer import TrainConfig, Trainer, resolve_config, train

__all__ = ["TrainConfig", "Trainer", "train", "resolve_config", "Task", "SRTask", "TASKS", "register_task",
           "get_task", "parse_loss", "l1", "l2", "charbonnier", "make_schedule", "get_preset",
           "preset_for_model"]
