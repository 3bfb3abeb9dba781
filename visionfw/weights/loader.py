"""Loading pretrained weights into visionfw models, whatever framework they come from.

:func:`load_weights` dispatches on the file's extension (or ``format=``):

``.mat`` (official MATLAB releases)
    * SRCNN (Dong et al.): keys ``weights_conv{1,2,3}`` / ``biases_conv{1,2,3}``.  MATLAB
      stores column-major, and the official ``SRCNN.m`` builds each 2-D filter with
      ``reshape(w(:, i), k, k)`` and applies it with ``imfilter`` (a correlation), so the
      flat index ``p`` of a k*k filter is row ``p % k``, column ``p // k``: a Fortran-order
      reshape, no transpose and no flip (checked: the published PSNRs are reproduced).
    * VDSR (Kim et al.): struct ``model`` with cells ``weight{1..20}`` (HWIO, MatConvNet's
      layout, also a correlation) and ``bias{1..20}``; copied as they are.
``.keras``
    a saved Keras model; its weights are copied layer by layer in order (shapes checked).
``.weights.h5``
    Keras ``model.save_weights`` output, loaded with ``model.load_weights``.
``.pth`` / ``.pt`` and ``.npz`` (no torch needed)
    a PyTorch ``state_dict`` (name -> array), read without running the file's pickle
    (:mod:`visionfw.weights.torch_checkpoint`).  See :func:`load_state_dict` and, to see how keys
    pair with Keras weights, :func:`describe_mapping`.

Every problem raises :class:`~visionfw.errors.WeightsError` naming the file, the key or
layer, and the fix.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.shuffle_reorder import shuffle_reorders, torch_to_tf_shuffle_permutation

__all__ = [
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
]

FORMATS = ("srcnn_mat", "vdsr_mat", "matconvnet", "mat", "keras", "weights_h5", "h5", "torch", "npz")

# PyTorch keys that have no counterpart in visionfw models: EDSR/RCAN's MeanShift is a frozen
# 1x1 conv in PyTorch but a weightless layer here; BatchNorm's step counter.
DEFAULT_SKIP = (r"(^|\.)sub_mean\.", r"(^|\.)add_mean\.", r"num_batches_tracked$")

_CONV_CLASSES = ("Conv2D", "EdgePadConv2D", "Conv2DTranspose", "Conv1D", "Conv3D")


def file_sha256(path, chunk=1 << 20):
    """Hex sha256 of a file (read in chunks)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file; cannot compute its sha256.")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path):
    """The weights format of ``path`` from its name (and, for .mat, its keys)."""
    name = Path(path).name.lower()
    if name.endswith(".weights.h5"):
        return "weights_h5"
    if name.endswith(".keras"):
        return "keras"
    if name.endswith((".h5", ".hdf5")):
        return "h5"
    if name.endswith((".pth", ".pt", ".ckpt", ".bin")):
        return "torch"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".mat"):
        return "mat"
    raise WeightsError(
        f"{path}: cannot tell the weights format from the file name. Use one of "
        ".mat (official SRCNN/VDSR), .keras, .weights.h5, .pth/.pt or .npz (PyTorch "
        "state dict), or pass format= one of " + ", ".join(FORMATS) + "."
    )


