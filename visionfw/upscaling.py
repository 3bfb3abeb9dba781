"""Upscaling your own images with an SR model: :func:`upscale` (``visionfw.upscale``) and the
photo file I/O that keeps what benchmark reading drops (alpha, 16 bits).

What goes in and what comes out:

* a path -> the file's pixels as stored (uint8, or uint16 for 16-bit PNG/TIFF) -> the same
  dtype out;
* a uint8 array (0..255) -> uint8; a uint16 array (0..65535) -> uint16;
* a float array, taken in [0, 1] (float32/float64 outside [0, 1] is refused: divide uint8 by
  255 first) -> float32 in [0, 1];
* HW or HWx1 (grey) -> grey; HWx3 (RGB) -> RGB; HWx2 / HWx4 (grey or RGB with alpha) -> the
  alpha is upscaled on its own with MATLAB bicubic and kept.

How each kind of model sees the image (``channels`` and ``upsampled_input`` come from the
registry's meta or :func:`visionfw.inference.infer_model_meta`):

* RGB models take the RGB image (grey is repeated to three channels; the output's channel mean
  is the grey result);
* Y models (SRCNN, VDSR, LapSRN, FSRCNN) take the luma: an RGB image goes to YCbCr (BT.601), Y
  goes through the model and Cb/Cr are upscaled with MATLAB bicubic, as SRCNN's demo does;
* pre-upsampled models (SRCNN, VDSR) get their input bicubic-upscaled to the output size first.

Big images run in tiles with the exact overlap (:func:`visionfw.inference.receptive_radius`), so
the result equals whole-image inference for local models.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from visionfw.data.image_io import to_float01, to_uint8
from visionfw.errors import ConfigError, DataError

if TYPE_CHECKING:
    import keras

__all__ = ["upscale", "read_photo", "write_photo", "AUTO_TILE", "PHOTO_SUFFIXES"]

# tile="auto": images with more model-input pixels than AUTO_TILE**2 run in AUTO_TILE tiles
AUTO_TILE = 512
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# --------------------------------------------------------------------------- files


def read_photo(path, max_pixels=None):
    """The pixels of an image file as stored: HxWxC uint8 or uint16 (16-bit PNG/TIFF), C = 1
    (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); palette images become RGB(A).  An image whose
    header claims more than ``max_pixels`` (None: the library default) is a DataError before decoding."""
    from PIL import UnidentifiedImageError

    from visionfw.data.image_io import check_image_pixels, open_pil, png_header

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file.")
    try:
        header = png_header(path)
        if header is not None:
            check_image_pixels(path, header[2], header[3], max_pixels)
            if header[0] == 16:
                return _read_png16(path)
        with open_pil(path, max_pixels) as im:
            im.load()
            mode = im.mode
            if mode.startswith("I"):
                data = np.asarray(im)
                if data.min() < 0 or data.max() > 65535:
                    raise DataError(f"{path}: 32-bit integer pixels outside 0..65535; convert it to 8 or 16 bits.")
                return data.astype(np.uint16)[..., None]
            if mode in ("LA", "La"):
                return np.asarray(im.convert("LA"))
            if mode in ("1", "L"):
                return np.asarray(im.convert("L"))[..., None]
            if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info):
                return np.asarray(im.convert("RGBA"))
            return np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as exc:
        raise DataError(
            f"cannot read image {path} ({type(exc).__name__}: {exc}); is it an image? Re-export it as PNG."
        ) from exc


def _read_png16(path):
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise DataError(f"cannot decode the 16-bit PNG {path}; re-save it with an image editor.")
    if data.ndim == 2:
        return data[..., None]
    order = {3: [2, 1, 0], 4: [2, 1, 0, 3]}.get(data.shape[-1])
    return np.ascontiguousarray(data[..., order] if order else data)


def _encode(img, suffix):
    """File bytes of ``img`` (uint8/uint16 HxWxC) in the format of ``suffix``; JPEG drops alpha
    and 16 bits (it holds neither)."""
    if suffix in (".jpg", ".jpeg"):
        if img.dtype == np.uint16:
            img = np.floor(img.astype(np.float64) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
        img = img[..., :1] if img.shape[-1] == 2 else img[..., :3]
    if img.dtype == np.uint16:  # PIL cannot write 16-bit colour: OpenCV can (PNG, TIFF)
        import cv2

        if img.shape[-1] == 2:  # no grey + alpha in OpenCV: RGBA
            img = np.concatenate([np.repeat(img[..., :1], 3, -1), img[..., 1:]], -1)
        order = {3: [2, 1, 0], 4: [2, 1, 0, 3]}.get(img.shape[-1])
        ok, data = cv2.imencode(suffix, img[..., order] if order else img[..., 0])
        if not ok:
            raise DataError(f"cannot write a 16-bit {suffix} image; use .png or .tif.")
        return data.tobytes()
    from PIL import Image

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[-1]]
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}[suffix]
    if fmt == "BMP" and mode == "LA":
        img, mode = np.concatenate([np.repeat(img[..., :1], 3, -1), img[..., 1:]], -1), "RGBA"
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if mode == "L" else img, mode).save(buf, format=fmt)
    return buf.getvalue()


def write_photo(path, img):
    """Writes ``img`` (uint8 or uint16 HxWxC, C in 1..4) to ``path`` atomically, with the file
    mode a new file gets (0666 less the umask, not mkstemp's 0600); the format follows the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PHOTO_SUFFIXES:
        raise ConfigError(f"{path}: cannot tell the image format; use one of {', '.join(PHOTO_SUFFIXES)}.")
    from visionfw.files import write_file_atomic

    data = _encode(np.asarray(img), suffix)
    return write_file_atomic(path, lambda fh: fh.write(data))


# --------------------------------------------------------------------------- the model


def _as_unit_float(image):
    """(HxWxC float64 in [0, 1], dtype to return, whether the input was HW)."""
    arr = np.asarray(image)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
        raise DataError(f"upscale: image of shape {arr.shape}; pass HW or HWC with 1-4 channels.")
    if arr.dtype in (np.uint8, np.uint16):
        return to_float01(arr, np.float64), arr.dtype.type, squeeze
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise DataError(
                f"upscale: float image values span [{lo:.3g}, {hi:.3g}]; floats are taken in [0, 1] "
                "(divide a 0..255 image by 255, or pass the uint8 array)."
            )
        return np.clip(arr.astype(np.float64), 0.0, 1.0), np.float32, squeeze
    raise DataError(f"upscale: dtype {arr.dtype}; pass uint8, uint16 or float in [0, 1].")


def _from_unit_float(x, dtype):
    x = np.clip(x, 0.0, 1.0)
    if dtype == np.uint8:
        return to_uint8(x)
    if dtype == np.uint16:
        return np.floor(x * 65535.0 + 0.5).astype(np.uint16)
    return x.astype(np.float32)


def model_meta(model, scale=None, channels=None, upsampled_input=None):
    """``(channels, upsampled_input, scale)`` of an SR model: what is given, the rest from a probe
    (:func:`visionfw.inference.infer_model_meta`); ConfigError when ``scale`` contradicts the model."""
    if channels is None or upsampled_input is None or (scale is None and not upsampled_input):
        from visionfw.inference import infer_model_meta

        probe = infer_model_meta(model)
        channels = probe["channels"] if channels is None else channels
        upsampled_input = probe["upsampled_input"] if upsampled_input is None else upsampled_input
        if not upsampled_input:
            ratio = probe["ratio"]
            if scale is not None and int(scale) != ratio:
                raise ConfigError(
                    f"scale={scale}, but model {model.name!r} upscales by {ratio:g}; load the model "
                    f"built for x{scale} (or leave scale unset)."
                )
            scale = int(round(ratio))
    if channels not in ("y", "rgb"):
        raise ConfigError(f"channels={channels!r}; use 'y' or 'rgb'.")
    if not scale or int(scale) < 1:
        raise ConfigError(f"model {model.name!r} takes pre-upsampled input, so it needs scale= (e.g. scale=2).")
    return channels, bool(upsampled_input), int(scale)


def _bicubic(a, scale):
    """MATLAB bicubic upscaling of HWC ``a`` by ``scale`` (HWC out)."""
    from visionfw.data.imresize import imresize_numpy

    out = imresize_numpy(a, float(scale))
    return out[..., None] if out.ndim == 2 else out


def _network_input(colour, channels, upsampled_input, scale):
    """``(what the model takes, bicubic chroma or None)`` of the colour channels: RGB for RGB models (grey
    repeated), Y for Y models (Cb/Cr upscaled apart), bicubic-upscaled first for pre-upsampled models."""
    from visionfw.data.color import rgb_to_ycbcr

    chroma = None
    if channels == "y":
        if colour.shape[-1] == 3:
            ycc = rgb_to_ycbcr(colour)
            chroma = _bicubic(ycc[..., 1:], scale)
            net_in = ycc[..., :1]
        else:
            net_in = colour
    else:
        net_in = np.repeat(colour, 3, -1) if colour.shape[-1] == 1 else colour
    if upsampled_input:
        net_in = _bicubic(net_in, scale)
    return net_in, chroma


def _colour_output(out, chroma, channels, colour_channels):
    """The model output as the input's colour channels: Y joined to the chroma, or RGB averaged to grey."""
    from visionfw.data.color import ycbcr_to_rgb

    if chroma is not None:
        return ycbcr_to_rgb(np.concatenate([out[..., :1], chroma], -1))
    if channels == "rgb" and colour_channels == 1:
        return out.mean(-1, keepdims=True)
    return out


def upscale(
    model: keras.Model,
    image: str | Path | np.ndarray,
    scale: int | None = None,
    *,
    channels: str | None = None,
    upsampled_input: bool | None = None,
    tile: int | str | None = "auto",
    tile_overlap: int | None = None,
    self_ensemble: bool = False,
    precision: str = "float32",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``image`` upscaled ``scale`` times by the SR ``model`` (see the module docstring for the input range).

    Args:
      model: a single-input SR ``keras.Model`` (e.g. ``visionfw.get_model('imdn', scale=4, pretrained=True)``).
      image: a path, or an HW/HWC array: uint8 (0..255), uint16 (0..65535) or float in [0, 1];
        1-4 channels (grey, grey+alpha, RGB, RGBA).
      scale: the factor; default the model's own (needed for pre-upsampled models such as VDSR).
      channels, upsampled_input: what the model takes ('y'/'rgb', bool); default from a probe.
      tile: input pixels per tile; ``'auto'`` tiles images over ``AUTO_TILE**2`` model-input pixels
        in ``AUTO_TILE`` tiles; None: the whole image at once.
      tile_overlap: context pixels per tile (default the receptive radius: exact for local models).
      self_ensemble: average the 8 flips/rotations (EDSR's "+", 8x the time).
      precision: 'float32' or 'bfloat16' (:func:`visionfw.inference.with_precision`).
      progress: ``fn(done, total)`` called after each forward pass (tiles x ensemble passes).

    Returns:
      The upscaled image with the input's dtype and layout (a path gives uint8, or uint16 for a 16-bit file).

    Raises:
      DataError: an unreadable image, an unsupported dtype or range, an output of the wrong size.
      ConfigError: a scale that contradicts the model.
    """
    from visionfw.inference import super_resolve, with_precision

    if isinstance(image, (str, Path)):
        image = read_photo(image)
    x, dtype, squeeze = _as_unit_float(image)
    channels, upsampled_input, s = model_meta(model, scale, channels, upsampled_input)
    colour_channels = 1 if x.shape[-1] in (1, 2) else 3
    colour, alpha = x[..., :colour_channels], x[..., colour_channels:]
    net_in, chroma = _network_input(colour, channels, upsampled_input, s)
    if tile == "auto":
        tile_px = AUTO_TILE if net_in.shape[0] * net_in.shape[1] > AUTO_TILE**2 else None
    else:
        tile_px = None if tile is None else int(tile)
    out = super_resolve(
        with_precision(model, precision),
        net_in.astype(np.float32),
        tile=tile_px,
        tile_overlap=tile_overlap,
        self_ensemble=self_ensemble,
        progress=progress,
    )
    out = np.asarray(out, np.float64)
    want = (x.shape[0] * s, x.shape[1] * s)
    if out.shape[:2] != want:
        raise DataError(
            f"upscale: model {model.name!r} gave {out.shape[0]}x{out.shape[1]} for a "
            f"{x.shape[0]}x{x.shape[1]} image at x{s} (expected {want[0]}x{want[1]}); is it built for x{s}?"
        )
    out = _colour_output(out, chroma, channels, colour_channels)
    if alpha.shape[-1]:
        out = np.concatenate([np.clip(out, 0.0, 1.0), _bicubic(alpha, s)], -1)
    result = _from_unit_float(out, dtype)
    return result[..., 0] if squeeze else result
