"""The ``visionfw`` command: ``visionfw <command> --flag=value ...``.

The CLI is thin: each command module parses its absl flags and calls library functions.
"""
import importlib
import sys

# command -> (module, one-line help). Modules are imported only when their command runs,
# so each defines just the flags it needs.
COMMANDS = {
    "models": ("visionfw.cli.models", "list the zoo"),
    "describe": ("visionfw.cli.models", "print a model's nodes, layers, shapes and parameters"),
    "train": ("visionfw.cli.train", "train a model (SR, TAD or colorization)"),
    "test": ("visionfw.cli.test", "evaluate a model on benchmark sets with the exact protocol"),
    "compare": ("visionfw.cli.compare", "compare architectures across datasets"),
    "rank-datasets": ("visionfw.cli.rank_datasets", "rank training sets by PSNR gain over bicubic"),
    "downscale": ("visionfw.cli.tad", "write task-aware LR images (TAD encoder)"),
    "upscale": ("visionfw.cli.tad", "restore HR images from task-aware LR (TAD decoder)"),
}


def _usage():
    lines = ["usage: visionfw <command> [--flags]", "", "commands:"]
    for name, (module, text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {name:<14} {text}")
    lines.append("")
    lines.append("`visionfw <command> --helpfull` lists a command's flags.")
    return "\n".join(lines)


def run(argv=None):
    """Console-script entry point."""
    import importlib.util

    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if len(argv) >= 2 else 2
    command = argv[1]
    if command not in COMMANDS or importlib.util.find_spec(COMMANDS[command][0]) is None:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"visionfw: unknown command {command!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    from absl import app, flags

    from visionfw.cli import common

    if any(a in ("-h", "--help", "--helpshort") for a in argv[2:]):
        # the command's flags are all defined through common.define_flag
        print(f"usage: visionfw {command} [--flags]   ({COMMANDS[command][1]})\n")
        print(flags.FLAGS.module_help(common))
        return 0

    from visionfw.errors import VisionFWError

    def main(args):
        try:
            return module.main(command, args)
        except VisionFWError as exc:
            print(f"visionfw {command}: error: {exc}", file=sys.stderr)
            return 1

    app.run(main, argv=[f"visionfw {command}"] + argv[2:])
