"""What watches a training loop: a stop request on SIGINT/SIGTERM (and the error it ends the run
with), a warning on a loss that grows without bound, and the finite-weights check before a
checkpoint is written."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from visionfw.errors import TrainingError

__all__ = ["StopRequest", "TrainingInterrupted", "LossGrowthWatch", "all_finite"]


def all_finite(arrays: Iterable[Any]) -> bool:
    """Whether every float array of ``arrays`` holds only finite values."""
    return all(np.all(np.isfinite(a)) for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


class LossGrowthWatch:
    """Warns once when a logged loss is over ``GROWTH`` times the run's first-step loss: a
    divergence that stays finite (``--lr=1e6`` with Adam) would otherwise finish silently.

    It reads the first step's loss once (one host sync in the whole run), then only the
    log-point means the loop fetches anyway, so the steps get no extra host sync.

    Args:
        lr: The run's learning rate, named in the warning.
    """

    GROWTH = 1000.0

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.start: float | None = None
        self.start_step: int | None = None
        self.warned = False

    def set_start(self, step: int, loss: Any) -> None:
        """Records the first step's loss (a tensor or a number)."""
        value = float(loss)
        if math.isfinite(value) and value > 0:
            self.start, self.start_step = value, step

    def check(self, step: int, loss: float) -> None:
        """Warns (once) when ``loss`` is over ``GROWTH`` times the first step's."""
        if self.warned or self.start is None or not loss > self.GROWTH * self.start:
            return
        self.warned = True
        warnings.warn(
            f"the training loss grew from {self.start:.4g} at step {self.start_step} to {loss:.4g} at "
            f"step {step} (over x{self.GROWTH:g}): training is diverging; lower --lr (now {self.lr:g}) or "
            "set --clipnorm.",
            stacklevel=3,
        )


class StopRequest:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM only records ``signum``: the loop
    checks it after each step, writes a checkpoint and stops.  A second signal stops at once
    (KeyboardInterrupt).  Handlers are installed in the main thread only (Python's rule) and
    restored on exit."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[Any, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False


class TrainingInterrupted(TrainingError):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint to resume from.

    ``signum``: the signal; ``exit_status``: 128 + signum (the shell's convention); ``step`` and
    ``checkpoint``: where the run stopped (``checkpoint`` is None on non-chief workers).
    """

    def __init__(self, message: str, signum: int = 2, step: int | None = None, checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.signum, self.step, self.checkpoint = int(signum), step, checkpoint

    @property
    def exit_status(self) -> int:
        """128 + the signal number."""
        return 128 + self.signum
