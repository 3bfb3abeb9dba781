"""Checking ``.keras`` and ``.weights.h5`` files before Keras reads them.

Keras loads what it finds: a truncated file gives a misleading error ("File not found", "saved from a
different architecture"), and a bit flipped inside an HDF5 dataset loads silently (HDF5 keeps no
checksum of the values).  :func:`verify_keras_file` reads the file first and says what is wrong:

* a ``.keras`` file is a zip: it must open, and every member must match its CRC-32;
* every weight array (an HDF5 dataset) must be readable and, for floats, finite;
* a ``.weights.h5`` written by :func:`save_weights` carries the sha256 of each weight array (an
  attribute of the dataset), and every array must still match it.

A ``.keras`` file carries no such record: the zip's CRC-32 of each member, always written, is checked.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from visionfw.errors import WeightsError
from visionfw.weights.torch_checkpoint import open_weights_zip
from visionfw.zoo.builder import allow_graph_depth

__all__ = ["save_weights", "record_checksums", "verify_keras_file", "CHECKSUM_ATTR"]

CHECKSUM_ATTR = "visionfw_sha256"
_WEIGHTS_MEMBER = "model.weights.h5"  # where Keras keeps the weights inside a .keras zip


def _array_sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _datasets(h5file):
    """``[(name, dataset)]`` of every dataset in an open h5py file, in name order."""
    import h5py

    found = []
    h5file.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return found


def record_checksums(path: str | Path) -> Path:
    """Stores the sha256 of each weight array of a ``.weights.h5`` file beside it (an attribute of each
    dataset, which Keras ignores), for :func:`verify_keras_file` to check.

    Args:
      path: the ``.weights.h5`` file, rewritten in place.

    Returns:
      ``path`` as a Path.
    """
    import h5py

    with h5py.File(path, "r+") as f:
        for _name, dataset in _datasets(f):
            dataset.attrs[CHECKSUM_ATTR] = _array_sha256(dataset[()])
    return Path(path)


def save_weights(model: Any, path: str | Path) -> Path:
    """``model.save_weights(path)`` with each array's sha256 recorded.

    Args:
      model: a ``keras.Model``.
      path: the file to write, named ``NAME.weights.h5``.

    Returns:
      ``path`` as a Path.

    Raises:
      WeightsError: ``path`` does not end in ``.weights.h5``.
    """
    if not str(path).endswith(".weights.h5"):
        raise WeightsError(f"{path}: save_weights writes a .weights.h5 file; name it NAME.weights.h5.")
    model.save_weights(str(path))
    return record_checksums(path)


def _check_h5(source, path):
    """Reads every dataset of the HDF5 file ``source`` (a path or a file object)."""
    import h5py

    try:
        h5 = h5py.File(source, "r")
    except Exception as exc:  # h5py says "truncated file: eof = ..." or "file signature not found"
        raise WeightsError(f"{path}: a truncated or corrupt HDF5 file ({exc}); copy or download it again.") from None
    with h5:
        mismatched, non_finite = [], []
        for name, dataset in _datasets(h5):
            try:
                values = dataset[()]
            except Exception as exc:
                raise WeightsError(
                    f"{path}: weight array {name!r} cannot be read ({exc}); the file is corrupt: "
                    "copy or download it again."
                ) from None
            recorded = dataset.attrs.get(CHECKSUM_ATTR)
            if isinstance(recorded, bytes):
                recorded = recorded.decode("ascii", "replace")
            if recorded is not None and recorded != _array_sha256(values):
                mismatched.append(name)
            elif np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
                non_finite.append(f"{name} ({int(np.size(values) - np.isfinite(values).sum())} of {values.size})")
        if mismatched:
            raise WeightsError(
                f"{path}: {len(mismatched)} weight array(s) no longer match the sha256 recorded "
                f"when visionfw wrote the file ({', '.join(mismatched[:3])}); the file is corrupt: "
                "copy it again from its source."
            )
        if non_finite:
            raise WeightsError(
                f"{path}: weight array(s) hold NaN or infinite values: {', '.join(non_finite[:3])}; "
                "the file is corrupt or the model diverged when it was trained."
            )


def verify_keras_file(path: str | Path) -> None:
    """Checks a ``.keras``, ``.weights.h5`` or legacy ``.h5`` file before Keras reads it.

    For a sound ``.keras`` file it also makes room for Keras to load a deep model
    (:func:`visionfw.zoo.builder.allow_graph_depth`, from the objects its config names).

    Args:
      path: the file.

    Raises:
      WeightsError: saying what is wrong: truncated or corrupt container, a member whose CRC-32 fails,
        an unreadable array, an array that no longer matches its recorded sha256, NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file; check the path of the weights.")
    if not path.name.endswith(".keras"):
        _check_h5(str(path), path)
        return
    with open_weights_zip(path, ".keras file (a zip archive)", "copy or download it again") as archive:
        try:
            bad = archive.testzip()  # reads every member: CRC-32 and sizes
        except Exception as exc:  # a damaged local header
            raise WeightsError(f"{path}: a corrupt .keras file ({exc}); copy or download it again.") from None
        if bad is not None:
            raise WeightsError(
                f"{path}: a corrupt .keras file: member {bad!r} fails its CRC-32 check; copy or download it again."
            )
        if _WEIGHTS_MEMBER in archive.namelist():
            _check_h5(io.BytesIO(archive.read(_WEIGHTS_MEMBER)), path)
        if "config.json" in archive.namelist():  # Keras walks the graph recursively when it loads it
            allow_graph_depth(archive.read("config.json").count(b'"class_name"'))