def load_weights(model, path, format=None, name_map=None, shuffle_order="torch", skip=DEFAULT_SKIP):
    """Loads the weights in ``path`` into ``model`` (in place) and returns ``model``.

    Args:
      model: a built ``keras.Model`` (e.g. from :func:`visionfw.get_model`).
      path: the weights file.
      format: one of :data:`FORMATS`; default from the extension (``.mat`` files are told
        apart by their keys).
      name_map: PyTorch formats only; see :func:`load_state_dict`.
      shuffle_order: PyTorch formats only: the sub-pixel channel order the *weights* were
        trained with ('torch' for ``nn.PixelShuffle``, 'tf' for ``depth_to_space``).  Each
        conv that feeds a :class:`~visionfw.zoo.layers.PixelShuffle` has its output channels
        permuted from this order to the order the model's layer uses, so a model built with
        the default ``order='tf'`` gives the same output as PyTorch.
      skip: PyTorch formats only: regexes of state-dict keys to ignore.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist; check the path (--weights).")
    if not path.is_file():
        raise WeightsError(f"weights path {path} is not a file.")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise WeightsError(f"{path}: format={fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
    if fmt in ("keras", "weights_h5", "h5"):
        from visionfw.weights.keras_files import verify_keras_file

        verify_keras_file(path)  # truncation, CRC, recorded sha256, NaN: said before Keras reads it
    if fmt in ("mat", "srcnn_mat", "vdsr_mat", "matconvnet"):
        _load_mat(model, path, fmt)
    elif fmt == "keras":
        _load_keras_file(model, path)
    elif fmt == "weights_h5":
        _load_weights_h5(model, path)
    elif fmt == "h5":
        _load_h5(model, path)
    else:
        state = read_state_dict(path, fmt)
        load_state_dict(model, state, name_map=name_map, shuffle_order=shuffle_order, skip=skip, source=str(path))
    return model


# --------------------------------------------------------------------------- helpers


def _weighted_layers(model, written_order=False, _rank=None):
    """Layers holding weights, descending into nested models: in Keras' order (by graph depth) or,
    with ``written_order``, in the order the spec created them where the builder recorded it."""
    import keras

    from visionfw.zoo.builder import creation_order

    layers = list(model.layers)
    if written_order:
        order = creation_order(model)
        rank = {i: k for k, i in enumerate(order)} if order is not None else (_rank or {})
        layers.sort(key=lambda layer: rank.get(id(layer), len(rank)))  # stable: unknown ones keep Keras' order
        _rank = rank
    out = []
    for layer in layers:
        if isinstance(layer, keras.Model):
            out.extend(_weighted_layers(layer, written_order, _rank))
        elif layer.weights:
            out.append(layer)
    return out


def _conv_layers(model):
    return [layer for layer in _weighted_layers(model) if type(layer).__name__ in _CONV_CLASSES]


def _assign(layer, values, source, what):
    """Sets ``layer``'s weights to ``values`` (same order), checking every shape."""
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


# --------------------------------------------------------------------------- MATLAB


def _read_mat(path):
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as exc:  # MAT v7.3 is HDF5
        raise WeightsError(
            f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save it in MATLAB with save(..., '-v7')."
        ) from exc
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable .mat file ({exc}). Check the file is complete.") from exc


