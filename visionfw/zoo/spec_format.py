"""The spec format: link types, their five-letter aliases, and the parsed form of a spec.

A spec looks like::

    {'name': 'VDSR',
     'inputs': [(None, None, 1)],                     # optional; default one RGB input
     'defaults': {'Conv2D': {'kernel_size': 3, 'padding': 'same'}},
     'block': [(0, 1), (1, 2)], 'block_sub': ['conv_relu', 'conv_out'],
     'merge': [(0, 2, 3)], 'merge_sub': ['Add']}

Nodes are integers; nodes ``0 .. n_inputs-1`` are the inputs.  In every link tuple
the last index is the node the link creates and the others are its inputs.  The
model's output is the highest node, or the nodes listed under ``'outputs'``.
"""

from __future__ import annotations

from typing import NamedTuple

from visionfw.errors import SpecError

__all__ = [
    "ACTIVATION_NAMES",
    "ALIASES",
    "MAX_BLOCK_DEPTH",
    "MAX_SPEC_LINKS",
    "SPEC_KEYS",
    "TYPE_CODES",
    "Link",
    "ParsedSpec",
    "is_node",
    "link_keys",
    "loc",
]

# Link type -> (classes it accepts, default class when '<type>_sub' is left out,
# whether it takes several inputs).  The words are the canonical names; the original
# "Vision Framework" five-letter codes are aliases (ALIASES) and build the same model.
TYPE_CODES: dict[str, tuple[tuple[str, ...] | None, str | None, bool]] = {
    "conv": (
        ("Conv2D", "Conv2DTranspose", "SeparableConv2D", "DepthwiseConv2D", "EdgePadConv2D", "Conv1D", "Conv3D"),
        "Conv2D",
        False,
    ),
    "act": (("PReLU", "LeakyReLU", "ELU", "ReLU", "Softmax", "Activation"), None, False),
    "activation": (("Activation",), "Activation", False),
    "norm": (("BatchNormalization", "LayerNormalization", "GroupNormalization"), "BatchNormalization", False),
    "merge": (("Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum"), None, True),
    "block": ((), None, True),
    "shuffle": (("PixelShuffle", "PixelUnshuffle"), "PixelShuffle", False),
    "upsample": (("UpSampling2D", "BicubicResize", "Interpolate"), "UpSampling2D", False),
    "pool": (("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"), None, False),
    "pad": (("ZeroPadding2D", "Cropping2D"), "ZeroPadding2D", False),
    "dense": (("Dense",), "Dense", False),
    "dropout": (("Dropout",), "Dropout", False),
    "spatial_dropout": (("SpatialDropout2D",), "SpatialDropout2D", False),
    "flatten": (("Flatten",), "Flatten", False),
    "reshape": (("Reshape",), "Reshape", False),
    "weighted_sum": (("WeightedSum",), "WeightedSum", True),
    # Beyond the original format: any Keras or visionfw layer by class name
    # (MeanShift, Scale, ChannelAttention, Quantize, ...).
    "layer": (None, None, True),
}
# The original format's five-letter codes -> the words above.
ALIASES = {
    "convo": "conv",
    "aactv": "act",
    "actvn": "activation",
    "btnrm": "norm",
    "pslyr": "shuffle",
    "usmpl": "upsample",
    "poolg": "pool",
    "zpdng": "pad",
    "drpot": "dropout",
    "spdrp": "spatial_dropout",
    "flttn": "flatten",
    "reshp": "reshape",
    "wsuml": "weighted_sum",
}
# Activation names accepted directly in 'actvn_sub' (shorthand for Activation(name)).
ACTIVATION_NAMES = (
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "linear",
    "elu",
    "selu",
    "gelu",
    "swish",
    "silu",
    "softplus",
    "softsign",
    "hard_sigmoid",
    "leaky_relu",
    "relu6",
    "mish",
)
SPEC_KEYS = ("name", "inputs", "outputs", "defaults", "blocks", "meta")
MAX_BLOCK_DEPTH = 16
# Links one spec (or block spec) may hold, refused before anything is checked or built: Keras creates
# each layer in Python (5000 took 143 s on a loaded 2-core machine; 20000 would take many minutes).
MAX_SPEC_LINKS = 5000


def loc(path: str, key: str, index: int | None = None) -> str:
    """Where an error is: ``"<path>: key 'conv', link 3"`` (the start of every SpecError message)."""
    where = f"{path}: " if path else ""
    if index is None:
        return f"{where}key {key!r}"
    return f"{where}key {key!r}, link {index}"


def is_node(v: object) -> bool:
    """Whether ``v`` is a node index (an int, not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool)


class Link(NamedTuple):
    """One parsed link: its canonical type, the key the spec wrote it under, index, nodes, class and kwargs.

    ``share`` is the node whose link's layer (or block) this link calls again, with the same weights.
    """

    code: str
    key: str
    index: int  # type: ignore[assignment]  # the link's place in its list (shadows tuple.index)
    ins: list
    out: int
    sub: str
    par: dict
    share: int | None = None


def link_keys(spec: dict) -> dict[str, str]:
    """{canonical type: the key the spec uses for it (a word or its five-letter alias)}."""
    found: dict[str, str] = {}
    for key in spec:
        code = ALIASES.get(key, key) if isinstance(key, str) else None
        if code in TYPE_CODES:
            if code in found:
                raise SpecError(
                    f"spec {spec.get('name')!r}: keys {found[code]!r} and {key!r} both hold "
                    f"{code!r} links ({key!r} is the original format's name for it). Put all "
                    f"of them under one key."
                )
            found[code] = key
    return found


class ParsedSpec(NamedTuple):
    """What validation learns about a spec: its links (in build order), input count and outputs."""

    links: list
    n_inputs: int
    outputs: list
