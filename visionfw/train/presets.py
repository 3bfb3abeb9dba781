"""Per-family training recipes of the papers (flags override every field).

A preset is a dict of :class:`visionfw.train.config.TrainConfig` fields plus
``source`` (where the recipe comes from) and ``notes`` (where we deviate).  Patch
sizes are given in HR pixels (``hr_patch``) or LR pixels (``lr_patch``); the trainer
turns an ``hr_patch`` into ``lr_patch = hr_patch // scale`` (the pipeline's unit).

Learning rates are for the stated batch size.  Under data-parallel training the
batch is the *global* batch, so the same lr applies (no linear scaling).
"""

from __future__ import annotations

import copy
from typing import Any

from visionfw.errors import ConfigError

__all__ = ["get_preset", "preset_for_model", "USER_DEFAULT"]

# For models registered outside the zoo without a family that has a recipe (your own dict, e.g. the
# README's tiny_vdsr and espcn_like): the short-budget recipe of the quick start (ESPCN's demo recipe:
# L1, Adam 2e-3 with a cosine decay over the run, batch 16, 32x32 LR patches), measured on those two
# dicts (README "Train your own dict"; tests/test_train_dict.py, slow).
USER_DEFAULT = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 2e-3,
    "schedule": "cosine",
    "schedule_kwargs": {"warmup": 50},
    "batch_size": 16,
    "lr_patch": 32,
    "source": "default recipe for a model without a family recipe (the quick start's: L1, Adam 2e-3, cosine "
    "decay over the run, batch 16, 32x32 LR patches)",
    "notes": "register the model with family='<zoo family>' to train it with that family's recipe instead",
}

# For zoo families whose file registers no recipe.
_DEFAULT = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "constant",
    "schedule_kwargs": {},
    "batch_size": 16,
    "lr_patch": 48,
    "source": "generic default (no paper recipe for this family)",
    "notes": "",
}


def get_preset(family: str | None, scale: int, default: dict | None = None) -> dict[str, Any]:
    """The recipe of model ``family`` at ``scale`` with patch sizes resolved to ``lr_patch``.

    The recipes live beside the families (``visionfw.model_defs``), in ``register_model(recipe=...)``.

    Args:
        family: The zoo family (None: no family).
        scale: The upscaling factor.
        default: The recipe of a family without one (None: the zoo's generic default).

    Returns:
        A dict of :class:`~visionfw.train.config.TrainConfig` fields plus ``source``, ``notes`` and
        ``family``.
    """
    from visionfw.zoo.registry import family_recipe

    recipe = family_recipe(family)
    preset: dict[str, Any] = copy.deepcopy(recipe if recipe is not None else (default or _DEFAULT))
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


def preset_for_model(model_name: str, scale: int) -> dict[str, Any]:
    """:func:`get_preset` for a model.

    Args:
        model_name: A registry name (its family decides; a model registered outside the zoo whose
            family has no recipe gets :data:`USER_DEFAULT`) or your own function
            ``'file.py:function'`` / ``'package.module:function'`` (no family: :data:`USER_DEFAULT`).
        scale: The upscaling factor.

    Returns:
        The preset dict.
    """
    from visionfw.loading import is_model_reference
    from visionfw.zoo.registry import model_entry

    if is_model_reference(model_name):
        return get_preset(None, scale, default=USER_DEFAULT)
    entry = model_entry(model_name)
    in_zoo = getattr(entry.fn, "__module__", "").startswith("visionfw.model_defs")
    return get_preset(entry.family, scale, default=None if in_zoo else USER_DEFAULT)
