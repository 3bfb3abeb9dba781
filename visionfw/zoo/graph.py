"""The graph writer: write a model top-down like the paper's figure and get the spec dict.

    g = Graph("EDSR", inputs=[(None, None, 3)], defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}})
    x = g.layer("MeanShift", g.input, mean=RGB_MEAN, sign=-1)
    head = x = g.conv(x, 64)
    for _ in range(16):
        x = g.block("resblock", x)
    x = g.add(head, g.conv(x, 64))
    x = g.block("upsampler", x, scale=2)
    x = g.layer("MeanShift", g.conv(x, 3), mean=RGB_MEAN, sign=1)
    spec = g.spec()

Every method adds one link and returns the node it creates; :class:`Graph` numbers the
nodes itself.  The result is the ordinary spec dict (word link types), so it stays the stored,
JSON and DOT format and builds with :func:`visionfw.build_model` like a hand-written dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visionfw.errors import SpecError
from visionfw.zoo.spec_format import TYPE_CODES
from visionfw.zoo.validation import validate_spec, validation_deferred

__all__ = ["Graph", "Node"]


def _order(order: str) -> dict[str, Any]:
    """A pixel shuffle's ``order`` argument, left out for the default ``'tf'``."""
    return {} if order == "tf" else {"order": order}


class Node(int):
    """A node of one :class:`Graph`: an int (its number in the spec) that knows its graph."""

    graph: Graph | None = None

    def __repr__(self) -> str:
        return f"Node({int(self)})"


