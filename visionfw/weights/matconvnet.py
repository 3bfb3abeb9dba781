"""MatConvNet DagNN files (``net.params`` / ``net.layers``): reading them, and loading LapSRN.

A DagNN ``.mat`` saved with ``net.saveobj()`` holds one struct ``net`` with

* ``layers``: name, type (``dagnn.Conv``, ``dagnn.ConvTranspose``, ``dagnn.ReLU``, ``dagnn.Sum``,
  losses, ...), inputs, outputs, params (names) and ``block`` (the layer's options: ``size``,
  ``pad``, ``stride``, ``upsample``, ``crop``, ``leak``, ``hasBias``, ...);
* ``params``: name and value.

Layouts (both are correlations, as in Keras; no spatial flip):

* ``dagnn.Conv`` filters are H x W x Cin x Cout: Keras ``Conv2D`` HWIO as they are.
* ``dagnn.ConvTranspose`` (``vl_nnconvt``) filters are H x W x Cout x Cin and scatter every input
  pixel ``(i, j)`` to ``(i*up + u - crop_top, j*up + v - crop_left)``: Keras ``Conv2DTranspose``
  kernels are (H, W, out, in) with the same scatter, so they are copied as they are too (checked
  against a numpy ``vl_nnconvt`` in tests/test_reproduce_imdn_lapsrn.py).  Keras 'same' crops
  ``k - up`` pixels, ``floor`` of half at the top/left: the loader checks the file's ``crop``.

MATLAB drops trailing singleton dimensions (a 3x3x64x1 filter is stored 3x3x64, a 1-element bias
as a scalar); :func:`read_dagnn` restores the shapes from each layer's ``block.size``.

How to recognise the format: a ``.mat`` whose top-level key ``net`` is a struct with fields
``layers`` and ``params`` (see :func:`is_dagnn`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError

__all__ = ["read_dagnn", "is_dagnn", "dagnn_conv_layers", "load_dagnn_convs", "load_lapsrn"]

_CONV = "dagnn.Conv"
_CONVT = "dagnn.ConvTranspose"


def _loadmat(path):
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such MatConvNet .mat file; check the path.")
    try:
        return scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except NotImplementedError as exc:  # v7.3 files are HDF5
        raise WeightsError(
            f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save the net in MATLAB with save(..., '-v7')."
        ) from exc
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable .mat file ({exc}); check the file is complete.") from exc


def is_dagnn(mat: dict | str | Path) -> bool:
    """Whether a .mat holds a MatConvNet DagNN: ``net`` with layers and params.

    Args:
      mat: a ``scipy.io.loadmat`` result, or the file's path.

    Returns:
      True for a DagNN.
    """
    loaded = mat if isinstance(mat, dict) else _loadmat(mat)
    net = loaded.get("net")
    fields = getattr(net, "_fieldnames", None) or ()
    return "layers" in fields and "params" in fields


def _names(value):
    """A MATLAB cell of strings (squeezed to a str, an array or empty) as a list of str."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in np.atleast_1d(value).ravel() if str(v)]


def _block_dict(block):
    out = {}
    for field in getattr(block, "_fieldnames", None) or ():
        value = getattr(block, field)
        if isinstance(value, np.ndarray) and value.dtype != object:
            value = value.astype(np.int64) if np.issubdtype(value.dtype, np.integer) else value
            value = value.tolist()
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        out[field] = value
    return out


