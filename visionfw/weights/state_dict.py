"""Pairing a PyTorch state dict with a Keras model's weights: :func:`plan_state_dict` (the plan, nothing
assigned), :func:`describe_mapping` (its table) and :func:`load_state_dict` (the plan applied).  Each pair's
conversion and the plan's type, :class:`~visionfw.weights.mapping.StateDictMapping`, live in
:mod:`visionfw.weights.mapping`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.formats import read_state_dict
from visionfw.weights.mapping import StateDictMapping, kind_fits, plan_entry, source_kind, weight_targets
from visionfw.weights.shuffle_reorder import shuffle_reorders

# PyTorch keys that have no counterpart in visionfw models: EDSR/RCAN's MeanShift is a frozen
# 1x1 conv in PyTorch but a weightless layer here; BatchNorm's step counter.
DEFAULT_SKIP = (r"(^|\.)sub_mean\.", r"(^|\.)add_mean\.", r"num_batches_tracked$")


def plan_state_dict(
    model: Any,
    state: Mapping[str, Any],
    name_map: Mapping[str, str | None] | None = None,
    shuffle_order: str = "torch",
    skip: Sequence[str] = DEFAULT_SKIP,
    source: str = "state dict",
) -> StateDictMapping:
    """Pairs a PyTorch state dict with ``model``'s weights; assigns nothing.

    The state dict is grouped by module (the key up to its last dot), keys matching ``skip``
    dropped.  Each module is paired with one Keras weight holder:

    1. ``name_map`` ({module: Keras layer}) where it says ('map');
    2. by name ('name'): the Keras layer named after the module (``name='body.0.conv'`` in the
       spec; ``body_0_conv`` also matches when no other module or layer reads the same);
    3. the rest in the order the spec was written ('order'; the graph writer's creation order,
       which the builder records, not Keras' depth order of ``model.layers``), aligned on kind
       and converted shape when the counts differ;
    4. a module left over with exactly one left-over layer of its kind and shape ('shape').

    PixelShuffle / PixelUnshuffle whose channel order differs from ``shuffle_order`` (the
    order the weights were trained with) get the reorder of every conv, BN or PReLU their
    channels reach (:mod:`visionfw.weights.shuffle_reorder`); where it cannot be proven right the
    mapping has a problem naming the conv, the shuffle and the fix (``order='torch'``).

    Args:
      model: a built ``keras.Model``.
      state: {key: array} of a PyTorch ``state_dict``, in its order.
      name_map: {module prefix: Keras layer name, or None to ignore the module}; see :func:`load_state_dict`.
      shuffle_order: the sub-pixel channel order the weights were trained with, 'torch' or 'tf'.
      skip: regexes of state-dict keys to ignore.
      source: where the state dict came from, for messages.

    Returns:
      A :class:`~visionfw.weights.mapping.StateDictMapping`; ``print()`` it to see every key, shape, Keras
      weight, how it was paired and how it converts, and the unmatched or mis-shaped ones.

    Raises:
      WeightsError: only for unusable arguments (empty state dict, bad name_map, unknown shuffle_order);
        mismatches are reported in the mapping's ``problems``.
    """
    _check_shuffle_order(shuffle_order)
    groups = _groups(state, skip, source)
    if not groups:
        raise WeightsError(f"{source}: the state dict is empty (after skipping {list(skip or ())}).")
    patterns = [re.compile(p) for p in (skip or ())]
    skipped = [k for k in state if any(p.search(k) for p in patterns)]
    targets = weight_targets(model)
    resolved = _resolve_name_map(name_map, groups, targets, model.name, source)
    mapped_labels = {v for v in resolved.values() if v is not None}
    free_targets = [t for t in targets if t[0] not in mapped_labels]
    free_groups = [(p, g) for p, g in groups if p not in resolved]
    reorders, refused = shuffle_reorders(model, shuffle_order)

    pairs, rest_groups, rest_targets = _pair_named(free_groups, free_targets)
    rest = _pair_rest(rest_groups, rest_targets, targets, source)
    pairs += rest.pairs + _mapped_pairs(resolved, groups, targets)
    order = {p: i for i, (p, _) in enumerate(groups)}
    pairs.sort(key=lambda pair: order[pair[0][0]])
    entries = [plan_entry(prefix, params, target, how, reorders, source) for (prefix, params), target, how in pairs]
    problems = [f"{source}: {message}" for message in refused]
    if rest.lone_src or rest.lone_dst:
        counts = (len(free_groups), len(free_targets))
        problems.insert(0, rest.count_problem(source, model.name, counts, targets))
    return StateDictMapping(
        model.name,
        source,
        entries,
        unmatched_torch=rest.unmatched_torch(),
        unmatched_keras=rest.unmatched_keras(),
        skipped=skipped,
        ignored=[p for p, label in resolved.items() if label is None],
        plan_problems=problems,
    )


def _check_shuffle_order(shuffle_order):
    if shuffle_order not in ("torch", "tf"):
        raise WeightsError(
            f"shuffle_order={shuffle_order!r}: use 'torch' (weights from nn.PixelShuffle "
            "models) or 'tf' (weights already in depth_to_space order)."
        )


def _mapped_pairs(resolved, groups, targets):
    """The name_map pass's pairs: [((prefix, params), target, 'map')]."""
    group_dict = dict(groups)
    by_label = {t[0]: t for t in targets}
    return [((p, group_dict[p]), by_label[label], "map") for p, label in resolved.items() if label is not None]


def _pair_named(free_groups, free_targets):
    """The name pass: its pairs, and the modules and targets it left (in their order)."""
    named = _pair_by_name(free_groups, free_targets)
    pairs = [(free_groups[i], free_targets[j], "name") for i, j in named.items()]
    named_targets = set(named.values())
    rest_groups = [g for i, g in enumerate(free_groups) if i not in named]
    rest_targets = [t for j, t in enumerate(free_targets) if j not in named_targets]
    return pairs, rest_groups, rest_targets


def _resolve_name_map(name_map, groups, targets, model_name, source):
    """{module prefix: Keras label or None} from ``name_map``, every entry checked against both sides."""
    group_dict = dict(groups)
    labels = list(dict.fromkeys(t[0] for t in targets))
    resolved = {}
    for prefix, label in dict(name_map or {}).items():
        key = prefix
        if key not in group_dict and key.startswith("module."):  # a name from a DataParallel file
            key = key[len("module.") :]
        if key not in group_dict:
            raise WeightsError(
                f"{source}: name_map key {prefix!r} is not a module of the state dict "
                f"(modules: {', '.join(p for p, _ in groups[:8])}...)."
            )
        if label is not None and label not in labels:
            raise WeightsError(
                f"{source}: name_map maps {prefix!r} to {label!r}, which is not a Keras layer "
                f"with weights of model {model_name!r} (e.g. {', '.join(labels[:6])})."
            )
        resolved[key] = label
    return resolved


class _FitCheck:
    """Whether module ``i`` converts to a target without a problem, cached by the target's signature."""

    def __init__(self, groups, source):
        self.groups, self.source = groups, source
        self.kinds = [source_kind(p, g, source) for p, g in groups]
        self.cache = {}

    def against(self, targets):
        """``fits(i, j)`` for module ``i`` and ``targets[j]``."""
        signatures = [_target_signature(t) for t in targets]

        def fits(i, j):
            key = (i, signatures[j])
            if key not in self.cache:
                target = targets[j]
                ok = False
                if kind_fits(self.kinds[i], target[2]):
                    ok = plan_entry(*self.groups[i], target, "order", {}, self.source).problem is None
                self.cache[key] = ok
            return self.cache[key]

        return fits


@dataclasses.dataclass
class _RestPairing:
    """The order and shape passes over the modules and layers that name_map and names left."""

    groups: list
    targets: list
    check: _FitCheck
    pairs: list = dataclasses.field(default_factory=list)
    lone_src: list = dataclasses.field(default_factory=list)
    lone_dst: list = dataclasses.field(default_factory=list)

    def unmatched_torch(self):
        return [
            (self.groups[i][0], self.check.kinds[i], {p: v.shape for p, v in self.groups[i][1].items()})
            for i in self.lone_src
        ]

    def unmatched_keras(self):
        return [
            (
                self.targets[j][0],
                type(self.targets[j][1]).__name__,
                {f"{self.targets[j][0]}/{w.name}": tuple(w.shape) for w in self.targets[j][1].weights},
            )
            for j in self.lone_dst
        ]

    def count_problem(self, source, model_name, counts, all_targets):
        fits_everywhere = self.check.against(all_targets)

        def fits_anywhere(i):
            return any(fits_everywhere(i, j) for j in range(len(all_targets)))

        return _count_problem(
            source,
            model_name,
            counts,
            free_groups=self.groups,
            free_targets=self.targets,
            lone_src=self.lone_src,
            lone_dst=self.lone_dst,
            kinds=self.check.kinds,
            fits_anywhere=fits_anywhere,
        )


def _pair_rest(rest_groups, rest_targets, all_targets, source):
    """The order pass (the spec's written order, aligned on kind and shape) and the shape pass."""
    check = _FitCheck(rest_groups, source)
    fits = check.against(rest_targets)
    rest = _RestPairing(rest_groups, rest_targets, check)
    n = len(rest_groups)
    if n == len(rest_targets) and all(fits(i, i) for i in range(n)):
        rest.pairs = [(g, t, "order") for g, t in zip(rest_groups, rest_targets)]
        return rest
    matched, lone_src, lone_dst = _align(n, len(rest_targets), fits)
    by_shape = _pair_by_shape(lone_src, lone_dst, fits)
    shaped_src, shaped_dst = {i for i, _ in by_shape}, {j for _, j in by_shape}
    lone_src = [i for i in lone_src if i not in shaped_src]
    lone_dst = [j for j in lone_dst if j not in shaped_dst]
    if n == len(rest_targets) and lone_src and len(lone_src) == len(lone_dst):
        # as many modules as layers: keep the order's pairs for the misfits, each with its own problem
        matched = sorted(matched + list(zip(lone_src, lone_dst)))
        lone_src, lone_dst = [], []
    rest.pairs = [(rest_groups[i], rest_targets[j], "order") for i, j in matched]
    rest.pairs += [(rest_groups[i], rest_targets[j], "shape") for i, j in by_shape]
    rest.lone_src, rest.lone_dst = lone_src, lone_dst
    return rest


def describe_mapping(model: Any, state: dict[str, Any] | str | Path, **kwargs: Any) -> str:
    """The printable table of :func:`plan_state_dict`.

    Args:
      model: a built ``keras.Model``.
      state: a state dict, or a .pth/.pt/.npz file holding one.
      **kwargs: :func:`plan_state_dict`'s options (``name_map``, ``shuffle_order``, ``skip``, ``source``).

    Returns:
      The table, with the unmatched modules and layers and the problems.
    """
    if not isinstance(state, dict):
        kwargs.setdefault("source", str(state))
        state = read_state_dict(state)
    return str(plan_state_dict(model, state, **kwargs))


def load_state_dict(
    model: Any,
    state: Mapping[str, Any],
    name_map: Mapping[str, str | None] | None = None,
    shuffle_order: str = "torch",
    skip: Sequence[str] = DEFAULT_SKIP,
    source: str = "state dict",
) -> Any:
    """Copies a PyTorch ``state_dict`` ({name: array}, ordered) into ``model``.

    Mapping (:func:`plan_state_dict`; print it with :func:`describe_mapping`): the state
    dict is grouped by module (the key up to the last dot), keys matching ``skip`` dropped.
    Modules named in ``name_map`` ({module prefix: Keras layer name, ``'layer:down'``/
    ``'layer:up'`` for a ChannelAttention's dense kernels, or None to ignore it}) go where
    it says; the others pair by name (a Keras layer named after the module), then in the
    order the spec was written, then by shape (see :func:`plan_state_dict`).  Conversions: conv OIHW
    -> HWIO (grouped convs too: (O, I/g, H, W) -> (H, W, I/g, O)); depthwise (C*M, 1, H, W)
    -> DepthwiseConv2D (H, W, C, M); ConvTranspose (I, O, H, W) -> (H, W, O, I); Linear (and
    1x1 conv, RCAN's channel attention) (out, in) -> Dense (in, out); PReLU slopes (one
    shared slope is broadcast); BatchNorm weight/bias/running_mean/running_var ->
    gamma/beta/moving_mean/moving_variance (and the layer's epsilon set to PyTorch's 1e-5).
    Every conv (BN, PReLU) whose channels reach a PixelShuffle / PixelUnshuffle of another
    order than ``shuffle_order`` gets them reordered, or loading is refused where that cannot
    be proven right (see :func:`visionfw.weights.load_weights`).

    Args:
      model: a built ``keras.Model``.
      state: {key: array} of a PyTorch ``state_dict``, in its order.
      name_map: {module prefix: Keras layer name or None}, as above.
      shuffle_order: the sub-pixel channel order the weights were trained with, 'torch' or 'tf'.
      skip: regexes of state-dict keys to ignore.
      source: where the state dict came from, for messages.

    Returns:
      ``model``, its weights replaced.

    Raises:
      WeightsError: on any missing, extra or mis-shaped entry or refused reorder, naming the first one, how
        its pair was made and the fix; nothing is assigned then.
    """
    plan_state_dict(model, state, name_map=name_map, shuffle_order=shuffle_order, skip=skip, source=source).apply()
    return model


def _groups(state, skip, source):
    """[(module prefix, {param name: array})] in the state dict's order, skipped keys removed."""
    patterns = [re.compile(p) for p in (skip or ())]
    groups = {}
    for key, value in state.items():
        if any(p.search(key) for p in patterns):
            continue
        prefix, _, param = key.rpartition(".")
        groups.setdefault(prefix, {})[param] = np.asarray(value)
    return list(groups.items())


def _align(n_src, n_dst, fits):
    """Order-preserving pairing of sources with targets maximising the pairs that ``fits(i, j)``.

    A longest common subsequence: returns ([(i, j)], unmatched i's, unmatched j's).
    """
    best = [[0] * (n_dst + 1) for _ in range(n_src + 1)]
    for i in range(n_src - 1, -1, -1):
        row, below = best[i], best[i + 1]
        for j in range(n_dst - 1, -1, -1):
            value = max(below[j], row[j + 1])
            if below[j + 1] + 1 > value and fits(i, j):
                value = below[j + 1] + 1
            row[j] = value
    pairs, lone_src, lone_dst = [], [], []
    i = j = 0
    while i < n_src and j < n_dst:
        if best[i][j] == best[i + 1][j + 1] + 1 and fits(i, j):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            lone_src.append(i)
            i += 1
        else:
            lone_dst.append(j)
            j += 1
    return pairs, lone_src + list(range(i, n_src)), lone_dst + list(range(j, n_dst))


def _target_signature(target):
    label, layer, target_kind, _ = target
    return (
        target_kind,
        type(layer).__name__,
        getattr(layer, "groups", 1),
        tuple((w.name, tuple(w.shape)) for w in layer.weights),
    )


def _count_problem(source, model_name, counts, *, free_groups, free_targets, lone_src, lone_dst, kinds, fits_anywhere):
    """The problem of modules and layers left over; ``free_*`` are those not paired by name."""
    src_list = ", ".join(p for p, _ in free_groups[:40])
    dst_list = ", ".join(t[0] for t in free_targets[:40])
    hints = []
    foreign = [i for i in lone_src if not fits_anywhere(i)]
    doubtful = [i for i in lone_src if fits_anywhere(i)]
    if foreign:
        names = [free_groups[i][0] for i in foreign]
        patterns = ", ".join(f"r'^{re.escape(p)}\\.'" for p in names[:4])
        hints.append(
            f"PyTorch module(s) {', '.join(names[:8])} ({', '.join(kinds[i] for i in foreign[:8])}) "
            f"fit no Keras layer: skip=DEFAULT_SKIP + ({patterns},) (the model has no layer of "
            "that kind and shape)"
        )
    if doubtful:
        names = [free_groups[i][0] for i in doubtful]
        hints.append(
            f"PyTorch module(s) {', '.join(names[:8])} fit a Keras layer that was paired with another "
            "module: the pairing by order is doubtful there (name the Keras layers after the modules, "
            "or use name_map)"
        )
    if lone_dst:
        names = [free_targets[j][0] for j in lone_dst]
        hints.append(f"Keras layer(s) {', '.join(names[:8])} get no PyTorch module of their kind and shape")
    diagnosis = f" By kind and shape: {'; '.join(hints)}." if hints else ""
    return (
        f"{source}: {counts[0]} PyTorch modules with weights but model {model_name!r} has "
        f"{counts[1]} Keras layers with weights (not counting name_map entries). Not paired by name: "
        f"PyTorch: [{src_list}]; Keras: [{dst_list}].{diagnosis} Fix: build the matching architecture, name "
        "its layers after the modules, or pass a name_map."
    )


def _name_key(name):
    return name.replace(".", "_")


def _pair_by_name(free_groups, free_targets):
    """{group index: target index} for Keras layers named after their module: exactly, or with the
    module's dots written as underscores when that is unambiguous on both sides."""
    exact, loose = {}, {}
    for j, t in enumerate(free_targets):
        exact.setdefault(t[0], []).append(j)
        loose.setdefault(_name_key(t[0]), []).append(j)
    loose_groups = {}
    for i, (prefix, _) in enumerate(free_groups):
        loose_groups.setdefault(_name_key(prefix), []).append(i)
    pairs, taken = {}, set()
    for i, (prefix, _) in enumerate(free_groups):
        hits = exact.get(prefix, [])
        if len(hits) != 1:
            key = _name_key(prefix)
            hits = loose.get(key, []) if len(loose_groups[key]) == 1 else []
        if len(hits) == 1 and hits[0] not in taken:
            pairs[i] = hits[0]
            taken.add(hits[0])
    return pairs


def _pair_by_shape(lone_src, lone_dst, fits):
    """[(i, j)] for each left-over module with exactly one left-over layer it fits, and vice versa."""
    pairs = []
    for i in lone_src:
        cands = [j for j in lone_dst if fits(i, j)]
        if len(cands) == 1 and sum(fits(k, cands[0]) for k in lone_src) == 1:
            pairs.append((i, cands[0]))
    return pairs
