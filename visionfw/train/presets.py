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

__all__ = ["PRESETS", "get_preset", "preset_for_model"]

_ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}

PRESETS = {
    "edsr": {
        "loss": "l1", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-4,
        "schedule": "step", "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
        "batch_size": 16, "lr_patch": 48,
        "source": "Lim et al. 2017, Sec. 4.2: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every "
                  "2x10^5 minibatch updates, batch 16 of 48x48 LR RGB patches.",
        "notes": "",
    },
    "rcan": {
        "loss": "l1", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-4,
        "schedule": "step", "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
        "batch_size": 16, "lr_patch": 48,
        "source": "Zhang et al. 2018, Sec. 4.1: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every "
                  "2x10^5 iterations, batch 16 of 48x48 LR patches.",
        "notes": "",
    },
    "srresnet": {
        "loss": "l2", "optimizer": "adam", "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999,
                                                                "epsilon": 1e-8},
        "lr": 1e-4, "schedule": "constant", "schedule_kwargs": {},
        "batch_size": 16, "hr_patch": 96,
        "source": "Ledig et al. 2017, Sec. 3.2: SRResNet trained with MSE, Adam beta_1=0.9, lr 1e-4, "
                  "10^6 updates, batch 16 of 96x96 HR sub-images.",
        "notes": "",
    },
    "vdsr": {
        "loss": "l2", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-4,
        "schedule": "constant", "schedule_kwargs": {}, "clipnorm": None,
        "batch_size": 64, "hr_patch": 41,
        "source": "Kim et al. 2016, Sec. 4.1: L2, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided "
                  "by 10 every 20 epochs, adjustable gradient clipping to [-0.1/lr, 0.1/lr], batch 64 "
                  "of 41x41 sub-images, 291 images, scales 2/3/4 mixed.",
        "notes": "We use Adam 1e-4 without clipping by default (stable without the high-lr SGD trick); "
                 "`--optimizer=sgd --lr=0.1 --clipnorm=0.4` is closer to the paper (clipnorm is a "
                 "global-norm clip, not the paper's per-value clip).",
    },
    "srcnn": {
        "loss": "l2", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-4,
        "schedule": "constant", "schedule_kwargs": {},
        "batch_size": 128, "hr_patch": 33,
        "source": "Dong et al. 2016 (TPAMI), Sec. 4: MSE, SGD lr 1e-4 (1e-5 in the last layer), "
                  "batch 128 of 33x33 sub-images (stride 14) from the 91 images, Y channel.",
        "notes": "We use Adam 1e-4 for all layers, and 'same'-size outputs (the paper's valid "
                 "convolution trims 12 px of the 33x33 label to 21x21).",
    },
    "fsrcnn": {
        "loss": "l2", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-3,
        "schedule": "constant", "schedule_kwargs": {},
        "batch_size": 128, "lr_patch_by_scale": {2: 10, 3: 7, 4: 6},
        "source": "Dong et al. 2016 (ECCV), Sec. 4.1: MSE, SGD lr 1e-3 (1e-4 for the deconvolution), "
                  "LR sub-images 10/7/6 px (x2/x3/x4), 91 images + General-100, Y channel.",
        "notes": "We use Adam 1e-3 for all layers.",
    },
    "espcn": {
        "loss": "l1", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-3,
        "schedule": "constant", "schedule_kwargs": {},
        "batch_size": 16, "lr_patch": 32,
        "source": "Demo recipe (measured here: ~33.9 dB Set5 x2 after 2000 steps on the embedded "
                  "photos). Shi et al. 2016 used MSE, lr 0.01 -> 1e-4, 17r x 17r HR sub-images.",
        "notes": "L1 and Adam 1e-3 converge much faster than the paper's MSE/SGD on a short budget.",
    },
}
_DEFAULT = {
    "loss": "l1", "optimizer": "adam", "optimizer_kwargs": dict(_ADAM), "lr": 1e-4,
    "schedule": "constant", "schedule_kwargs": {}, "batch_size": 16, "lr_patch": 48,
    "source": "generic default (no paper recipe for this family)", "notes": "",
}


def get_preset(family, scale):
    """The recipe of model ``family`` at ``scale`` with patch sizes resolved to ``lr_patch``."""
    preset = copy.deepcopy(PRESETS.get(family, _DEFAULT))
    preset["family"] = family if family in PRESETS else None
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
