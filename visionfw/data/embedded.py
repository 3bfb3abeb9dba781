"""The embedded default training set: photos that ship inside scikit-image's wheel.

``make_train_dataset`` uses these when no ``source`` is given, so a model can be
trained (or smoke-tested) on any machine without downloading anything.

Only files present in the installed ``skimage/data`` folder are used, and they are
read straight from that folder with PIL.  We deliberately do NOT call the
``skimage.data.<name>()`` loaders: some of them fall back to a pooch download when a
file is missing, and this module must never touch the network.  Images of the
sample folder that are synthetic (chessboards, phantom), binary (horse), motion
blurred (clock_motion), tiny or multi-frame are left out: they teach an SR model
nothing useful.

Three colour photos (:data:`EMBEDDED_HELDOUT`) form a small validation set, ``'heldout'``
(:func:`heldout_records`): ``visionfw train`` validates on it when no benchmark set is on
the data search path, and then leaves those photos out of its training images
(``TrainDataConfig.embedded_holdout``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from visionfw.data.image_io import to_float01
from visionfw.errors import DataError

if TYPE_CHECKING:
    from visionfw.data.benchmarks import BenchmarkImage

__all__ = [
    "EMBEDDED_NAMES",
    "EMBEDDED_FILES",
    "EMBEDDED_HELDOUT",
    "HELDOUT",
    "embedded_data_dir",
    "embedded_images",
    "heldout_records",
]

# name -> file in skimage/data (names follow the skimage.data loader that reads the file)
EMBEDDED_FILES = {
    "astronaut": "astronaut.png",  # RGB 512x512
    "chelsea": "chelsea.png",  # RGB 451x300
    "coffee": "coffee.png",  # RGB 600x400
    "rocket": "rocket.jpg",  # RGB 640x427
    "motorcycle": "motorcycle_left.png",  # RGB 741x500, left view of stereo_motorcycle
    "hubble_deep_field": "hubble_deep_field.jpg",  # RGB 1000x872
    "retina": "retina.jpg",  # RGB 1411x1411
    "immunohistochemistry": "ihc.png",  # RGB 512x512
    "colorwheel": "color.png",  # RGB 371x370
    "logo": "logo.png",  # RGBA 500x500 (alpha dropped)
    "brick": "brick.png",  # grey 512x512
    "grass": "grass.png",  # grey 512x512
    "gravel": "gravel.png",  # grey 512x512
    "camera": "camera.png",  # grey 512x512
    "coins": "coins.png",  # grey 384x303
    "moon": "moon.png",  # grey 512x512
    "page": "page.png",  # grey 384x191
    "text": "text.png",  # grey 448x172
    "cell": "cell.png",  # grey 550x660
}
EMBEDDED_NAMES = tuple(EMBEDDED_FILES)
# the validation set name and its photos: natural colour photos, like the benchmark sets
HELDOUT = "heldout"
EMBEDDED_HELDOUT = ("astronaut", "chelsea", "coffee")


def embedded_data_dir() -> str:
    """The installed ``skimage/data`` folder (no import of the fetchers needed)."""
    try:
        import skimage
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency
        raise DataError(
            "The embedded training set needs scikit-image; install it with `pip install scikit-image`."
        ) from exc
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def _load_uint8(path):
    """uint8 HxWxC (C = 1 or 3) from one sample file; alpha dropped, palette expanded."""
    with Image.open(path) as im:
        if im.mode in ("L", "I;16", "I", "F"):
            arr = np.asarray(im.convert("L"))[..., None]
        else:
            arr = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(arr)


def _files(names):
    """The sample files of ``names``; DataError for an unknown name or a missing file."""
    unknown = [n for n in names if n not in EMBEDDED_FILES]
    if unknown:
        raise DataError(f"embedded_images: unknown names {unknown}; choose from {list(EMBEDDED_NAMES)}.")
    folder = embedded_data_dir()
    files = [os.path.join(folder, EMBEDDED_FILES[n]) for n in names]
    missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise DataError(
            f"embedded_images: {missing} not found in {folder}; this scikit-image "
            "install lacks its sample images. Reinstall scikit-image from its wheel, "
            "or pass a training folder as `source`."
        )
    return files


def embedded_images(channels: str | None = "rgb", names: Sequence[str] | None = None) -> list[np.ndarray]:
    """The embedded training images as float32 HxWxC arrays in [0, 1].

    Args:
      channels: ``'rgb'`` -> 3 channels (grey images repeated into R, G and B);
        ``'y'`` -> 1 channel: MATLAB ``rgb2ycbcr`` luma of RGB images (not rounded),
        grey images taken as their own Y.
        None -> as stored: 1 channel for grey files, 3 for colour ones.
      names: subset of :data:`EMBEDDED_NAMES` (default: all), in the order given.

    Returns:
      A list of arrays, one per name, in the order of ``names``.
    """
    if channels not in ("rgb", "y", None):
        raise DataError(f"embedded_images: channels={channels!r} must be 'rgb', 'y' or None.")
    names = EMBEDDED_NAMES if names is None else tuple(names)
    images = []
    for path in _files(names):
        arr = to_float01(_load_uint8(path))
        grey = arr.shape[-1] == 1
        if channels == "rgb":
            arr = np.repeat(arr, 3, axis=-1) if grey else arr
        elif channels == "y" and not grey:
            from visionfw.data.color import rgb_to_y

            arr = rgb_to_y(arr)
        images.append(np.ascontiguousarray(arr))
    return images


def heldout_records(scale: int) -> list[BenchmarkImage]:
    """The ``'heldout'`` validation set, made like :func:`visionfw.data.benchmarks.load_benchmark` makes a set.

    Args:
        scale: positive integer SR factor.

    Returns:
        One record per held-out photo: uint8 HR mod-cropped to ``scale``, LR = MATLAB bicubic
        ``1/scale`` of it on uint8.
    """
    from visionfw.data.benchmarks import BenchmarkImage
    from visionfw.data.imresize import imresize, modcrop

    records = []
    for name, path in zip(EMBEDDED_HELDOUT, _files(EMBEDDED_HELDOUT)):
        hr = modcrop(_load_uint8(path), int(scale))
        records.append(BenchmarkImage(name=name, hr=hr, lr=imresize(hr, scale=1.0 / int(scale)).numpy()))
    return records
