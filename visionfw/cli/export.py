"""`visionfw export`: write a trained model as a TF SavedModel, a TFLite file or an ONNX file.

    visionfw export --model=edsr_baseline --scale=2 --weights=runs/edsr/model.keras --format=onnx --output=edsr_x2.onnx
    visionfw export --weights=runs/espcn_x2/model.keras --format=tflite --dtype=fp16 --output=espcn_x2.tflite

The export is run once in its own runtime on a random input and compared with the Keras
model (the max abs difference is printed); see :mod:`visionfw.export`.
"""

from dataclasses import dataclass, field

from visionfw.cli.common import model_fields, shuffle_order_field


@dataclass
class ExportConfig:
    """The flags of `visionfw export` (see :func:`visionfw.export.export_model`)."""

    output: str = field(
        metadata={
            "help": "Where to write: a folder for --format=saved_model, a .tflite or .onnx file (suffix added "
            "when missing)."
        }
    )
    model: str | None
    model_kwargs: dict
    imports: list
    model, model_kwargs, imports = model_fields()
    scale: int | None = field(
        default=None, metadata={"help": "SR factor the model is built for (default: the model's own)."}
    )
    weights: str | None = field(
        default=None,
        metadata={
            "help": "Weights: .keras, .weights.h5, official .mat (SRCNN/VDSR/LapSRN), or a PyTorch state dict "
            "(.pth/.npz). For a registry --model, a file in the format of its official release loads with the "
            "family's options and hyper-parameters, as --pretrained."
        },
    )
    pretrained: bool = field(
        default=False,
        metadata={
            "help": "Load --model's official weights (found and hash-checked as by `visionfw test --pretrained`)."
        },
    )
    format: str = field(
        default="saved_model", metadata={"help": "Export format.", "choices": ("saved_model", "tflite", "onnx")}
    )
    dtype: str = field(
        default="fp32",
        metadata={
            "help": "fp32, or fp16 (SavedModel/ONNX: float16 weights and compute; TFLite: float16 weights, "
            "dequantised on CPU). Inputs and outputs stay float32.",
            "choices": ("fp32", "fp16"),
        },
    )
    input_size: list[int] | None = field(
        default=None,
        metadata={
            "help": "H,W: fix the input size (default: any size; TFLite needs it for models with BicubicResize)."
        },
    )
    opset: int = field(default=17, metadata={"help": "ONNX opset."})
    check: bool = field(
        default=True,
        metadata={
            "help": "Run the export on a random input and fail if it differs from the Keras model beyond the "
            "tolerance (fp32 1e-4, fp16 3e-2 of max(1, max |output|), or 10x the Keras model's own eager vs "
            "tf.function difference if larger)."
        },
    )
    shuffle_order: str | None = shuffle_order_field()
    allow_random: bool = field(
        default=False, metadata={"help": "Export without --weights (random weights; for smoke tests only)."}
    )


CONFIG = ExportConfig


def build(config):
    """(model, name) from --model/--scale/--weights/--pretrained (see :func:`visionfw.loading.load_model`)."""
    from visionfw.errors import ConfigError
    from visionfw.loading import load_model

    if not (config.weights or config.pretrained or config.allow_random):
        raise ConfigError(
            "--weights=PATH or --pretrained is required: exporting random weights is pointless. Pass "
            "--allow_random to export anyway (smoke tests)."
        )
    loaded = load_model(
        config.model,
        weights=config.weights,
        pretrained=config.pretrained,
        scale=config.scale,
        model_kwargs=config.model_kwargs,
        imports=config.imports,
        shuffle_order=config.shuffle_order,
    )
    return loaded.model, loaded.name


def main(command, config):
    from visionfw.errors import ConfigError
    from visionfw.export import check_export, export_model

    size = config.input_size
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"--input_size={','.join(map(str, size))}: write H,W (two positive integers).")
    model, name = build(config)
    shape = tuple(size) if size else None
    path = export_model(
        model,
        config.output,
        format=config.format,
        dtype=config.dtype,
        input_shape=shape,
        opset=config.opset,
        check=False,
    )
    size_text = f"{shape[0]}x{shape[1]}" if shape else "any HxW"
    print(f"{name}: {config.format} ({config.dtype}, input {size_text}) written to {path}")
    if config.check:
        r = check_export(model, path, format=config.format, dtype=config.dtype, input_shape=shape)
        print(
            f"check: max |export - keras| = {r['max_abs_diff']:.3g} on a {r['size'][0]}x{r['size'][1]} random "
            f"input (max |output| {r['max_abs_ref']:.3g}, tolerance {r['tolerance']:.3g}; Keras eager vs "
            f"tf.function {r['keras_noise']:.3g})"
        )
        if not r["ok"]:
            raise ConfigError(
                f"the export at {path} differs from the Keras model beyond the tolerance; a converter "
                "bug: try another --format, and report it with the model's spec."
            )
    return 0
