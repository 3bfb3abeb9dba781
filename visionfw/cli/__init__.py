"""The ``visionfw`` command: ``visionfw <command> --flag=value ...``.

The CLI is thin.  A command module names its config dataclass (``CONFIG``) and has
``main(command, config)``; the dispatcher derives the command's flags from the dataclass
(:mod:`visionfw.cli.common`), builds the config and calls ``main``.  Errors the library
raises on purpose (:class:`visionfw.errors.VisionFWError`) are printed as one line, with the
config fields they name written as flags, and exit with status 1.

The console stays quiet: TensorFlow's C++ start-up lines (absl, oneDNN, CUDA stubs, a failed
``cuInit`` on machines without a GPU) are not shown unless ``--verbosity`` asks for them, and
warnings are one plain line each.  An interrupted training exits with one line that says how
to resume (status 128 + the signal); a closed output pipe (``| head``, ``| dot`` without
graphviz) ends the command with one line and status 1.
"""

import contextlib
import importlib
import importlib.util
import os
import sys

# command -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "models": ("visionfw.cli.models", "list the zoo"),
    "describe": ("visionfw.cli.models", "print a model's nodes, layers, shapes and parameters"),
    "train": ("visionfw.cli.train", "train a model (SR, TAD or colorization)"),
    "test": ("visionfw.cli.test", "evaluate a model on benchmark sets with the exact protocol"),
    "compare": ("visionfw.cli.compare", "compare architectures across datasets"),
    "rank-datasets": ("visionfw.cli.rank_datasets", "rank training sets by PSNR gain over bicubic"),
    "downscale": ("visionfw.cli.downscale", "write task-aware LR images (TAD encoder)"),
    "upscale": ("visionfw.cli.upscale", "upscale your images with an SR model (TAD models: restore their LR)"),
    "export": ("visionfw.cli.export", "write a model as a TF SavedModel, TFLite or ONNX file"),
    "dip": ("visionfw.cli.dip", "Deep Image Prior: denoise, inpaint or upscale one image, no training set"),
    "degradation-pool": (
        "visionfw.cli.degradation_pool",
        "collect a RealSR noise/kernel pool (.npz) from real photos for --degradation",
    ),
}
# commands that never load TensorFlow (the zoo's dicts only; `describe` builds the model)
_NO_TENSORFLOW = {"models"}
_HELP = ("-h", "--help", "--helpshort", "--helpfull")
VERBOSITY_HELP = (
    "--verbosity=N: also show TensorFlow's own log lines (N=0 errors, 1 warnings, 2 everything) and "
    "visionfw's info lines; without it the console shows visionfw's output only."
)


def _usage():
    lines = ["usage: visionfw <command> [--flags]", "", "commands:"]
    width = max(map(len, COMMANDS))
    for name, (module, text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {name:<{width}}  {text}")
    lines.append("")
    lines.append("`visionfw <command> --help` lists a command's flags. Every command also takes")
    lines.append(VERBOSITY_HELP)
    return "\n".join(lines)


def parse_command(command, args):
    """(command module, config) for ``visionfw <command> <args>`` without running it."""
    from visionfw.cli import common
    from visionfw.errors import ConfigError

    module = importlib.import_module(COMMANDS[command][0])
    config, rest = common.parse_args(module.CONFIG, [f"visionfw {command}"] + list(args))
    if rest:
        raise ConfigError(f"unexpected arguments {rest}; flags are written --name=value.")
    return module, config


def pop_verbosity(args):
    """(args without ``--verbosity``, its value or None).  ``--verbosity=N`` and ``--verbosity N``."""
    from visionfw.errors import ConfigError

    rest, value = [], None
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--verbosity" or arg.startswith("--verbosity="):
            if arg == "--verbosity":
                if i + 1 >= len(args):
                    raise ConfigError("--verbosity needs a value: --verbosity=1.")
                i += 1
                text = args[i]
            else:
                text = arg.split("=", 1)[1]
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"--verbosity={text}: use an integer, e.g. --verbosity=1.") from None
        else:
            rest.append(arg)
        i += 1
    return rest, value


