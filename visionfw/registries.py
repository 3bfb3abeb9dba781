"""The one registry class: models, blocks, layers and tasks are each a :class:`Registry` of names.

It lives here, beside :mod:`visionfw.errors` and below every package, because the zoo (light, no
Keras) and the training tasks (TensorFlow) both use it and neither may import the other.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from visionfw.errors import ConfigError, VisionFWError

__all__ = ["Registry", "did_you_mean", "import_package_modules"]

T = TypeVar("T")


def did_you_mean(word: object, choices: Iterable[object], n: int = 1) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` (up to ``n`` of them), or ''.

    Args:
        word: the unknown name.
        choices: the known names.
        n: how many close names to suggest at most.

    Returns:
        The sentence with a leading space, or '' when nothing is close.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def import_package_modules(name: str) -> None:
    """Imports module ``name`` and, when it is a package, every module in it: how a registry finds the
    entries that register themselves on import (a new module registers by being in the folder).

    Args:
        name: a dotted module or package name, e.g. ``'visionfw.tasks'``.
    """
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        importlib.import_module(f"{name}.{info.name}")


class Registry(Mapping[str, T], Generic[T]):
    """Names -> entries of one kind (``'model'``, ``'block'``, ``'layer class'``, ``'task'``).

    A read-only mapping for everyone else; :meth:`register` adds, :meth:`lookup` finds a name or
    raises ``error`` with the registry's kind, the name, a did-you-mean and ``fix``.  ``loader``
    (optional) registers the entries that live in modules not imported yet: it runs once, on the
    first name :meth:`lookup` does not know and before :meth:`names` lists them.
    """

    def __init__(
        self,
        kind: str,
        *,
        fix: str,
        error: type[VisionFWError] = ConfigError,
        overwrite: bool = True,
        loader: Callable[[], None] | None = None,
        suggestions: int = 1,
    ) -> None:
        """Args:
        kind: what an entry is, as the error message names it (``'model'``).
        fix: the sentence the error ends with: how to make the name known.
        error: the exception class an unknown name raises.
        overwrite: whether registering a known name again replaces its entry (else it is an error).
        loader: imports the modules whose entries register themselves (see above).
        suggestions: how many close names the error suggests at most.
        """
        self.kind = kind
        self.fix = fix
        self.error = error
        self.overwrite = overwrite
        self.suggestions = suggestions
        self._loader = loader
        self._entries: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def register(self, name: str, entry: T) -> T:
        """Registers ``entry`` under ``name``.

        Args:
            name: the name specs, configs and the command line use.
            entry: what the name stands for.

        Returns:
            ``entry``.

        Raises:
            ConfigError: ``name`` is known already and this registry does not overwrite.
        """
        if not self.overwrite and name in self._entries and self._entries[name] is not entry:
            raise ConfigError(f"{self.kind} {name!r} is registered already; choose another name.")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Forgets ``name`` (no error when it is unknown)."""
        self._entries.pop(name, None)

    def load(self) -> None:
        """Runs the loader (once): every entry that registers itself on import is then known."""
        loader, self._loader = self._loader, None  # None first: the modules it imports may look names up
        if loader is not None:
            try:
                loader()
            except BaseException:
                self._loader = loader
                raise

    def lookup(self, name: str, *, where: str = "", also: Iterable[str] = ()) -> T:
        """The entry of ``name``, loading the registry's modules first when it is unknown.

        Args:
            name: the name to find.
            where: what the message starts with (e.g. the spec key), without the colon.
            also: more names the did-you-mean may suggest (e.g. a spec's local blocks).

        Returns:
            The registered entry.

        Raises:
            VisionFWError: the registry's ``error`` class, naming the registry, ``name``, a close
                name and the fix.
        """
        if name not in self._entries:
            self.load()
        if name not in self._entries:
            raise self.error(self.unknown_message(name, where=where, also=also))
        return self._entries[name]

    def unknown_message(self, name: object, *, where: str = "", also: Iterable[str] = ()) -> str:
        """The one-line message of an unknown ``name`` (see :meth:`lookup`)."""
        hint = did_you_mean(name, [*self.names(), *also], n=self.suggestions)
        return f"{where + ': ' if where else ''}unknown {self.kind} {name!r}.{hint} {self.fix}"

    def names(self, pattern: str = "*") -> list[str]:
        """Every registered name that matches the glob ``pattern`` (e.g. ``'edsr*'``), sorted."""
        self.load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def copy(self) -> Registry[T]:
        """A registry with the same settings and entries, loaded (for a test that registers and forgets)."""
        self.load()
        other: Registry[T] = Registry(
            self.kind,
            fix=self.fix,
            error=self.error,
            overwrite=self.overwrite,
            loader=self._loader,
            suggestions=self.suggestions,
        )
        other._entries = dict(self._entries)
        return other
