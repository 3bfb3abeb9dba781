"""Reading and writing image files (the only place visionfw touches uint8 pixels).

``read_image`` returns float32 HxWxC in [0, 1] with C = 1 for grey and C = 3 for colour:

* grey (1-bit, 8-bit, 16-bit) stays 1 channel; grey+alpha drops the alpha;
* RGBA drops the alpha (no compositing: SR benchmarks are opaque);
* palette images are expanded to RGB;
* 16-bit PNG/TIFF is scaled by 65535 (PIL would truncate 16-bit RGB PNGs to 8 bits, so
  those are read with OpenCV);
* EXIF orientation is ignored, like MATLAB ``imread``: pixels come back as stored.

Missing, empty, truncated or undecodable files raise :class:`~visionfw.errors.DataError`
naming the path and the fix.  So does an image whose header claims more than ``max_pixels``
pixels (default :data:`DEFAULT_MAX_IMAGE_PIXELS`; ``visionfw train --max_image_pixels``):
the size is checked before any pixel is decoded, so a small file claiming a huge image
costs nothing.  Decoding costs about two copies of the image's own uint8 size.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from PIL import Image, UnidentifiedImageError

from visionfw.errors import DataError
from visionfw.files import write_file_atomic

__all__ = [
    "read_image",
    "read_image_uint8",
    "to_float01",
    "to_uint8",
    "write_image",
    "list_images",
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "check_image_pixels",
    "png_header",
    "open_pil",
]

# below PIL's own warning threshold (89.5 M), so images within it decode without PIL's noise;
# 8K (33 M) and most camera photos (<= 61 M) fit
DEFAULT_MAX_IMAGE_PIXELS = 80_000_000

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_WRITE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """(bit_depth, colour_type, width, height) of a PNG file, or None when it is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return head[24], head[25], width, height


def check_image_pixels(path: str | os.PathLike, width: int, height: int, max_pixels: int | None = None) -> None:
    """DataError when a ``width`` x ``height`` image is over ``max_pixels`` (None: the default)."""
    limit = DEFAULT_MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    if int(width) * int(height) > limit:
        raise DataError(
            f"Image {path} is {width}x{height} ({int(width) * int(height):,} pixels), over the "
            f"limit of {limit:,} pixels (max_image_pixels); downscale or crop it, or raise the "
            f"limit with --max_image_pixels={int(width) * int(height)} if the memory is there."
        )


def open_pil(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """PIL image of ``path`` with its size checked against ``max_pixels`` before decoding."""
    limit = DEFAULT_MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        # a limit raised on purpose: ours is the guard, PIL's smaller one would refuse first
        Image.MAX_IMAGE_PIXELS = limit
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as exc:  # far over PIL's limit, hence over ours
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(claimed.group(1)):,} pixels" if claimed else "more pixels than PIL allows"
        raise DataError(
            f"Image {path} claims {pixels} in its header, over the limit of {limit:,} pixels "
            "(max_image_pixels); downscale or crop it, or raise --max_image_pixels if the memory "
            "is there."
        ) from None
    try:
        check_image_pixels(path, im.size[0], im.size[1], limit)
    except DataError:
        im.close()
        raise
    return im


def _read_16bit_png(path, colour_type):
    import cv2  # OpenCV keeps all 16 bits of RGB(A) PNGs

    try:
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. over OpenCV's own CV_IO_MAX_IMAGE_PIXELS
        raise DataError(
            f"Cannot decode the 16-bit PNG {path} ({str(exc).strip().splitlines()[-1]}); "
            "re-save it smaller or as 8-bit."
        ) from None
    if data is None:
        raise DataError(f"Cannot decode the 16-bit PNG {path}; re-save it with an image editor.")
    if colour_type in (0, 4):  # grey, grey+alpha (OpenCV may expand it to BGRA)
        grey = data if data.ndim == 2 else data[..., 0]
        return grey[..., None]
    return np.ascontiguousarray(data[..., 2::-1])  # BGR(A) -> RGB


def _read_raw(path, max_pixels=None):
    """Pixels as stored: (HxWxC uint8 or uint16 array), C in {1, 3}."""
    path = Path(path)
    fix = "check the path, or re-export the image as PNG"
    if not path.exists():
        raise DataError(f"Image file {path} does not exist; {fix}.")
    if not path.is_file():
        raise DataError(f"Image path {path} is not a file; pass an image file (use list_images() for folders).")
    if path.stat().st_size == 0:
        raise DataError(f"Image file {path} is empty (0 bytes); re-copy or re-download it.")
    try:
        header = png_header(path)
        if header is not None:
            check_image_pixels(path, header[2], header[3], max_pixels)
            if header[0] == 16:
                return _read_16bit_png(path, header[1])
        with open_pil(path, max_pixels) as im:
            im.load()
            return _pil_to_array(im, path)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, struct.error) as exc:
        raise DataError(
            f"Cannot read image {path} ({type(exc).__name__}: {exc}); the file is "
            f"corrupt, truncated or not an image: {fix}."
        ) from exc


def _pil_to_array(im, path):
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(im)
        if data.min() < 0 or data.max() > 65535:
            raise DataError(f"Image {path} holds 32-bit integers outside 0..65535; convert it to 8- or 16-bit first.")
        return data.astype(np.uint16)[..., None]
    if mode == "L":  # as stored: no converted copy
        return np.asarray(im)[..., None]
    if mode in ("1", "LA", "La"):
        return np.asarray(im.convert("L"))[..., None]
    if mode == "P":
        # palette (with or without transparency) -> RGB; transparency is dropped
        im = im.convert("RGBA") if "transparency" in im.info else im
        return np.asarray(im.convert("RGB"))
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
        return np.asarray(im.convert("RGB"))
    raise DataError(f"Image {path} has unsupported pixel mode {mode!r}; convert it to 8-bit RGB or grey PNG.")


