"""What ``import visionfw`` arranges for the moment Keras or TensorFlow is imported, without
importing either itself (``visionfw models`` stays TensorFlow-free).

* **Saved models load anywhere.**  A saved visionfw model names its custom layers
  ``visionfw>PixelShuffle`` and so on; Keras finds such a name only in its registry
  (``keras.saving.get_registered_object``), which the ``@register_keras_serializable``
  decorators fill when :mod:`visionfw.zoo.layers` is imported.  Keras 3 has no hook to import a
  package on demand (it imports modules by name only for its own packages), so a finder on
  ``sys.meta_path`` waits for the ``keras`` package and registers the layers right after its
  code has run: ``import visionfw; import keras; keras.saving.load_model(path, safe_mode=True)``
  works with no ``custom_objects``.  With Keras already imported they are registered at once.
* **Quiet start-up.**  TensorFlow's C++ libraries write start-up lines (absl's "All log messages
  before absl::InitializeLog()", "Could not find cuda drivers") to file descriptor 2 while they
  load, past ``TF_CPP_MIN_LOG_LEVEL``.  Unless the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves,
  the import of ``tensorflow`` runs with descriptor 2 sent to ``/dev/null`` (Python exceptions
  still propagate; a failed import is reported as usual).
"""

import contextlib
import importlib
import os
import sys

__all__ = ["KERAS_MODULES", "register_keras_objects", "install_import_hooks", "silenced_fd2"]

# modules whose import registers every serializable visionfw class that a saved model can hold
KERAS_MODULES = ("visionfw.zoo.layers",)


def register_keras_objects():
    """Imports :data:`KERAS_MODULES` (their decorators register the classes with Keras)."""
    for name in KERAS_MODULES:
        importlib.import_module(name)


@contextlib.contextmanager
def silenced_fd2():
    """File descriptor 2 goes to /dev/null meanwhile: C++ libraries write their start-up lines
    there directly, past Python's sys.stderr and past TF_CPP_MIN_LOG_LEVEL."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 at all: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _ImportWatcher:
    """A ``sys.meta_path`` finder for ``keras`` and ``tensorflow``: the other finders find the
    package, and its loader's ``exec_module`` is wrapped (quiet, then register the layers)."""

    def __init__(self, quiet):
        self.quiet = quiet
        self.pending = {"keras", "tensorflow"}

    def find_spec(self, name, path=None, target=None):
        if name not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_package = spec.loader.exec_module

        # only an import runs exec_module (importlib.util.find_spec alone, as TensorFlow's
        # __init__ calls for keras, must leave the watcher in place)
        def exec_module(module):
            self.pending.discard(name)
            if not self.pending:
                self.remove()
            with silenced_fd2() if self.quiet else contextlib.nullcontext():
                run_package(module)
            if name == "keras":
                register_keras_objects()

        spec.loader.exec_module = exec_module
        return spec

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install_import_hooks(quiet=True):
    """Registers visionfw's layers now if Keras is imported, else right after it is; with
    ``quiet``, TensorFlow's import (if still to come) runs with descriptor 2 silenced."""
    for finder in sys.meta_path:
        if isinstance(finder, _ImportWatcher):  # installed: only the choice of quiet changes
            finder.quiet = quiet
            return
    watcher = _ImportWatcher(quiet)
    watcher.pending -= {n for n in watcher.pending if n in sys.modules}
    if "keras" in sys.modules:
        register_keras_objects()
    if watcher.pending:
        sys.meta_path.insert(0, watcher)
