"""Where visionfw looks for data on disk: one search path for benchmarks, training sets and weights.

Roots, in order (the first root that holds what is asked for wins):

1. the ``data_dir`` argument (``--data_dir``);
2. ``$VISIONFW_DATA`` (``$VISIONFW_SHARED_DATA`` is accepted as an older alias);
3. ``./data`` and ``../shared/data``, relative to the current working directory;
4. the same two relative to the repository checkout (editable installs), so a notebook or a
   script started from another folder still finds the checkout's reference data;
5. ``~/.visionfw/data`` (where :func:`visionfw.data.benchmarks.download_dataset` unpacks).

Under a root, benchmark sets live in ``benchmark/<Set>``, training sets in ``train/<set>`` and
pretrained weights in ``weights/<file>``.  A benchmark set may also sit directly under a root
(``--data_dir=../shared/data/benchmark`` works).  Nothing is downloaded.  Errors list every
place looked in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from visionfw.errors import DataError

__all__ = ["ENV", "ENV_ALIAS", "USER_ROOT", "candidate_roots", "data_dir_help", "data_roots", "find", "not_found"]

ENV = "VISIONFW_DATA"
ENV_ALIAS = "VISIONFW_SHARED_DATA"
USER_ROOT = "~/.visionfw/data"
_RELATIVE = ("data", os.path.join("..", "shared", "data"))


def _checkout():
    """The repository root when visionfw runs from a source checkout (editable install), else None."""
    repo = Path(__file__).resolve().parents[2]
    return repo if (repo / "pyproject.toml").is_file() and (repo / "visionfw").is_dir() else None


def candidate_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every root of the search path, in order, whether it exists or not (duplicates removed).

    Args:
        data_dir: the first root (``--data_dir``), or None.

    Returns:
        Absolute, normalised root folders.
    """
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    for var in (ENV, ENV_ALIAS):
        if os.environ.get(var):
            roots.append(Path(os.environ[var]))
    bases = [Path.cwd()]
    repo = _checkout()
    if repo is not None:
        bases.append(repo)
    roots += [base / rel for base in bases for rel in _RELATIVE]
    roots.append(Path(USER_ROOT))
    out, seen = [], set()
    for root in roots:
        root = root.expanduser()
        key = os.path.normpath(os.path.abspath(root))
        if key not in seen:
            seen.add(key)
            out.append(Path(key))
    return out


def data_dir_help(what: str) -> str:
    """The help text of a ``--data_dir`` flag, written from this module's search path.

    Args:
        what: what the command looks for there, e.g. ``"benchmark sets"``.

    Returns:
        ``"First place to look for <what> (then $VISIONFW_DATA, ./data, ../shared/data, ~/.visionfw/data)."``
    """
    relative = [rel if rel.startswith(".") else f"./{rel}" for rel in (Path(r).as_posix() for r in _RELATIVE)]
    return f"First place to look for {what} (then {', '.join([f'${ENV}', *relative, USER_ROOT])})."


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The roots of :func:`candidate_roots` that exist."""
    return [r for r in candidate_roots(data_dir) if r.is_dir()]


def not_found(what: str, looked: Iterable[str | os.PathLike], extra_fix: str = "") -> DataError:
    """The DataError for ``what`` (e.g. "training set 'T91'"), listing every path in ``looked``."""
    return DataError(
        f"{what} not found. Looked in: {'; '.join(str(p) for p in looked)}. Fix: pass --data_dir=DIR "
        f"(a folder holding benchmark/, train/ or weights/) or set {ENV}"
        + (f"; {extra_fix}" if extra_fix else "")
        + "."
    )


def find(kind: str, name: str, data_dir: str | os.PathLike | None = None, what: str | None = None) -> Path:
    """The first existing ``<root>/<kind>/<name>`` on the search path.

    Args:
        kind: ``'benchmark'``, ``'train'`` or ``'weights'``.
        name: the set folder or weights file name.
        data_dir: the first root, or None.
        what: how the error names what is missing (default ``kind/name``).

    Returns:
        The path found.

    Raises:
        DataError: none exists, naming every place looked in.
    """
    looked = []
    for root in candidate_roots(data_dir):
        path = root / kind / name
        if path.exists():
            return path
        looked.append(path)
    raise not_found(what or f"{kind}/{name}", looked)
