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
``.pth`` / ``.pt`` (needs torch) and ``.npz`` (no torch needed)
    a PyTorch ``state_dict`` (name -> array).  See :func:`load_state_dict`.

Every problem raises :class:`~visionfw.errors.WeightsError` naming the file, the key or
layer, and the fix.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from visionfw.errors import WeightsError

__all__ = ["load_weights", "load_state_dict", "read_state_dict", "file_sha256", "detect_format",
           "torch_to_tf_shuffle_permutation", "FORMATS"]

FORMATS = ("srcnn_mat", "vdsr_mat", "mat", "keras", "weights_h5", "h5", "torch", "npz")

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
    raise WeightsError(f"{path}: cannot tell the weights format from the file name. Use one of "
                       ".mat (official SRCNN/VDSR), .keras, .weights.h5, .pth/.pt or .npz (PyTorch "
                       "state dict), or pass format= one of " + ", ".join(FORMATS) + ".")


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
        conv that feeds a :class:`~visionfw.layers.PixelShuffle` has its output channels
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
    if fmt in ("mat", "srcnn_mat", "vdsr_mat"):
        _load_mat(model, path, fmt)
    elif fmt == "keras":
        _load_keras_file(model, path)
    elif fmt == "weights_h5":
        _load_weights_h5(model, path)
    elif fmt == "h5":
        _load_h5(model, path)
    else:
        state = read_state_dict(path, fmt)
        load_state_dict(model, state, name_map=name_map, shuffle_order=shuffle_order, skip=skip,
                        source=str(path))
    return model


# --------------------------------------------------------------------------- helpers


def _weighted_layers(model):
    """Layers holding weights, in build order, descending into nested models."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_weighted_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def _conv_layers(model):
    return [layer for layer in _weighted_layers(model) if type(layer).__name__ in _CONV_CLASSES]


def _assign(layer, values, source, what):
    """Sets ``layer``'s weights to ``values`` (same order), checking every shape."""
    weights = layer.weights
    if len(weights) != len(values):
        raise WeightsError(f"{source}: {what} gives {len(values)} arrays for layer {layer.name!r}, which "
                           f"has {len(weights)} weights ({', '.join(w.name for w in weights)}). The file "
                           "was made for another architecture; build the matching model.")
    for w, v in zip(weights, values):
        v = np.asarray(v)
        if tuple(w.shape) != v.shape:
            raise WeightsError(f"{source}: {what}: shape {v.shape} does not fit weight {w.name!r} of layer "
                               f"{layer.name!r} with shape {tuple(w.shape)}. Build the model with the "
                               "hyper-parameters (filters, kernel size, channels, scale) of the weights.")
    for w, v in zip(weights, values):
        w.assign(np.asarray(v, dtype=w.dtype))


# --------------------------------------------------------------------------- MATLAB


def _read_mat(path):
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as exc:  # MAT v7.3 is HDF5
        raise WeightsError(f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save it in "
                           "MATLAB with save(..., '-v7').") from exc
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable .mat file ({exc}). Check the file is complete.") from exc


def _load_mat(model, path, fmt):
    mat = _read_mat(path)
    keys = [k for k in mat if not k.startswith("__")]
    if fmt == "srcnn_mat" or (fmt == "mat" and "weights_conv1" in mat):
        _load_srcnn_mat(model, mat, path)
    elif fmt == "vdsr_mat" or (fmt == "mat" and "model" in mat):
        _load_vdsr_mat(model, mat, path)
    else:
        raise WeightsError(f"{path}: unrecognised .mat layout (keys: {', '.join(keys) or 'none'}). "
                           "Supported: the official SRCNN release (weights_conv1, biases_conv1, ...) and "
                           "the official VDSR model (struct 'model' with cells weight, bias).")


