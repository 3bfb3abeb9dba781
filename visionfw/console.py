"""Console output of long loops (training, evaluation, comparisons): :func:`say` and :class:`Progress`
on stderr -- a live bar on a terminal, plain lines when the output is a file or a pipe."""

from __future__ import annotations

import sys
import time

__all__ = ["say", "format_duration", "Progress"]


def _stream(stream=None):
    return sys.stderr if stream is None else stream


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def say(message, stream=None):
    """Prints one plain line on stderr (progress and notices; results go to stdout)."""
    stream = _stream(stream)
    print(message, file=stream, flush=True)


def format_duration(seconds):
    """``'45 s'``, ``'3m05s'``, ``'1h02m'``: short, for ETAs."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Progress of a loop of ``total`` units on stderr.

    On a terminal: a live tqdm bar (``desc``, position, rate, ETA and the last values given
    to :meth:`update`).  Otherwise (a file, a pipe, a CI log): one plain line each time
    :meth:`update` is called with ``line=True`` and at the end, e.g.
    ``train espcn x2: step 200/2000  loss 0.0312  24.1 it/s  ETA 1m15s``.  ``enabled=False``
    prints nothing.  Rates and ETAs count from the position the loop started at (a resumed
    run's earlier steps do not inflate them).
    """

    def __init__(self, total, desc, initial=0, unit="step", enabled=True, stream=None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = _stream(stream)
        self.enabled = bool(enabled)
        self.start = self.n = int(initial)
        self.t0 = time.perf_counter()
        self.postfix = {}
        self._last_line = None
        self.bar = None
        if self.enabled and _isatty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.start,
                desc=desc,
                unit=unit,
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )

    @property
    def rate(self):
        """Units per second since the start (None before the first unit)."""
        done = self.n - self.start
        elapsed = time.perf_counter() - self.t0
        return done / elapsed if done > 0 and elapsed > 0 else None

    @property
    def eta(self):
        """Seconds left at the current rate (None before the first unit)."""
        rate = self.rate
        return (self.total - self.n) / rate if rate else None

    def restart_clock(self):
        """Counts rate and ETA from the current position on (e.g. after a first step that
        included tracing the graph)."""
        self.start, self.t0 = self.n, time.perf_counter()

    def update(self, n, line=False, **postfix):
        """Moves to position ``n``; ``postfix``: values shown beside it (e.g. ``loss='0.031'``);
        ``line``: print a plain line now when there is no live bar."""
        self.n = int(n)
        if postfix:
            self.postfix.update(postfix)
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(self.n - self.bar.n)
        elif self.enabled and line:
            self._line()

    def _line(self):
        if self._last_line == self.n:
            return
        self._last_line = self.n
        parts = [f"{self.desc}: {self.unit} {self.n}/{self.total}"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        rate = self.rate
        if rate:
            parts.append(f"{rate:.3g} it/s" if rate >= 1 else f"{1 / rate:.3g} s/it")
            if self.n < self.total:
                parts.append(f"ETA {format_duration(self.eta)}")
        say("  ".join(parts), self.stream)

    def write(self, message):
        """A plain line that does not break the live bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            say(message, self.stream)

    def close(self, line=True):
        """Ends the bar, or prints the last plain line (``line``) if it was not printed yet."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and line and self.n > self.start:
            self._line()
        self.enabled = False