def _mat_numbers(value, path, key):
    """``value`` (a variable or cell of a .mat file) as a numeric array, else a WeightsError."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        kind = {"U": "text", "S": "text", "O": "a cell or struct", "V": "a struct"}.get(
            array.dtype.kind, str(array.dtype)
        )
        raise WeightsError(
            f"{path}: {key} holds {kind}, not numbers; the file is not an official release "
            "(re-save the weights as numeric matrices)."
        )
    return array


def _load_mat(model, path, fmt):
    from visionfw.weights import matconvnet

    if fmt == "matconvnet" or (fmt == "mat" and matconvnet.is_dagnn(path)):
        matconvnet.load_dagnn_convs(model, path)  # MatConvNet DagNN releases (LapSRN)
        return
    mat = _read_mat(path)
    keys = [k for k in mat if not k.startswith("__")]
    if fmt == "srcnn_mat" or (fmt == "mat" and "weights_conv1" in mat):
        _load_srcnn_mat(model, mat, path)
    elif fmt == "vdsr_mat" or (fmt == "mat" and "model" in mat):
        _load_vdsr_mat(model, mat, path)
    else:
        raise WeightsError(
            f"{path}: unrecognised .mat layout (keys: {', '.join(keys) or 'none'}). "
            "Supported: the official SRCNN release (weights_conv1, biases_conv1, ...), "
            "the official VDSR model (struct 'model' with cells weight, bias) and MatConvNet "
            "DagNN nets (struct 'net' with layers and params, e.g. LapSRN)."
        )


def _srcnn_kernels(mat, path):
    """The three SRCNN layers as (HWIO kernel, bias) in float32."""
    need = [f"{kind}_conv{i}" for i in (1, 2, 3) for kind in ("weights", "biases")]
    missing = [k for k in need if k not in mat]
    if missing:
        raise WeightsError(
            f"{path}: SRCNN .mat lacks key(s) {', '.join(missing)}; expected "
            f"{', '.join(need)} as in the official release."
        )

    def side(n, key):
        k = int(round(np.sqrt(n)))
        if k * k != n:
            raise WeightsError(f"{path}: {key} has {n} taps per filter, not a square kernel.")
        return k

    w1, w2, w3 = (_mat_numbers(mat[f"weights_conv{i}"], path, f"weights_conv{i}").astype(np.float64) for i in (1, 2, 3))
    if w1.ndim != 2 or w3.ndim != 2 or w2.ndim not in (2, 3):
        raise WeightsError(
            f"{path}: SRCNN weights have shapes {w1.shape}, {w2.shape}, {w3.shape}; "
            "expected (k1*k1, n1), (n1, k2*k2, n2), (n2, k3*k3)."
        )
    if w2.ndim == 2:  # MATLAB drops a trailing singleton n2
        w2 = w2[:, :, None]
    k1, k2, k3 = (
        side(w1.shape[0], "weights_conv1"),
        side(w2.shape[1], "weights_conv2"),
        side(w3.shape[1], "weights_conv3"),
    )
    n1, n2 = w1.shape[1], w2.shape[2]
    # kernel[r, c, cin, cout] = w[r + k*c, ...]: Fortran-order reshape of the k*k axis
    kern1 = w1.reshape(k1, k1, 1, n1, order="F")
    kern2 = np.transpose(w2, (1, 0, 2)).reshape(k2, k2, w2.shape[0], n2, order="F")
    kern3 = w3.T.reshape(k3, k3, w3.shape[0], 1, order="F")
    biases = [
        _mat_numbers(mat[f"biases_conv{i}"], path, f"biases_conv{i}").astype(np.float64).ravel() for i in (1, 2, 3)
    ]
    return [(kern1, biases[0]), (kern2, biases[1]), (kern3, biases[2])]


def _load_srcnn_mat(model, mat, path):
    layers = _conv_layers(model)
    pairs = _srcnn_kernels(mat, path)
    if len(layers) != 3:
        raise WeightsError(
            f"{path}: official SRCNN weights have 3 conv layers but model {model.name!r} has "
            f"{len(layers)}; build it with visionfw.get_model('srcnn_9X5')."
        )
    for i, (layer, (k, b)) in enumerate(zip(layers, pairs), start=1):
        _assign(layer, [k.astype(np.float32), b.astype(np.float32)], str(path), f"weights_conv{i}")


def _cell_list(struct, field, path):
    try:
        cells = struct[field][0, 0]
    except (KeyError, ValueError, IndexError) as exc:
        raise WeightsError(
            f"{path}: VDSR .mat struct 'model' has no field {field!r}; expected cells 'weight' and 'bias'."
        ) from exc
    return [_mat_numbers(c, path, f"model.{field}{{{i}}}") for i, c in enumerate(cells.ravel(), start=1)]


def _load_vdsr_mat(model, mat, path):
    struct = mat["model"]
    weights, biases = _cell_list(struct, "weight", path), _cell_list(struct, "bias", path)
    layers = _conv_layers(model)
    if len(weights) != len(biases):
        raise WeightsError(f"{path}: {len(weights)} weight cells but {len(biases)} bias cells.")
    if len(layers) != len(weights):
        raise WeightsError(
            f"{path}: the file has {len(weights)} conv layers but model {model.name!r} has "
            f"{len(layers)}; build visionfw.get_model('vdsr') (depth={len(weights)})."
        )
    for i, (layer, w, b) in enumerate(zip(layers, weights, biases), start=1):
        if w.ndim == 3:  # the last layer's cout=1 axis is squeezed in the file
            w = w[..., None]
        _assign(layer, [w.astype(np.float32), b.ravel().astype(np.float32)], str(path), f"model.weight{{{i}}}")


# --------------------------------------------------------------------------- Keras files


def _copy_from_model(model, source_model, path):
    src, dst = _weighted_layers(source_model), _weighted_layers(model)
    if len(src) != len(dst):
        raise WeightsError(
            f"{path}: the saved model {source_model.name!r} has {len(src)} layers with "
            f"weights, model {model.name!r} has {len(dst)}. Use the same architecture, or "
            "pass the .keras file alone (without --model) to use its own architecture."
        )
    for s, d in zip(src, dst):
        _assign(d, [w.numpy() for w in s.weights], str(path), f"saved layer {s.name!r}")


def _load_keras_file(model, path):
    import keras

    try:
        source = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        raise WeightsError(
            f"{path}: cannot load the .keras model ({exc}). Check the file, and that "
            "custom layers are importable (import visionfw first)."
        ) from exc
    _copy_from_model(model, source, path)


def _load_weights_h5(model, path):
    """``model.load_weights`` with Keras's "Skipping nested container" warning turned into what
    it means.  Keras warns when sub-layers inside a container found nothing in the file and kept
    their fresh weights: with a file of another architecture (the load fails anyway: one
    WeightsError, no misleading warning) or with a file of an old Keras that wrote no groups for
    nested containers (the load "succeeds" with weights missing: a WeightsError too).  A file
    saved by this Keras from the same model restores every weight, nested sub-models (TAD's
    ``encoder``/``decoder``) and shared ones included (tests/test_weights.py checks each family)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except Exception as exc:
            raise WeightsError(
                f"{path}: load_weights failed for model {model.name!r}: {exc}. The file was "
                "saved from a different architecture; build the same model (name and "
                "hyper-parameters) that saved it."
            ) from exc
    skipped = [str(w.message) for w in caught if "Skipping nested container" in str(w.message)]
    if skipped:
        raise WeightsError(
            f"{path}: {len(skipped)} nested container(s) of model {model.name!r} found no weights "
            f"in the file ({skipped[0]}), so their layers would keep random weights. Re-save the "
            "file with this Keras version (model.save_weights) or use a .keras model file."
        )
    for w in caught:  # the others are not ours to judge: shown as they were
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _load_h5(model, path):
    """A legacy Keras .h5: a whole model if it has one, else weights by layer name."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            whole = "model_config" in f.attrs
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable HDF5 file ({exc}).") from exc
    if whole:
        import keras

        try:
            source = keras.saving.load_model(str(path), compile=False)
        except Exception as exc:
            raise WeightsError(f"{path}: cannot load the legacy .h5 model ({exc}).") from exc
        _copy_from_model(model, source, path)
        return
    _load_weights_h5(model, path)


# --------------------------------------------------------------------------- PyTorch


def read_state_dict(path, fmt=None):
    """A PyTorch state dict from ``.pth``/``.pt`` or ``.npz`` as {name: ndarray}, ordered.

    ``.pth``/``.pt`` files are read without torch and without running their pickles
    (:func:`visionfw.weights.torch_checkpoint.load_torch_checkpoint`): wrappers such as
    ``{'state_dict': ...}`` or BasicSR's ``{'params': ...}`` are removed and DataParallel's
    ``module.`` prefix stripped.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable .npz archive of arrays ({exc}).") from exc
    from visionfw.weights.torch_checkpoint import load_torch_checkpoint

    return load_torch_checkpoint(path)


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


