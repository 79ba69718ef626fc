"""A tiny progress printer for long simulations; writes to standard error only.

On a terminal it redraws one line; elsewhere (a log, CI) it prints a line every 10%.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class ProgressPrinter:
    """Callable as ``progress(done, total)``; pass it as ``simulate(..., progress=...)``.

    Args:
        label: what is progressing, e.g. ``"simulating"``.
        stream: where to write (standard error by default, so standard output stays clean).
        unit: what is counted (``"jobs"``; the tuner counts ``"configs"``).
    """

    def __init__(self, label: str = "simulating", stream: TextIO | None = None, unit: str = "jobs"):
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.redraw = bool(getattr(self.stream, "isatty", lambda: False)())
        self._began = time.perf_counter()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        """Report that ``done`` of ``total`` jobs (or other units) are done."""
        fraction = done / total if total else 1.0
        elapsed = time.perf_counter() - self._began
        if self.redraw:
            bar = "#" * int(fraction * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {fraction:4.0%} {elapsed:5.1f} s")
            if done >= total:
                self.stream.write("\n")
        elif int(fraction * 10) > self._last_tenth:
            self._last_tenth = int(fraction * 10)
            self.stream.write(f"{self.label}: {done:,}/{total:,} {self.unit} ({elapsed:.1f} s)\n")
        self.stream.flush()


class _Stamped:
    """A stream that remembers when it was last written to."""

    def __init__(self, stream: TextIO):
        self.stream, self.last_s = stream, time.monotonic()
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.stream.write(text)
            self.last_s = time.monotonic()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())


class TuneProgress:
    """The tuner's progress: ``progress(label)`` gives a ``ProgressPrinter`` for one stage, and a
    thread prints the current stage again whenever nothing was written for ``quiet_s`` seconds
    (a long simulation in another process says nothing meanwhile). Use as a context manager.

    Args:
        stream: where to write (standard error by default).
        quiet_s: the longest silence (seconds) before the stage is repeated with its elapsed time.
    """

    def __init__(self, stream: TextIO | None = None, quiet_s: float = 1.5):
        self.out = _Stamped(stream if stream is not None else sys.stderr)
        self.quiet_s = quiet_s
        self.label = "tune: starting"
        self._began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tune-progress", daemon=True)

    def __call__(self, label: str) -> ProgressPrinter:
        self.label, self._began = f"tune {label}", time.monotonic()
        return ProgressPrinter(self.label, stream=self.out, unit="configs")  # type: ignore[arg-type]

    def __enter__(self) -> TuneProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            if now - self.out.last_s >= self.quiet_s:
                lead = "\r" if self.out.isatty() else ""
                self.out.write(f"{lead}{self.label}: running ({now - self._began:.1f} s)\n")
                self.out.flush()
