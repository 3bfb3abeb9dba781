"""Flags derived from a command's config dataclass, and parsing ``key=value`` flag values.

A command module names its config dataclass (``CONFIG = TrainConfig``) and gets one flag per
field, in its own ``absl.flags.FlagValues``, so a flag's default is its field's default
whatever other command modules were imported.  The field's type gives the flag's kind:

==================  ===========================================================
field type          flag
==================  ===========================================================
``bool``            ``--name`` / ``--noname``
``int``, ``float``  a number
``str``             text; ``metadata['choices']`` makes it an enum
``list``            comma separated (``list[int]``: integers); empty items dropped
``dict``            ``k=v,k2=v2`` (values read as JSON where they parse, ``a:b`` a
                    list) or a JSON object
==================  ===========================================================

``Optional[X]`` is X with default None.  Field metadata: ``help`` (the flag's help),
``choices``, ``flag`` (another flag name, e.g. ``jit_compile`` -> ``--xla``), ``cli=False``
(no flag).  A field without a default is a required flag.

Library errors name config fields (``lr_patch=0 must be ...``); :func:`flag_names` rewrites
them with the flag names (``--lr_patch=0 must be ...``) for the command line.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing

from absl import flags

from visionfw.errors import ConfigError

__all__ = ["cli_fields", "define_flags", "parse_args", "flag_names", "format_help", "parse_kv"]


@dataclasses.dataclass(frozen=True)
class CliField:
    """One flag of a command: the config field it fills and how to read it."""

    field: str  # config field name
    flag: str  # flag name (without --)
    kind: str  # 'bool' | 'int' | 'float' | 'str' | 'list' | 'dict'
    item: type  # list element type (str, int, float)
    default: object  # the field's default (None for a required field)
    required: bool
    optional: bool  # Optional[...] in the annotation
    choices: tuple
    help: str


def progress_fields(log_every=100):
    """The ``progress`` and ``log_every`` fields of the commands that train several models
    (compare, rank-datasets): ``progress, log_every = progress_fields()`` in the config class."""
    progress = dataclasses.field(
        default=True,
        metadata={
            "help": "Announce each training and show progress on stderr: a live bar on a terminal, else a plain "
            "line every --log_every steps."
        },
    )
    every = dataclasses.field(
        default=log_every,
        metadata={
            "help": "Steps (images, when evaluating) between two progress lines when the output is not a terminal."
        },
    )
    return progress, every


def model_fields():
    """The ``model``, ``model_kwargs`` and ``imports`` (``--import``) fields of every command that builds
    a model: ``model, model_kwargs, imports = model_fields()`` in the config class (see
    :func:`visionfw.loading.load_model`)."""
    model = dataclasses.field(
        default=None,
        metadata={
            "help": "The model: a registry name (see `visionfw models`), or your own function returning a spec dict: "
            "path/to/file.py:function or package.module:function. Optional when --weights is a .keras model "
            "file."
        },
    )
    kwargs = dataclasses.field(
        default_factory=dict,
        metadata={
            "help": "Keyword arguments for --model (hyper-parameters of the family or of your function): k=v,k2=v2."
        },
    )
    imports = dataclasses.field(
        default_factory=list,
        metadata={
            "flag": "import",
            "help": "Modules to import first (names or .py paths, comma-separated), e.g. the one "
            "that registers your layers (visionfw.register_layer) before a .keras file loads.",
        },
    )
    return model, kwargs, imports


def shuffle_order_field():
    """The ``shuffle_order`` field of the commands that load PyTorch weights (``test``, ``export``)."""
    return dataclasses.field(
        default=None,
        metadata={
            "help": "PyTorch weights: the PixelShuffle channel order they were trained with (default: the family's "
            "loading option, else torch).",
            "choices": ("torch", "tf"),
        },
    )


def _unwrap(tp):
    """(base type, element type, Optional?) of an annotation such as ``list[int] | None``."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    item = args[0] if origin is list and args and args[0] in (int, float) else str
    return origin, item, optional


