"""The one exception family of visionfw.

Every error the library raises on purpose derives from :class:`VisionFWError`, so
callers can catch all of them with one ``except``.  Messages name the input that
was wrong and say how to fix it.
"""


class VisionFWError(Exception):
    """Base class of every error visionfw raises on purpose."""


class SpecError(VisionFWError, ValueError):
    """A model spec (the architecture dict) is malformed.

    The message names the key, the link index and the fix.
    """


class ModelNotFoundError(VisionFWError, KeyError):
    """A registry name (model or block) is unknown."""

    def __str__(self):  # KeyError would repr() the message; keep it readable
        return str(self.args[0]) if self.args else ""


class DataError(VisionFWError, ValueError):
    """An image, dataset or data directory is missing, unreadable or unsupported."""


class WeightsError(VisionFWError, ValueError):
    """A weights file cannot be read or does not fit the model."""


class TrainingError(VisionFWError, RuntimeError):
    """Training cannot go on (bad config, NaN loss, unusable checkpoint)."""


class ConfigError(VisionFWError, ValueError):
    """A command-line flag or option value is invalid."""
