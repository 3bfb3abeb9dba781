"""One way to get a model with its weights, for the library and every command.

:func:`load_model` takes what ``--model`` / ``--weights`` / ``--pretrained`` say on the command
line and returns a :class:`LoadedModel`.  ``model`` is

* a registry name (``'imdn'``, see ``visionfw models``).  Its official weights
  (``pretrained=True``) and any weights *file in the format of the official release*
  (``--weights=IMDN_x2.pth``: a PyTorch state dict for IMDN/EDSR, the .mat for SRCNN, VDSR,
  LapSRN) are loaded with the family's loading options and built with the hyper-parameters
  those weights need (``visionfw.model_info(name).weights_for(scale)``); a visionfw file
  (``.keras``, ``.weights.h5``) of the same model is loaded as it is;
* a function of your own that returns a spec dict (or a ``keras.Model``):
  ``'path/to/my_models.py:my_net'`` or ``'package.module:my_net'``, called with
  ``model_kwargs`` (and ``scale=`` when it takes one);
* None, with ``weights`` a ``.keras`` file, which carries its own architecture.

``imports`` are modules (names or ``.py`` paths) imported first, so the layers they register
with :func:`visionfw.register_layer` resolve in specs and ``.keras`` files.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionfw.errors import ConfigError, SpecError, WeightsError

__all__ = [
    "LoadedModel",
    "load_model",
    "import_modules",
    "is_model_reference",
    "spec_from_reference",
    "is_release_file",
    "official_scale",
    "official_options",
    "resolve_protocol",
]

PROTOCOLS = ("srcnn", "edsr")
# WeightsInfo.format -> the formats visionfw.weights.detect_format gives files of that release
_RELEASE_FORMATS = {
    "pth": ("torch", "npz"),
    "pt": ("torch", "npz"),
    "srcnn_mat": ("mat",),
    "vdsr_mat": ("mat",),
    "matconvnet": ("mat",),
    "mat": ("mat",),
}


@dataclasses.dataclass
class LoadedModel:
    """What :func:`load_model` returns.

    ``model``: the ``keras.Model`` with its weights; ``name``: the registry name, the
    ``file.py:function`` reference or the ``.keras`` file's stem; ``spec``: its spec dict
    (None for a ``.keras`` file); ``info``: the registry's :class:`~visionfw.zoo.registry.ModelInfo`
    (None outside the registry); ``weights``: the weights file loaded (None: random weights);
    ``official``: whether the family's loading options and hyper-parameters were applied;
    ``meta``: ``channels`` ('y'/'rgb'), ``upsampled_input`` and ``scale`` where known.
    """

    model: object
    name: str
    spec: dict | None = None
    info: object = None
    weights: str | None = None
    official: bool = False
    meta: dict = dataclasses.field(default_factory=dict)


def import_modules(imports):
    """Imports every module in ``imports`` (a list or a comma-separated string of module names or
    ``.py`` paths), e.g. to register a user's layers before a ``.keras`` file loads."""
    if isinstance(imports, str):
        imports = imports.split(",")
    for item in imports or ():
        item = str(item).strip()
        if item:
            _import(item, "--import")


def _import(module, what):
    if module.endswith(".py") or "/" in module or "\\" in module:
        path = Path(module).expanduser()
        if not path.is_file():
            raise ConfigError(f"{what}={module}: no such file.")
        name = path.stem
        loaded = sys.modules.get(name)
        if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
            return loaded
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception:
            sys.modules.pop(name, None)
            raise
        return mod
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{what}={module}: cannot import it ({exc}). Give a module on the Python path "
            "(package.module) or a path to a .py file."
        ) from None


_REFERENCE = re.compile(r"^(?P<module>.+):(?P<function>[A-Za-z_]\w*)$")


def is_model_reference(model):
    """Whether ``model`` is ``'file.py:function'`` / ``'package.module:function'`` (not a registry name)."""
    if not isinstance(model, str):
        return False
    m = _REFERENCE.match(model)
    if not m:
        return False
    module = m.group("module")
    return module.endswith(".py") or re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*", module) is not None


