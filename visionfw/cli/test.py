"""`visionfw test`: evaluate a model on benchmark sets with the papers' exact protocol.

    visionfw test --model=srcnn_915 --weights=x3.mat --test_data=Set5,Set14 --scale=3
    visionfw test --weights=my_model.keras --test_data=Set5 --scale=4 --protocol=edsr
    visionfw test --model=imdn --pretrained --scale=2 --protocol=edsr
"""
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class EvaluateConfig:
    """The flags of `visionfw test` (see :func:`visionfw.evaluate.evaluate_model`)."""

    model: Optional[str] = field(default=None, metadata={
        "help": "Registry name of the model (see `visionfw models`); optional when --weights is a .keras "
                "model file."})
    weights: Optional[str] = field(default=None, metadata={
        "help": "Weights: official .mat (SRCNN/VDSR), .keras, .weights.h5, or a PyTorch state dict "
                "(.pth/.pt with torch installed, or .npz)."})
    pretrained: bool = field(default=False, metadata={
        "help": "Load --model's official weights (searched in $VISIONFW_WEIGHTS, ~/.visionfw/weights, then "
                "weights/ on the data search path; sha256 checked), with the loading options of the registry."})
    test_data: list = field(default_factory=lambda: ["Set5", "Set14"], metadata={
        "help": "Benchmark sets (names or folders), comma-separated."})
    scale: Optional[list[int]] = field(default=None, metadata={
        "help": "SR factor(s), e.g. 3 or 2,3,4 (several only for pre-upsampled models such as VDSR). "
                "Default: the model's own."})
    data_dir: Optional[str] = field(default=None, metadata={
        "help": "First place to look for benchmark sets (then $VISIONFW_DATA, ./data, ../shared/data, "
                "~/.visionfw/data)."})
    protocol: str = field(default="srcnn", metadata={
        "help": "Evaluation protocol: 'srcnn' (SRCNN/VDSR MATLAB code: uint8 Y, float bicubic) or 'edsr' "
                "(EDSR/RCAN code: uint8 RGB LR).", "choices": ("srcnn", "edsr")})
    lr_dir: Optional[str] = field(default=None, metadata={
        "help": "--protocol=edsr: folder of ready-made LR images (X<s>/<name>x<s>.png)."})
    per_image: bool = field(default=False, metadata={"help": "Print one row per image too."})
    save_images: Optional[str] = field(default=None, metadata={
        "help": "Write SR images to DIR/<set>/x<scale>/<name>.png."})
    results: Optional[str] = field(default=None, metadata={
        "help": "Write the results (with the weights' sha256) to this JSON file."})
    report: Optional[str] = field(default=None, metadata={
        "help": "Write a visual HTML report to this file (e.g. --report=report.html): numbers per set and "
                "image, crops HR | bicubic | model where the model gains most and where it errs most."})
    tile: Optional[int] = field(default=None, metadata={
        "help": "Tiled inference with tiles of N input pixels (bounded memory)."})
    tile_overlap: Optional[int] = field(default=None, metadata={
        "help": "Context pixels around each tile (default: the model's receptive radius, which makes tiling "
                "exact for local models)."})
    texture_metrics: list = field(default_factory=list, metadata={
        "help": "Also measure texture: niqe (no-reference; our pristine model unless you have the authors'), "
                "lpips (AlexNet) or lpips_vgg (needs the LPIPS weights, see README), comma-separated."})
    precision: str = field(default="float32", metadata={
        "help": "Compute the model in float32 or bfloat16 (float32 output head; about 2x faster on CPUs with "
                "AVX512_BF16, 0.00-0.15 dB lower on the official weights: keep float32 to reproduce papers).",
        "choices": ("float32", "bfloat16")})
    self_ensemble: bool = field(default=False, metadata={
        "help": "Average over the 8 flips/rotations (EDSR's '+')."})
    shuffle_order: str = field(default="torch", metadata={
        "help": "PyTorch weights: the PixelShuffle channel order they were trained with.",
        "choices": ("torch", "tf")})
    allow_random: bool = field(default=False, metadata={
        "help": "Evaluate without --weights (random weights: the numbers mean nothing; for smoke tests only)."})
    progress: bool = field(default=True, metadata={
        "help": "Show progress on stderr: a live bar on a terminal, else a plain line every --log_every images."})
    log_every: int = field(default=25, metadata={
        "help": "Images between two progress lines when the output is not a terminal."})


CONFIG = EvaluateConfig


