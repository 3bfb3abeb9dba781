"""`visionfw upscale`: upscale your own images with any SR model (TAD models restore their LR images).

    visionfw upscale --model=imdn --pretrained --scale=4 --input=photo.png --output=photo_x4.png
    visionfw upscale --weights=runs/espcn_x2/model.keras --input=photos/ --output=photos_x2/
    visionfw upscale --model=vdsr --weights=VDSR_Official.mat --scale=3 --input='shots/*.jpg' --output=out/
    visionfw upscale --model=aetad_skip2 --weights=runs/tad/model.keras --input=lr/ --output=restored/

The model: ``--model=NAME --pretrained`` (the official weights, found on the data search path),
``--model=NAME --weights=FILE`` (.keras, .weights.h5, .pth/.pt/.npz, .mat), or a whole
``--weights=FILE.keras`` alone.  A TAD model (task ``tad``, or a .keras with an ``encoder``)
restores task-aware LR images as before (:mod:`visionfw.cli.downscale`).  The image work is
:func:`visionfw.upscale` (see :mod:`visionfw.upscaling`): 16-bit in -> 16-bit out, grey stays grey,
alpha is upscaled on its own with bicubic, Y models (SRCNN, VDSR, LapSRN, FSRCNN) upscale the luma
while Cb/Cr get MATLAB bicubic, and big images run in tiles with the exact overlap.
"""

from dataclasses import dataclass, field
from pathlib import Path

from visionfw.cli.common import model_fields
from visionfw.data.paths import data_dir_help


@dataclass
class UpscaleConfig:
    """The flags of `visionfw upscale`."""

    input: str | None = field(
        default=None,
        metadata={"help": "An image file, a folder of images, or a quoted glob ('shots/*.jpg') (required)."},
    )
    output: str | None = field(
        default=None,
        metadata={
            "help": "An image file (one input; the suffix picks the format) or a folder (created; <name>.png per "
            "input). Never one of the inputs (required)."
        },
    )
    model: str | None
    model_kwargs: dict
    imports: list
    model, model_kwargs, imports = model_fields()
    weights: str | None = field(
        default=None,
        metadata={
            "help": "Weights: a whole .keras model, or for --model a .weights.h5, .pth/.pt/.npz (PyTorch state dict) "
            "or official .mat file."
        },
    )
    pretrained: bool = field(
        default=False,
        metadata={
            "help": "Load --model's official weights (searched in $VISIONFW_WEIGHTS, ~/.visionfw/weights, then "
            "weights/ on the data search path; sha256 checked)."
        },
    )
    scale: int | None = field(
        default=None,
        metadata={"help": "Upscaling factor (default: the model's own; needed for pre-upsampled models such as VDSR)."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": data_dir_help("--pretrained weights")},
    )
    tile: int | None = field(
        default=None,
        metadata={
            "help": "Input pixels per tile (default: 512 for images over 512x512 model-input pixels, else whole); "
            "0 runs every image whole."
        },
    )
    tile_overlap: int | None = field(
        default=None,
        metadata={
            "help": "Context pixels around each tile (default: the model's receptive radius: tiles then give the "
            "whole-image result for local models)."
        },
    )
    precision: str = field(
        default="float32",
        metadata={
            "help": "Compute the model in float32 or bfloat16 (float32 head; faster on CPUs with AVX512_BF16).",
            "choices": ("float32", "bfloat16"),
        },
    )
    self_ensemble: bool = field(
        default=False, metadata={"help": "Average the 8 flips/rotations (EDSR's '+'; 8x the time)."}
    )
    max_image_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Refuse input images whose header claims more pixels than this, before decoding (default: "
            "80,000,000)."
        },
    )
    progress: bool = field(
        default=True,
        metadata={"help": "A progress bar per image on a terminal (tiles x passes), else one line per image."},
    )


CONFIG = UpscaleConfig
_GLOB = "*?["


def _is_tad(config):
    """True for a TAD model by registry name (a .keras file is told apart after loading)."""
    from visionfw.loading import is_model_reference

    if not config.model or is_model_reference(config.model):
        return False
    from visionfw.zoo.registry import model_entry

    return model_entry(config.model).task == "tad"


def plan(input_spec, output):
    """``[(input path, output path)]`` for ``--input`` / ``--output``; ConfigError/DataError when
    nothing matches, when several inputs would go to one file, or when an output is an input."""
    import glob

    from visionfw.errors import ConfigError, DataError
    from visionfw.upscaling import PHOTO_SUFFIXES

    src = Path(input_spec)
    if any(c in input_spec for c in _GLOB):
        inputs = sorted(
            Path(p) for p in glob.glob(input_spec) if Path(p).is_file() and Path(p).suffix.lower() in PHOTO_SUFFIXES
        )
        if not inputs:
            raise DataError(f"--input={input_spec}: no image file matches ({', '.join(PHOTO_SUFFIXES)}).")
    elif src.is_dir():
        inputs = sorted(
            p
            for p in src.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES
        )
        if not inputs:
            raise DataError(f"--input={input_spec}: the folder holds no image files ({', '.join(PHOTO_SUFFIXES)}).")
    elif src.is_file():
        inputs = [src]
    else:
        raise DataError(f"--input={input_spec}: no such file or folder.")
    out = Path(output)
    to_file = out.suffix.lower() in PHOTO_SUFFIXES and not out.is_dir()
    if to_file and (len(inputs) > 1 or src.is_dir()):
        raise ConfigError(
            f"--output={output} is one file but --input={input_spec} is several images; give a folder as --output."
        )
    pairs = [(p, out if to_file else out / f"{p.stem}.png") for p in inputs]
    seen = {}
    resolved_inputs = {p.resolve() for p in inputs}
    for src_path, dst in pairs:
        if dst.resolve() in resolved_inputs:
            raise ConfigError(f"--output={output} would overwrite the input {dst}; write the result elsewhere.")
        if dst in seen:
            raise ConfigError(
                f"{seen[dst]} and {src_path} would both be written to {dst}; upscale them to different folders."
            )
        seen[dst] = src_path
    return pairs