def spec_from_reference(reference, scale=None, model_kwargs=None):
    """What ``'file.py:function'`` / ``'package.module:function'`` returns (a spec dict or a
    ``keras.Model``), called with ``model_kwargs`` and ``scale`` (when the function takes it)."""
    m = _REFERENCE.match(reference)
    module = _import(m.group("module"), "--model")
    fn = getattr(module, m.group("function"), None)
    if not callable(fn):
        raise ConfigError(f"--model={reference}: {m.group('module')} has no function {m.group('function')!r}.")
    kwargs = dict(model_kwargs or {})
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    if scale is not None and ("scale" in params or takes_any):
        kwargs.setdefault("scale", int(scale))
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        raise ConfigError(
            f"--model={reference}: the function takes no argument {unknown[0]!r} (it takes "
            f"{', '.join(params) or 'none'}); fix --model_kwargs."
        )
    result = fn(**kwargs)
    import keras

    if not isinstance(result, (dict, keras.Model)):
        raise SpecError(
            f"--model={reference}: the function returned a {type(result).__name__}; return a spec dict "
            "(visionfw.Graph(...).spec()) or a keras.Model."
        )
    return result


def is_release_file(info, scale, weights):
    """Whether ``weights`` is ``True`` (the official file) or a file in the format of the official
    release of ``info``'s model at ``scale`` (a state dict for a PyTorch release, a .mat for a MATLAB one)."""
    w = info.weights_for(scale) if info is not None else None
    if w is None or not weights:
        return False
    if weights is True:
        return True
    from visionfw.weights.formats import detect_format

    try:
        return detect_format(weights) in _RELEASE_FORMATS.get(w.format, (w.format,))
    except WeightsError:
        return False


def official_scale(info, weights):
    """The scale of the official release file ``weights`` is (by its sha256), else None: an official
    file named by path builds the model at its own scale."""
    known = [(s, w.sha256) for s, w in info.weights if s is not None and w.sha256]
    if not known or not Path(weights).is_file():
        return None
    from visionfw.weights.formats import file_sha256

    digest = file_sha256(weights)
    return next((s for s, sha in known if sha == digest), None)


def official_options(info, scale, weights):
    """(hyper-parameters, load_weights options) the registry gives the official weights at ``scale``
    when :func:`is_release_file` holds for ``weights``; else ({}, {})."""
    if not is_release_file(info, scale, weights):
        return {}, {}
    w = info.weights_for(scale)
    return dict(w.hyper), dict(w.options)


def resolve_protocol(protocol, info=None):
    """(protocol, why) for ``protocol`` 'auto', 'srcnn' or 'edsr': 'auto' is the protocol the model's
    published numbers were measured on when the registry knows it, else 'srcnn'."""
    protocol = protocol or "auto"
    if protocol in PROTOCOLS:
        return protocol, "as asked"
    if protocol != "auto":
        raise ConfigError(f"protocol={protocol!r}: use auto, srcnn or edsr.")
    published = getattr(info, "published_protocol", "") if info is not None else ""
    if published in PROTOCOLS:
        return published, f"auto: the protocol of {info.name}'s published numbers"
    name = getattr(info, "name", None)
    return "srcnn", (
        f"auto: {name} has no published protocol in the registry" if name else "auto: not a registry model"
    ) + "; --protocol=edsr for the EDSR-family protocol"


def _keras_file(path):
    import keras

    from visionfw.weights.keras_files import verify_keras_file
    from visionfw.zoo import layers  # noqa: F401  (registers visionfw's own layers for deserialization)

    if not Path(path).is_file():
        raise WeightsError(f"--weights={path}: no such file.")
    verify_keras_file(path)  # truncated, CRC, NaN: said before Keras reads it
    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as exc:
        hint = ""
        if "Could not locate" in str(exc) or "Unknown layer" in str(exc):
            hint = (
                " The file uses a layer class that is not registered: import the module that registers it "
                "first (--import=my_layers, or import it in Python; see visionfw.register_layer)."
            )
        raise WeightsError(f"--weights={path}: cannot load the .keras model ({exc}).{hint}") from exc


def _spec_meta(spec):
    meta = spec.get("meta", {}) if isinstance(spec, dict) else {}
    return {
        "channels": meta.get("channels"),
        "upsampled_input": meta.get("upsampled_input"),
        "scale": meta.get("scale"),
    }


