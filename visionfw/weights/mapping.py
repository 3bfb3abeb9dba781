"""How a PyTorch state dict's modules map onto a Keras model's weights: the Keras weight holders, the
kind of each PyTorch module, each pair's conversion (OIHW->HWIO, grouped and depthwise convs, Linear
transposes, BatchNorm, PReLU, PixelShuffle channel reorder) and the printable plan,
:class:`StateDictMapping`.  Which module pairs with which layer is decided in
:mod:`visionfw.weights.state_dict`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.layer_weights import CONV_CLASSES, weighted_layers


def source_kind(prefix: str, params: dict[str, np.ndarray], source: str) -> str:
    """The kind of a PyTorch module from its parameters.

    Args:
      prefix: the module's name in the state dict.
      params: {parameter name: array} of the module.
      source: the state dict's origin (for messages).

    Returns:
      'bn', 'conv1x1', 'conv', 'linear', 'prelu' or 'norm'.

    Raises:
      WeightsError: the module has no weight, or one of a rank no Keras layer takes.
    """
    names = set(params)
    if {"running_mean", "running_var"} <= names:
        return "bn"
    w = params.get("weight")
    if w is None:
        raise WeightsError(
            f"{source}: module {prefix!r} has parameters {sorted(names)} but no 'weight'; "
            "add a skip pattern for it (skip=...) or a name_map entry."
        )
    if w.ndim == 4 and w.shape[2:] == (1, 1):
        return "conv1x1"
    if w.ndim in (3, 4, 5):
        return "conv"
    if w.ndim == 2:
        return "linear"
    if w.ndim == 1 and "bias" not in names:
        return "prelu"
    if w.ndim == 1:
        return "norm"
    raise WeightsError(f"{source}: module {prefix!r} has a weight of shape {w.shape} that maps to no Keras layer kind.")


def weight_targets(model: Any) -> list[tuple]:
    """The Keras weight holders a PyTorch module can be paired with, in the spec's written order.

    Args:
      model: a ``keras.Model``.

    Returns:
      [(label, layer, kind, sub)]: ``sub`` names a Dense inside a layer (a ChannelAttention's 'down'/'up').
    """
    out: list[tuple] = []
    for layer in weighted_layers(model, written_order=True):
        cls = type(layer).__name__
        if cls in CONV_CLASSES:
            out.append((layer.name, layer, "conv", None))
        elif cls == "DepthwiseConv2D":
            out.append((layer.name, layer, "depthwise", None))
        elif cls == "Dense":
            out.append((layer.name, layer, "dense", None))
        elif cls == "ChannelAttention":
            out.append((f"{layer.name}:down", layer.down, "dense", "down"))
            out.append((f"{layer.name}:up", layer.up, "dense", "up"))
        elif cls == "PReLU":
            out.append((layer.name, layer, "prelu", None))
        elif cls == "BatchNormalization":
            out.append((layer.name, layer, "bn", None))
        elif cls in ("Quantize",):
            continue  # a switch, not a learnt weight
        else:
            out.append((layer.name, layer, "other", None))
    return out


_COMPATIBLE = {
    "conv": ("conv", "conv1x1"),
    "depthwise": ("conv", "conv1x1"),
    "dense": ("linear", "conv1x1"),
    "prelu": ("prelu",),
    "bn": ("bn",),
    "other": (),
}


def kind_fits(kind: str, target_kind: str) -> bool:
    """Whether a PyTorch module of ``kind`` (:func:`source_kind`) can fill a ``target_kind`` weight holder."""
    return kind in _COMPATIBLE[target_kind]


# PyTorch -> Keras kernel layouts, by Keras layer class (ConvTranspose weights are (I, O/g, ...))
_KERNEL_LAYOUTS = {"Conv1D": "OIK->KIO", "Conv3D": "OIDHW->DHWIO", "Conv2DTranspose": "IOHW->HWOI"}


def _convert(prefix, params, kind, layer, target_kind, source):
    """[(PyTorch param name, Keras value, conversion)] for ``layer``'s weights, in their order.

    Pure: nothing is assigned (BatchNorm's epsilon is set by :meth:`StateDictMapping.apply`).
    """
    w = params["weight"]
    b = params.get("bias")
    bias = [("bias", b, "-")] if b is not None else []
    if target_kind == "conv":
        # O, I/groups, *spatial -> *spatial, I/groups, O: also right for grouped convs, whose
        # Keras kernel is (..., I/groups, O) with the same contiguous output groups
        kernel = np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))
        layout = _KERNEL_LAYOUTS.get(type(layer).__name__, "OIHW->HWIO")
        groups = int(getattr(layer, "groups", 1) or 1)
        if groups > 1:
            layout += f", groups={groups}"
        return [("weight", kernel, layout)] + bias
    if target_kind == "depthwise":
        # PyTorch Conv2d(C, C*M, groups=C): (C*M, 1, H, W), output c*M + m reads input c;
        # Keras DepthwiseConv2D: (H, W, C, M), same output order
        kh, kw, channels, multiplier = tuple(layer.kernel.shape)
        if w.ndim != 4 or w.shape[1] != 1 or w.shape[0] != channels * multiplier:
            raise WeightsError(
                f"{source}: {prefix}.weight {w.shape} is not a depthwise conv weight "
                f"({channels * multiplier}, 1, {kh}, {kw}) for Keras DepthwiseConv2D "
                f"{layer.name!r} (C={channels}, depth_multiplier={multiplier})."
            )
        kernel = np.transpose(w.reshape(channels, multiplier, *w.shape[2:]), (2, 3, 0, 1))
        return [("weight", kernel, "(C*M,1,H,W)->(H,W,C,M) depthwise")] + bias
    if target_kind == "dense":
        mat = w.reshape(w.shape[0], w.shape[1]).T  # (out, in[,1,1]) -> (in, out)
        return [("weight", mat, "(out,in,1,1)->(in,out)" if w.ndim == 4 else "(out,in)->(in,out)")] + bias
    if target_kind == "prelu":
        alpha_shape = tuple(layer.weights[0].shape)
        if w.size == 1:  # nn.PReLU() shares one slope across channels
            return [
                ("weight", np.full(alpha_shape, float(w.ravel()[0]), np.float32), f"1 slope broadcast to {alpha_shape}")
            ]
        if w.size == int(np.prod(alpha_shape)):
            return [("weight", w.reshape(alpha_shape), f"reshape to {alpha_shape}")]
        raise WeightsError(
            f"{source}: PReLU {prefix!r} has {w.size} slopes; Keras layer {layer.name!r} "
            f"has alpha of shape {alpha_shape}."
        )
    if target_kind == "bn":
        order = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        values = []
        for wt in layer.weights:
            base = wt.name.rsplit("/", 1)[-1].split(":")[0]
            if base not in order or order[base] not in params:
                raise WeightsError(
                    f"{source}: BatchNorm {prefix!r} lacks {order.get(base, base)!r} for "
                    f"weight {wt.name!r} of layer {layer.name!r}."
                )
            values.append((order[base], params[order[base]], "-"))
        return values
    raise WeightsError(f"{source}: no conversion from a PyTorch {kind} to Keras layer {layer.name!r}.")


def _shape_text(shape):
    return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"


class MappedModule:
    """One PyTorch module paired with one Keras weight holder, and how its arrays convert.

    ``rows``: ``[(torch key, torch shape, keras weight, keras shape, value, conversion)]``;
    ``problem``: why it cannot be assigned (None when it can); ``how``: how the pair was made:
    'name' (the Keras layer is named after the module), 'order' (the spec's written order),
    'shape' (the one layer left whose kind and shape fit) or 'map' (``name_map``).
    """

    def __init__(self, module: str, kind: str, label: str, layer: Any, target_kind: str, how: str) -> None:
        """A pair, with no rows and no problem yet.

        Args:
          module: the PyTorch module's name.
          kind: its kind (:func:`source_kind`).
          label: the Keras weight holder's label (:func:`weight_targets`).
          layer: the Keras layer holding the weights.
          target_kind: the holder's kind.
          how: how the pair was made.
        """
        self.module, self.kind, self.label, self.layer = module, kind, label, layer
        self.target_kind, self.how = target_kind, how
        self.rows: list[tuple] = []  # (torch key, torch shape, keras weight, keras shape, value, conversion)
        self.problem: str | None = None
        self.epsilon: float | None = None


class StateDictMapping:
    """The plan of :func:`plan_state_dict`: which PyTorch keys go to which Keras weights, how.

    ``print(mapping)`` shows it as a table; ``mapping.problems`` lists what blocks loading
    (first one first), ``mapping.check()`` raises it as a WeightsError, ``mapping.apply()``
    assigns the weights (all of them or, on any problem, none).
    """

    def __init__(
        self,
        model_name: str,
        source: str,
        entries: list[MappedModule],
        *,
        unmatched_torch: Sequence[tuple] = (),
        unmatched_keras: Sequence[tuple] = (),
        skipped: Sequence[str] = (),
        ignored: Sequence[str] = (),
        plan_problems: Sequence[str] = (),
    ) -> None:
        """The plan's parts.

        Args:
          model_name: the Keras model's name.
          source: where the state dict came from (a file name or 'state dict').
          entries: the pairs, in the state dict's order.
          unmatched_torch: [(module prefix, kind, {param: shape})] of modules left unpaired.
          unmatched_keras: [(label, layer class, {weight: shape})] of Keras weight holders left unpaired.
          skipped: the keys ``skip=`` dropped.
          ignored: the modules ``name_map`` sent to None.
          plan_problems: problems of the pairing as a whole (counts, refused channel reorders), first.
        """
        self.model_name, self.source = model_name, source
        self.entries = entries  # [MappedModule] in state dict order
        self.unmatched_torch = list(unmatched_torch)  # [(module prefix, kind, {param: shape})]
        self.unmatched_keras = list(unmatched_keras)  # [(label, layer class, {weight: shape})]
        self.skipped, self.ignored = list(skipped), list(ignored)
        self._plan_problems = list(plan_problems)  # unmatched counts, refused channel reorders

    @property
    def problems(self) -> list[str]:
        """What blocks loading, as one-line messages with their fix (empty when the mapping can be applied)."""
        return self._plan_problems + [e.problem for e in self.entries if e.problem]

    @property
    def ok(self) -> bool:
        """Whether the mapping has no problem."""
        return not self.problems

    def check(self) -> StateDictMapping:
        """Raises on a problem.

        Returns:
          ``self``, when there is no problem.

        Raises:
          WeightsError: naming the first problem and its fix.
        """
        if self.problems:
            raise WeightsError(self.problems[0])
        return self

    def apply(self) -> StateDictMapping:
        """Assigns every mapped value (and BatchNorm epsilons), after :meth:`check`.

        Returns:
          ``self``.

        Raises:
          WeightsError: the mapping has a problem; nothing is assigned then.
        """
        self.check()
        for entry in self.entries:
            if entry.epsilon is not None:
                entry.layer.epsilon = entry.epsilon
            for w, row in zip(entry.layer.weights, entry.rows):
                w.assign(np.asarray(row[4], dtype=w.dtype))
        return self

    def table_rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """The table, one row per PyTorch array.

        Returns:
          [(#, torch key, torch shape, keras weight, keras shape, conversion)] as text; # is on a module's first row.
        """
        out = []
        for i, entry in enumerate(self.entries, start=1):
            for k, (tkey, tshape, kname, kshape, _, how) in enumerate(entry.rows):
                note = how + (" [name_map]" if entry.how == "map" else "")
                if kshape is not None and not _fits_row(entry.rows[k]):
                    note += f"  !! MISMATCH: converted {_shape_text(np.shape(entry.rows[k][4]))}"
                out.append(
                    (
                        str(i) if k == 0 else "",
                        tkey,
                        _shape_text(tshape) if tshape is not None else "-",
                        kname or "-",
                        _shape_text(kshape) if kshape is not None else "-",
                        note,
                    )
                )
        return out

    def pairing_counts(self) -> dict[str, int]:
        """How many modules were paired each way.

        Returns:
          {'name': n, 'order': n, 'shape': n, 'map': n}.
        """
        counts = {"name": 0, "order": 0, "shape": 0, "map": 0}
        for entry in self.entries:
            counts[entry.how] += 1
        return counts

    def __str__(self) -> str:
        n_keys = sum(len(e.rows) for e in self.entries)
        lines = [
            f"PyTorch -> Keras mapping for model {self.model_name!r} (from {self.source}): "
            f"{len(self.entries)} modules, {n_keys} arrays paired; "
            f"{len(self.unmatched_torch)} PyTorch modules and {len(self.unmatched_keras)} Keras layers "
            f"unmatched; {len(self.problems)} problem(s); paired by "
            + ", ".join(f"{how} {n}" for how, n in self.pairing_counts().items() if n)
        ]
        header = ("#", "torch key", "torch shape", "keras weight", "keras shape", "conversion")
        rows = [header] + self.table_rows()
        widths = [max(len(r[c]) for r in rows) for c in range(len(header) - 1)]
        for r in rows:
            lines.append("  " + "  ".join(r[c].ljust(widths[c]) for c in range(len(widths))) + "  " + r[-1])
        for how, text in _PAIRED_BY.items():
            found = [f"{i}:{e.module}" for i, e in enumerate(self.entries, start=1) if e.how == how]
            if found:
                lines.append(f"paired {text} ({len(found)}): {', '.join(found)}")
        if self.unmatched_torch:
            lines.append("unmatched PyTorch modules (no Keras layer of that kind and shape):")
            for prefix, kind, shapes in self.unmatched_torch:
                desc = ", ".join(f"{prefix}.{p} {_shape_text(s)}" for p, s in shapes.items())
                lines.append(f"  {prefix} ({kind}): {desc}")
        if self.unmatched_keras:
            lines.append("unmatched Keras layers (no PyTorch module of that kind and shape):")
            for label, cls, shapes in self.unmatched_keras:
                desc = ", ".join(f"{name} {_shape_text(s)}" for name, s in shapes.items())
                lines.append(f"  {label} ({cls}): {desc}")
        if self.skipped:
            lines.append(f"skipped (skip=): {', '.join(self.skipped)}")
        if self.ignored:
            lines.append(f"ignored (name_map -> None): {', '.join(self.ignored)}")
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  {p}" for p in self.problems)
        return "\n".join(lines)

    __repr__ = __str__


def _fits_row(row):
    return row[3] is not None and tuple(np.shape(row[4])) == tuple(row[3])


_PAIRED_BY = {
    "name": "by name (Keras layer named after the module)",
    "order": "in the spec's written order",
    "shape": "by shape (the one layer left that fits)",
    "map": "by name_map",
}
_DOUBT = {
    "order": "paired by the spec's written order (no Keras layer is named {prefix!r})",
    "shape": "paired by shape (the one layer left of that kind and shape)",
    "name": "paired by name (the Keras layer is named {prefix!r})",
    "map": "paired by name_map",
}


def _fix_hint(prefix, how):
    """What to do when a pair does not fit: a pairing guess may be wrong, a named pair is not."""
    if how in ("order", "shape"):
        return (
            f"If the architecture is right, the pairing is wrong: name the Keras layer after the module "
            f"(name={prefix!r} in the spec, dots allowed) or pass name_map={{{prefix!r}: '<keras layer>'}}; "
            "otherwise build the model with the weights' hyper-parameters (filters, kernel size, groups, "
            "use_bias, scale)"
        )
    return (
        "The layer is the module's; build it with the weights' hyper-parameters (filters, kernel size, "
        "groups, use_bias, scale)"
    )


def plan_entry(
    prefix: str, params: dict[str, np.ndarray], target: tuple, how: str, reorders: dict, source: str
) -> MappedModule:
    """One pairing, converted, with its problem (if any) described; assigns nothing.

    Args:
      prefix: the PyTorch module's name.
      params: {parameter name: array} of the module.
      target: a :func:`weight_targets` entry.
      how: how the pair was made ('name', 'order', 'shape' or 'map').
      reorders: {id(layer): (shuffle, reorder)} from :func:`~visionfw.weights.shuffle_reorder.shuffle_reorders`.
      source: the state dict's origin (for messages).

    Returns:
      The :class:`MappedModule`.
    """
    label, layer, target_kind, _ = target
    kind = source_kind(prefix, params, source)
    entry = MappedModule(prefix, kind, label, layer, target_kind, how)
    weights = layer.weights
    doubt = _DOUBT[how].format(prefix=prefix)
    if not kind_fits(kind, target_kind):
        shape = params["weight"].shape if "weight" in params else "-"
        entry.problem = (
            f"{source}: PyTorch module {prefix!r} ({kind}, weight {shape}) is paired with Keras "
            f"layer {label!r} ({type(layer).__name__}), {doubt}; the two models differ there. "
            f"{_fix_hint(prefix, how)}."
        )
        entry.rows = [(f"{prefix}.{p}", v.shape, None, None, v, "!! kind mismatch") for p, v in params.items()]
        return entry
    try:
        converted = _convert(prefix, params, kind, layer, target_kind, source)
    except WeightsError as exc:
        entry.problem = str(exc)
        entry.rows = [(f"{prefix}.{p}", v.shape, None, None, v, "!! cannot convert") for p, v in params.items()]
        return entry
    if target_kind == "bn":
        # PyTorch BatchNorm2d uses eps=1e-5; Keras defaults to 1e-3, which changes outputs
        entry.epsilon = float(params.get("eps", 1e-5))
    reorder = reorders.get(id(layer))
    if reorder is not None:
        converted = [
            (
                p,
                _reorder(v, p, reorder[1], target_kind, layer),
                how_ if p == "eps" else (reorder[1].note if how_ == "-" else f"{how_}; {reorder[1].note}"),
            )
            for p, v, how_ in converted
        ]
    for k, (param, value, how_) in enumerate(converted):
        w = weights[k] if k < len(weights) else None  # a surplus array has no Keras weight
        keras_name, keras_shape = (f"{label}/{w.name}", tuple(w.shape)) if w is not None else (None, None)
        entry.rows.append((f"{prefix}.{param}", params[param].shape, keras_name, keras_shape, value, how_))
    if len(converted) != len(weights):
        entry.problem = (
            f"{source}: module {prefix!r} gives {len(converted)} arrays "
            f"({', '.join(params)}) for Keras layer {label!r} with {len(weights)} "
            f"weights, {doubt}. {_fix_hint(prefix, how)}."
        )
        return entry
    for (param, value, how_), w in zip(converted, weights):
        if tuple(w.shape) != tuple(np.shape(value)):
            entry.problem = (
                f"{source}: {prefix}.{param} -> {label}: shape {np.shape(value)} (converted {how_} from "
                f"{params[param].shape}) does not fit {w.name} {tuple(w.shape)} of Keras layer {label!r} "
                f"({type(layer).__name__}), {doubt}. {_fix_hint(prefix, how)}. (Do not skip= it: the model has "
                "a layer for it.)"
            )
            break
    return entry


def _reorder(value, param, reorder, target_kind, layer):
    """``value`` (converted to ``layer``'s layout) with its channels reordered."""
    value = np.asarray(value)
    if reorder.axis == "in":  # a conv kernel's input axis; the bias is per output
        return value[..., reorder.perm, :] if param == "weight" else value
    if param == "weight" and target_kind == "depthwise":  # (H, W, C, 1)
        return value[:, :, reorder.perm, :]
    if param == "weight" and type(layer).__name__ == "Conv2DTranspose":  # (H, W, O, I)
        return value[..., reorder.perm, :]
    return value[..., reorder.perm]  # kernel (..., O), bias, BN / PReLU channels
