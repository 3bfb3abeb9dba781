"""`visionfw models [--pattern=GLOB] [--task=T]` and
`visionfw describe --model=NAME [--scale=S] [--dot | --output=FILE]`.

``describe --output=vdsr.png`` draws the graph with graphviz's ``dot`` program and writes the
file only when that succeeded (``describe --dot > vdsr.png`` cannot: the shell creates the file
before the command runs); ``--output=vdsr.dot`` writes the DOT text itself.

Nothing here loads the training stack: listing the zoo imports the registry and the family
files alone (no Keras, no TensorFlow).
"""

import dataclasses


@dataclasses.dataclass
class ModelsConfig:
    model: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "`describe`: the model: a registry name (see `visionfw models`) or your own "
            "function returning a spec dict, path/to/file.py:function or "
            "package.module:function."
        },
    )
    model_kwargs: dict = dataclasses.field(
        default_factory=dict, metadata={"help": "`describe`: keyword arguments for --model (k=v,k2=v2)."}
    )
    imports: list = dataclasses.field(
        default_factory=list,
        metadata={
            "flag": "import",
            "help": "`describe`: modules to import first (names or .py paths), e.g. your layers.",
        },
    )
    scale: int | None = dataclasses.field(
        default=None, metadata={"help": "`describe`: upscaling factor (default: the model's own)."}
    )
    pattern: str = dataclasses.field(default="*", metadata={"help": "Glob filter for `visionfw models`, e.g. 'edsr*'."})
    task: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Only models of this task.",
            "choices": ("sr", "tad", "colorize", "dip", "video_sr", "discriminator"),
        },
    )
    dot: bool = dataclasses.field(
        default=False, metadata={"help": "`describe`: print the graph as graphviz DOT instead of a table."}
    )
    output: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "`describe`: write the graph to this file: .dot/.gv as DOT text, any other "
            "suffix (.png, .svg, .pdf) drawn by graphviz's `dot` program; nothing is "
            "written when drawing fails."
        },
    )


CONFIG = ModelsConfig


def models_table(pattern="*", task=None):
    """The zoo as aligned text rows: name, family, task, scales, expected parameters, description."""
    from visionfw.zoo import registry

    rows = [("name", "family", "task", "scales", "params", "description")]
    for name in registry.list_models(pattern, task=task):
        info = registry.model_info(name)
        scales = ",".join(map(str, info.scales)) or "-"  # '-': a model without a scale
        # the expected count at the first scale that states one
        count = next((f"{c:,}" + (f" (x{s})" if s else "") for s, c in info.params), "")
        rows.append((name, info.family, info.task, scales, count, info.description))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    return "\n".join("  ".join([v.ljust(w) for v, w in zip(r[:5], widths)] + [r[5]]).rstrip() for r in rows)


def write_graph(dot_text, output):
    """Writes ``dot_text`` to ``output`` (.dot/.gv) or draws it there with graphviz's ``dot``;
    the file appears only on success (ConfigError naming the fix otherwise)."""
    import shutil
    import subprocess
    from pathlib import Path

    from visionfw.errors import ConfigError
    from visionfw.files import write_file_atomic

    path = Path(output)
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        raise ConfigError(f"--output={output}: give the file a suffix (.dot, .png, .svg, .pdf).")
    if suffix in ("dot", "gv"):
        data = dot_text.encode()
    else:
        program = shutil.which("dot")
        if program is None:
            raise ConfigError(
                f"--output={output} needs graphviz's `dot` program to draw a .{suffix} "
                "(https://graphviz.org/download/, e.g. `apt install graphviz`); nothing was written. "
                "--output=model.dot writes the DOT text without it."
            )
        proc = subprocess.run([program, f"-T{suffix}"], input=dot_text.encode(), capture_output=True)
        if proc.returncode != 0 or not proc.stdout:
            reason = proc.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise ConfigError(
                f"--output={output}: graphviz could not draw a .{suffix} ({' '.join(reason)}); nothing was written."
            )
        data = proc.stdout
    return write_file_atomic(path, lambda fh: fh.write(data))


def main(command, config):
    from visionfw.errors import ConfigError
    from visionfw.zoo import registry

    if command == "models":
        print(models_table(config.pattern, config.task))
        return 0
    if not config.model:
        raise ConfigError("describe needs model=NAME (see `visionfw models`).")
    from visionfw.loading import import_modules, is_model_reference, spec_from_reference

    import_modules(config.imports)
    if is_model_reference(config.model):
        spec = spec_from_reference(config.model, config.scale, config.model_kwargs)
        if not isinstance(spec, dict):
            raise ConfigError(f"--model={config.model}: describe needs a function that returns a spec dict.")
    else:
        spec = registry.get_spec(config.model, scale=config.scale, **config.model_kwargs)
    from visionfw.zoo.spec_tools import describe, spec_to_dot

    if config.output:
        path = write_graph(spec_to_dot(spec), config.output)
        print(f"graph of {config.model} written to {path}")
    elif config.dot:
        print(spec_to_dot(spec))
    else:
        describe(spec)
    return 0