def _source_kind(prefix, params, source):
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


def _targets(model):
    """Keras weight holders in the spec's written order: [(label, layer, kind, sub)]; sub names a
    Dense inside a layer."""
    out = []
    for layer in _weighted_layers(model, written_order=True):
        cls = type(layer).__name__
        if cls in _CONV_CLASSES:
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

    def __init__(self, module, kind, label, layer, target_kind, how):
        self.module, self.kind, self.label, self.layer = module, kind, label, layer
        self.target_kind, self.how = target_kind, how
        self.rows, self.problem, self.epsilon = [], None, None


class StateDictMapping:
    """The plan of :func:`plan_state_dict`: which PyTorch keys go to which Keras weights, how.

    ``print(mapping)`` shows it as a table; ``mapping.problems`` lists what blocks loading
    (first one first), ``mapping.check()`` raises it as a WeightsError, ``mapping.apply()``
    assigns the weights (all of them or, on any problem, none).
    """

    def __init__(
        self, model_name, source, entries, unmatched_torch, unmatched_keras, skipped, ignored, plan_problems=()
    ):
        self.model_name, self.source = model_name, source
        self.entries = entries  # [MappedModule] in state dict order
        self.unmatched_torch = unmatched_torch  # [(module prefix, kind, {param: shape})]
        self.unmatched_keras = unmatched_keras  # [(label, layer class, {weight: shape})]
        self.skipped, self.ignored = skipped, ignored
        self._plan_problems = list(plan_problems)  # unmatched counts, refused channel reorders

    @property
    def problems(self):
        return self._plan_problems + [e.problem for e in self.entries if e.problem]

    @property
    def ok(self):
        return not self.problems

    def check(self):
        """Raises WeightsError naming the first problem (with its fix); returns self when none."""
        if self.problems:
            raise WeightsError(self.problems[0])
        return self

    def apply(self):
        """Assigns every mapped value (after :meth:`check`); returns self."""
        self.check()
        for entry in self.entries:
            if entry.epsilon is not None:
                entry.layer.epsilon = entry.epsilon
            for w, row in zip(entry.layer.weights, entry.rows):
                w.assign(np.asarray(row[4], dtype=w.dtype))
        return self

    def table_rows(self):
        """The table as tuples: (#, torch key, torch shape, keras weight, keras shape, conversion)."""
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

    def pairing_counts(self):
        """{'name': n, 'order': n, 'shape': n, 'map': n}: how many modules were paired each way."""
        counts = {"name": 0, "order": 0, "shape": 0, "map": 0}
        for entry in self.entries:
            counts[entry.how] += 1
        return counts

    def __str__(self):
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


