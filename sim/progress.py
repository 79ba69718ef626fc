"""A tiny progress printer for long simulations; writes to standard error only.

On a terminal it redraws one line; elsewhere (a log, CI) it prints a line every 10%.
"""

from __future__ import annotations

import sys
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