@contextlib.contextmanager
def _console(command, verbosity):
    """Meanwhile: TensorFlow quiet (unless ``verbosity``), warnings and visionfw's log records as
    plain one-line messages.  Restored afterwards (``run`` is also called in-process)."""
    import logging
    import warnings

    from visionfw.keras_hooks import install_import_hooks

    install_import_hooks(quiet=verbosity is None)  # --verbosity shows TensorFlow's start-up lines too
    if verbosity is None:
        # C++ log lines after start-up (e.g. "failed call to cuInit" at the first op);
        # TF_ENABLE_ONEDNN_OPTS is left alone: it changes numerics, not messages
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(max(0, 2 - int(verbosity)))
    log = logging.getLogger("visionfw")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"visionfw {command}: %(message)s"))
    saved = (log.level, log.propagate, warnings.showwarning)
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO if (verbosity or 0) >= 1 else logging.WARNING)
    if verbosity is None:

        def show(message, category, filename, lineno, file=None, line=None):
            # one plain line: the message names the input and the fix; the source line adds nothing
            print(f"visionfw {command}: warning: {message}", file=sys.stderr if file is None else file)

        warnings.showwarning = show
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.level, log.propagate, warnings.showwarning = saved


def _import_command(command, verbosity):
    """Imports the command's module (TensorFlow too, for a module that imports it at the top),
    with the C++ start-up lines silenced unless ``verbosity`` is given."""
    from visionfw.keras_hooks import silenced_fd2

    with silenced_fd2() if verbosity is None else contextlib.nullcontext():
        return importlib.import_module(COMMANDS[command][0])


def _import_tensorflow(command, verbosity):
    """TensorFlow, imported once the flags are checked (a typo fails in well under a second),
    with its start-up lines silenced unless ``verbosity`` is given."""
    if command in _NO_TENSORFLOW or "tensorflow" in sys.modules:
        return
    from visionfw.keras_hooks import silenced_fd2

    with silenced_fd2() if verbosity is None else contextlib.nullcontext():
        import tensorflow  # noqa: F401


def _closed_pipe(command, argv):
    """The reader of our output went away (``| head``, ``| dot`` without graphviz): one line, status 1."""
    try:  # later writes to the dead pipe (the flush at exit) must not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    hint = ""
    if "--dot" in argv:
        hint = (
            " Is graphviz installed? `visionfw describe --dot | dot -Tpng > model.png` needs its `dot` "
            "program (https://graphviz.org/download/, e.g. `apt install graphviz`)."
        )
    try:
        print(
            f"visionfw {command}: the output pipe was closed before all output was written.{hint}",
            file=sys.stderr,
            flush=True,
        )
    except (OSError, ValueError):
        pass
    return 1


def run(argv=None):
    """Console-script entry point; returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    from visionfw.errors import VisionFWError

    try:
        args, verbosity = pop_verbosity(argv[1:])
    except VisionFWError as exc:
        print(f"visionfw: error: {exc}", file=sys.stderr)
        return 2
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    command = args[0]
    if command not in COMMANDS or importlib.util.find_spec(COMMANDS[command][0]) is None:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"visionfw: unknown command {command!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    wants_help = any(a in _HELP for a in args[1:])
    with _console(command, verbosity):
        return _run_command(command, args, argv, verbosity, wants_help)


def _run_command(command, args, argv, verbosity, wants_help):
    from visionfw.cli import common
    from visionfw.errors import VisionFWError

    module = None
    try:
        module = _import_command(command, verbosity)
        if wants_help:
            print(common.format_help(command, COMMANDS[command][1], module.CONFIG))
            print(f"  {VERBOSITY_HELP}")
            sys.stdout.flush()
            return 0
        _, config = parse_command(command, args[1:])
        common.check_config(config)  # model names and input files, before TensorFlow is imported
        if hasattr(module, "check"):
            module.check(config)
        _import_tensorflow(command, verbosity)
        status = module.main(command, config) or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        return _closed_pipe(command, argv)
    except KeyboardInterrupt:
        print(f"visionfw {command}: interrupted.", file=sys.stderr)
        return 130
    except VisionFWError as exc:
        message = common.flag_names(str(exc), module.CONFIG) if module is not None else str(exc)
        status = getattr(exc, "exit_status", None)
        if status is not None:  # an interrupted training: how to resume, not an error
            print(f"visionfw {command}: {message}", file=sys.stderr)
            return status
        print(f"visionfw {command}: error: {message}", file=sys.stderr)
        return 1