def _plan_entry(prefix, params, target, how, reorders, source):
    """A :class:`MappedModule` for one pairing, with its problem (if any) described."""
    label, layer, target_kind, _ = target
    kind = _source_kind(prefix, params, source)
    entry = MappedModule(prefix, kind, label, layer, target_kind, how)
    weights = layer.weights
    doubt = _DOUBT[how].format(prefix=prefix)
    if kind not in _COMPATIBLE[target_kind]:
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


def _target_signature(target):
    label, layer, target_kind, _ = target
    return (
        target_kind,
        type(layer).__name__,
        getattr(layer, "groups", 1),
        tuple((w.name, tuple(w.shape)) for w in layer.weights),
    )


def _count_problem(source, model, counts, free_groups, free_targets, lone_src, lone_dst, kinds, fits_anywhere):
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
        f"{source}: {counts[0]} PyTorch modules with weights but model {model.name!r} has "
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


def plan_state_dict(model, state, name_map=None, shuffle_order="torch", skip=DEFAULT_SKIP, source="state dict"):
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

    Returns a :class:`StateDictMapping`; ``print()`` it to see every key, shape, Keras weight,
    how it was paired and how it converts (OIHW->HWIO, grouped and depthwise convs, Linear
    transposes, PixelShuffle channel reorder), and the unmatched or mis-shaped ones.  Raises
    WeightsError only for unusable arguments (empty state dict, bad name_map, unknown
    shuffle_order); mismatches are reported in the mapping's ``problems``.
    """
    if shuffle_order not in ("torch", "tf"):
        raise WeightsError(
            f"shuffle_order={shuffle_order!r}: use 'torch' (weights from nn.PixelShuffle "
            "models) or 'tf' (weights already in depth_to_space order)."
        )
    groups = _groups(state, skip, source)
    if not groups:
        raise WeightsError(f"{source}: the state dict is empty (after skipping {list(skip or ())}).")
    patterns = [re.compile(p) for p in (skip or ())]
    skipped = [k for k in state if any(p.search(k) for p in patterns)]
    group_dict = dict(groups)
    targets = _targets(model)
    by_label = {t[0]: t for t in targets}
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
        if label is not None and label not in by_label:
            raise WeightsError(
                f"{source}: name_map maps {prefix!r} to {label!r}, which is not a Keras layer "
                f"with weights of model {model.name!r} (e.g. {', '.join(list(by_label)[:6])})."
            )
        resolved[key] = label
    mapped_labels = {v for v in resolved.values() if v is not None}
    free_targets = [t for t in targets if t[0] not in mapped_labels]
    free_groups = [(p, g) for p, g in groups if p not in resolved]
    reorders, refused = shuffle_reorders(model, shuffle_order)

    named = _pair_by_name(free_groups, free_targets)
    pairs = [(free_groups[i], free_targets[j], "name") for i, j in named.items()]
    named_targets = set(named.values())
    rest_groups = [g for i, g in enumerate(free_groups) if i not in named]
    rest_targets = [t for j, t in enumerate(free_targets) if j not in named_targets]

    kinds = [_source_kind(p, g, source) for p, g in rest_groups]
    signatures = [_target_signature(t) for t in rest_targets]
    cache = {}

    def fits(i, j, pool=rest_targets, sigs=signatures):
        key = (i, sigs[j])
        if key not in cache:
            target = pool[j]
            ok = False
            if kinds[i] in _COMPATIBLE[target[2]]:
                ok = _plan_entry(*rest_groups[i], target, "order", {}, source).problem is None
            cache[key] = ok
        return cache[key]

    count_problem, unmatched_torch, unmatched_keras = None, [], []
    n = len(rest_groups)
    if n == len(rest_targets) and all(fits(i, i) for i in range(n)):
        pairs += [(g, t, "order") for g, t in zip(rest_groups, rest_targets)]
    else:
        matched, lone_src, lone_dst = _align(n, len(rest_targets), fits)
        by_shape = _pair_by_shape(lone_src, lone_dst, fits)
        shaped_src, shaped_dst = {i for i, _ in by_shape}, {j for _, j in by_shape}
        lone_src = [i for i in lone_src if i not in shaped_src]
        lone_dst = [j for j in lone_dst if j not in shaped_dst]
        if n == len(rest_targets) and lone_src and len(lone_src) == len(lone_dst):
            # as many modules as layers: keep the order's pairs for the misfits, each with its own problem
            matched = sorted(matched + list(zip(lone_src, lone_dst)))
            lone_src, lone_dst = [], []
        pairs += [(rest_groups[i], rest_targets[j], "order") for i, j in matched]
        pairs += [(rest_groups[i], rest_targets[j], "shape") for i, j in by_shape]
        if lone_src or lone_dst:
            all_signatures = [_target_signature(t) for t in targets]

            def fits_anywhere(i):
                return any(fits(i, j, targets, all_signatures) for j in range(len(targets)))

            unmatched_torch = [
                (rest_groups[i][0], kinds[i], {p: v.shape for p, v in rest_groups[i][1].items()}) for i in lone_src
            ]
            unmatched_keras = [
                (
                    rest_targets[j][0],
                    type(rest_targets[j][1]).__name__,
                    {f"{rest_targets[j][0]}/{w.name}": tuple(w.shape) for w in rest_targets[j][1].weights},
                )
                for j in lone_dst
            ]
            count_problem = _count_problem(
                source,
                model,
                (len(free_groups), len(free_targets)),
                rest_groups,
                rest_targets,
                lone_src,
                lone_dst,
                kinds,
                fits_anywhere,
            )
    pairs += [((p, group_dict[p]), by_label[label], "map") for p, label in resolved.items() if label is not None]
    order = {p: i for i, (p, _) in enumerate(groups)}
    pairs.sort(key=lambda pair: order[pair[0][0]])
    entries = [_plan_entry(prefix, params, target, how, reorders, source) for (prefix, params), target, how in pairs]
    ignored = [p for p, label in resolved.items() if label is None]
    problems = [f"{source}: {message}" for message in refused]
    if count_problem:
        problems.insert(0, count_problem)
    return StateDictMapping(model.name, source, entries, unmatched_torch, unmatched_keras, skipped, ignored, problems)


def describe_mapping(model, state, **kwargs):
    """The printable table of :func:`plan_state_dict` (``state``: a dict or a .pth/.pt/.npz path)."""
    if not isinstance(state, dict):
        kwargs.setdefault("source", str(state))
        state = read_state_dict(state)
    return str(plan_state_dict(model, state, **kwargs))


def load_state_dict(model, state, name_map=None, shuffle_order="torch", skip=DEFAULT_SKIP, source="state dict"):
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
    be proven right (see :func:`load_weights`).

    Raises WeightsError on any missing, extra or mis-shaped entry or refused reorder, naming
    the first one, how its pair was made and the fix; nothing is assigned then.  Returns ``model``.
    """
    plan_state_dict(model, state, name_map=name_map, shuffle_order=shuffle_order, skip=skip, source=source).apply()
    return model
