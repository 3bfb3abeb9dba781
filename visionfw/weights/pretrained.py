"""Official pretrained weights: find them in a local cache, check their hash, load them.

``visionfw.get_model(name, scale=s, pretrained=True)`` looks for the file that the family's
metadata names (``visionfw.model_info(name).weights_for(s).file``) in these folders, in order:

1. ``$VISIONFW_WEIGHTS``;
2. ``~/.visionfw/weights`` (where downloads go);
3. ``<data root>/weights`` for every root of the data search path (:mod:`visionfw.data.paths`),

each either at the metadata's relative path (``imdn/IMDN_x2.pth``) or by its bare file name.
A file found is checked against the metadata's sha256 (or, where only that is known, the hash
prefix its authors put in the file name); a mismatch is a :class:`WeightsError`.  With
``download=True`` (never in tests, never by default) a missing file with an official URL is
fetched by ``keras.utils.get_file`` with the hash checked.  ``pretrained="path"`` loads that file
instead, with the same loading options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from visionfw.errors import WeightsError

__all__ = ["ENV", "USER_CACHE", "weights_dirs", "find_weights", "load_pretrained"]

ENV = "VISIONFW_WEIGHTS"
USER_CACHE = "~/.visionfw/weights"


def weights_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for official weights.

    Args:
      data_dir: a data root to search too (its ``weights`` folder), before the default roots.

    Returns:
      The folders in search order (existing or not): ``$VISIONFW_WEIGHTS``, the user cache, the data roots'.
    """
    from visionfw.data.paths import candidate_roots

    dirs = [Path(os.environ[ENV])] if os.environ.get(ENV) else []
    dirs.append(Path(USER_CACHE).expanduser())
    dirs += [root / "weights" for root in candidate_roots(data_dir)]
    return dirs


def _check_hash(path, info, name):
    from visionfw.weights.formats import file_sha256

    digest = file_sha256(path)
    expected = info.sha256 or info.sha256_prefix
    if expected and not digest.startswith(expected):
        raise WeightsError(
            f"{path}: sha256 {digest[:16]}... does not match the official {name} weights "
            f"({expected[:16]}...). The file is corrupt or another release: delete it (or pass "
            f"pretrained='{path}' to load it anyway)."
        )
    return path


def find_weights(
    info: Any, scale: int | None = None, data_dir: str | Path | None = None, download: bool = False
) -> Path:
    """The local, hash-checked official weights of a model.

    Args:
      info: the model's metadata (``visionfw.model_info(name)``).
      scale: the SR factor whose weights are wanted (None: the model's only file).
      data_dir: a data root searched too (see :func:`weights_dirs`).
      download: fetch a missing file from its official URL into the user cache (hash checked).

    Returns:
      The file's path.

    Raises:
      WeightsError: the model has no official weights at ``scale``, the file is absent (the message says
        where to put it) or its hash is wrong.
    """
    name = info.name
    w = info.weights_for(scale)
    if w is None:
        known = [s for s, _ in info.weights]
        raise WeightsError(
            f"model {name!r} has no official weights"
            + (f" at x{scale}; they exist at {known}" if known else "")
            + ". Train it (`visionfw train`) or pass pretrained='path/to/file'."
        )
    looked = []
    for folder in weights_dirs(data_dir):
        for candidate in (folder / w.file, folder / Path(w.file).name):
            if candidate.is_file():
                return _check_hash(candidate, w, name)
            looked.append(candidate)
    if download and w.url:
        import keras

        cache = Path(USER_CACHE).expanduser()
        path = keras.utils.get_file(
            fname=Path(w.file).name,
            origin=w.url,
            file_hash=w.sha256,
            cache_dir=str(cache.parent),
            cache_subdir=cache.name,
        )
        return _check_hash(Path(path), w, name)
    how = f"download it from {w.url}" if w.url else f"get it from {w.source or 'the authors release'}"
    raise WeightsError(
        f"official weights of {name!r}{f' x{scale}' if scale else ''} ({w.file}) not found. "
        f"Looked in: {'; '.join(map(str, looked))}. Fix: {how} into ${ENV} or {USER_CACHE}"
        + (
            f', or let visionfw fetch it once (hash checked): python -c "import visionfw; '
            f"visionfw.get_model('{name}'{f', scale={scale}' if scale else ''}, pretrained=True, "
            'download=True)"'
            if w.url
            else ""
        )
        + "."
    )


def load_pretrained(
    model: Any,
    info: Any,
    scale: int | None = None,
    pretrained: Literal[True] | str | Path = True,
    data_dir: str | Path | None = None,
    download: bool = False,
    **options: Any,
) -> Path:
    """Loads the official weights of ``info``'s model (or the file ``pretrained`` names) into ``model``.

    Args:
      model: the built ``keras.Model``.
      info: its metadata (``visionfw.model_info(name)``).
      scale: the SR factor whose weights are wanted.
      pretrained: True for the official file (:func:`find_weights`), or a file's path.
      data_dir: a data root searched too.
      download: fetch a missing official file (hash checked).
      **options: :func:`~visionfw.weights.loader.load_weights` options, over the family's own.

    Returns:
      The path loaded.
    """
    from visionfw.weights.loader import load_weights

    if pretrained is True:
        path = find_weights(info, scale, data_dir=data_dir, download=download)
    else:
        path = Path(pretrained)
    w = info.weights_for(scale)
    load_weights(model, path, **{**dict(w.options if w is not None else ()), **options})
    return path
