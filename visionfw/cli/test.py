"""`visionfw test`: evaluate a model on benchmark sets with the papers' exact protocol.

visionfw test --model=srcnn_915 --weights=x3.mat --test_data=Set5,Set14 --scale=3
visionfw test --weights=my_model.keras --test_data=Set5 --scale=4 --protocol=edsr
visionfw test --model=imdn --weights=IMDN_x2.pth --scale=2
visionfw test --model=my_models.py:my_net --model_kwargs=scale=2 --weights=my_net.pth --scale=2
"""

from dataclasses import dataclass, field

from visionfw.cli.common import model_fields, shuffle_order_field
from visionfw.data.paths import data_dir_help


@dataclass
class EvaluateConfig:
    """The flags of `visionfw test` (see :func:`visionfw.evaluate.evaluate_model`)."""

    model: str | None
    model_kwargs: dict
    imports: list
    model, model_kwargs, imports = model_fields()
    weights: str | None = field(
        default=None,
        metadata={
            "help": "Weights: official .mat (SRCNN/VDSR/LapSRN), .keras, .weights.h5, or a PyTorch state dict "
            "(.pth/.pt, read without torch, or .npz). For a registry --model, a file in the format of its "
            "official release loads with the family's options and hyper-parameters, as --pretrained."
        },
    )
    pretrained: bool = field(
        default=False,
        metadata={
            "help": "Load --model's official weights (searched in $VISIONFW_WEIGHTS, ~/.visionfw/weights, then "
            "weights/ on the data search path; sha256 checked), with the loading options of the registry."
        },
    )
    test_data: list = field(
        default_factory=lambda: ["Set5", "Set14"],
        metadata={"help": "Benchmark sets (names or folders), comma-separated."},
    )
    scale: list[int] | None = field(
        default=None,
        metadata={
            "help": "SR factor(s), e.g. 3 or 2,3,4 (several only for pre-upsampled models such as VDSR). "
            "Default: the model's own."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": data_dir_help("benchmark sets")},
    )
    protocol: str = field(
        default="auto",
        metadata={
            "help": "Evaluation protocol: 'srcnn' (SRCNN/VDSR MATLAB code: uint8 Y, float bicubic), 'edsr' "
            "(EDSR/RCAN code: uint8 RGB LR), or 'auto': the protocol of the model's published numbers when the "
            "registry knows it, else srcnn.",
            "choices": ("auto", "srcnn", "edsr"),
        },
    )
    lr_dir: str | None = field(
        default=None, metadata={"help": "--protocol=edsr: folder of ready-made LR images (X<s>/<name>x<s>.png)."}
    )
    per_image: bool = field(default=False, metadata={"help": "Print one row per image too."})
    save_images: str | None = field(
        default=None, metadata={"help": "Write SR images to DIR/<set>/x<scale>/<name>.png."}
    )
    results: str | None = field(
        default=None, metadata={"help": "Write the results (with the weights' sha256) to this JSON file."}
    )
    report: str | None = field(
        default=None,
        metadata={
            "help": "Write a visual HTML report to this file (e.g. --report=report.html): numbers per set and "
            "image, crops HR | bicubic | model where the model gains most and where it errs most."
        },
    )
    tile: int | None = field(
        default=None, metadata={"help": "Tiled inference with tiles of N input pixels (bounded memory)."}
    )
    tile_overlap: int | None = field(
        default=None,
        metadata={
            "help": "Context pixels around each tile (default: the model's receptive radius, which makes tiling "
            "exact for local models)."
        },
    )
    texture_metrics: list = field(
        default_factory=list,
        metadata={
            "help": "Also measure texture: niqe (no-reference; our pristine model unless you have the authors'), "
            "lpips (AlexNet) or lpips_vgg (needs the LPIPS weights, see README), comma-separated."
        },
    )
    precision: str = field(
        default="float32",
        metadata={
            "help": "Compute the model in float32 or bfloat16 (float32 output head; about 2x faster on CPUs with "
            "AVX512_BF16, 0.00-0.15 dB lower on the official weights: keep float32 to reproduce papers).",
            "choices": ("float32", "bfloat16"),
        },
    )
    self_ensemble: bool = field(default=False, metadata={"help": "Average over the 8 flips/rotations (EDSR's '+')."})
    shuffle_order: str | None = shuffle_order_field()
    allow_random: bool = field(
        default=False,
        metadata={
            "help": "Evaluate without --weights (random weights: the numbers mean nothing; for smoke tests only)."
        },
    )
    progress: bool = field(
        default=True,
        metadata={
            "help": "Show progress on stderr: a live bar on a terminal, else a plain line every --log_every images."
        },
    )
    log_every: int = field(
        default=25, metadata={"help": "Images between two progress lines when the output is not a terminal."}
    )


CONFIG = EvaluateConfig


def _build(config, scale):
    """(LoadedModel, meta) for one scale (see :func:`visionfw.loading.load_model`)."""
    from visionfw.inference import infer_model_meta
    from visionfw.loading import load_model

    loaded = load_model(
        config.model,
        weights=config.weights,
        pretrained=config.pretrained,
        scale=scale,
        model_kwargs=config.model_kwargs,
        imports=config.imports,
        data_dir=config.data_dir,
        shuffle_order=config.shuffle_order,
    )
    meta = dict(loaded.meta)
    if meta.get("channels") is None or meta.get("upsampled_input") is None:  # a .keras file, a bare spec
        probe = infer_model_meta(loaded.model)
        meta = {
            "channels": probe["channels"],
            "upsampled_input": probe["upsampled_input"],
            "scale": meta.get("scale") or (None if probe["upsampled_input"] else int(probe["ratio"])),
        }
    meta["weights"] = loaded.weights
    return loaded, meta


def _scales(config):
    """The scales to run (``[None]``: the model's own); ConfigError for flags that cannot work."""
    from visionfw.errors import ConfigError

    if not (config.weights or config.pretrained or config.allow_random):
        raise ConfigError(
            "--weights=PATH or --pretrained is required: a model with random weights gives "
            "meaningless numbers. Pass --allow_random to run anyway (smoke tests)."
        )
    if config.model is None and config.weights is None:
        raise ConfigError("give --model=NAME and/or --weights=FILE.keras.")
    scales = list(config.scale or [])
    if any(s < 1 for s in scales):
        raise ConfigError(f"--scale={','.join(map(str, scales))}: scales must be positive.")
    if len(scales) > 1 and config.model is None:
        raise ConfigError("several --scale values need --model (one model per scale).")
    return scales or [None]


def _evaluate_scale(config, scale, several, save_images):
    """Builds and evaluates the model at one scale and prints its table; returns ``(results, run)``
    where ``run`` holds the model name, its weights, the scale and the protocol."""
    from visionfw.errors import ConfigError
    from visionfw.evaluate import evaluate_model, format_table
    from visionfw.loading import resolve_protocol

    loaded, meta = _build(config, scale)
    model_name = loaded.name
    protocol, why = resolve_protocol(config.protocol, loaded.info)
    s = scale or meta.get("scale")
    if not s:
        raise ConfigError("--scale is required for this model (it does not fix its own scale).")
    if several and not meta.get("upsampled_input"):
        raise ConfigError(
            f"model {model_name!r} takes LR input, so its weights fit one scale; give one --scale per run."
        )
    results = evaluate_model(
        loaded.model,
        config.test_data,
        s,
        protocol=protocol,
        data_dir=config.data_dir,
        channels=meta.get("channels"),
        upsampled_input=meta.get("upsampled_input"),
        per_image=config.per_image,
        save_images=save_images,
        tile=config.tile,
        tile_overlap=config.tile_overlap,
        self_ensemble=config.self_ensemble,
        progress=config.progress,
        lr_dir=config.lr_dir,
        log_every=config.log_every,
        texture_metrics=config.texture_metrics,
        precision=config.precision,
    )
    weights = meta.get("weights")
    print(f"{model_name} x{s}" + (f" ({weights})" if weights else " (RANDOM WEIGHTS)"))
    print(f"protocol: {protocol} ({why})")
    print(format_table(results))
    print()
    return results, {"model_name": model_name, "weights": weights, "scale": s, "protocol": protocol}


def _write_report(config, results, run, save_images, several):
    """Writes the HTML report of one scale's results (``<stem>_x<scale>`` when there are several)."""
    from pathlib import Path

    from visionfw.studies.report_html import write_eval_report

    s = run["scale"]
    page = Path(config.report)
    page = page.with_name(f"{page.stem}_x{s}{page.suffix}") if several else page
    where = {"sources": config.test_data, "data_dir": config.data_dir, "weights": run["weights"]}
    page = write_eval_report(results, run["model_name"], save_images, page, **where)
    print(f"report: {page}")


def main(command, config):
    from visionfw.evaluate import write_results_json

    runs = _scales(config)
    several = len(runs) > 1
    all_results = {}
    save_images = config.save_images
    if config.report and not save_images:
        import tempfile

        save_images = tempfile.mkdtemp(prefix="visionfw-report-")  # the report reads the outputs from there
    run = {}
    for scale in runs:
        results, run = _evaluate_scale(config, scale, several, save_images)
        for ds, r in results.items():
            all_results[f"{ds}_x{run['scale']}" if several else ds] = r
        if config.report:
            _write_report(config, results, run, save_images, several)
    if save_images != config.save_images:
        import shutil

        shutil.rmtree(save_images, ignore_errors=True)
    if config.results:
        scale_field = runs[0] if len(runs) == 1 else ",".join(map(str, runs))
        path = write_results_json(
            config.results,
            all_results,
            model_name=run["model_name"],
            weights_path=run["weights"],
            scale=scale_field if scale_field else run["scale"],
            protocol=run["protocol"],
            extra={"random_weights": not run["weights"]},
        )
        print(f"results written to {path}")
    return 0