def _build(config, scale):
    """(model, model name, meta) for one scale."""
    from pathlib import Path

    import visionfw
    from visionfw.errors import ConfigError
    from visionfw.evaluate import infer_model_meta
    from visionfw.registry import get_spec

    weights = config.weights
    if config.pretrained and not config.model:
        raise ConfigError("--pretrained needs --model=NAME (the official weights are the model's).")
    if config.model:
        from visionfw.pretrained import load_pretrained

        info = visionfw.model_info(config.model)
        spec = get_spec(config.model, scale=scale, **(info.hyper_for(scale) if config.pretrained else {}))
        model = visionfw.build_model(spec)
        if config.pretrained:  # as get_model(pretrained=...), with --data_dir and the file's path kept
            weights = str(load_pretrained(model, info, scale, pretrained=weights or True, data_dir=config.data_dir))
        elif weights:
            visionfw.load_weights(model, weights, shuffle_order=config.shuffle_order)
        meta = spec.get("meta", {})
        return model, config.model, {"channels": meta.get("channels"),
                                     "upsampled_input": meta.get("upsampled_input"),
                                     "scale": meta.get("scale"), "weights": weights}
    if not weights or not str(weights).lower().endswith(".keras"):
        raise ConfigError("--model=NAME is needed (only a --weights=FILE.keras model file carries its own "
                          "architecture). `visionfw models` lists the zoo.")
    import keras

    from visionfw.errors import WeightsError
    from visionfw.keras_files import verify_keras_file

    if not Path(weights).is_file():
        raise WeightsError(f"--weights={weights}: no such file.")
    verify_keras_file(weights)  # truncated, CRC, NaN: said before Keras reads it
    try:
        model = keras.saving.load_model(weights, compile=False)
    except Exception as exc:
        raise WeightsError(f"--weights={weights}: cannot load the .keras model ({exc}).") from exc
    meta = infer_model_meta(model)
    return model, Path(weights).stem, {"channels": meta["channels"],
                                       "upsampled_input": meta["upsampled_input"],
                                       "scale": None if meta["upsampled_input"] else int(meta["ratio"]),
                                       "weights": weights}


def main(command, config):
    from visionfw.errors import ConfigError
    from visionfw.evaluate import evaluate_model, format_table, write_results_json

    if not (config.weights or config.pretrained or config.allow_random):
        raise ConfigError("--weights=PATH or --pretrained is required: a model with random weights gives "
                          "meaningless numbers. Pass --allow_random to run anyway (smoke tests).")
    if config.model is None and config.weights is None:
        raise ConfigError("give --model=NAME and/or --weights=FILE.keras.")
    scales = list(config.scale or [])
    if any(s < 1 for s in scales):
        raise ConfigError(f"--scale={','.join(map(str, scales))}: scales must be positive.")
    if len(scales) > 1 and config.model is None:
        raise ConfigError("several --scale values need --model (one model per scale).")
    runs = scales or [None]
    all_results = {}
    save_images = config.save_images
    if config.report and not save_images:
        import tempfile

        save_images = tempfile.mkdtemp(prefix="visionfw-report-")  # the report reads the outputs from there
    model_name = None
    for scale in runs:
        model, model_name, meta = _build(config, scale)
        s = scale or meta.get("scale")
        if not s:
            raise ConfigError("--scale is required for this model (it does not fix its own scale).")
        if len(runs) > 1 and not meta.get("upsampled_input"):
            raise ConfigError(f"model {model_name!r} takes LR input, so its weights fit one scale; give "
                              "one --scale per run.")
        results = evaluate_model(model, config.test_data, s, protocol=config.protocol, data_dir=config.data_dir,
                                 channels=meta.get("channels"), upsampled_input=meta.get("upsampled_input"),
                                 per_image=config.per_image, save_images=save_images, tile=config.tile,
                                 tile_overlap=config.tile_overlap, self_ensemble=config.self_ensemble,
                                 progress=config.progress, lr_dir=config.lr_dir, log_every=config.log_every,
                                 texture_metrics=config.texture_metrics, precision=config.precision)
        weights = meta.get("weights")
        title = f"{model_name} x{s}" + (f" ({weights})" if weights else " (RANDOM WEIGHTS)")
        print(title)
        print(format_table(results))
        print()
        for ds, r in results.items():
            all_results[f"{ds}_x{s}" if len(runs) > 1 else ds] = r
        if config.report:
            from pathlib import Path

            from visionfw.report_html import write_eval_report

            page = Path(config.report)
            page = page.with_name(f"{page.stem}_x{s}{page.suffix}") if len(runs) > 1 else page
            page = write_eval_report(results, model_name, save_images, page, config.test_data, config.data_dir, weights)
            print(f"report: {page}")
    if save_images != config.save_images:
        import shutil

        shutil.rmtree(save_images, ignore_errors=True)
    if config.results:
        scale_field = runs[0] if len(runs) == 1 else ",".join(map(str, runs))
        path = write_results_json(config.results, all_results, model_name, weights,
                                  scale_field if scale_field else s, config.protocol,
                                  extra={"random_weights": not weights})
        print(f"results written to {path}")
    return 0