def _srcnn_kernels(mat, path):
    """The three SRCNN layers as (HWIO kernel, bias) in float32."""
    need = [f"{kind}_conv{i}" for i in (1, 2, 3) for kind in ("weights", "biases")]
    missing = [k for k in need if k not in mat]
    if missing:
        raise WeightsError(f"{path}: SRCNN .mat lacks key(s) {', '.join(missing)}; expected "
                           f"{', '.join(need)} as in the official release.")

    def side(n, key):
        k = int(round(np.sqrt(n)))
        if k * k != n:
            raise WeightsError(f"{path}: {key} has {n} taps per filter, not a square kernel.")
        return k

    w1, w2, w3 = (np.asarray(mat[f"weights_conv{i}"], np.float64) for i in (1, 2, 3))
    if w1.ndim != 2 or w3.ndim != 2 or w2.ndim not in (2, 3):
        raise WeightsError(f"{path}: SRCNN weights have shapes {w1.shape}, {w2.shape}, {w3.shape}; "
                           "expected (k1*k1, n1), (n1, k2*k2, n2), (n2, k3*k3).")
    if w2.ndim == 2:  # MATLAB drops a trailing singleton n2
        w2 = w2[:, :, None]
    k1, k2, k3 = side(w1.shape[0], "weights_conv1"), side(w2.shape[1], "weights_conv2"), \
        side(w3.shape[1], "weights_conv3")
    n1, n2 = w1.shape[1], w2.shape[2]
    # kernel[r, c, cin, cout] = w[r + k*c, ...]: Fortran-order reshape of the k*k axis
    kern1 = w1.reshape(k1, k1, 1, n1, order="F")
    kern2 = np.transpose(w2, (1, 0, 2)).reshape(k2, k2, w2.shape[0], n2, order="F")
    kern3 = w3.T.reshape(k3, k3, w3.shape[0], 1, order="F")
    biases = [np.asarray(mat[f"biases_conv{i}"], np.float64).ravel() for i in (1, 2, 3)]
    return [(kern1, biases[0]), (kern2, biases[1]), (kern3, biases[2])]


def _load_srcnn_mat(model, mat, path):
    layers = _conv_layers(model)
    pairs = _srcnn_kernels(mat, path)
    if len(layers) != 3:
        raise WeightsError(f"{path}: official SRCNN weights have 3 conv layers but model {model.name!r} has "
                           f"{len(layers)}; build it with visionfw.get_model('srcnn_9X5').")
    for i, (layer, (k, b)) in enumerate(zip(layers, pairs), start=1):
        _assign(layer, [k.astype(np.float32), b.astype(np.float32)], str(path), f"weights_conv{i}")


def _cell_list(struct, field, path):
    try:
        cells = struct[field][0, 0]
    except (KeyError, ValueError, IndexError) as exc:
        raise WeightsError(f"{path}: VDSR .mat struct 'model' has no field {field!r}; expected cells "
                           "'weight' and 'bias'.") from exc
    return [np.asarray(c) for c in cells.ravel()]


def _load_vdsr_mat(model, mat, path):
    struct = mat["model"]
    weights, biases = _cell_list(struct, "weight", path), _cell_list(struct, "bias", path)
    layers = _conv_layers(model)
    if len(weights) != len(biases):
        raise WeightsError(f"{path}: {len(weights)} weight cells but {len(biases)} bias cells.")
    if len(layers) != len(weights):
        raise WeightsError(f"{path}: the file has {len(weights)} conv layers but model {model.name!r} has "
                           f"{len(layers)}; build visionfw.get_model('vdsr') (depth={len(weights)}).")
    for i, (layer, w, b) in enumerate(zip(layers, weights, biases), start=1):
        if w.ndim == 3:  # the last layer's cout=1 axis is squeezed in the file
            w = w[..., None]
        _assign(layer, [w.astype(np.float32), b.ravel().astype(np.float32)], str(path),
                f"model.weight{{{i}}}")


# --------------------------------------------------------------------------- Keras files


def _copy_from_model(model, source_model, path):
    src, dst = _weighted_layers(source_model), _weighted_layers(model)
    if len(src) != len(dst):
        raise WeightsError(f"{path}: the saved model {source_model.name!r} has {len(src)} layers with "
                           f"weights, model {model.name!r} has {len(dst)}. Use the same architecture, or "
                           "pass the .keras file alone (without --model) to use its own architecture.")
    for s, d in zip(src, dst):
        _assign(d, [w.numpy() for w in s.weights], str(path), f"saved layer {s.name!r}")


def _load_keras_file(model, path):
    import keras

    try:
        source = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot load the .keras model ({exc}). Check the file, and that "
                           "custom layers are importable (import visionfw first).") from exc
    _copy_from_model(model, source, path)


