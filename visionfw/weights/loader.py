"""Loading pretrained weights into visionfw models, whatever framework they come from.

:func:`load_weights` dispatches on the file's extension (or ``format=``):

``.mat`` (official MATLAB releases)
    SRCNN's and VDSR's layouts (:mod:`visionfw.weights.matlab`) and MatConvNet DagNN nets such as LapSRN
    (:mod:`visionfw.weights.matconvnet`).
``.keras``
    a saved Keras model; its weights are copied layer by layer in order (shapes checked).
``.weights.h5``
    Keras ``model.save_weights`` output, loaded with ``model.load_weights``.
``.pth`` / ``.pt`` and ``.npz`` (no torch needed)
    a PyTorch ``state_dict`` (name -> array), read without running the file's pickle
    (:mod:`visionfw.weights.torch_checkpoint`).  See :func:`visionfw.weights.load_state_dict` and, to see how
    keys pair with Keras weights, :func:`visionfw.weights.describe_mapping`.

Every problem raises :class:`~visionfw.errors.WeightsError` naming the file, the key or
layer, and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionfw.errors import WeightsError
from visionfw.weights.formats import FORMATS, detect_format, read_state_dict
from visionfw.weights.layer_weights import assign_weights, weighted_layers
from visionfw.weights.state_dict import DEFAULT_SKIP, load_state_dict


def load_weights(
    model: Any,
    path: str | Path,
    format: str | None = None,
    name_map: dict[str, str | None] | None = None,
    shuffle_order: str = "torch",
    skip: Sequence[str] = DEFAULT_SKIP,
) -> Any:
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

    Returns:
      ``model``, its weights replaced.

    Raises:
      WeightsError: the file is missing, unreadable or does not fit ``model`` (a PyTorch state dict is
        assigned all or nothing).
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
        from visionfw.weights.matlab import load_mat_weights

        load_mat_weights(model, path, fmt)
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


def _copy_from_model(model, source_model, path):
    src, dst = weighted_layers(source_model), weighted_layers(model)
    if len(src) != len(dst):
        raise WeightsError(
            f"{path}: the saved model {source_model.name!r} has {len(src)} layers with "
            f"weights, model {model.name!r} has {len(dst)}. Use the same architecture, or "
            "pass the .keras file alone (without --model) to use its own architecture."
        )
    for s, d in zip(src, dst):
        assign_weights(d, [w.numpy() for w in s.weights], str(path), f"saved layer {s.name!r}")


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
