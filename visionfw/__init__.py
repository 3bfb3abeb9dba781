"""visionfw: a Keras 3 model zoo for super-resolution, task-aware downscaling and colorization,
with architectures written as plain Python dicts.

    >>> import visionfw
    >>> visionfw.list_models()[:3]
    >>> model = visionfw.get_model('edsr_baseline', scale=2)
"""

import os as _os

# quiet TensorFlow unless the user chose a log level (as the CLI): C++ logs off, start-up lines silenced
_QUIET_TENSORFLOW = "TF_CPP_MIN_LOG_LEVEL" not in _os.environ
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

from visionfw import errors  # noqa: E402
from visionfw.errors import SpecError, VisionFWError  # noqa: E402
from visionfw.keras_hooks import install_import_hooks  # noqa: E402
from visionfw.zoo.builder import build_model  # noqa: E402
from visionfw.zoo.graph import Graph  # noqa: E402
from visionfw.zoo.parts import list_blocks, make_layer, register_block, register_layer  # noqa: E402
from visionfw.zoo.registry import get_model, get_spec, list_models, model_info, register_model  # noqa: E402
from visionfw.zoo.spec_tools import describe, spec_from_json, spec_to_dot, spec_to_json  # noqa: E402
from visionfw.zoo.validation import validate_spec  # noqa: E402

# saved models load with safe_mode and no custom_objects, once Keras is imported (not here)
install_import_hooks(quiet=_QUIET_TENSORFLOW)


# attribute -> module, imported on first use
_LAZY_MODULES = {
    "weights": "visionfw.weights",
    "loading": "visionfw.loading",
    "layers": "visionfw.zoo.layers",
    "evaluate": "visionfw.evaluate",
    "inference": "visionfw.inference",
    "export": "visionfw.export",
    "pretrained": "visionfw.weights.pretrained",
}


def __getattr__(name):
    """``visionfw.weights`` (and the other modules above) without importing them, and TensorFlow, at
    ``import visionfw``: `visionfw models` stays light."""
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'visionfw' has no attribute {name!r}")


def load_weights(model, path, **kwargs):
    """Loads weights from ``path`` into ``model`` (see :mod:`visionfw.weights` for the formats)."""
    from visionfw.weights.loader import load_weights as _load

    return _load(model, path, **kwargs)


def load_model(model=None, **kwargs):
    """A model with its weights, from a registry name, a ``file.py:function``, a ``.keras`` file... (see
    :func:`visionfw.loading.load_model`)."""
    from visionfw.loading import load_model as _load

    return _load(model, **kwargs)


def upscale(model, image, scale=None, **kwargs):
    """``image`` upscaled by the SR ``model`` (a ``keras.Model``), same dtype and layout as it came.

    ``image``: a file path (-> uint8, or uint16 for a 16-bit file), a uint8 array (0..255 -> uint8),
    a uint16 array (-> uint16) or a float array in [0, 1] (-> float32 in [0, 1]); HW or HWC with
    1-4 channels (alpha is upscaled separately with bicubic).  Y models upscale the luma and
    bicubic the chroma.  ``scale`` defaults to the model's own; keyword options (``tile``,
    ``tile_overlap``, ``self_ensemble``, ``precision``, ...): :func:`visionfw.upscaling.upscale`.
    """
    from visionfw.upscaling import upscale as _upscale

    return _upscale(model, image, scale, **kwargs)


__all__ = [
    "Graph",
    "build_model",
    "describe",
    "errors",
    "get_model",
    "get_spec",
    "list_blocks",
    "list_models",
    "load_weights",
    "load_model",
    "model_info",
    "make_layer",
    "register_block",
    "register_layer",
    "register_model",
    "spec_from_json",
    "spec_to_dot",
    "spec_to_json",
    "upscale",
    "validate_spec",
    "SpecError",
    "VisionFWError",
]