def cli_fields(config_cls):
    """The :class:`CliField` of every field of ``config_cls`` that is a flag, in field order."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not f.init or meta.get("cli", True) is False:
            continue
        base, item, optional = _unwrap(hints[f.name])
        kind = {bool: "bool", int: "int", float: "float", list: "list", dict: "dict"}.get(base, "str")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None if required else f.default
        out.append(
            CliField(
                f.name,
                meta.get("flag", f.name),
                kind,
                item,
                default,
                required,
                optional,
                tuple(meta.get("choices", ())),
                meta.get("help", ""),
            )
        )
    return out


def define_flags(config_cls, flag_values):
    """Defines one flag per :func:`cli_fields` entry in ``flag_values``."""
    for c in cli_fields(config_cls):
        kw = dict(name=c.flag, help=c.help or c.field, flag_values=flag_values)
        if c.kind == "bool":
            flags.DEFINE_boolean(default=c.default, **kw)
        elif c.kind == "int":
            flags.DEFINE_integer(default=c.default, **kw)
        elif c.kind == "float":
            flags.DEFINE_float(default=c.default, **kw)
        elif c.kind == "list":
            flags.DEFINE_list(default=c.default, **kw)
        elif c.kind == "dict":
            flags.DEFINE_string(default=json.dumps(c.default) if c.default else "", **kw)
        elif c.choices:
            flags.DEFINE_enum(default=c.default, enum_values=list(c.choices), **kw)
        else:
            flags.DEFINE_string(default=c.default, **kw)


def _value(c, raw):
    """The config value of flag ``c`` from its parsed absl value."""
    if c.kind == "dict":
        if not raw and c.optional and c.default is None:
            return None  # unset: e.g. schedule_kwargs from the preset
        return parse_kv(raw, c.flag)
    if c.kind == "list" and raw is not None:
        items = [s.strip() for s in raw if s.strip()]
        try:
            return [c.item(s) for s in items]
        except ValueError:
            raise ConfigError(
                f"--{c.flag}={','.join(raw)}: use {c.item.__name__} values such as "
                f"{'2,3,4' if c.item is int else '0.5,1'}."
            ) from None
    return raw


def parse_args(config_cls, argv):
    """(config, positional arguments) from ``argv`` (``argv[0]`` is the program name).

    Raises ConfigError for an unknown flag, a bad value or a missing required flag.
    """
    fv = flags.FlagValues()
    define_flags(config_cls, fv)
    try:
        rest = fv(list(argv))
    except flags.Error as exc:
        raise ConfigError(str(exc)) from None
    kwargs = {}
    for c in cli_fields(config_cls):
        value = _value(c, fv[c.flag].value)
        if c.required and value is None:
            raise ConfigError(f"--{c.flag} is required: {c.help}")
        kwargs[c.field] = value
    return config_cls(**kwargs), rest[1:]


# Python code quoted in a message (`...` or a call such as download_dataset('Set5', data_dir))
# keeps its argument names: they are not flags there.
_CODE = re.compile(r"`[^`]*`|\b[A-Za-z_][\w.]*\([^()]*\)")


def flag_names(message, config_cls):
    """``message`` with the config fields it names written as flags: ``lr_patch=0`` ->
    ``--lr_patch=0``, and a field whose name holds an underscore anywhere (``change lr_patch``).
    Fields named by single words (``steps``) are rewritten only before ``=``, so prose stays.
    Quoted code (backticks, function calls) is left as it is."""
    patterns = []
    for c in cli_fields(config_cls):
        name = re.escape(c.field)
        # not inside a longer word, a path, a quoted name or an existing --flag
        pattern = rf"(?<![\w\-./']){name}(?![\w'/])" if "_" in c.field else rf"(?<![\w\-./']){name}(?==)"
        patterns.append((pattern, f"--{c.flag}"))

    def prose(text):
        for pattern, flag in patterns:
            text = re.sub(pattern, flag, text)
        return text

    out, last = [], 0
    for m in _CODE.finditer(message):
        out += [prose(message[last : m.start()]), m.group(0)]
        last = m.end()
    return "".join(out + [prose(message[last:])])


def format_help(command, summary, config_cls):
    """``visionfw <command> --help``: one paragraph per flag with its default."""
    lines = [f"usage: visionfw {command} [--flags]   ({summary})", "", "flags:"]
    for c in cli_fields(config_cls):
        name = f"--[no]{c.flag}" if c.kind == "bool" else f"--{c.flag}"
        extra = "required" if c.required else f"default: {_show(c)}"
        if c.choices:
            extra += f"; one of {', '.join(c.choices)}"
        lines.append(f"  {name}: {c.help} ({extra})")
    return "\n".join(lines)


def _show(c):
    if c.default is None:
        return "unset"
    if c.kind == "list":
        return ",".join(map(str, c.default)) or "empty"
    if c.kind == "dict":
        return json.dumps(c.default) if c.default else "empty"
    if c.kind == "bool":
        return str(c.default).lower()
    return repr(c.default) if c.kind == "str" else str(c.default)


def parse_kv(text, flag):
    """``'a=1,b=x,c=1:2'`` or a JSON object -> dict (values parsed as JSON where they are; ``:`` makes lists)."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--{flag}: invalid JSON ({exc}).") from None
    out = {}
    for item in text.split(","):
        if "=" not in item:
            raise ConfigError(f"--{flag}={text!r}: write key=value pairs joined by commas.")
        key, value = (s.strip() for s in item.split("=", 1))
        if ":" in value:
            try:
                out[key] = [json.loads(v) for v in value.split(":")]
            except json.JSONDecodeError:
                out[key] = value.split(":")
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# flags naming a file the command reads, checked before TensorFlow is imported (globs are the command's)
_INPUT_FILE_FIELDS = ("weights", "input", "image", "mask", "reference")
_WEIGHTS_SUFFIXES = (".keras", ".h5", ".pth", ".pt", ".ckpt", ".bin", ".npz", ".mat")


def check_config(config):
    """Fails fast, before TensorFlow is imported: an unknown ``--model`` name (with its did-you-mean)
    and a missing input file (``--weights``, ``--input``, ``--image``, the ``.py`` file of
    ``--model=file.py:function``, ...).  Model names that
    another flag may register at run time (an ``--import``-like flag, a ``file.py:function``) are
    left to the command."""
    from pathlib import Path

    from visionfw.errors import DataError, WeightsError

    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    model = fields.get("model")
    imports = any(v for k, v in fields.items() if k.startswith("import"))
    if (
        isinstance(model, str)
        and model
        and not imports
        and not any(c in model for c in ":/\\")
        and not model.endswith(".py")
    ):
        from visionfw.zoo.registry import model_entry

        model_entry(model)
    from visionfw.loading import is_model_reference

    if is_model_reference(model):
        module = model.rsplit(":", 1)[0]
        if module.endswith(".py") and not Path(module).expanduser().is_file():
            raise ConfigError(f"--model={module}: no such file.")
    for name in _INPUT_FILE_FIELDS:
        value = fields.get(name)
        if not isinstance(value, str) or not value or any(c in value for c in "*?["):
            continue
        if name == "weights" and not value.lower().endswith(_WEIGHTS_SUFFIXES):
            continue  # e.g. compare's 'vdsr=official'
        if not Path(value).exists():
            error = WeightsError if name == "weights" else DataError
            raise error(f"--{name}={value}: no such file.")
