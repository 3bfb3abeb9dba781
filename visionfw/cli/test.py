"""`visionfw test`: evaluate a model on benchmark sets with the papers' exact protocol.

    visionfw test --model=srcnn_915 --weights=x3.mat --test_data=Set5,Set14 --scale=3
    visionfw test --weights=my_model.keras --test_data=Set5 --scale=4 --protocol=edsr
"""
from absl import flags

from visionfw.cli.common import define_flag

FLAGS = flags.FLAGS
define_flag("string", "model", None, "Registry name of the model (see `visionfw models`); optional when "
                    "--weights is a .keras model file.")
define_flag("string", "weights", None, "Weights: official .mat (SRCNN/VDSR), .keras, .weights.h5, or a "
                    "PyTorch state dict (.pth/.pt with torch installed, or .npz).")
define_flag("list", "test_data", ["Set5", "Set14"], "Benchmark sets (names or folders), comma-separated.")
define_flag("list", "scale", None, "SR factor(s), e.g. 3 or 2,3,4 (several only for pre-upsampled "
                  "models such as VDSR). Default: the model's own.")
define_flag("string", "data_dir", None, "Folder holding the benchmark sets (default: $VISIONFW_DATA, "
                    "../shared/data/benchmark, ~/.visionfw/data).")
define_flag("enum", "protocol", "srcnn", enum_values=["srcnn", "edsr"], help_text="Evaluation protocol: 'srcnn' (SRCNN/VDSR "
                  "MATLAB code: uint8 Y, float bicubic) or 'edsr' (EDSR/RCAN code: uint8 RGB LR).")
define_flag("string", "lr_dir", None, "--protocol=edsr: folder of ready-made LR images (X<s>/<name>x<s>.png).")
define_flag("boolean", "per_image", False, "Print one row per image too.")
define_flag("string", "save_images", None, "Write SR images to DIR/<set>/x<scale>/<name>.png.")
define_flag("string", "results", None, "Write the results (with the weights' sha256) to this JSON file.")
define_flag("integer", "tile", None, "Tiled inference with tiles of N input pixels (bounded memory).")
define_flag("integer", "tile_overlap", None, "Context pixels around each tile (default: the model's "
                     "receptive radius, which makes tiling exact for local models).")
define_flag("boolean", "self_ensemble", False, "Average over the 8 flips/rotations (EDSR's '+').")
define_flag("enum", "shuffle_order", "torch", enum_values=["torch", "tf"], help_text="PyTorch weights: the PixelShuffle channel "
                  "order they were trained with.")
define_flag("boolean", "allow_random", False, "Evaluate without --weights (random weights: the numbers "
                     "mean nothing; for smoke tests only).")
define_flag("boolean", "progress", True, "Show a progress bar.")


def _scales(default):
    from visionfw.errors import ConfigError

    if not FLAGS.scale:
        return [default] if default else []
    try:
        scales = [int(s) for s in FLAGS.scale]
    except ValueError as exc:
        raise ConfigError(f"--scale={','.join(FLAGS.scale)}: use integers such as 3 or 2,3,4.") from exc
    if any(s < 1 for s in scales):
        raise ConfigError(f"--scale={','.join(FLAGS.scale)}: scales must be positive.")
    return scales


def _build(scale):
    """(model, model name, meta) for one scale."""
    from pathlib import Path

    import visionfw
    from visionfw.errors import ConfigError
    from visionfw.evaluate import infer_model_meta

    weights = FLAGS.weights
    if FLAGS.model:
        hyper = {"scale": scale} if scale else {}
        spec = visionfw.get_spec(FLAGS.model, **hyper)
        model = visionfw.build_model(spec)
        if weights:
            visionfw.load_weights(model, weights, shuffle_order=FLAGS.shuffle_order)
        meta = spec.get("meta", {})
        return model, FLAGS.model, {"channels": meta.get("channels"),
                                    "upsampled_input": meta.get("upsampled_input"),
                                    "scale": meta.get("scale")}
    if not weights or not str(weights).lower().endswith(".keras"):
        raise ConfigError("--model=NAME is needed (only a --weights=FILE.keras model file carries its own "
                          "architecture). `visionfw models` lists the zoo.")
    import keras

    from visionfw.errors import WeightsError

    if not Path(weights).is_file():
        raise WeightsError(f"--weights={weights}: no such file.")
    try:
        model = keras.saving.load_model(weights, compile=False)
    except Exception as exc:
        raise WeightsError(f"--weights={weights}: cannot load the .keras model ({exc}).") from exc
    meta = infer_model_meta(model)
    return model, Path(weights).stem, {"channels": meta["channels"],
                                       "upsampled_input": meta["upsampled_input"],
                                       "scale": None if meta["upsampled_input"] else int(meta["ratio"])}


def main(command, argv):
    from visionfw.errors import ConfigError
    from visionfw.evaluate import evaluate_model, format_table, write_results_json

    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    if not FLAGS.weights and not FLAGS.allow_random:
        raise ConfigError("--weights=PATH is required: a model with random weights gives meaningless "
                          "numbers. Pass --allow_random to run anyway (smoke tests).")
    if FLAGS.model is None and FLAGS.weights is None:
        raise ConfigError("give --model=NAME and/or --weights=FILE.keras.")
    scales = _scales(None)
    if len(scales) > 1 and FLAGS.model is None:
        raise ConfigError("several --scale values need --model (one model per scale).")
    runs = scales or [None]
    all_results = {}
    model_name = None
    for scale in runs:
        model, model_name, meta = _build(scale)
        s = scale or meta.get("scale")
        if not s:
            raise ConfigError("--scale is required for this model (it does not fix its own scale).")
        if len(runs) > 1 and not meta.get("upsampled_input"):
            raise ConfigError(f"model {model_name!r} takes LR input, so its weights fit one scale; give "
                              "one --scale per run.")
        results = evaluate_model(model, FLAGS.test_data, s, protocol=FLAGS.protocol, data_dir=FLAGS.data_dir,
                                 channels=meta.get("channels"), upsampled_input=meta.get("upsampled_input"),
                                 per_image=FLAGS.per_image, save_images=FLAGS.save_images, tile=FLAGS.tile,
                                 tile_overlap=FLAGS.tile_overlap, self_ensemble=FLAGS.self_ensemble,
                                 progress=FLAGS.progress, lr_dir=FLAGS.lr_dir)
        title = f"{model_name} x{s}" + (f" ({FLAGS.weights})" if FLAGS.weights else " (RANDOM WEIGHTS)")
        print(title)
        print(format_table(results))
        print()
        for ds, r in results.items():
            all_results[f"{ds}_x{s}" if len(runs) > 1 else ds] = r
    if FLAGS.results:
        scale_field = runs[0] if len(runs) == 1 else ",".join(map(str, runs))
        path = write_results_json(FLAGS.results, all_results, model_name, FLAGS.weights,
                                  scale_field if scale_field else s, FLAGS.protocol,
                                  extra={"random_weights": not FLAGS.weights})
        print(f"results written to {path}")
    return 0
