"""`visionfw downscale` / `visionfw upscale`: task-aware LR images and their restoration.

    visionfw downscale --model=aetad_skip2 --weights=tad.keras --input=DIR_or_file --output=DIR [--scale=2]
    visionfw upscale   --model=aetad_skip2 --weights=tad.keras --input=LR_DIR_or_file --output=DIR [--scale=2]

``--weights`` is a whole ``.keras`` model saved from training, or a ``.weights.h5`` file for the
zoo model ``--model`` at ``--scale``.  HR inputs are cropped to a multiple of the scale; outputs
are 8-bit PNGs named after the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TadConfig:
    """The flags of `visionfw downscale` and `visionfw upscale`."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "Registry name of the TAD model (see `visionfw models --task=tad`); optional when --weights "
            "is a whole .keras model."
        },
    )
    scale: int | None = field(default=None, metadata={"help": "Downscaling factor (default: the model's own)."})
    weights: str | None = field(
        default=None, metadata={"help": "A .keras model or .weights.h5 file of the trained TAD model."}
    )
    input: str | None = field(default=None, metadata={"help": "An image file or a folder of images."})
    output: str | None = field(default=None, metadata={"help": "Folder the PNGs are written to (created if missing)."})


CONFIG = TadConfig


def load_tad_model(
    model_name: str | None = None, weights: str | None = None, scale: int | None = None
) -> tuple[Any, int, str, int]:
    """A trained TAD model from a ``.keras`` file, or a zoo name plus a weights file.

    Args:
        model_name: The zoo name (unset with a ``.keras`` file).
        weights: A ``.keras`` model or a ``.weights.h5`` file.
        scale: The scale of a zoo model that takes one.

    Returns:
        ``(model, recursions, latent, scale)``.

    Raises:
        WeightsError: The file is missing, damaged, not a TAD model or does not fit the model.
        ConfigError: Neither a ``.keras`` file nor a model name.
    """
    import keras
    import numpy as np

    import visionfw
    import visionfw.tasks.tad  # noqa: F401  (custom layers and blocks for load_model)
    from visionfw.errors import ConfigError, WeightsError
    from visionfw.weights.keras_files import verify_keras_file
    from visionfw.zoo.registry import get_spec

    if weights and str(weights).endswith(".keras"):
        if not Path(weights).is_file():
            raise WeightsError(f"--weights={weights}: no such file.")
        verify_keras_file(weights)  # truncated, CRC, NaN: said before Keras reads it
        model = keras.saving.load_model(weights, safe_mode=True)
        try:
            times = max(1, len(model.get_layer("encoder")._inbound_nodes))
        except ValueError as exc:
            raise WeightsError(f"--weights={weights} is not a TAD model (no 'encoder' sub-model).") from exc
        latent = "luma" if model.outputs[1].shape[-1] == 1 else "bicubic"
        probe = model(np.zeros((1, 64, 64, 3), np.float32))[1]
        return model, times, latent, int(round(64 / probe.shape[1]))
    if not model_name:
        raise ConfigError("--model is required unless --weights is a whole .keras model.")
    spec = get_spec(model_name, scale=scale)
    model = visionfw.build_model(spec)
    if weights:
        if not Path(weights).is_file():
            raise WeightsError(f"--weights={weights}: no such file.")
        from visionfw.weights.loader import load_weights

        try:
            load_weights(model, weights)
        except WeightsError as exc:
            raise WeightsError(
                f"--weights={weights} does not fit {model_name} x{spec['meta']['scale']}: {exc} "
                "Pass the --model/--scale it was trained with."
            ) from exc
    meta = spec["meta"]
    return model, int(meta["recursions"]), meta["latent"], int(meta["scale"])


def _inputs(path):
    from visionfw.data.image_io import list_images
    from visionfw.errors import DataError

    p = Path(path)
    if p.is_dir():
        return list_images(p)
    if p.is_file():
        return [p]
    raise DataError(f"--input={path}: no such file or folder.")


def run(
    command: str, model_name: str | None, weights: str | None, input_path: str, output: str, scale: int | None = None
) -> list[Path]:
    """Runs ``visionfw downscale`` or ``visionfw upscale`` on an image or a folder.

    Args:
        command: ``'downscale'`` (HR -> task-aware LR) or ``'upscale'`` (LR -> restored HR).
        model_name: The zoo name of the TAD model (unset with a ``.keras`` file).
        weights: A trained ``.keras`` model or ``.weights.h5`` file.
        input_path: An image file or a folder of images.
        output: The folder the PNGs are written to (created if missing).
        scale: The scale of a zoo model that takes one.

    Returns:
        The written files.

    Raises:
        ConfigError: ``--input``, ``--output`` or ``--weights`` is missing.
    """
    import numpy as np

    from visionfw.data.image_io import read_image, write_image
    from visionfw.data.imresize import modcrop
    from visionfw.errors import ConfigError
    from visionfw.tasks import tad

    if not input_path or not output:
        raise ConfigError(f"{command} needs --input and --output.")
    if not weights:
        raise ConfigError(
            f"{command} needs --weights (a trained .keras model or .weights.h5 file); "
            "an untrained TAD model would write noise."
        )
    model, times, latent, s = load_tad_model(model_name, weights, scale)
    encoder, decoder = tad.split_model(model, times)
    written = []
    for path in _inputs(input_path):
        img = read_image(path)
        if command == "downscale":
            img = np.repeat(img, 3, -1) if img.shape[-1] == 1 else img[..., :3]
            img = modcrop(img, s) if latent == "bicubic" else img
            out = tad.downscale(encoder, img)
        else:
            want = 1 if latent == "luma" else 3
            if img.shape[-1] != want:
                img = img.mean(-1, keepdims=True) if want == 1 else np.repeat(img[..., :1], 3, -1)
            out = tad.upscale(decoder, img)
        written.append(write_image(Path(output) / f"{Path(path).stem}.png", out))
    return written


def main(command: str, config: TadConfig) -> int:
    """The command: writes the images, prints one line; returns the exit status."""
    files = run(command, config.model, config.weights, config.input, config.output, config.scale)
    print(f"visionfw {command}: wrote {len(files)} image(s) to {config.output}")
    return 0
