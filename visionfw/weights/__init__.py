"""Weights into visionfw models, whatever framework wrote them.

:mod:`~visionfw.weights.loader` reads a file by its format and pairs its tensors with the model's layers;
the formats live beside it (:mod:`~visionfw.weights.torch_checkpoint`, :mod:`~visionfw.weights.matconvnet`,
:mod:`~visionfw.weights.keras_files`), as do the official files' lookup (:mod:`~visionfw.weights.pretrained`)
and the PixelShuffle channel reorder (:mod:`~visionfw.weights.shuffle_reorder`).

The public names below load on first use, so that importing one format reader does not import Keras."""

import importlib

_EXPORTS = dict.fromkeys(
    (
        "load_weights",
        "load_state_dict",
        "read_state_dict",
        "plan_state_dict",
        "describe_mapping",
        "StateDictMapping",
        "file_sha256",
        "detect_format",
        "torch_to_tf_shuffle_permutation",
        "FORMATS",
    ),
    "loader",
)

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"visionfw.weights.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'visionfw.weights' has no attribute {name!r}")
