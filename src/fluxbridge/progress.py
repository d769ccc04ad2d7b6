"""Progress of the long workflows: a bar on a terminal, plain log lines anywhere else.

On a terminal (stderr is a tty) a loop shows a tqdm bar that redraws in place. Written to a
file or a pipe (CI logs, ``nohup``) the same loop logs one line at most every ``interval``
seconds and one when it ends, each with its count, its numbers and an ETA, and never a
carriage return. Lines go to the ``fluxbridge.progress`` logger at INFO, so ``--quiet`` (the
logger at WARNING) or ``progress=False`` silences them. What the library logs meanwhile goes
through :func:`configure_logging`'s handler, which writes above a bar instead of through it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TextIO

from tqdm.auto import tqdm

log = logging.getLogger("fluxbridge.progress")

Numbers = Mapping[str, float | None]


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def format_seconds(seconds: float) -> str:
    """A duration [s] as ``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_numbers(numbers: Numbers) -> str:
    """``name value`` pairs with three significant digits; None values left out."""
    return "  ".join(f"{k} {v:.3g}" for k, v in numbers.items() if v is not None)


class Progress:
    """A loop's progress: ``update`` after each item, optionally with numbers to show.

    Parameters
    ----------
    total
        Items of the loop (epochs, chunks, years).
    desc
        What the loop does, e.g. ``"dual · fold 2/3"``.
    unit
        Name of one item.
    initial
        Items already done (a resumed loop).
    enabled
        False: show nothing.
    interval
        Least time between two lines when not on a terminal [s].
    clock
        Monotonic clock [s] (tests pass their own).
    """

    def __init__(self, total: int, desc: str, *, unit: str = "it", initial: int = 0,
                 enabled: bool = True, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = self.start_n = int(initial)
        self.interval, self.clock = interval, clock
        self.start = self.last_line = clock()
        self.numbers: dict[str, float | None] = {}
        self.bar = None
        self.enabled = enabled and log.isEnabledFor(logging.INFO)
        if self.enabled and is_terminal():
            self.bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=unit,
                            leave=False, dynamic_ncols=True)

    def update(self, n: int = 1, numbers: Numbers | None = None) -> None:
        """``n`` more items done; ``numbers`` (losses, say) shown from now on."""
        self.n += n
        if numbers is not None:
            self.numbers = dict(numbers)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(format_numbers(self.numbers), refresh=False)
            self.bar.update(n)
            return
        now = self.clock()
        if self.n >= self.total or now - self.last_line >= self.interval:
            self.last_line = now
            log.info("%s", self.line())

    def eta(self) -> float | None:
        """Seconds left at the mean pace of this call's items (None before the first)."""
        done = self.n - self.start_n
        if done <= 0:
            return None
        return (self.clock() - self.start) / done * max(0, self.total - self.n)

    def line(self) -> str:
        """The progress as one line of text."""
        eta = self.eta()
        parts = [f"{self.desc}: {self.unit} {self.n}/{self.total}",
                 format_numbers(self.numbers),
                 format_seconds(self.clock() - self.start)
                 + ("" if eta is None or self.n >= self.total
                    else f", ETA {format_seconds(eta)}")]
        return " | ".join(p for p in parts if p)

    def close(self) -> None:
        """End the loop (a loop that stopped early, by early stopping say, logs its last
        line)."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.n < self.total and self.n > self.start_n:
            log.info("%s (stopped early)", self.line())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _AboveBars(logging.StreamHandler):
    """Writes records with ``tqdm.write``, above any bar on the terminal."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # a logging handler never raises
            self.handleError(record)


class _Formatter(logging.Formatter):
    """``HH:MM:SS message`` for INFO; the level and logger's name before anything else."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%H:%M:%S")
        text = (f"{stamp} {record.getMessage()}" if record.levelno == logging.INFO
                else f"{stamp} {record.levelname} {record.name}: {record.getMessage()}")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: int, stream: TextIO | None = None) -> None:
    """Log ``fluxbridge`` at ``level`` to ``stream`` (default: stderr), above progress bars;
    other libraries' warnings too."""
    handler = _AboveBars(sys.stderr if stream is None else stream)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("fluxbridge").setLevel(level)
