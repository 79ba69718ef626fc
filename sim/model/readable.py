"""Numbers as a planner reads them: rates at a precision that shows the value, time in the unit
that fits the span.

Rules (documented in ``docs/DECISIONS.md``, "Reports a planner reads"):

- A rate is written in the largest of /min, /h, /d in which it is at least 1 (a job queue thinks
  in jobs per minute; an HPC log with a job every twenty minutes reads "3.2/h", not "0.0/min"),
  with three significant digits (thousands separated, no exponent).
- A time axis uses the largest of s, min, h, d of which the span holds at least two
  (``TIME_UNITS``): 90 s stays in seconds, 3 hours is drawn in hours, 46 days in days.
"""

from __future__ import annotations

import math

#: (name, seconds) from the smallest; ``time_unit`` picks the largest that fits twice.
TIME_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0))
#: (name, minutes per unit) for rates, from the largest rate unit down.
RATE_UNITS = (("min", 1.0), ("h", 60.0), ("d", 1440.0))
#: A span must hold this many of a unit for an axis to use it.
SPAN_UNITS_AT_LEAST = 2.0
#: Round durations a log axis of waits is ticked at (seconds).
DURATION_TICKS_S = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 86400.0, 864000.0)


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit (name, seconds) a time axis covering ``span_s`` seconds should use."""
    chosen = TIME_UNITS[0]
    for name, seconds in TIME_UNITS:
        if span_s >= SPAN_UNITS_AT_LEAST * seconds:
            chosen = (name, seconds)
    return chosen


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, thousands separated, no exponent, no trailing
    zeros: ``significant(1.80) == "1.8"``, ``significant(1234.5) == "1,234"``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate_unit(per_min: float) -> tuple[str, float]:
    """The rate unit (name, minutes per unit) in which ``per_min`` jobs/min is at least 1."""
    for name, minutes in RATE_UNITS:
        if per_min * minutes >= 1:
            return name, minutes
    return RATE_UNITS[-1]


def format_rate(per_min: float, unit: tuple[str, float] | None = None) -> str:
    """A rate of ``per_min`` jobs per minute as text: ``"1,000/min"``, ``"1.8/min"``, ``"3.2/h"``.

    Args:
        per_min: jobs per minute (``None``-free; 0 gives ``"0/min"``).
        unit: force a unit from ``RATE_UNITS`` (so two numbers side by side share one); by
            default the one ``rate_unit`` picks for this value.
    """
    if per_min == 0:
        return f"0/{(unit or RATE_UNITS[0])[0]}"
    name, minutes = unit or rate_unit(per_min)
    return f"{significant(per_min * minutes)}/{name}"


def format_duration(seconds: float) -> str:
    """A duration in the unit that fits it: ``"250 ms"``, ``"45 s"``, ``"10 min"``, ``"2.5 d"``."""
    if seconds == 0:
        return "0 s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{significant(seconds * 1000, 2)} ms"
    name, unit_s = TIME_UNITS[0]
    for candidate, candidate_s in TIME_UNITS:
        if seconds >= candidate_s:
            name, unit_s = candidate, candidate_s
    return f"{significant(seconds / unit_s, 2)} {name}"
