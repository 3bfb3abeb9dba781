"""Official MATLAB releases into a model.

* SRCNN (Dong et al.): keys ``weights_conv{1,2,3}`` / ``biases_conv{1,2,3}``.  MATLAB stores column-major, and
  the official ``SRCNN.m`` builds each 2-D filter with ``reshape(w(:, i), k, k)`` and applies it with
  ``imfilter`` (a correlation), so the flat index ``p`` of a k*k filter is row ``p % k``, column ``p // k``: a
  Fortran-order reshape, no transpose and no flip (checked: the published PSNRs are reproduced).
* VDSR (Kim et al.): struct ``model`` with cells ``weight{1..20}`` (HWIO, MatConvNet's layout, also a
  correlation) and ``bias{1..20}``; copied as they are.
* MatConvNet DagNN nets (LapSRN): :mod:`visionfw.weights.matconvnet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.formats import read_mat
from visionfw.weights.layer_weights import assign_weights, conv_layers


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


def load_mat_weights(model: Any, path: str | Path, fmt: str = "mat") -> None:
    """Loads an official MATLAB release into ``model`` (in place), its layout told by ``fmt`` or its keys.

    Args:
      model: a built ``keras.Model`` of the release's architecture.
      path: the .mat file.
      fmt: ``'srcnn_mat'``, ``'vdsr_mat'``, ``'matconvnet'`` or ``'mat'`` (any of them, by the file's keys).

    Raises:
      WeightsError: the layout is unknown, or does not fit ``model``.
    """
    from visionfw.weights import matconvnet

    if fmt == "matconvnet" or (fmt == "mat" and matconvnet.is_dagnn(path)):
        matconvnet.load_dagnn_convs(model, path)  # MatConvNet DagNN releases (LapSRN)
        return
    mat = read_mat(path)
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
    layers = conv_layers(model)
    pairs = _srcnn_kernels(mat, path)
    if len(layers) != 3:
        raise WeightsError(
            f"{path}: official SRCNN weights have 3 conv layers but model {model.name!r} has "
            f"{len(layers)}; build it with visionfw.get_model('srcnn_9X5')."
        )
    for i, (layer, (k, b)) in enumerate(zip(layers, pairs), start=1):
        assign_weights(layer, [k.astype(np.float32), b.astype(np.float32)], str(path), f"weights_conv{i}")


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
    layers = conv_layers(model)
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
        assign_weights(layer, [w.astype(np.float32), b.ravel().astype(np.float32)], str(path), f"model.weight{{{i}}}")
