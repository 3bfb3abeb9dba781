"""Reading and writing image files (the only place visionfw touches uint8 pixels).

``read_image`` returns float32 HxWxC in [0, 1] with C = 1 for grey and C = 3 for colour:

* grey (1-bit, 8-bit, 16-bit) stays 1 channel; grey+alpha drops the alpha;
* RGBA drops the alpha (no compositing: SR benchmarks are opaque);
* palette images are expanded to RGB;
* 16-bit PNG/TIFF is scaled by 65535 (PIL would truncate 16-bit RGB PNGs to 8 bits, so
  those are read with OpenCV);
* EXIF orientation is ignored, like MATLAB ``imread``: pixels come back as stored.

Missing, empty, truncated or undecodable files raise :class:`~visionfw.errors.DataError`
naming the path and the fix.
"""
from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from visionfw.errors import DataError

__all__ = ["read_image", "read_image_uint8", "write_image", "list_images", "new_file_mode", "write_file_atomic",
           "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_WRITE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                  ".jpg": "JPEG", ".jpeg": "JPEG"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_header(path):
    """(bit_depth, colour_type) of a PNG file, or None when it is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_16bit_png(path, colour_type):
    import cv2  # OpenCV keeps all 16 bits of RGB(A) PNGs

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise DataError(f"Cannot decode the 16-bit PNG {path}; re-save it with an image editor.")
    if colour_type in (0, 4):  # grey, grey+alpha (OpenCV may expand it to BGRA)
        grey = data if data.ndim == 2 else data[..., 0]
        return grey[..., None]
    return np.ascontiguousarray(data[..., 2::-1])  # BGR(A) -> RGB


def _read_raw(path):
    """Pixels as stored: (HxWxC uint8 or uint16 array), C in {1, 3}."""
    path = Path(path)
    fix = "check the path, or re-export the image as PNG"
    if not path.exists():
        raise DataError(f"Image file {path} does not exist; {fix}.")
    if not path.is_file():
        raise DataError(f"Image path {path} is not a file; pass an image file (use "
                        "list_images() for folders).")
    if path.stat().st_size == 0:
        raise DataError(f"Image file {path} is empty (0 bytes); re-copy or re-download it.")
    try:
        header = _png_header(path)
        if header is not None and header[0] == 16:
            return _read_16bit_png(path, header[1])
        with Image.open(path) as im:
            im.load()
            return _pil_to_array(im, path)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, struct.error) as exc:
        raise DataError(f"Cannot read image {path} ({type(exc).__name__}: {exc}); the file is "
                        f"corrupt, truncated or not an image: {fix}.") from exc


def _pil_to_array(im, path):
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(im)
        if data.min() < 0 or data.max() > 65535:
            raise DataError(f"Image {path} holds 32-bit integers outside 0..65535; convert it "
                            "to 8- or 16-bit first.")
        return data.astype(np.uint16)[..., None]
    if mode in ("1", "L", "LA", "La"):
        return np.asarray(im.convert("L"))[..., None]
    if mode == "P":
        # palette (with or without transparency) -> RGB; transparency is dropped
        im = im.convert("RGBA") if "transparency" in im.info else im
        return np.asarray(im.convert("RGB"))
    if mode in ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
        return np.asarray(im.convert("RGB"))
    raise DataError(f"Image {path} has unsupported pixel mode {mode!r}; convert it to 8-bit "
                    "RGB or grey PNG.")


def read_image(path):
    """Read an image file as float32 HxWxC in [0, 1] (C = 1 grey, 3 colour)."""
    data = _read_raw(path)
    peak = 65535.0 if data.dtype == np.uint16 else 255.0
    return (data.astype(np.float32) / np.float32(peak)).astype(np.float32)


def read_image_uint8(path):
    """Read an image file as uint8 HxWxC; 16-bit files are scaled to 8 bits with rounding."""
    data = _read_raw(path)
    if data.dtype == np.uint16:
        return np.floor(data.astype(np.float64) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(data)


def write_image(path, img):
    """Write an image atomically (temp file in the same folder, then rename).

    ``img``: HW or HWC (C in 1, 3, 4), float in [0, 1] (rounded half away from zero and
    clipped to uint8) or uint8; numpy array or tf tensor.  The format follows the suffix
    (.png; .bmp, .tif and .jpg also work).  Parent folders are created.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"write_image: cannot tell the format of {path}; use a .png (or .bmp, "
                        ".tif, .jpg) file name.")
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"write_image: {path}: dtype {arr.dtype} unsupported; pass float "
                            "in [0, 1] or uint8.")
        arr = np.clip(np.floor(arr.astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise DataError(f"write_image: {path}: image shape {arr.shape} must be HW or HWC with "
                        "1, 3 or 4 channels.")
    return write_file_atomic(path, lambda fh: Image.fromarray(arr).save(fh, format=fmt))


def write_file_atomic(path, write):
    """Creates ``path`` atomically: ``write(binary file)`` fills a temporary file in the same folder,
    which gets a new file's mode (:func:`new_file_mode`; ``mkstemp`` makes 0600) and is renamed into
    place only when ``write`` succeeded.  Parent folders are created; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def new_file_mode():
    """The mode a newly created file gets here (0666 less the umask): for files written through a
    ``mkstemp`` temporary (0600) and renamed into place."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def list_images(folder):
    """Sorted image files (png, jpg, jpeg, bmp, tif, tiff; any case) directly in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Image folder {folder} does not exist or is not a folder; check the "
                        "path (datasets: visionfw.data.benchmarks.resolve_dataset).")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"Image folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                        "point to the folder that contains the images (e.g. its HR/ sub-folder).")
    return files