class Graph:
    """Collects links in call order and writes them as a spec dict.

    Every link method returns the :class:`Node` it creates; pass nodes of this graph as inputs.
    """

    def __init__(
        self,
        name: str,
        inputs: Sequence[Sequence[int | None]] = ((None, None, 3),),
        defaults: dict[str, dict[str, Any]] | None = None,
        blocks: dict[str, dict] | None = None,
    ) -> None:
        """Args:
        name: the model's name (a non-empty string without '/').
        inputs: input shapes without the batch axis, e.g. ``[(None, None, 3)]``.
        defaults: keyword arguments per layer class (they reach inside blocks too).
        blocks: local dict blocks, by name.

        Raises:
            SpecError: the name is empty or not a string.
        """
        if not isinstance(name, str) or not name:
            raise SpecError(f"Graph(name={name!r}): a graph needs a non-empty string name.")
        self.name = name
        self._shapes = [tuple(s) for s in inputs]
        self._defaults = {k: dict(v) for k, v in (defaults or {}).items()}
        self._blocks = dict(blocks or {})
        self._links: dict[str, tuple[list, list, list]] = {}  # link type -> ([link tuples], [class names], [kwargs])
        self._next = len(self._shapes)
        self._outputs: list[int] | None = None
        self.inputs = [self._node(i) for i in range(len(self._shapes))]

    @property
    def input(self) -> Node:
        """The first (usually the only) input node."""
        return self.inputs[0]

    # -- the one primitive -----------------------------------------------------------
    def link(self, kind: str, cls: str, *inputs: Node, share: Node | None = None, **kwargs: Any) -> Node:
        """Adds a link of type ``kind`` with class or block ``cls`` on ``inputs``.

        Args:
            kind: the link type (``'conv'``, ``'block'``, ``'layer'``, ...: the keys of ``TYPE_CODES``).
            cls: the layer class or block name.
            *inputs: the input nodes.
            share: calls the layer or block of the earlier link that created this node again: one set
                of weights, used (and trained) by every link that shares it.
            **kwargs: the layer's keyword arguments (or the block's parameters).

        Returns:
            The node the link creates.

        Raises:
            SpecError: an unknown link type, no input, or a node of another graph (or not created yet).
        """
        if kind not in TYPE_CODES:
            raise SpecError(f"graph {self.name!r}: unknown link type {kind!r}; use one of {', '.join(TYPE_CODES)}.")
        if not inputs:
            raise SpecError(f"graph {self.name!r}: {kind} {cls!r} needs at least one input node.")
        for v in inputs:
            self._check(v, f"{kind} {cls!r}")
        if share is not None:
            self._check(share, f"{kind} {cls!r} share=")
            kwargs = dict(kwargs, share=int(share))
        out = self._node(self._next)
        self._next += 1
        links, subs, pars = self._links.setdefault(kind, ([], [], []))
        links.append(tuple(int(v) for v in inputs) + (int(out),))
        subs.append(cls)
        pars.append(dict(kwargs))
        return out

    # -- one method per link type, named as the spec names it ------------------------
    def conv(
        self, x: Node, filters: int | None = None, kernel_size: Any = None, cls: str = "Conv2D", **kwargs: Any
    ) -> Node:
        """A convolution of ``x``.

        Args:
            x: the input node.
            filters: output channels (left out: the ``defaults``).
            kernel_size: the kernel size (left out: the ``defaults``).
            cls: the conv class (``'Conv2D'``, ``'Conv2DTranspose'``, ``'SeparableConv2D'``, ...).
            **kwargs: more keyword arguments of the class.

        Returns:
            The new node.
        """
        kwargs.update({k: v for k, v in (("filters", filters), ("kernel_size", kernel_size)) if v is not None})
        return self.link("conv", cls, x, **kwargs)

    def act(self, x: Node, kind: str = "relu", **kwargs: Any) -> Node:
        """An activation of ``x``.

        Args:
            x: the input node.
            kind: a class (``'PReLU'``, ``'LeakyReLU'``, ...) or a name (``'relu'``, ``'tanh'``).
            **kwargs: keyword arguments of the class.

        Returns:
            The new node.
        """
        return self.link("act", kind, x, **kwargs)

    def norm(self, x: Node, cls: str = "BatchNormalization", **kwargs: Any) -> Node:
        """A normalisation layer (``cls``) on ``x``; returns the new node."""
        return self.link("norm", cls, x, **kwargs)

    def merge(self, cls: str, *xs: Node, **kwargs: Any) -> Node:
        """A merge of several nodes (``cls``: ``'Add'``, ``'Concatenate'``, ``'Multiply'``, ...)."""
        return self.link("merge", cls, *xs, **kwargs)

    def add(self, *xs: Node) -> Node:
        """The sum of the nodes ``xs``."""
        return self.merge("Add", *xs)

    def concat(self, *xs: Node, axis: int = -1) -> Node:
        """The nodes ``xs`` concatenated along ``axis`` (default: channels)."""
        return self.merge("Concatenate", *xs, **({} if axis == -1 else {"axis": axis}))

    def multiply(self, *xs: Node) -> Node:
        """The element-wise product of the nodes ``xs``."""
        return self.merge("Multiply", *xs)

    def block(self, name: str, *xs: Node, share: Node | None = None, **params: Any) -> Node:
        """A registered block (or one of this graph's local ``blocks``) on one or more nodes.

        Args:
            name: the block's registered (or local) name.
            *xs: the input nodes.
            share: applies the block built by the link that created this node again, with its weights.
            **params: the block function's parameters (for a dict block: defaults per layer class).

        Returns:
            The new node.
        """
        return self.link("block", name, *xs, share=share, **params)

    def shuffle(self, x: Node, scale: int, order: str = "tf") -> Node:
        """PixelShuffle (depth to space) of ``x`` by ``scale``; ``order='torch'``: PyTorch's channel order."""
        return self.link("shuffle", "PixelShuffle", x, scale=scale, **_order(order))

    def unshuffle(self, x: Node, scale: int, order: str = "tf") -> Node:
        """PixelUnshuffle (space to depth) of ``x`` by ``scale``; ``order='torch'``: PyTorch's channel order."""
        return self.link("shuffle", "PixelUnshuffle", x, scale=scale, **_order(order))

    def upsample(self, x: Node, cls: str = "UpSampling2D", **kwargs: Any) -> Node:
        """A resampling link (``cls``: ``'UpSampling2D'``, ``'BicubicResize'``, ``'Interpolate'``) on ``x``."""
        return self.link("upsample", cls, x, **kwargs)

    def bicubic(self, x: Node, scale: float) -> Node:
        """MATLAB-exact bicubic resize of ``x`` by ``scale`` (< 1 downscales)."""
        return self.upsample(x, "BicubicResize", scale=scale)

    def pad(self, x: Node, cls: str = "ZeroPadding2D", **kwargs: Any) -> Node:
        """Padding (or ``'Cropping2D'``) of ``x``."""
        return self.link("pad", cls, x, **kwargs)

    def pool(self, x: Node, cls: str = "MaxPooling2D", **kwargs: Any) -> Node:
        """A pooling layer (``cls``) on ``x``."""
        return self.link("pool", cls, x, **kwargs)

    def dense(self, x: Node, units: int, **kwargs: Any) -> Node:
        """A Dense layer of ``units`` on ``x``."""
        return self.link("dense", "Dense", x, units=units, **kwargs)

    def dropout(self, x: Node, rate: float, **kwargs: Any) -> Node:
        """Dropout of ``x`` at ``rate``."""
        return self.link("dropout", "Dropout", x, rate=rate, **kwargs)

    def flatten(self, x: Node) -> Node:
        """``x`` flattened (batch axis kept)."""
        return self.link("flatten", "Flatten", x)

    def reshape(self, x: Node, target_shape: Sequence[int]) -> Node:
        """``x`` reshaped to ``target_shape`` (without the batch axis)."""
        return self.link("reshape", "Reshape", x, target_shape=tuple(target_shape))

    def weighted_sum(self, *xs: Node, **kwargs: Any) -> Node:
        """A learned weighted sum of the nodes ``xs``."""
        return self.link("weighted_sum", "WeightedSum", *xs, **kwargs)

    def layer(self, cls: str, *xs: Node, **kwargs: Any) -> Node:
        """Any Keras or visionfw layer class by name (``'MeanShift'``, ``'Scale'``, ``'Quantize'``, ...) on ``xs``."""
        return self.link("layer", cls, *xs, **kwargs)

    # -- result ------------------------------------------------------------------------
    def output(self, *xs: Node) -> Graph:
        """Marks the model's outputs (default: the last node created).

        Args:
            *xs: the output nodes, in order.

        Returns:
            The graph itself.
        """
        for v in xs:
            self._check(v, "output")
        self._outputs = [int(v) for v in xs]
        return self

    def spec(self, meta: dict | None = None, validate: bool = True) -> dict:
        """The spec dict of the links written so far.

        Args:
            meta: the spec's ``'meta'`` (scale, channels, paper, ...).
            validate: whether to validate it now (``False`` leaves that to the build).

        Returns:
            The spec dict (word link types).

        Raises:
            SpecError: the spec is invalid (when validated).
        """
        spec: dict[str, Any] = {"name": self.name, "inputs": list(self._shapes)}
        if self._defaults:
            spec["defaults"] = {k: dict(v) for k, v in self._defaults.items()}
        if self._blocks:
            spec["blocks"] = dict(self._blocks)
        for kind, (links, subs, pars) in self._links.items():
            spec[kind] = list(links)
            spec[kind + "_sub"] = list(subs)
            spec[kind + "_par"] = [dict(p) for p in pars]
        if self._outputs is not None and self._outputs != [self._next - 1]:
            spec["outputs"] = list(self._outputs)
        if meta:
            spec["meta"] = dict(meta)
        if validate and not validation_deferred():
            validate_spec(spec)
        return spec

    # -- helpers -------------------------------------------------------------------------
    def _node(self, number: int) -> Node:
        node = Node(number)
        node.graph = self
        return node

    def _check(self, v: object, what: str) -> None:
        if not isinstance(v, Node) or v.graph is not self:
            raise SpecError(
                f"graph {self.name!r}: {what} got {v!r}, which is not a node of this graph. Pass "
                f"what this graph's methods returned (or graph.input)."
            )
        if int(v) >= self._next:
            raise SpecError(f"graph {self.name!r}: {what} uses node {int(v)}, which does not exist yet.")
