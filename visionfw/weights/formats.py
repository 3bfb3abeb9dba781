"""Weights files: their format from the name, their sha256, and the readers that give their arrays
(.mat through scipy, PyTorch state dicts from .pth/.pt or .npz)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError

FORMATS = ("srcnn_mat", "vdsr_mat", "matconvnet", "mat", "keras", "weights_h5", "h5", "torch", "npz")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks.

    Args:
      path: the file.
      chunk: bytes read at a time.

    Returns:
      The 64 hex digits.

    Raises:
      WeightsError: ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file; cannot compute its sha256.")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: str | Path) -> str:
    """The weights format of ``path`` from its name.

    Args:
      path: a weights file name.

    Returns:
      One of :data:`FORMATS`; every ``.mat`` gives ``'mat'`` (its keys tell the layout when loading).

    Raises:
      WeightsError: the extension is none of the known ones.
    """
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


def read_mat(path: str | Path) -> dict[str, Any]:
    """The variables of a MATLAB .mat file (v7 or older), as ``scipy.io.loadmat`` gives them.

    Args:
      path: the .mat file.

    Returns:
      {variable name: value}, with scipy's ``__header__``-style entries.

    Raises:
      WeightsError: the file is MAT v7.3 (HDF5) or not a readable .mat file.
    """
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as exc:  # MAT v7.3 is HDF5
        raise WeightsError(
            f"{path}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save it in MATLAB with save(..., '-v7')."
        ) from exc
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable .mat file ({exc}). Check the file is complete.") from exc


def read_state_dict(path: str | Path, fmt: str | None = None) -> dict[str, np.ndarray]:
    """A PyTorch state dict from ``.pth``/``.pt`` or ``.npz`` as {name: ndarray}, ordered.

    ``.pth``/``.pt`` files are read without torch and without running their pickles
    (:func:`visionfw.weights.torch_checkpoint.load_torch_checkpoint`): wrappers such as
    ``{'state_dict': ...}`` or BasicSR's ``{'params': ...}`` are removed and DataParallel's
    ``module.`` prefix stripped.

    Args:
      path: the file.
      fmt: ``'torch'`` or ``'npz'``; default from the file name.

    Returns:
      {key: array} in the file's order.

    Raises:
      WeightsError: the file is unreadable, unsafe or holds no state dict.
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