def load_model(
    model: str | None = None,
    *,
    weights: str | Path | None = None,
    pretrained: bool = False,
    scale: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    imports: Sequence[str] = (),
    data_dir: str | Path | None = None,
    shuffle_order: str | None = None,
) -> LoadedModel:
    """The model that ``--model`` / ``--weights`` / ``--pretrained`` name, with its weights.

    Args:
      model: a registry name, ``'path/to/file.py:function'`` / ``'package.module:function'``
        (a function returning a spec dict or a ``keras.Model``), or None (``weights`` is then
        a ``.keras`` file).
      weights: a weights file (any format of :func:`visionfw.load_weights`), or None.  For a
        registry model, a file in the official release's format is loaded as ``pretrained``
        loads the official one: the family's loading options and hyper-parameters applied.
      pretrained: registry models only: load the official weights (searched as by
        ``visionfw.get_model(name, pretrained=True)``, sha256 checked); with ``weights``, that
        file instead (no hash check).
      scale: the SR factor to build for (default: the scale of the official file ``weights`` is,
        known by its sha256, else the model's own).
      model_kwargs: hyper-parameters for the registry family or the user's function.
      imports: modules (names or ``.py`` paths) imported first, e.g. to register layers.
      data_dir: first folder to search for official weights.
      shuffle_order: PyTorch weights: the PixelShuffle channel order they were trained with
        (default: the family's option, else 'torch').

    Returns:
      A :class:`LoadedModel` (``.model`` is the ``keras.Model``).

    Raises:
      ConfigError, SpecError, WeightsError: naming the input and the fix.
    """
    import_modules(imports)
    model_kwargs = dict(model_kwargs or {})
    weights = str(weights) if weights else None
    if scale is not None and int(scale) < 1:
        raise ConfigError(f"scale={scale} must be a positive integer.")
    if model is None:
        return _load_keras_file_model(weights, pretrained)
    options = {} if shuffle_order is None else {"shuffle_order": shuffle_order}
    if is_model_reference(model):
        return _load_own_model(model, weights, pretrained, scale, model_kwargs, options)
    return _load_registry_model(model, weights, pretrained, scale, model_kwargs, options=options, data_dir=data_dir)


def _load_keras_file_model(weights, pretrained):
    """The model of a ``.keras`` file given with no ``--model``."""
    if pretrained:
        raise ConfigError("--pretrained needs --model=NAME (the official weights are the model's).")
    if not weights or not weights.lower().endswith(".keras"):
        raise ConfigError(
            "--model=NAME (or --model=file.py:function) is needed: only a --weights=FILE.keras "
            "model file carries its own architecture. `visionfw models` lists the zoo."
        )
    return LoadedModel(_keras_file(weights), Path(weights).stem, weights=weights)


def _load_own_model(model, weights, pretrained, scale, model_kwargs, options):
    """The model a user's ``file.py:function`` / ``module:function`` returns, with ``weights`` loaded."""
    from visionfw.weights.loader import load_weights
    from visionfw.zoo.builder import build_model

    if pretrained:
        raise ConfigError(f"--pretrained: {model} is your own model, it has no official weights; give --weights=FILE.")
    built = spec_from_reference(model, scale, model_kwargs)
    spec = built if isinstance(built, dict) else None
    keras_model = build_model(built) if spec is not None else built
    if weights:
        load_weights(keras_model, weights, **options)
    return LoadedModel(keras_model, model, spec=spec, weights=weights, meta=_spec_meta(spec))


def _load_registry_model(model, weights, pretrained, scale, model_kwargs, *, options, data_dir):
    """A registry model built for ``scale`` (the official file's, else the model's own) with its weights:
    the official ones, or a file loaded with the family's options when it is in the release's format."""
    from visionfw.weights.loader import load_weights
    from visionfw.zoo.builder import build_model
    from visionfw.zoo.registry import get_spec, model_info

    info = model_info(model)
    if scale is None and weights and not pretrained:
        scale = official_scale(info, weights)
    if scale is None and pretrained:  # the official weights are per scale: the model's own
        scale = get_spec(model, **model_kwargs).get("meta", {}).get("scale")
    official = is_release_file(info, scale, True if pretrained else weights)
    hyper, family_options = official_options(info, scale, True if pretrained else weights)
    spec = get_spec(model, scale=scale, **{**hyper, **model_kwargs})
    keras_model = build_model(spec)
    if pretrained:
        from visionfw.weights.pretrained import load_pretrained

        weights = str(
            load_pretrained(keras_model, info, scale, pretrained=weights or True, data_dir=data_dir, **options)
        )
    elif weights:
        load_weights(keras_model, weights, **{**family_options, **options})
    return LoadedModel(
        keras_model, model, spec=spec, info=info, weights=weights, official=official, meta=_spec_meta(spec)
    )
