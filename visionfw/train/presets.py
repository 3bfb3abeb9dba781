"""Per-family training recipes of the papers (flags override every field).

A preset is a dict of :class:`visionfw.train.trainer.TrainConfig` fields plus
``source`` (where the recipe comes from) and ``notes`` (where we deviate).  Patch
sizes are given in HR pixels (``hr_patch``) or LR pixels (``lr_patch``); the trainer
turns an ``hr_patch`` into ``lr_patch = hr_patch // scale`` (the pipeline's unit).

Learning rates are for the stated batch size.  Under data-parallel training the
batch is the *global* batch, so the same lr applies (no linear scaling).
"""
from __future__ import annotations

import copy

from visionfw.errors import ConfigError

__all__ = ["get_preset", "preset_for_model"]

# For families whose file registers no recipe.
_DEFAULT = {
    "loss": "l1", "optimizer": "adam", "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4, "schedule": "constant", "schedule_kwargs": {}, "batch_size": 16, "lr_patch": 48,
    "source": "generic default (no paper recipe for this family)", "notes": "",
}


def get_preset(family, scale):
    """The recipe of model ``family`` at ``scale`` with patch sizes resolved to ``lr_patch``.

    The recipes live beside the families (``visionfw.model_defs``), in ``register_model(recipe=...)``.
    """
    from visionfw.registry import family_recipe

    recipe = family_recipe(family)
    preset = copy.deepcopy(recipe if recipe is not None else _DEFAULT)
    preset["family"] = family if recipe is not None else None
    by_scale = preset.pop("lr_patch_by_scale", None)
    hr_patch = preset.pop("hr_patch", None)
    if by_scale is not None:
        preset["lr_patch"] = by_scale.get(int(scale), max(by_scale.values()))
    elif hr_patch is not None:
        preset["lr_patch"] = max(1, int(hr_patch) // int(scale))
    if int(preset["lr_patch"]) < 1:
        raise ConfigError(f"preset {family!r}: patch too small at scale {scale}.")
    return preset


def preset_for_model(model_name, scale):
    """:func:`get_preset` for a registry name (its family decides)."""
    from visionfw.registry import model_entry

    return get_preset(model_entry(model_name).family, scale)
