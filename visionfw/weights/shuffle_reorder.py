"""Which weights a PixelShuffle / PixelUnshuffle channel order reaches, derived from the graph.

PyTorch's ``nn.PixelShuffle`` reads channel ``c*r*r + i*r + j`` for sub-pixel (i, j) of output
channel c; ``depth_to_space`` (a visionfw ``PixelShuffle(order='tf')``) reads ``(i*r + j)*C + c``.
PyTorch weights loaded into a model that shuffles in the other order give the PyTorch output
only if every weight whose channels reach the shuffle is permuted the same way.

:func:`shuffle_reorders` walks the graph from every shuffle whose order differs from the weights'
order: backwards from a PixelShuffle's input, forwards from a PixelUnshuffle's output, through
the layers that act on each channel in place (activations, fused activations, bias-free scaling,
BatchNormalization, PReLU, dropout, and add/multiply/... of same-shaped tensors) to the
convolutions whose output (PixelShuffle) or input (PixelUnshuffle) channels it fixes.  A
depthwise conv (one filter per channel) passes the order on to its own input.  Whatever it cannot
prove right is refused, with the conv, the shuffle and the fix (``order='torch'``): a grouped
conv whose groups the permutation would mix, a tensor also used outside the permuted region, a
layer shared by several calls, a concatenation, a layer of unknown kind, the model's input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["ChannelReorder", "shuffle_reorders", "torch_to_tf_shuffle_permutation"]

# layers that map channel c to channel c and hold no per-channel weights
_PASS_THROUGH = (
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Dropout",
    "SpatialDropout2D",
    "Identity",
    "Quantize",
    "GaussianNoise",
    "ActivityRegularization",
)
_PER_CHANNEL_WEIGHTS = ("BatchNormalization", "PReLU")
_ELEMENTWISE_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_CONVS = ("Conv2D", "EdgePadConv2D", "SpectralConv2D")
_FIX = "build the model with order='torch' (g.shuffle(x, r, order='torch') / PixelShuffle(order='torch'))"


def torch_to_tf_shuffle_permutation(channels_out: int, r: int) -> np.ndarray:
    """Index array ``p`` such that ``kernel_tf = kernel_torch[..., p]``.

    PyTorch's ``PixelShuffle`` reads output channel ``c*r*r + i*r + j`` for sub-pixel
    (i, j) of channel c; ``depth_to_space`` reads ``(i*r + j)*C + c``.

    Args:
      channels_out: the channels after the shuffle (C).
      r: the shuffle's factor.

    Returns:
      The permutation of the ``C*r*r`` conv output channels.
    """
    k = np.arange(channels_out * r * r)
    return (k % channels_out) * r * r + k // channels_out


@dataclasses.dataclass
class ChannelReorder:
    """``axis``: 'out' (a conv's output channels and bias, a BN's or PReLU's channels) or 'in' (a
    conv's input channels); ``perm``: Keras channel k takes the PyTorch channel ``perm[k]``."""

    axis: str
    perm: np.ndarray
    note: str


class _Refused(Exception):
    pass


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, None
    op = history.operation
    return op, op._inbound_nodes[history.node_index]


def _consumers(tensor):
    """[(op, node)] of every call that reads ``tensor``."""
    op, _ = _producer(tensor)
    if op is None:
        return []
    return [(node.operation, node) for node in op._outbound_nodes if any(t is tensor for t in node.input_tensors)]


def _activation_name(layer):
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def _channels_of(tensor):
    return tensor.shape[-1]


class _Walk:
    """One shuffle's walk: the reorders it needs, or _Refused with the reason."""

    def __init__(self, shuffle, perm, note, outputs):
        self.shuffle, self.perm, self.note = shuffle, perm, note
        self.outputs = outputs  # ids of the model's output tensors
        self.found = {}  # layer id -> (layer, ChannelReorder)

    def refuse(self, layer, why):
        kind = type(self.shuffle).__name__
        where = f"{type(layer).__name__} {layer.name!r}" if layer is not None else "the model's input"
        raise _Refused(
            f"the PyTorch->Keras channel reorder for {kind} {self.shuffle.name!r} (order="
            f"{self.shuffle.order!r}, r={self.shuffle.scale}) cannot be proven right at {where}: {why}. "
            f"Fix: {_FIX}."
        )

    def assign(self, layer, axis):
        reorder = ChannelReorder(axis, self.perm, self.note)
        old = self.found.get(id(layer))
        if old is not None and (old[1].axis != axis or not np.array_equal(old[1].perm, self.perm)):
            self.refuse(layer, "it would need two different channel orders")
        self.found[id(layer)] = (layer, reorder)

    def check_single_use(self, tensor, reader):
        readers = _consumers(tensor)
        if len(readers) != 1 or readers[0][0] is not reader or id(tensor) in self.outputs:
            op, _ = _producer(tensor)
            self.refuse(
                op,
                "its output is also used elsewhere (another branch, a skip or a model output), "
                "which would see the channels reordered",
            )

    def backward(self, tensor, reader):
        """Reorders the output channels of whatever produces ``tensor`` (read by ``reader`` only)."""
        op, node = _producer(tensor)
        if op is None or type(op).__name__ == "InputLayer":
            self.refuse(None, "the channels come from the model's input, not from a weight")
        self.check_single_use(tensor, reader)
        if len(op._inbound_nodes) > 1:
            self.refuse(
                op, f"the layer is shared ({len(op._inbound_nodes)} calls), so its other calls would be reordered too"
            )
        cls = type(op).__name__
        ins = node.input_tensors
        if cls in _CONVS:
            if _activation_name(op) == "softmax":
                self.refuse(op, "its fused softmax mixes channels")
            groups = int(getattr(op, "groups", 1) or 1)
            c_in, c_out = _channels_of(ins[0]), int(op.filters)
            if groups == 1:
                self.assign(op, "out")
            elif groups == c_in == c_out:  # depthwise: channel k reads input channel k only
                self.assign(op, "out")
                self.backward(ins[0], op)
            else:
                size = c_out // groups
                if not np.array_equal(np.arange(c_out) // size, self.perm // size):
                    self.refuse(
                        op,
                        f"groups={groups}: the reorder moves output channels into other groups "
                        "(each group reads its own input channels)",
                    )
                self.assign(op, "out")
        elif cls == "DepthwiseConv2D":
            if int(op.depth_multiplier) != 1:
                self.refuse(
                    op, f"depth_multiplier={op.depth_multiplier}: the reorder would move filters between input channels"
                )
            self.assign(op, "out")
            self.backward(ins[0], op)
        elif cls in _PER_CHANNEL_WEIGHTS or cls in _PASS_THROUGH or cls in ("Scale", "Activation"):
            if cls == "Activation" and _activation_name(op) in ("softmax", "log_softmax"):
                self.refuse(op, "softmax mixes channels")
            if cls == "Scale" and op.weights and len(tuple(op.weights[0].shape)) > 0:
                self.refuse(op, "a per-channel scale")
            if cls == "BatchNormalization" and op.axis not in (
                -1,
                len(tensor.shape) - 1,
                [-1],
                [len(tensor.shape) - 1],
            ):
                self.refuse(op, f"axis={op.axis} is not the channel axis")
            if cls in _PER_CHANNEL_WEIGHTS and op.weights:
                self.assign(op, "out")
            self.backward(ins[0], op)
        elif cls in _ELEMENTWISE_MERGES:
            shapes = {tuple(t.shape[1:]) for t in ins}
            if len(shapes) != 1:
                self.refuse(
                    op,
                    f"its inputs have different shapes {sorted(map(str, shapes))} (broadcasting "
                    "mixes per-channel and shared values)",
                )
            for t in ins:
                self.backward(t, op)
        else:
            self.refuse(
                op,
                "a layer that does not act on each channel in place (the walk knows activations, "
                "BatchNormalization, PReLU, bias-free scaling, element-wise merges of same-shaped "
                "tensors and convolutions)",
            )

    def forward(self, tensor):
        """Reorders the input channels of every conv that reads ``tensor``."""
        readers = _consumers(tensor)
        if not readers or id(tensor) in self.outputs:
            op, _ = _producer(tensor)
            self.refuse(op, "the reordered channels reach the model's output")
        for op, node in readers:
            cls = type(op).__name__
            if len(op._inbound_nodes) > 1:
                self.refuse(op, f"the layer is shared ({len(op._inbound_nodes)} calls)")
            if cls in _CONVS:
                groups = int(getattr(op, "groups", 1) or 1)
                if groups == 1:
                    self.assign(op, "in")
                    continue
                if groups == _channels_of(tensor) == int(op.filters):
                    self.assign(op, "out")
                    self.forward(node.output_tensors[0])
                    continue
                self.refuse(op, f"groups={groups}: the reorder would move input channels between groups")
            elif cls == "DepthwiseConv2D" and int(op.depth_multiplier) == 1:
                self.assign(op, "out")
                self.forward(node.output_tensors[0])
            elif (
                cls in _PER_CHANNEL_WEIGHTS
                or cls in _PASS_THROUGH
                or (cls == "Activation" and _activation_name(op) not in ("softmax", "log_softmax"))
            ):
                if cls in _PER_CHANNEL_WEIGHTS and op.weights:
                    self.assign(op, "out")
                self.forward(node.output_tensors[0])
            else:
                self.refuse(op, "a layer that does not act on each channel in place reads the reordered channels")


def _models(model):
    import keras

    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _models(layer)


def shuffle_reorders(model: Any, weights_order: str = "torch") -> tuple[dict[int, tuple], list[str]]:
    """The channel reorders that weights trained with ``weights_order`` shuffles need in ``model``.

    Args:
      model: a built ``keras.Model``.
      weights_order: 'torch' or 'tf', the shuffles' channel order the weights were trained with.

    Returns:
      ``({layer id: (layer, ChannelReorder)}, [refusal messages])``.
    """
    found: dict[int, tuple] = {}
    refused: list[str] = []
    for sub in _models(model):
        outputs = {id(t) for t in sub.outputs}
        for layer in sub.layers:
            cls = type(layer).__name__
            if cls not in ("PixelShuffle", "PixelUnshuffle") or layer.order == weights_order:
                continue
            r = int(layer.scale)
            for node in layer._inbound_nodes:
                x = node.input_tensors[0]
                channels = _channels_of(x) if cls == "PixelShuffle" else _channels_of(node.output_tensors[0])
                if channels is None:
                    refused.append(
                        f"{cls} {layer.name!r}: its channel count is unknown, so the channel reorder "
                        f"cannot be derived. Fix: {_FIX}."
                    )
                    continue
                perm = torch_to_tf_shuffle_permutation(int(channels) // (r * r), r)
                if layer.order == "torch":  # weights in tf order, layer in torch order
                    perm = np.argsort(perm)
                note = f"{cls} {weights_order}->{layer.order} channel order (r={r})"
                walk = _Walk(layer, perm, note, outputs)
                try:
                    if cls == "PixelShuffle":
                        walk.backward(x, layer)
                    else:
                        walk.forward(node.output_tensors[0])
                except _Refused as exc:
                    refused.append(str(exc))
                    continue
                for key, (lay, reorder) in walk.found.items():
                    old = found.get(key)
                    if old is not None and not (
                        old[1].axis == reorder.axis and np.array_equal(old[1].perm, reorder.perm)
                    ):
                        refused.append(
                            f"layer {lay.name!r} is reached by two shuffles that need different "
                            f"channel orders. Fix: {_FIX}."
                        )
                        continue
                    found[key] = (lay, reorder)
    return found, refused
