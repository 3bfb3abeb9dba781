"""The model registry (after timm): ``list_models``, ``get_spec``, ``get_model``, ``model_info``.

Every family in ``visionfw.model_defs`` (the repository's ``model_defs/`` folder) is one
self-contained file: a function of hyper-parameters returning a spec dict, registered here
under one or more names, and beside it what is known about each name (timm's
``default_cfgs``): the paper, the expected parameter count, the official weights, the
published numbers with their protocol and the paper's training recipe.

Nothing here imports the training stack: ``list_models()`` and ``visionfw models`` load the
builder and the zoo alone.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from visionfw.errors import ConfigError, ModelNotFoundError
from visionfw.registries import Registry, import_package_modules

__all__ = [
    "MODELS",
    "ModelEntry",
    "ModelInfo",
    "WeightsInfo",
    "register_model",
    "list_models",
    "model_entry",
    "model_info",
    "family_recipe",
    "get_spec",
    "get_model",
]


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """One official weights file.

    ``file`` is its path below a weights root (``<data root>/weights``, the
    ``VISIONFW_WEIGHTS`` cache); ``sha256`` is the full hash where the file was seen,
    else ``None`` (never invented); ``sha256_prefix`` is a prefix the authors put in the
    file name, when that is all that is known.
    """

    file: str
    format: str  # 'srcnn_mat', 'vdsr_mat', 'matconvnet', 'pth', ...
    sha256: str | None = None
    sha256_prefix: str | None = None
    url: str | None = None
    source: str = ""  # who released it and where the file comes from
    options: tuple = ()  # (key, value) pairs for load_weights, e.g. (('shuffle_order', 'torch'),)
    hyper: tuple = ()  # (key, value) hyper-parameters the weights need, e.g. (('rgb_range', 255),)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one registered name (see the module docstring)."""

    name: str
    family: str
    task: str
    scales: tuple
    description: str
    paper: str = ""
    params: tuple = ()  # ((scale or None, count), ...): expected parameters
    params_counted: str = "total"  # 'total' (count_params) or 'trainable'
    weights: tuple = ()  # ((scale or None, WeightsInfo), ...)
    published: tuple = ()  # ((dataset, scale, psnr), ...) under `published_protocol`
    published_protocol: str = ""
    recipe: dict | None = None  # the paper's training recipe (TrainConfig fields + source/notes)

    def weights_for(self, scale: int | None = None) -> WeightsInfo | None:
        """The official :class:`WeightsInfo` at ``scale`` (or the one for every scale), else None."""
        table = dict(self.weights)
        return table.get(None if scale is None else int(scale), table.get(None))

    def hyper_for(self, scale: int | None = None) -> dict:
        """The hyper-parameters the official weights at ``scale`` need (e.g. EDSR-PyTorch's
        ``rgb_range=255``): build with them before loading; {} without official weights."""
        w = self.weights_for(scale)
        return dict(w.hyper) if w is not None else {}

    def params_for(self, scale: int | None = None) -> int | None:
        """The expected parameter count at ``scale`` (or for every scale), else None."""
        table = dict(self.params)
        return table.get(None if scale is None else int(scale), table.get(None))

    def published_psnr(self, dataset: str, scale: int) -> float | None:
        """The paper's PSNR for ``dataset`` at ``scale`` (protocol: ``published_protocol``), else None."""
        for ds, s, value in self.published:
            if ds == dataset and int(s) == int(scale):
                return value
        return None


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered name: its family function, the hyper-parameters the name fixes and its :class:`ModelInfo`."""

    name: str
    fn: Callable[..., dict]
    family: str
    scales: tuple
    task: str  # 'sr', 'tad' or 'colorize'
    hyper: dict  # fixed hyper-parameters this name binds
    description: str
    info: ModelInfo

    @property
    def takes_scale(self) -> bool:
        """Whether the family function has a ``scale`` hyper-parameter (the scale policy's one test)."""
        return "scale" in inspect.signature(self.fn).parameters


def _load_families() -> None:
    import_package_modules("visionfw.model_defs")


MODELS: Registry[ModelEntry] = Registry(
    "model", error=ModelNotFoundError, fix="`visionfw models` lists the zoo.", loader=_load_families, suggestions=3
)
_RECIPES: dict[str, dict] = {}


def _pairs(table: Any) -> tuple:
    """{scale or None: value} -> a sorted tuple of pairs (hashable, frozen)."""
    if table is None:
        return ()
    if not isinstance(table, dict):
        return ((None, table),)
    return tuple(sorted(table.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))


def register_model(
    name: str,
    fn: Callable[..., dict] | None = None,
    *,
    family: str | None = None,
    scales: tuple[int, ...] = (2, 3, 4),
    task: str = "sr",
    description: str | None = None,
    paper: str = "",
    params: Any = None,
    params_counted: str = "total",
    weights: Any = None,
    published: dict | None = None,
    published_protocol: str = "",
    recipe: dict | None = None,
    **hyper: Any,
) -> Any:
    """Registers ``fn(**hyper) -> spec`` under ``name``; ``hyper`` are fixed for this name.

    Works as ``register_model(name, fn, ...)`` or as a decorator ``@register_model(name, ...)``.

    Args:
        name: the registry name (lower case, ``_`` between words).
        fn: the family function returning a spec dict.
        family: the family (default: the name of ``fn``'s module).
        scales: the scales the name supports (``()`` for a family without a scale).
        task: ``'sr'``, ``'tad'`` or ``'colorize'``.
        description: one line (default: the first line of ``fn``'s docstring).
        paper: the paper it comes from.
        params: the expected parameter count: a value, or ``{scale: value}``.
        params_counted: ``'total'`` (count_params) or ``'trainable'``.
        weights: the official :class:`WeightsInfo`: a value, or ``{scale: value}``.
        published: ``{(dataset, scale): psnr}`` under ``published_protocol``.
        published_protocol: the evaluation protocol of ``published``.
        recipe: the family's training recipe (shared by all its names).
        **hyper: hyper-parameters this name fixes.

    Returns:
        ``fn`` (or, without it, the decorator).
    """

    def decorator(fn: Callable[..., dict]) -> Callable[..., dict]:
        fam = family or fn.__module__.rsplit(".", 1)[-1]
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        if recipe is not None:
            _RECIPES[fam] = dict(recipe)
        info = ModelInfo(
            name=name,
            family=fam,
            task=task,
            scales=tuple(scales),
            description=doc,
            paper=paper,
            params=_pairs(params),
            params_counted=params_counted,
            weights=_pairs(weights),
            published=tuple((ds, s, v) for (ds, s), v in (published or {}).items()),
            published_protocol=published_protocol,
            recipe=None,
        )
        MODELS.register(name, ModelEntry(name, fn, fam, tuple(scales), task, dict(hyper), doc, info))
        return fn

    return decorator(fn) if fn is not None else decorator


def model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name`` (case-insensitive).

    Args:
        name: a registered name, e.g. ``'edsr_baseline'`` (``'EDSR-baseline'`` works too).

    Returns:
        The entry.

    Raises:
        ModelNotFoundError: the name is unknown (the message suggests close names).
    """
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    return MODELS.lookup(key)


def family_recipe(family: str | None) -> dict | None:
    """The training recipe registered for ``family`` (a copy), or None."""
    MODELS.load()
    recipe = _RECIPES.get(family) if family is not None else None
    return dict(recipe) if recipe is not None else None


def model_info(name: str) -> ModelInfo:
    """What the zoo knows about a registered name.

    Args:
        name: a registered name.

    Returns:
        Its :class:`ModelInfo`: paper, expected parameters, official weights, published numbers and the
        family's training recipe.

    Raises:
        ModelNotFoundError: the name is unknown.
    """
    entry = model_entry(name)
    return dataclasses.replace(entry.info, recipe=family_recipe(entry.family))


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered model names, sorted.

    Args:
        pattern: a glob such as ``'edsr*'``.
        task: only the names of this task (``'sr'``, ``'tad'``, ``'colorize'``); None: all.

    Returns:
        The names.
    """
    return [n for n in MODELS.names(pattern) if task is None or MODELS[n].task == task]


def get_spec(name: str, scale: int | None = None, **hyper: Any) -> dict:
    """The spec dict of zoo model ``name`` at ``scale`` with ``hyper`` applied.

    The scale policy lives here alone: callers always pass ``scale``; a family that takes
    no scale (colorization, colour TAD) ignores it, one that does checks it against the
    name's supported scales.

    Args:
        name: a registered name.
        scale: the scale (None: the family's default).
        **hyper: hyper-parameters of the family function that the name does not fix.

    Returns:
        The spec dict, its ``meta`` holding ``registry_name`` and ``task``.

    Raises:
        ModelNotFoundError: the name is unknown.
        ConfigError: a hyper-parameter the name fixes or the family lacks, or an unsupported scale.
    """
    entry = model_entry(name)
    params = inspect.signature(entry.fn).parameters
    fixed = set(entry.hyper) & set(hyper)
    if fixed:
        raise ConfigError(
            f"model {name!r} fixes {sorted(fixed)}; use the family function "
            f"visionfw.model_defs.{entry.family}.{entry.fn.__name__} to change them."
        )
    unknown = [k for k in hyper if k not in params or k == "scale"]
    if unknown:
        raise ConfigError(
            f"model {name!r} has no hyper-parameter {unknown[0]!r}; it takes "
            f"{', '.join(p for p in params if p not in entry.hyper and p != 'scale')}"
            f"{' and scale' if entry.takes_scale else ''}."
        )
    if entry.takes_scale:
        if scale is None:
            scale = params["scale"].default
        if entry.scales and int(scale) not in entry.scales:
            raise ConfigError(f"model {name!r} supports scales {list(entry.scales)}, not {scale}.")
        hyper["scale"] = int(scale)
    from visionfw.zoo.validation import defer_validation

    with defer_validation():  # the build validates it, once
        spec = entry.fn(**entry.hyper, **hyper)
    meta = dict(spec.get("meta", {}))
    meta.setdefault("registry_name", entry.name)
    meta.setdefault("task", entry.task)
    spec["meta"] = meta
    return spec


def get_model(
    name: str, scale: int | None = None, pretrained: bool | str = False, download: bool = False, **hyper: Any
) -> Any:
    """Builds zoo model ``name`` at ``scale`` as a ``keras.Model``.

    Args:
        name: a registered name.
        scale: the scale (None: the family's default).
        pretrained: ``True`` loads the official weights from the local cache (see
            :mod:`visionfw.weights.pretrained`); a path loads that file with the same options.
        download: fetch a missing official file from its URL (its hash checked).
        **hyper: hyper-parameters of the family function that the name does not fix.

    Returns:
        The ``keras.Model``.

    Raises:
        ModelNotFoundError: the name is unknown.
        ConfigError: see :func:`get_spec`.
        WeightsError: the weights are missing or do not fit.
    """
    from visionfw.zoo.builder import build_model

    if pretrained:
        hyper = {**model_entry(name).info.hyper_for(scale), **hyper}
    model = build_model(get_spec(name, scale=scale, **hyper))
    if pretrained:
        from visionfw.weights.pretrained import load_pretrained

        load_pretrained(model, model_entry(name).info, scale, pretrained, download=download)
    return model