def _load_weights_h5(model, path):
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise WeightsError(f"{path}: load_weights failed for model {model.name!r}: {exc}. The file was "
                           "saved from a different architecture; build the same model (name and "
                           "hyper-parameters) that saved it.") from exc


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
    """A PyTorch state dict from ``.pth``/``.pt`` (needs torch) or ``.npz`` as {name: ndarray}, ordered."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable .npz archive of arrays ({exc}).") from exc
    try:
        import torch
    except ImportError as exc:
        raise WeightsError(
            f"{path}: reading .pth/.pt files needs PyTorch, which is not installed. Either "
            "`pip install torch`, or convert the state dict once where torch is available: "
            "np.savez('weights.npz', **{k: v.cpu().numpy() for k, v in torch.load(path, "
            "map_location='cpu').items()}) and pass the .npz file.") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: torch.load failed ({exc}). Is it a state dict saved with "
                           "torch.save(model.state_dict(), path)?") from exc
    # common wrappers: {'state_dict': ...}, {'model': ...}, BasicSR's {'params': ...}
    for key in ("state_dict", "model", "params", "params_ema"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict (name -> tensor).")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k] = v.detach().cpu().numpy()
    return out


def torch_to_tf_shuffle_permutation(channels_out, r):
    """Index array ``p`` such that ``kernel_tf = kernel_torch[..., p]``.

    PyTorch's ``PixelShuffle`` reads output channel ``c*r*r + i*r + j`` for sub-pixel
    (i, j) of channel c; ``depth_to_space`` reads ``(i*r + j)*C + c``.
    """
    k = np.arange(channels_out * r * r)
    return (k % channels_out) * r * r + k // channels_out


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
        raise WeightsError(f"{source}: module {prefix!r} has parameters {sorted(names)} but no 'weight'; "
                           "add a skip pattern for it (skip=...) or a name_map entry.")
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
    raise WeightsError(f"{source}: module {prefix!r} has a weight of shape {w.shape} that maps to no "
                       "Keras layer kind.")


def _targets(model):
    """Keras weight holders in order: [(label, layer, kind, sub)]; sub names a Dense inside a layer."""
    out = []
    for layer in _weighted_layers(model):
        cls = type(layer).__name__
        if cls in _CONV_CLASSES:
            out.append((layer.name, layer, "conv", None))
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


_COMPATIBLE = {"conv": ("conv", "conv1x1"), "dense": ("linear", "conv1x1"), "prelu": ("prelu",),
               "bn": ("bn",), "other": ()}


def _convert(prefix, params, kind, layer, target_kind, source):
    """The Keras weight list for ``layer`` from PyTorch ``params``."""
    w = params["weight"]
    b = params.get("bias")
    if target_kind == "conv":
        kernel = np.transpose(w, (2, 3, 1, 0))  # OIHW -> HWIO; ConvTranspose (I,O,H,W) -> (H,W,O,I)
        return [kernel] + ([b] if b is not None else [])
    if target_kind == "dense":
        mat = w.reshape(w.shape[0], w.shape[1]).T  # (out, in[,1,1]) -> (in, out)
        return [mat] + ([b] if b is not None else [])
    if target_kind == "prelu":
        alpha_shape = tuple(layer.weights[0].shape)
        if w.size == 1:  # nn.PReLU() shares one slope across channels
            return [np.full(alpha_shape, float(w.ravel()[0]), np.float32)]
        if w.size == int(np.prod(alpha_shape)):
            return [w.reshape(alpha_shape)]
        raise WeightsError(f"{source}: PReLU {prefix!r} has {w.size} slopes; Keras layer {layer.name!r} "
                           f"has alpha of shape {alpha_shape}.")
    if target_kind == "bn":
        # PyTorch BatchNorm2d uses eps=1e-5; Keras defaults to 1e-3, which changes outputs
        layer.epsilon = float(params.get("eps", 1e-5))
        order = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                 "moving_variance": "running_var"}
        values = []
        for wt in layer.weights:
            base = wt.name.rsplit("/", 1)[-1].split(":")[0]
            if base not in order or order[base] not in params:
                raise WeightsError(f"{source}: BatchNorm {prefix!r} lacks {order.get(base, base)!r} for "
                                   f"weight {wt.name!r} of layer {layer.name!r}.")
            values.append(params[order[base]])
        return values
    raise WeightsError(f"{source}: no conversion from a PyTorch {kind} to Keras layer {layer.name!r}.")


def _shuffle_consumers(model):
    """{conv layer name: (r, order)} for every conv whose output goes straight into a PixelShuffle."""
    found = {}
    for layer in model.layers:
        if type(layer).__name__ != "PixelShuffle":
            continue
        history = getattr(layer.input, "_keras_history", None)
        producer = getattr(history, "operation", None)
        if producer is not None and type(producer).__name__ in _CONV_CLASSES:
            found[producer.name] = (layer.scale, layer.order)
    return found


def load_state_dict(model, state, name_map=None, shuffle_order="torch", skip=DEFAULT_SKIP, source="state dict"):
    """Copies a PyTorch ``state_dict`` ({name: array}, ordered) into ``model``.

    Mapping: the state dict is grouped by module (the key up to the last dot), keys
    matching ``skip`` dropped.  Modules named in ``name_map`` ({module prefix: Keras layer
    name, ``'layer:down'``/``'layer:up'`` for a ChannelAttention's dense kernels, or None
    to ignore it}) go where it says; the others are paired *in order* with the Keras
    layers that hold weights and are not mapped: the k-th PyTorch conv to the k-th Keras
    conv.  Conversions: conv OIHW -> HWIO; ConvTranspose (I, O, H, W) -> (H, W, O, I);
    Linear (and 1x1 conv, RCAN's channel attention) (out, in) -> Dense (in, out); PReLU
    slopes (one shared slope is broadcast); BatchNorm weight/bias/running_mean/running_var
    -> gamma/beta/moving_mean/moving_variance (and the layer's epsilon set to PyTorch's
    1e-5).  Convs feeding a PixelShuffle get their output channels reordered from
    ``shuffle_order`` to the layer's order (see :func:`load_weights`).

    Raises WeightsError on any missing, extra or mis-shaped entry.  Returns ``model``.
    """
    if shuffle_order not in ("torch", "tf"):
        raise WeightsError(f"shuffle_order={shuffle_order!r}: use 'torch' (weights from nn.PixelShuffle "
                           "models) or 'tf' (weights already in depth_to_space order).")
    groups = _groups(state, skip, source)
    if not groups:
        raise WeightsError(f"{source}: the state dict is empty (after skipping {list(skip or ())}).")
    targets = _targets(model)
    by_label = {label: t for t, label in ((t, t[0]) for t in targets)}
    name_map = dict(name_map or {})
    for prefix, label in name_map.items():
        if prefix not in dict(groups):
            raise WeightsError(f"{source}: name_map key {prefix!r} is not a module of the state dict "
                               f"(modules: {', '.join(p for p, _ in groups[:8])}...).")
        if label is not None and label not in by_label:
            raise WeightsError(f"{source}: name_map maps {prefix!r} to {label!r}, which is not a Keras layer "
                               f"with weights of model {model.name!r} (e.g. {', '.join(list(by_label)[:6])}).")
    mapped_labels = {v for v in name_map.values() if v is not None}
    free_targets = [t for t in targets if t[0] not in mapped_labels]
    free_groups = [(p, g) for p, g in groups if p not in name_map]
    if len(free_groups) != len(free_targets):
        src_list = ", ".join(p for p, _ in free_groups[:40])
        dst_list = ", ".join(t[0] for t in free_targets[:40])
        raise WeightsError(
            f"{source}: {len(free_groups)} PyTorch modules with weights but model {model.name!r} has "
            f"{len(free_targets)} Keras layers with weights (not counting name_map entries). PyTorch: "
            f"[{src_list}]; Keras: [{dst_list}]. Fix: build the matching architecture, pass skip= patterns "
            "for modules the Keras model lacks, or a name_map.")
    pairs = list(zip(free_groups, free_targets))
    pairs += [((p, dict(groups)[p]), by_label[label]) for p, label in name_map.items() if label is not None]

    shuffles = _shuffle_consumers(model)
    assignments = []
    for (prefix, params), (label, layer, target_kind, _) in pairs:
        kind = _source_kind(prefix, params, source)
        if kind not in _COMPATIBLE[target_kind]:
            shape = params["weight"].shape if "weight" in params else "-"
            raise WeightsError(f"{source}: PyTorch module {prefix!r} ({kind}, weight {shape}) "
                               f"is paired with Keras layer {label!r} ({type(layer).__name__}); the order "
                               "of the two models differs. Pass name_map={module: layer} for this module.")
        values = _convert(prefix, params, kind, layer, target_kind, source)
        if target_kind == "conv" and layer.name in shuffles:
            r, layer_order = shuffles[layer.name]
            if layer_order != shuffle_order:
                c_out = values[0].shape[-1] // (r * r)
                perm = torch_to_tf_shuffle_permutation(c_out, r)
                if layer_order == "torch":  # weights in tf order, layer in torch order
                    perm = np.argsort(perm)
                values = [values[0][..., perm]] + [v[perm] for v in values[1:]]
        weights = layer.weights
        if len(values) != len(weights):
            raise WeightsError(f"{source}: module {prefix!r} gives {len(values)} arrays "
                               f"({', '.join(params)}) for Keras layer {label!r} with {len(weights)} "
                               f"weights; check use_bias / the architecture.")
        for w, v in zip(weights, values):
            if tuple(w.shape) != tuple(np.shape(v)):
                raise WeightsError(f"{source}: {prefix}.weight -> {label}: shape {np.shape(v)} (converted from "
                                   f"{params['weight'].shape}) does not fit {tuple(w.shape)}. Build the model "
                                   "with the weights' hyper-parameters (filters, kernel size, scale).")
        assignments.append((layer, values))
    for layer, values in assignments:
        for w, v in zip(layer.weights, values):
            w.assign(np.asarray(v, dtype=w.dtype))
    return model