def to_float01(image: np.ndarray, dtype: DTypeLike = np.float32) -> np.ndarray:
    """Pixels as floats in [0, 1]: the one uint8/uint16 -> float conversion of visionfw.

    Args:
        image: array of any shape; uint8 (divided by 255), uint16 (divided by 65535) or
            floating point (taken as already in [0, 1] and returned as ``dtype``, without a copy
            when it has that dtype already).
        dtype: the float type, and the precision of the division (float64 where a protocol's
            PSNR decimals depend on it).

    Returns:
        ``dtype`` array of the same shape.

    Raises:
        DataError: for any other dtype (signed integers, bool, ...).
    """
    image = np.asarray(image)
    dtype = np.dtype(dtype)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(dtype, copy=False)
    peaks = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
    if image.dtype not in peaks:
        raise DataError(f"to_float01: dtype {image.dtype} unsupported; pass uint8, uint16 or float in [0, 1].")
    out = image.astype(dtype)
    out /= np.asarray(peaks[image.dtype], dtype)  # in place: one float copy of the image, not three
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] as uint8: clipped to [0, 1], then MATLAB's rounding ``floor(x * 255 + 0.5)``.

    The product is taken in float64, so values exactly half-way (``127.5 / 255``) round up
    as MATLAB's ``im2uint8`` does.

    Args:
        image: floating-point array of any shape (uint8 input is returned unchanged).

    Returns:
        uint8 array of the same shape.

    Raises:
        DataError: for integer dtypes other than uint8 and other non-float dtypes.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise DataError(f"to_uint8: dtype {image.dtype} unsupported; pass float in [0, 1] or uint8.")
    scaled = np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0
    return np.floor(scaled + 0.5).astype(np.uint8)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as float32 HxWxC in [0, 1] (C = 1 grey, 3 colour).

    Args:
        path: the image file.
        max_pixels: refuse images whose header claims more pixels than this
            (None: :data:`DEFAULT_MAX_IMAGE_PIXELS`).

    Returns:
        float32 HxWxC array in [0, 1]; 16-bit files are scaled by 1/65535.

    Raises:
        DataError: missing, empty, corrupt or over-sized files, naming the path and the fix.
    """
    return to_float01(_read_raw(path, max_pixels))


_STRIP_VALUES = 1 << 20


def read_image_uint8(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as uint8 HxWxC; 16-bit files are scaled to 8 bits with rounding.

    Args:
        path: the image file.
        max_pixels: as in :func:`read_image`.

    Returns:
        uint8 HxWxC array (C = 1 grey, 3 colour).

    Raises:
        DataError: as :func:`read_image`.
    """
    data = _read_raw(path, max_pixels)
    if data.dtype == np.uint16:
        out = np.empty(data.shape, np.uint8)
        rows = max(1, _STRIP_VALUES // max(1, data.shape[1] * data.shape[2]))
        for top in range(0, data.shape[0], rows):  # in strips: float64 of the whole image is 8x its size
            strip = data[top : top + rows].astype(np.float64)
            out[top : top + rows] = np.floor(strip * (255.0 / 65535.0) + 0.5)
        return out
    return np.ascontiguousarray(data)


def write_image(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write an image atomically (temp file in the same folder, then rename).

    Args:
        path: the file to write; the format follows the suffix (.png; .bmp, .tif and .jpg
            also work).  Parent folders are created.
        img: HW or HWC (C in 1, 3, 4), float in [0, 1] (converted by :func:`to_uint8`) or
            uint8; numpy array or tf tensor.

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: an unknown suffix, dtype or shape.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"write_image: cannot tell the format of {path}; use a .png (or .bmp, .tif, .jpg) file name.")
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"write_image: {path}: dtype {arr.dtype} unsupported; pass float in [0, 1] or uint8.")
        arr = to_uint8(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise DataError(f"write_image: {path}: image shape {arr.shape} must be HW or HWC with 1, 3 or 4 channels.")
    return write_file_atomic(path, lambda fh: Image.fromarray(arr).save(fh, format=fmt))


def _unusable(path):
    """Why the folder entry ``path`` cannot be read as an image file, or None when it can
    ('' for a sub-folder)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if os.path.islink(path):
            return f"dangling symlink to {os.readlink(path)}"
        return exc.strerror or type(exc).__name__
    if stat.S_ISDIR(info.st_mode):
        return ""  # a sub-folder is not a file that went missing: left out without a word
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files (png, jpg, jpeg, bmp, tif, tiff; any case) directly in ``folder``.

    Entries with an image suffix that cannot be read (dangling links, symlink loops,
    unreadable files) are left out with one warning that counts and names them.

    Args:
        folder: the folder to list (not recursive).

    Returns:
        The image paths, sorted by name.

    Raises:
        DataError: the folder is missing or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"Image folder {folder} does not exist or is not a folder; check the "
            "path (datasets: visionfw.data.benchmarks.resolve_dataset)."
        )
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        reason = _unusable(p)
        if reason is None:
            files.append(p)
        elif reason:
            skipped.append(f"{p.name} ({reason})")
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(
            f"Image folder {folder}: skipping {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} "
            f"that cannot be read: {shown}; {len(files)} image(s) used.",
            stacklevel=2,
        )
    if not files:
        raise DataError(
            f"Image folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
            "point to the folder that contains the images (e.g. its HR/ sub-folder)."
        )
    return files