def check(config):
    """Flags and paths, before TensorFlow is imported."""
    from visionfw.errors import ConfigError

    if not config.input or not config.output:
        raise ConfigError("upscale needs --input=FILE|DIR|GLOB and --output=FILE|DIR.")
    if config.pretrained and not config.model:
        raise ConfigError("--pretrained needs --model=NAME (the official weights are the model's).")
    if not (config.pretrained or config.weights):
        raise ConfigError(
            "give --model=NAME --pretrained, --model=NAME --weights=FILE, or --weights=FILE.keras: "
            "a model with random weights would write noise."
        )
    if not config.model and not str(config.weights).lower().endswith(".keras"):
        raise ConfigError(
            f"--weights={config.weights} holds weights only: add --model=NAME (only a .keras file "
            "carries its own architecture). `visionfw models` lists the zoo."
        )
    if config.scale is not None and config.scale < 1:
        raise ConfigError(f"--scale={config.scale} must be a positive integer.")
    for name in ("tile", "tile_overlap"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name}={value} must be >= 0.")
    if not _is_tad(config):
        plan(config.input, config.output)


def load_sr_model(config):
    """``(keras model, label, meta)`` for the upscale flags, through the one loading path
    (:func:`visionfw.loading.load_model`): ``meta`` holds the ``channels``, ``upsampled_input`` and
    ``scale`` the spec states (None where unknown: a .keras alone), and ``tad`` True for a TAD model."""
    from visionfw.loading import load_model

    loaded = load_model(
        config.model,
        weights=config.weights,
        pretrained=config.pretrained,
        scale=config.scale,
        model_kwargs=config.model_kwargs,
        imports=config.imports,
        data_dir=config.data_dir,
    )
    net = loaded.model
    is_tad = getattr(loaded.info, "task", None) == "tad" or any(layer.name == "encoder" for layer in net.layers)
    label = f"{loaded.name} ({loaded.weights})" if config.model else str(loaded.weights)
    return net, label, {**{k: loaded.meta.get(k) for k in ("channels", "upsampled_input", "scale")}, "tad": is_tad}


def main(command, config):
    import time

    from visionfw.console import Progress, say
    from visionfw.upscaling import model_meta, read_photo, upscale, write_photo

    if _is_tad(config):
        return _tad(command, config)
    net, label, meta = load_sr_model(config)
    if meta["tad"]:
        return _tad(command, config)
    pairs = plan(config.input, config.output)
    channels, upsampled, scale = model_meta(
        net,
        config.scale or (meta["scale"] if meta["upsampled_input"] else None),
        meta["channels"],
        meta["upsampled_input"],
    )
    from visionfw.inference import with_precision

    net = with_precision(net, config.precision)
    tile = "auto" if config.tile is None else (config.tile or None)
    for i, (src, dst) in enumerate(pairs, 1):
        pixels = read_photo(src, config.max_image_pixels)
        bar = Progress(1, f"upscale {src.name} x{scale} ({i}/{len(pairs)})", unit="pass", enabled=config.progress)

        def progress(done, total, bar=bar):
            bar.total = total
            if bar.bar is not None:
                bar.bar.total = total
            bar.update(done)

        start = time.perf_counter()
        out = upscale(
            net,
            pixels,
            scale,
            channels=channels,
            upsampled_input=upsampled,
            tile=tile,
            tile_overlap=config.tile_overlap,
            self_ensemble=config.self_ensemble,
            progress=progress,
        )
        bar.close(line=False)
        write_photo(dst, out)
        bits = "16-bit " if out.dtype.name == "uint16" else ""
        if config.progress:
            say(
                f"upscale {src.name} ({i}/{len(pairs)}): {pixels.shape[1]}x{pixels.shape[0]} -> {dst} "
                f"({out.shape[1]}x{out.shape[0]} {bits}{_kind(out)}) in {time.perf_counter() - start:.1f} s"
            )
    print(
        f"visionfw upscale: wrote {len(pairs)} image(s) with {label}, x{scale}"
        + (", Y through the model, Cb/Cr bicubic" if channels == "y" else "")
    )
    return 0


def _kind(img):
    return {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}[img.shape[-1] if img.ndim == 3 else 1]


def _tad(command, config):
    from visionfw.cli import downscale

    files = downscale.run(command, config.model, config.weights, config.input, config.output, config.scale)
    print(f"visionfw {command}: wrote {len(files)} image(s) to {config.output} (TAD restoration)")
    return 0
