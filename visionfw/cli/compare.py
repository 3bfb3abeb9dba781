"""`visionfw compare --models=a,b --test_data=Set5,Set14 --scale=2 [--weights=a=path] [--train_steps=N]`.

One table (Markdown, CSV, JSON) with parameters, multiply-adds, latency, peak memory and
PSNR/SSIM per dataset, a PSNR-vs-MACs plot and report.html (crops where the models differ);
see :mod:`visionfw.studies.compare` and :mod:`visionfw.studies.report_html`.
"""

from dataclasses import dataclass, field

from visionfw.cli.common import progress_fields
from visionfw.data.paths import data_dir_help


@dataclass
class CompareConfig:
    """The flags of `visionfw compare` (see :func:`visionfw.studies.compare.compare_models`)."""

    models: list = field(
        default_factory=lambda: ["srcnn_915", "fsrcnn", "espcn", "vdsr", "edsr_baseline"],
        metadata={
            "help": "Registry names or your own functions returning a spec dict "
            "(path/to/file.py:function, package.module:function), comma separated."
        },
    )
    imports: list = field(
        default_factory=list,
        metadata={
            "flag": "import",
            "help": "Modules to import first (names or .py paths), e.g. the one that registers your "
            "layers (visionfw.register_layer).",
        },
    )
    test_data: list = field(
        default_factory=lambda: ["Set5", "Set14"],
        metadata={"help": "Benchmark sets (names or folders), comma separated."},
    )
    scale: int = field(default=2, metadata={"help": "Upscaling factor."})
    weights: str = field(
        default="",
        metadata={
            "help": "name=path pairs (comma separated; a registry model's file in its official release's format loads "
            "with the family's options and hyper-parameters); path 'official' picks the model's official weights "
            "(searched as by get_model(pretrained=True): $VISIONFW_WEIGHTS, ~/.visionfw/weights, weights/ "
            "on the data search path); a bare 'official' gives every model its official weights."
        },
    )
    pretrained: bool = field(
        default=False,
        metadata={"help": "Give every registry model without --weights its official weights (as --weights=official)."},
    )
    train_steps: int = field(
        default=0, metadata={"help": "Models without --weights are trained this many steps (0: random weights)."}
    )
    train_data: str | None = field(
        default=None, metadata={"help": "Training images for --train_steps (folder; unset: the embedded photos)."}
    )
    train_batch_size: int | None = field(
        default=None, metadata={"help": "Batch size of that training (default: the model's preset)."}
    )
    train_lr_patch: int | None = field(
        default=None, metadata={"help": "LR patch size of that training (default: the model's preset)."}
    )
    out: str = field(default="runs/compare", metadata={"help": "Output folder (tables, plot, cache, trained models)."})
    input_size: str = field(
        default="64x64",
        metadata={
            "help": "LR input size HxW for MACs, latency and memory (pre-upsampled models get scale times that)."
        },
    )
    protocol: str = field(
        default="auto",
        metadata={
            "help": "PSNR/SSIM protocol for every model; auto: the protocol of the models' published numbers when the "
            "registry gives all of them the same one, else srcnn.",
            "choices": ("auto", "srcnn", "edsr"),
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": data_dir_help("benchmark sets and official weights")},
    )
    latency_runs: int = field(default=10, metadata={"help": "Timed forward passes (the median is reported)."})
    warmup: int = field(default=3, metadata={"help": "Untimed forward passes before timing."})
    seed: int = field(default=0, metadata={"help": "Seed of training and of random initialisation."})
    report: bool = field(
        default=True,
        metadata={
            "help": "Write report.html in --out: table, plot and per-image crops where the models differ "
            "(--noreport to skip)."
        },
    )
    report_max_mb: float = field(
        default=10.0, metadata={"help": "Size cap of report.html in MB; crops beyond it are left out with a note."}
    )
    progress: bool
    log_every: int
    progress, log_every = progress_fields()


CONFIG = CompareConfig


def _protocol(config):
    """(protocol, why): --protocol=auto is the models' common published protocol, else srcnn."""
    from visionfw.loading import is_model_reference, resolve_protocol
    from visionfw.zoo.registry import model_info

    if config.protocol != "auto":
        return resolve_protocol(config.protocol)
    names = [m for m in config.models if not is_model_reference(m)]
    published = {model_info(m).published_protocol for m in names}
    if len(names) == len(config.models) and len(published) == 1 and "" not in published:
        return published.pop(), "auto: the protocol of every model's published numbers"
    return "srcnn", "auto: the models have no common published protocol; --protocol=edsr for the EDSR-family one"


def main(command: str, config: CompareConfig) -> int:
    """Runs `visionfw compare`: the table on stdout, the files in --out.

    Args:
      command: the command's name.
      config: its flags.

    Returns:
      The exit status.
    """
    from visionfw.loading import import_modules
    from visionfw.studies.compare import compare_models

    import_modules(config.imports)
    protocol, why = _protocol(config)
    print(f"protocol: {protocol} ({why})")
    from visionfw.studies.reports import format_compare_table

    options = {k: v for k, v in (("batch_size", config.train_batch_size), ("lr_patch", config.train_lr_patch)) if v}
    options["log_every"] = config.log_every
    weights = ",".join(w for w in (config.weights, "official" if config.pretrained else "") if w)
    result = compare_models(
        config.models,
        config.test_data,
        config.scale,
        weights=weights,
        train_steps=config.train_steps,
        train_data=config.train_data,
        out=config.out,
        input_size=config.input_size,
        protocol=protocol,
        data_dir=config.data_dir,
        latency_runs=config.latency_runs,
        warmup=config.warmup,
        seed=config.seed,
        train_options=options,
        progress=config.progress,
        log_every=config.log_every,
        report=config.report,
        report_max_mb=config.report_max_mb,
    )
    print(format_compare_table(result))
    print()
    c = result["computed"]
    print(
        f"computed now: {c['train']} trainings, {c['eval']} evaluations, {c['cost']} cost rows "
        "(the rest came from the cache)"
    )
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0