def read_dagnn(path: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The layers and parameters of a MatConvNet DagNN ``.mat``.

    Args:
      path: the file.

    Returns:
      ``(layers, params)``: ``layers`` a list (network order) of dicts ``name, type, inputs, outputs,
      params, block`` (``block`` a dict of the layer's options, numbers as Python ints/floats/lists);
      ``params`` {name: float32 array} in the file's order, with the dimensions MATLAB squeezed
      restored from the ``size`` of the layer that uses them (filters: ``size``; biases: (size[3],)).

    Raises:
      WeightsError: the file is missing, unreadable or not a DagNN.
    """
    mat = _loadmat(path)
    if not is_dagnn(mat):
        keys = [k for k in mat if not k.startswith("__")]
        raise WeightsError(
            f"{path}: not a MatConvNet DagNN (expected a struct 'net' with fields 'layers' and "
            f"'params'; found keys {', '.join(keys) or 'none'}). Save the network with "
            "net.saveobj() in MatConvNet."
        )
    net = mat["net"]
    layers = []
    for layer in np.atleast_1d(net.layers).ravel():
        layers.append(
            {
                "name": str(layer.name),
                "type": str(layer.type),
                "inputs": _names(layer.inputs),
                "outputs": _names(layer.outputs),
                "params": _names(layer.params),
                "block": _block_dict(layer.block),
            }
        )
    params = {}
    for p in np.atleast_1d(net.params).ravel():
        params[str(p.name)] = np.asarray(p.value, dtype=np.float32)
    # restore squeezed singleton dimensions from the layers' declared filter sizes
    for layer in layers:
        size = layer["block"].get("size")
        if layer["type"] not in (_CONV, _CONVT) or size is None:
            continue
        size = tuple(int(s) for s in np.atleast_1d(size))
        names = layer["params"]
        if not names:
            raise WeightsError(f"{path}: layer {layer['name']!r} ({layer['type']}) names no parameters.")
        missing = [n for n in names if n not in params]
        if missing:
            raise WeightsError(
                f"{path}: layer {layer['name']!r} uses parameter(s) {', '.join(missing)}, which the "
                "file's net.params does not hold; the file is incomplete or not a saved DagNN."
            )
        f = params[names[0]]
        if f.size != int(np.prod(size)):
            raise WeightsError(
                f"{path}: filter {names[0]!r} has {f.size} values but layer {layer['name']!r} "
                f"declares size {list(size)}."
            )
        params[names[0]] = f.reshape(size)
        if len(names) > 1:
            out_channels = size[3] if layer["type"] == _CONV else size[2]
            b = params[names[1]]
            if b.size != out_channels:
                raise WeightsError(
                    f"{path}: bias {names[1]!r} has {b.size} values, layer {layer['name']!r} has "
                    f"{out_channels} output channels."
                )
            params[names[1]] = b.reshape(out_channels)
    return layers, params


def dagnn_conv_layers(layers: list[dict]) -> list[dict]:
    """The Conv and ConvTranspose layers of ``layers``.

    Args:
      layers: :func:`read_dagnn`'s layers.

    Returns:
      Those layers, in network order.
    """
    return [layer for layer in layers if layer["type"] in (_CONV, _CONVT)]


def _same_crop(k, stride):
    """(before, after) pixels Keras' 'same' transposed convolution crops from the full output."""
    total = max(int(k) - int(stride), 0)
    return total // 2, total - total // 2


def _check_geometry(dag, keras_layer, source):
    """WeightsError unless ``keras_layer`` computes what the DagNN layer ``dag`` does."""
    block, name, kname = dag["block"], dag["name"], keras_layer.name
    cls = type(keras_layer).__name__
    kh, kw = keras_layer.kernel_size
    size = [int(s) for s in block["size"]]
    if (kh, kw) != tuple(size[:2]):
        raise WeightsError(
            f"{source}: layer {name!r} has a {size[0]}x{size[1]} filter, Keras layer {kname!r} "
            f"{kh}x{kw}; build the model with the file's architecture."
        )
    if dag["type"] == _CONV:
        if cls != "Conv2D":
            raise WeightsError(f"{source}: layer {name!r} is a convolution but Keras layer {kname!r} is a {cls}.")
        stride = [int(s) for s in np.atleast_1d(block.get("stride", 1))]
        pad = [int(p) for p in np.atleast_1d(block.get("pad", 0))]
        dilate = [int(d) for d in np.atleast_1d(block.get("dilate", 1))]
        pad = pad * 4 if len(pad) == 1 else pad
        want = [(kh - 1) // 2, kh - 1 - (kh - 1) // 2, (kw - 1) // 2, kw - 1 - (kw - 1) // 2]
        if set(stride) != {1} or set(dilate) != {1} or pad != want or keras_layer.padding != "same":
            raise WeightsError(
                f"{source}: layer {name!r} (stride {stride}, pad {pad}, dilate {dilate}) is not a "
                f"stride-1 'same' convolution like Keras layer {kname!r} (padding "
                f"{keras_layer.padding!r}, pad {want}); this loader handles those only."
            )
        return
    if cls != "Conv2DTranspose":
        raise WeightsError(
            f"{source}: layer {name!r} is a transposed convolution but Keras layer {kname!r} is a {cls}."
        )
    up = [int(u) for u in np.atleast_1d(block.get("upsample", 1))]
    up = up * 2 if len(up) == 1 else up
    crop = [int(c) for c in np.atleast_1d(block.get("crop", 0))]
    crop = crop * 4 if len(crop) == 1 else crop
    strides = list(keras_layer.strides)
    want = list(_same_crop(kh, strides[0]) + _same_crop(kw, strides[1]))
    if up != strides or keras_layer.padding != "same" or crop != want:
        raise WeightsError(
            f"{source}: transposed conv {name!r} (upsample {up}, crop [top bottom left right] = "
            f"{crop}) differs from Keras layer {kname!r} (strides {strides}, padding "
            f"{keras_layer.padding!r}, which crops {want}). Build Conv2DTranspose(strides={up}, "
            "padding='same'); this loader supports the crops 'same' makes only."
        )


def _keras_convs(model):
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_keras_convs(layer))
        elif type(layer).__name__ in ("Conv2D", "Conv2DTranspose"):
            out.append(layer)
    return out


def _pair(dag_convs, keras_convs, source, model_name):
    """[(dag layer, keras layer)]: by name when the model uses the file's layer names, else in
    order within each (kind, filter size), which survives the different orders of branches."""
    by_name = {layer.name: layer for layer in keras_convs}
    if all(d["name"] in by_name for d in dag_convs):
        pairs = [(d, by_name[d["name"]]) for d in dag_convs]
        wanted = {d["name"] for d in dag_convs}
        extra = [layer.name for layer in keras_convs if layer.name not in wanted]
        if extra:
            raise WeightsError(
                f"{source}: Keras layer(s) {', '.join(extra[:6])}{' ...' if len(extra) > 6 else ''} "
                f"of model {model_name!r} have no counterpart in the file; build the model for the "
                "file's scale and depth (e.g. get_model('lapsrn', scale=s) for LapSRN_x<s>.mat)."
            )
        return pairs
    groups = {}  # (transposed?, (kh, kw), cin, cout) -> [[dag layers], [keras layers]]
    for d in dag_convs:
        s = [int(v) for v in d["block"]["size"]]
        cin, cout = (s[2], s[3]) if d["type"] == _CONV else (s[3], s[2])
        groups.setdefault((d["type"] == _CONVT, tuple(s[:2]), cin, cout), [[], []])[0].append(d)
    for layer in keras_convs:
        kshape = tuple(int(v) for v in layer.kernel.shape)
        is_t = type(layer).__name__ == "Conv2DTranspose"
        cin, cout = (kshape[3], kshape[2]) if is_t else (kshape[2], kshape[3])
        groups.setdefault((is_t, kshape[:2], cin, cout), [[], []])[1].append(layer)
    pairs = []
    for (is_t, k, cin, cout), (dags, kers) in groups.items():
        if len(dags) != len(kers):
            what = f"{'transposed ' if is_t else ''}convolutions {k[0]}x{k[1]} {cin}->{cout}"
            raise WeightsError(
                f"{source}: the file has {len(dags)} {what}, model has {len(kers)} "
                f"({', '.join(x.name for x in kers) or 'none'}). Build the model with the file's "
                "scale and depth (e.g. get_model('lapsrn', scale=s))."
            )
        pairs.extend(zip(dags, kers))
    return pairs


def load_dagnn_convs(model: Any, path: str | Path) -> Any:
    """Copies every Conv / ConvTranspose of the DagNN in ``path`` into ``model``.

    Pairs by layer name when the model uses the file's names (the zoo's LapSRN does), otherwise
    in order per (kind, filter size).  Checks shapes, padding, strides and the transposed convs'
    crops, and the LeakyReLU slopes (``dagnn.ReLU`` ``leak``) against the model's.

    Args:
      model: a built ``keras.Model`` of the net's architecture.
      path: the DagNN .mat file.

    Returns:
      ``model``, its weights replaced.

    Raises:
      WeightsError: any layer does not fit; nothing is assigned then.
    """
    source = str(path)
    layers, params = read_dagnn(path)
    dag_convs = dagnn_conv_layers(layers)
    if not dag_convs:
        raise WeightsError(f"{source}: the DagNN has no Conv or ConvTranspose layers.")
    pairs = _pair(dag_convs, _keras_convs(model), source, model.name)
    values = []
    for dag, layer in pairs:
        _check_geometry(dag, layer, source)
        names = dag["params"]
        kernel = params[names[0]]
        arrays = [kernel] + ([params[names[1]]] if len(names) > 1 else [])
        if len(arrays) != len(layer.weights):
            raise WeightsError(
                f"{source}: layer {dag['name']!r} has {len(arrays)} parameter array(s) "
                f"({', '.join(names)}), Keras layer {layer.name!r} has {len(layer.weights)} "
                "weights; check use_bias."
            )
        for w, v in zip(layer.weights, arrays):
            if tuple(w.shape) != v.shape:
                raise WeightsError(
                    f"{source}: {dag['name']}: {v.shape} does not fit {w.name} {tuple(w.shape)} "
                    f"of Keras layer {layer.name!r}; build the model with the file's architecture."
                )
        values.append((layer, arrays))
    leaks = sorted({float(layer["block"].get("leak", 0.0)) for layer in layers if layer["type"] == "dagnn.ReLU"})
    slopes = sorted(
        {float(getattr(layer, "negative_slope", 0.0)) for layer in model.layers if type(layer).__name__ == "LeakyReLU"}
    )
    if leaks and slopes and not np.allclose(leaks, slopes):
        raise WeightsError(
            f"{source}: the file's ReLUs leak {leaks}, the model's LeakyReLUs have slopes "
            f"{slopes}; build the model with the file's slope."
        )
    for layer, arrays in values:
        for w, v in zip(layer.weights, arrays):
            w.assign(v.astype(np.float32))
    return model


def load_lapsrn(model: Any, path: str | Path) -> Any:
    """Loads an official ``LapSRN_x{2,4,8}.mat`` (MatConvNet DagNN) into ``get_model('lapsrn', scale=s)``.

    Args:
      model: the zoo's LapSRN at the file's scale.
      path: the .mat file.

    Returns:
      ``model``, its weights replaced.
    """
    return load_dagnn_convs(model, path)
