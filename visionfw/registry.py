"""The model registry (after timm): ``list_models``, ``get_spec``, ``get_model``.

Every family in ``model_defs/`` is one self-contained file whose functions return a
spec dict and are registered here with :func:`register_model`.
"""
import dataclasses
import fnmatch
import importlib
import inspect
import pkgutil

from visionfw.errors import ConfigError, ModelNotFoundError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: callable
    family: str
    scales: tuple
    task: str  # 'sr', 'tad' or 'colorize'
    hyper: dict  # fixed hyper-parameters this name binds
    description: str


_MODELS = {}
_loaded = False


def register_model(name, family=None, scales=(2, 3, 4), task="sr", description=None, **hyper):
    """Registers ``fn(**hyper) -> spec`` under ``name``; ``hyper`` are fixed for this name."""

    def decorator(fn):
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _MODELS[name] = ModelEntry(name, fn, family or fn.__module__.rsplit(".", 1)[-1],
                                   tuple(scales), task, dict(hyper), doc)
        return fn

    return decorator


def _load_zoo():
    global _loaded
    if _loaded:
        return
    import model_defs

    for info in pkgutil.iter_modules(model_defs.__path__):
        importlib.import_module(f"model_defs.{info.name}")
    _loaded = True


def model_entry(name):
    """The :class:`ModelEntry` of ``name`` (case-insensitive); ModelNotFoundError with a did-you-mean."""
    _load_zoo()
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _MODELS:
        import difflib

        close = difflib.get_close_matches(str(key), list(_MODELS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelNotFoundError(f"unknown model {name!r}.{hint} `visionfw models` lists the zoo.")
    return _MODELS[key]


def list_models(pattern="*", task=None):
    """Registered model names, sorted; ``pattern`` is a glob such as ``'edsr*'``."""
    _load_zoo()
    return sorted(n for n, e in _MODELS.items()
                  if fnmatch.fnmatch(n, pattern) and (task is None or e.task == task))


def get_spec(name, **hyper):
    """The spec dict of zoo model ``name`` with ``hyper`` (e.g. ``scale=3``) applied."""
    entry = model_entry(name)
    params = inspect.signature(entry.fn).parameters
    fixed = set(entry.hyper) & set(hyper)
    if fixed:
        raise ConfigError(f"model {name!r} fixes {sorted(fixed)}; use the family function "
                          f"model_defs.{entry.family}.{entry.fn.__name__} to change them.")
    unknown = [k for k in hyper if k not in params]
    if unknown:
        raise ConfigError(f"model {name!r} has no hyper-parameter {unknown[0]!r}; it takes "
                          f"{', '.join(p for p in params if p not in entry.hyper)}.")
    scale = hyper.get("scale", params["scale"].default if "scale" in params else None)
    if scale is not None and entry.scales and int(scale) not in entry.scales:
        raise ConfigError(f"model {name!r} supports scales {list(entry.scales)}, not {scale}.")
    spec = entry.fn(**entry.hyper, **hyper)
    meta = dict(spec.get("meta", {}))
    meta.setdefault("registry_name", entry.name)
    meta.setdefault("task", entry.task)
    spec["meta"] = meta
    return spec


def get_model(name, **hyper):
    """Builds zoo model ``name`` as a ``keras.Model``."""
    from visionfw.builder import build_model

    return build_model(get_spec(name, **hyper))
