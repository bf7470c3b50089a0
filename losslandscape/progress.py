"""Progress of long work: done out of total, and a time left that leaves out the first call, which compiles."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

# Outside terminals and notebooks (log files, CI), a line is written at every tenth of the work.
LINES_WHEN_NOT_INTERACTIVE = 10
BAR_WIDTH = 30


class Progress:
    """Counts finished units of work and shows them, updating one line in place where that works.

    On a terminal or in a Jupyter notebook the line is rewritten with a
    carriage return (no backspaces, no ANSI codes); elsewhere a plain line
    is written at every tenth of the work, so that log files stay readable.
    The rate, and the time left, leave out calls marked `first_call=True`:
    a first call compiles, and counting it would promise minutes for a run
    of seconds.

    Args:
        total: Units of work in all.
        verbose: 0 shows nothing.
        unit: What a unit is called ("point", "product").
        stream: Where to write; `sys.stdout` by default.

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> progress = Progress(4, unit="point", stream=out)
        >>> for index in range(4):
        ...     progress.add(1, first_call=index == 0)
        >>> progress.close()
        >>> out.getvalue().splitlines()[-1].startswith("4/4 points")
        True
    """

    def __init__(self, total: int, verbose: int = 1, unit: str = "point", stream: Optional[TextIO] = None):
        self.total = int(total)
        self.done = 0
        self._show = bool(verbose) and self.total > 0
        self._unit = unit
        self._stream = stream or sys.stdout
        self._interactive = _is_interactive(self._stream)
        self._started = self._last = time.perf_counter()
        self._excluded_seconds = 0.0
        self._excluded_done = 0
        self._lines_written = 0
        self._closed = False

    def add(self, count: int, first_call: bool = False) -> None:
        """Records `count` more finished units; `first_call`: they came from a call that compiled."""
        self.done += int(count)
        now = time.perf_counter()
        if first_call:
            self._excluded_seconds += now - self._last
            self._excluded_done += int(count)
        self._last = now
        if not self._show:
            return
        if self._interactive:
            self._write("\r" + self._line(now) + " ")
        elif self.done * LINES_WHEN_NOT_INTERACTIVE >= (self._lines_written + 1) * self.total:
            self._lines_written = self.done * LINES_WHEN_NOT_INTERACTIVE // self.total
            self._write(self._line(now) + "\n")

    def close(self) -> None:
        """Ends the line with the total time; only the first call writes."""
        if self._closed or not self._show:
            return
        self._closed = True
        seconds = time.perf_counter() - self._started
        summary = f"{self.done}/{self.total} {self._unit}s in {_duration(seconds)}"
        self._write(("\r" + summary.ljust(BAR_WIDTH + 40) + "\n") if self._interactive else summary + "\n")

    def seconds_left(self, now: Optional[float] = None) -> Optional[float]:
        """The estimated time left, or None until a call that did not compile has finished."""
        now = time.perf_counter() if now is None else now
        counted_done = self.done - self._excluded_done
        counted_seconds = now - self._started - self._excluded_seconds
        if counted_done <= 0 or counted_seconds <= 0:
            return None
        return (self.total - self.done) * counted_seconds / counted_done

    def _line(self, now: float) -> str:
        filled = BAR_WIDTH * min(self.done, self.total) // self.total
        bar = "=" * filled + "." * (BAR_WIDTH - filled)
        left = self.seconds_left(now)
        estimate = "" if left is None else f", about {_duration(left)} left"
        return f"{self.done}/{self.total} {self._unit}s [{bar}] {_duration(now - self._started)}{estimate}"

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def _is_interactive(stream: TextIO) -> bool:
    """Whether `stream` shows a carriage return as a rewritten line: a terminal or a Jupyter notebook's output."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    return "ipykernel" in sys.modules and stream in (sys.stdout, sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
