"""What the command modules share: defining a flag once, and parsing key=value flag values."""
import json

from absl import flags

from visionfw.errors import ConfigError

FLAGS = flags.FLAGS


def define_flag(kind, name, default, help_text, **kwargs):
    """``flags.DEFINE_<kind>`` unless another command module already defined ``name``.

    The dispatcher imports one command module per process, so each command gets its own
    defaults; a process that imports several (tests) keeps the first definition.
    """
    if name not in FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name=name, default=default, help=help_text, **kwargs)


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
