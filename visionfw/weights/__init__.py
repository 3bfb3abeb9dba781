"""Weights into visionfw models, whatever framework wrote them.

:func:`load_weights` (:mod:`~visionfw.weights.loader`) reads a file by its format
(:mod:`~visionfw.weights.formats`); the formats live beside it (:mod:`~visionfw.weights.torch_checkpoint`,
:mod:`~visionfw.weights.matlab`, :mod:`~visionfw.weights.matconvnet`, :mod:`~visionfw.weights.keras_files`).
A PyTorch state dict is paired with the model's layers in :mod:`~visionfw.weights.state_dict`, each pair
converted in :mod:`~visionfw.weights.mapping`.  The official files' lookup is
:mod:`~visionfw.weights.pretrained`, the PixelShuffle channel reorder :mod:`~visionfw.weights.shuffle_reorder`.

The public names below load on first use, so that importing one format reader does not import Keras."""

import importlib

_EXPORTS = {
    "load_weights": "loader",
    "load_state_dict": "state_dict",
    "plan_state_dict": "state_dict",
    "describe_mapping": "state_dict",
    "DEFAULT_SKIP": "state_dict",
    "StateDictMapping": "mapping",
    "read_state_dict": "formats",
    "read_mat": "formats",
    "file_sha256": "formats",
    "detect_format": "formats",
    "FORMATS": "formats",
    "torch_to_tf_shuffle_permutation": "shuffle_reorder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"visionfw.weights.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'visionfw.weights' has no attribute {name!r}")
