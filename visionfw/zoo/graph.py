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

from visionfw.errors import SpecError
from visionfw.zoo.spec_format import TYPE_CODES
from visionfw.zoo.validation import validate_spec, validation_deferred

__all__ = ["Graph", "Node"]


class Node(int):
    """A node of one :class:`Graph`: an int (its number in the spec) that knows its graph."""

    graph = None

    def __repr__(self):
        return f"Node({int(self)})"


class Graph:
    """Collects links in call order and writes them as a spec dict.

    ``inputs`` are input shapes without the batch axis; ``defaults`` are keyword arguments
    per layer class (they reach inside blocks too); ``blocks`` are local dict blocks.
    """

    def __init__(self, name, inputs=((None, None, 3),), defaults=None, blocks=None):
        if not isinstance(name, str) or not name:
            raise SpecError(f"Graph(name={name!r}): a graph needs a non-empty string name.")
        self.name = name
        self._shapes = [tuple(s) for s in inputs]
        self._defaults = {k: dict(v) for k, v in (defaults or {}).items()}
        self._blocks = dict(blocks or {})
        self._links = {}  # link type -> ([link tuples], [class names], [kwargs])
        self._next = len(self._shapes)
        self._outputs = None
        self.inputs = [self._node(i) for i in range(len(self._shapes))]

    @property
    def input(self):
        """The first (usually the only) input node."""
        return self.inputs[0]

    # -- the one primitive -----------------------------------------------------------
    def link(self, kind, cls, *inputs, share=None, **kwargs):
        """Adds a link of type ``kind`` with class or block ``cls`` on ``inputs``; returns its node.

        ``share=node`` calls the layer or block of the earlier link that created ``node`` again:
        one set of weights, used (and trained) by every link that shares it.
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
    def conv(self, x, filters=None, kernel_size=None, cls="Conv2D", **kwargs):
        """A convolution; ``filters``/``kernel_size`` left out fall back to the defaults."""
        kwargs.update({k: v for k, v in (("filters", filters), ("kernel_size", kernel_size)) if v is not None})
        return self.link("conv", cls, x, **kwargs)

    def act(self, x, kind="relu", **kwargs):
        """An activation: a class (``'PReLU'``, ``'LeakyReLU'``, ...) or a name (``'relu'``, ``'tanh'``)."""
        return self.link("act", kind, x, **kwargs)

    def norm(self, x, cls="BatchNormalization", **kwargs):
        return self.link("norm", cls, x, **kwargs)

    def merge(self, cls, *xs, **kwargs):
        """A merge of several nodes: ``'Add'``, ``'Concatenate'``, ``'Multiply'``, ..."""
        return self.link("merge", cls, *xs, **kwargs)

    def add(self, *xs):
        return self.merge("Add", *xs)

    def concat(self, *xs, axis=-1):
        return self.merge("Concatenate", *xs, **({} if axis == -1 else {"axis": axis}))

    def multiply(self, *xs):
        return self.merge("Multiply", *xs)

    def block(self, name, *xs, share=None, **params):
        """A registered block (or one of this graph's local ``blocks``) on one or more nodes.

        ``share=node`` applies the block built by the link that created ``node`` again, with its weights.
        """
        return self.link("block", name, *xs, share=share, **params)

    def shuffle(self, x, scale, order="tf"):
        """PixelShuffle (depth to space) by ``scale``."""
        return self.link("shuffle", "PixelShuffle", x, scale=scale, **({} if order == "tf" else {"order": order}))

    def unshuffle(self, x, scale, order="tf"):
        """PixelUnshuffle (space to depth) by ``scale``."""
        return self.link("shuffle", "PixelUnshuffle", x, scale=scale, **({} if order == "tf" else {"order": order}))

    def upsample(self, x, cls="UpSampling2D", **kwargs):
        return self.link("upsample", cls, x, **kwargs)

    def bicubic(self, x, scale):
        """MATLAB-exact bicubic resize by ``scale`` (< 1 downscales)."""
        return self.upsample(x, "BicubicResize", scale=scale)

    def pad(self, x, cls="ZeroPadding2D", **kwargs):
        return self.link("pad", cls, x, **kwargs)

    def pool(self, x, cls="MaxPooling2D", **kwargs):
        return self.link("pool", cls, x, **kwargs)

    def dense(self, x, units, **kwargs):
        return self.link("dense", "Dense", x, units=units, **kwargs)

    def dropout(self, x, rate, **kwargs):
        return self.link("dropout", "Dropout", x, rate=rate, **kwargs)

    def flatten(self, x):
        return self.link("flatten", "Flatten", x)

    def reshape(self, x, target_shape):
        return self.link("reshape", "Reshape", x, target_shape=tuple(target_shape))

    def weighted_sum(self, *xs, **kwargs):
        return self.link("weighted_sum", "WeightedSum", *xs, **kwargs)

    def layer(self, cls, *xs, **kwargs):
        """Any Keras or visionfw layer class by name (``'MeanShift'``, ``'Scale'``, ``'Quantize'``, ...)."""
        return self.link("layer", cls, *xs, **kwargs)

    # -- result ------------------------------------------------------------------------
    def output(self, *xs):
        """Marks the model's outputs (default: the last node created)."""
        for v in xs:
            self._check(v, "output")
        self._outputs = [int(v) for v in xs]
        return self

    def spec(self, meta=None, validate=True):
        """The spec dict, validated (``validate=False`` leaves that to the build)."""
        spec = {"name": self.name, "inputs": list(self._shapes)}
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
    def _node(self, number):
        node = Node(number)
        node.graph = self
        return node

    def _check(self, v, what):
        if not isinstance(v, Node) or v.graph is not self:
            raise SpecError(
                f"graph {self.name!r}: {what} got {v!r}, which is not a node of this graph. Pass "
                f"what this graph's methods returned (or graph.input)."
            )
        if int(v) >= self._next:
            raise SpecError(f"graph {self.name!r}: {what} uses node {int(v)}, which does not exist yet.")
