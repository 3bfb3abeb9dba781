"""The Keras side of loading weights: which layers of a model hold weights, and assigning them with
every shape checked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from visionfw.errors import WeightsError

# layers whose kernel a PyTorch or MATLAB convolution fills
CONV_CLASSES = ("Conv2D", "EdgePadConv2D", "Conv2DTranspose", "Conv1D", "Conv3D")


def weighted_layers(model: Any, written_order: bool = False) -> list:
    """Layers holding weights, descending into nested models.

    Args:
      model: a ``keras.Model``.
      written_order: order them as the spec created them where the builder recorded it, instead of
        Keras' order (by graph depth).

    Returns:
      The layers, nested models replaced by their own weighted layers.
    """
    return _weighted_layers(model, written_order, {})


def _weighted_layers(model, written_order, rank):
    import keras

    from visionfw.zoo.builder import creation_order

    layers = list(model.layers)
    if written_order:
        order = creation_order(model)
        rank = {i: k for k, i in enumerate(order)} if order is not None else rank
        layers.sort(key=lambda layer: rank.get(id(layer), len(rank)))  # stable: unknown ones keep Keras' order
    out = []
    for layer in layers:
        if isinstance(layer, keras.Model):
            out.extend(_weighted_layers(layer, written_order, rank))
        elif layer.weights:
            out.append(layer)
    return out


def conv_layers(model: Any) -> list:
    """The convolution layers holding weights, in Keras' order."""
    return [layer for layer in weighted_layers(model) if type(layer).__name__ in CONV_CLASSES]


def assign_weights(layer: Any, values: Sequence, source: str, what: str) -> None:
    """Sets ``layer``'s weights to ``values`` (same order), checking every shape first.

    Args:
      layer: a Keras layer with weights.
      values: one array per weight of ``layer``, in ``layer.weights``' order.
      source: the file the values come from (for messages).
      what: which part of the file they are (for messages).

    Raises:
      WeightsError: the count or a shape differs; nothing is assigned then.
    """
    weights = layer.weights
    if len(weights) != len(values):
        raise WeightsError(
            f"{source}: {what} gives {len(values)} arrays for layer {layer.name!r}, which "
            f"has {len(weights)} weights ({', '.join(w.name for w in weights)}). The file "
            "was made for another architecture; build the matching model."
        )
    for w, v in zip(weights, values):
        v = np.asarray(v)
        if tuple(w.shape) != v.shape:
            raise WeightsError(
                f"{source}: {what}: shape {v.shape} does not fit weight {w.name!r} of layer "
                f"{layer.name!r} with shape {tuple(w.shape)}. Build the model with the "
                "hyper-parameters (filters, kernel size, channels, scale) of the weights."
            )
    for w, v in zip(weights, values):
        w.assign(np.asarray(v, dtype=w.dtype))
