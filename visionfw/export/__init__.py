"""Export a trained model out of Python: TF SavedModel, TFLite and ONNX (:mod:`~visionfw.export.exporter`:
:func:`export_model`, its parity check :func:`check_export` and :func:`load_exported`), with the converters of
each format in :mod:`~visionfw.export.formats`.

    >>> from visionfw.export import export_model, load_exported
    >>> export_model(model, "edsr_x2.onnx", format="onnx")          # any H x W; checked against Keras
    >>> sr = load_exported("edsr_x2.onnx")(lr[None])                  # onnxruntime, NHWC float32
"""

from visionfw.export.exporter import (  # noqa: F401  (the package's public names)
    CHECK_TOLERANCE,
    check_export,
    export_model,
    load_exported,
)
from visionfw.export.formats import DTYPES, FORMATS, format_from_path  # noqa: F401

__all__ = ["FORMATS", "DTYPES", "CHECK_TOLERANCE", "export_model", "check_export", "load_exported", "format_from_path"]
