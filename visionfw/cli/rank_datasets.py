"""`visionfw rank-datasets --model=NAME --scale=4 --train_sets=T91,BSD200 --test_sets=Set5,Set14 --steps=N`.

Trains one network per training set (same budget and seed), prints the PSNR-gain matrix
(rows: test sets, columns: training sets) with ranks, min diff and the overall ranking;
see :mod:`visionfw.studies.rank_datasets`.
"""

from dataclasses import dataclass, field

from visionfw.cli.common import progress_fields
from visionfw.data.paths import data_dir_help


@dataclass
class RankConfig:
    """The flags of `visionfw rank-datasets` (see :func:`visionfw.studies.rank_datasets.rank_datasets`)."""

    model: str = field(metadata={"help": "Registry name of the model (see `visionfw models`)."})
    model_kwargs: dict = field(
        default_factory=dict, metadata={"help": "Model hyper-parameters: 'n1=32,n2=16' or a JSON object."}
    )
    scale: int = field(default=4, metadata={"help": "Upscaling factor."})
    train_sets: list = field(
        default_factory=lambda: ["T91", "BSD200", "BSDS500_test200"],
        metadata={
            "help": "Training sets: names (train/<name> on the data search path, or under --train_root) or folders."
        },
    )
    test_sets: list = field(
        default_factory=lambda: ["Set5", "Set14"], metadata={"help": "Benchmark sets (names or folders)."}
    )
    steps: int = field(default=1000, metadata={"help": "Training steps per training set."})
    batch_size: int | None = field(
        default=None, metadata={"help": "Batch size (default: the model's preset), the same for every set."}
    )
    lr_patch: int | None = field(default=None, metadata={"help": "LR patch size (default: the model's preset)."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": data_dir_help("benchmark and training sets")},
    )
    train_root: str | None = field(
        default=None, metadata={"help": "Folder holding the training sets (default: train/ on the data search path)."}
    )
    out: str = field(default="runs/rank_datasets", metadata={"help": "Output folder (models, cache, tables, plot)."})
    seed: int = field(
        default=0, metadata={"help": "Seed of initialisation, data order and crops (the same for every set)."}
    )
    protocol: str | None = field(
        default=None,
        metadata={"help": "PSNR protocol (default: srcnn for Y models, edsr for RGB).", "choices": ("srcnn", "edsr")},
    )
    report: bool = field(
        default=True,
        metadata={
            "help": "Also write report.html in --out: the gain matrix (sortable) and the per-image gain histograms "
            "(--noreport to skip)."
        },
    )
    progress: bool
    log_every: int
    progress, log_every = progress_fields()


CONFIG = RankConfig


def main(command: str, config: RankConfig) -> int:
    """Runs `visionfw rank-datasets`: the gain matrix on stdout, the models and reports in --out.

    Args:
      command: the command's name.
      config: its flags.

    Returns:
      The exit status.
    """
    from visionfw.studies.rank_datasets import rank_datasets

    options = {k: v for k, v in (("batch_size", config.batch_size), ("lr_patch", config.lr_patch)) if v}
    options["log_every"] = config.log_every
    result = rank_datasets(
        config.model,
        config.scale,
        config.train_sets,
        config.test_sets,
        config.steps,
        config.out,
        data_dir=config.data_dir,
        train_root=config.train_root,
        seed=config.seed,
        model_kwargs=config.model_kwargs,
        protocol=config.protocol,
        train_options=options,
        progress=config.progress,
        log_every=config.log_every,
    )
    if config.report:
        from visionfw.studies.report_html import write_rank_report

        result["files"]["report"] = str(write_rank_report(result, config.out))
    print(result["markdown"])
    print()
    c = result["computed"]
    print(f"computed now: {c['train']} trainings, {c['eval']} evaluations (the rest came from the cache)")
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0
