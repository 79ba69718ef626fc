"""Parsing the units operators type: rates (``1000/min``), durations (``1h``), memory (``3GB``).

Shared by the runtime CLI (``kqueue replay --rate``) and the planner (``simulate``, ``tune``).
"""

from __future__ import annotations

import re

_TIME_UNITS_S = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
#: Plurals too: "secs", "minutes", "hours", "days".
_TIME_UNITS_S |= {f"{unit}s": s for unit, s in list(_TIME_UNITS_S.items()) if len(unit) > 2}
#: MB per unit. kqueue's MB is 2**20 bytes (what the runtime records as ``memory_mb``), so KB,
#: MB, GB and TB are binary here, the same as KiB, MiB, GiB and TiB (see docs/DECISIONS.md).
MEMORY_UNITS_MB = {
    "b": 1 / (1024 * 1024),
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "mb": 1.0,
    "mib": 1.0,
    "gb": 1024.0,
    "gib": 1024.0,
    "tb": 1024.0 * 1024.0,
    "tib": 1024.0 * 1024.0,
}
_MEMORY_UNITS_MB = MEMORY_UNITS_MB | {
    "k": 1 / 1024,
    "m": 1.0,
    "g": 1024.0,
    "t": 1024.0 * 1024.0,
}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"


def parse_rate(text: str) -> float:
    """A rate such as ``1000/min``, ``20/s``, ``5000/h`` or a bare number (per second) -> jobs/s.

    Raises:
        ValueError: not a positive rate; says which forms are accepted.
    """
    match = re.fullmatch(rf"\s*({_NUMBER})\s*(?:/\s*([a-z]+))?\s*", text.lower())
    unit = match.group(3) if match else None
    if match is None or (unit is not None and unit not in _TIME_UNITS_S):
        raise ValueError(f"rate {text!r} is not of the form N/s, N/min, N/h or N/d")
    value = float(match.group(1)) / _TIME_UNITS_S[unit or "s"]
    if value <= 0:
        raise ValueError(f"rate {text!r} must be positive")
    return value


def parse_duration(text: str) -> float:
    """A duration such as ``90s``, ``15min``, ``1h30m``, ``250ms`` or a bare number (s) -> seconds.

    Raises:
        ValueError: not a positive duration; says which units are accepted.
    """
    compact = re.sub(r"\s+", "", text.lower())
    parts = re.findall(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-z]*)", compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"duration {text!r} is not a number with a unit of "
            f"{', '.join(_TIME_UNITS_S)} (e.g. 90s, 15min, 1h30m)"
        )
    total = 0.0
    for number, unit in parts:
        if (unit or "s") not in _TIME_UNITS_S:
            raise ValueError(
                f"duration {text!r}: unknown unit {unit!r}; use one of {', '.join(_TIME_UNITS_S)}"
            )
        total += float(number) * _TIME_UNITS_S[unit or "s"]
    if total <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return total


def parse_memory(text: str) -> float:
    """A memory size such as ``3GB``, ``512MiB``, ``1.5g`` or a bare number (MB) -> MB.

    KB/KiB, MB/MiB, GB/GiB and TB/TiB are all binary (1 GB = 1024 MB), as ``memory_mb`` is.

    Raises:
        ValueError: not a positive size; says which units are accepted.
    """
    match = re.fullmatch(rf"\s*({_NUMBER})\s*([a-z]*)\s*", text.lower())
    unit = (match.group(3) or "mb") if match else None
    if match is None or unit not in _MEMORY_UNITS_MB:
        raise ValueError(
            f"memory {text!r} is not a number with a unit of KB, MB, GB or TB "
            "(or KiB, MiB, GiB, TiB)"
        )
    value = float(match.group(1)) * _MEMORY_UNITS_MB[unit]
    if value <= 0:
        raise ValueError(f"memory {text!r} must be positive")
    return value


def rescale_arrivals(submitted_at: list[float], rate_per_s: float) -> list[float]:
    """Offsets from the first arrival, stretched or squeezed so the mean rate is ``rate_per_s``.

    The shape of the arrivals (bursts, gaps) is kept; only the time axis is scaled. A trace of
    one job, or of jobs all submitted at once, becomes arrivals evenly spaced at the rate.
    """
    if not submitted_at:
        return []
    first = min(submitted_at)
    offsets = [t - first for t in submitted_at]
    span = max(offsets)
    if len(offsets) < 2 or span <= 0:
        return [i / rate_per_s for i in range(len(offsets))]
    factor = (len(offsets) - 1) / (span * rate_per_s)
    return [offset * factor for offset in offsets]
