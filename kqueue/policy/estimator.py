"""How long a job is expected to take: explicit estimate, else its class's history, else a default.

The history statistic is a high quantile (``Config.estimate_quantile``, 0.9 by default) of the last
``Config.history_window`` recorded durations of the job class. A quantile is robust where a mean is
not (one 10-minute outlier does not move it), and a high one is conservative where routing needs it
(a class that is fast half the time and slow the other half goes where its slow runs belong). The
window lets the estimate follow a class whose jobs change. ``docs/DECISIONS.md`` gives the reasons.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from kqueue.policy.status import Status

#: The attempts whose duration the history learns from, when they end (runtime and twin): a job
#: that returned, and one stopped at its timeout (it says the class runs at least that long).
#: Other ends (an exception, a kill, the memory limit) say nothing about how long it runs.
LEARNS_FROM: frozenset[Status] = frozenset({Status.OK, Status.TIMEOUT})


class EstimateSource(enum.StrEnum):
    """Where an estimate came from."""

    #: The job declared ``estimated_duration_s``.
    EXPLICIT = "explicit"
    #: A quantile of the job class's recorded durations.
    HISTORY = "history"
    #: ``Config.default_estimate_s``: no estimate and too little history.
    DEFAULT = "default"


@dataclass(frozen=True)
class Estimate:
    """An expected duration and where it came from."""

    duration_s: float
    source: EstimateSource


def quantile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile of already sorted values, linearly interpolated (numpy's default)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    low, high, fraction = _interpolation(len(sorted_values), q)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def _interpolation(count: int, q: float) -> tuple[int, int, float]:
    """Where the ``q`` quantile of ``count`` sorted values lies: between the values at ``low``
    and ``high``, ``fraction`` of the way."""
    position = (count - 1) * q
    low = math.floor(position)
    return low, min(low + 1, count - 1), position - low


def estimate_duration(
    explicit_s: float | None,
    history_s: Iterable[float],
    default_s: float,
    *,
    quantile_q: float = 0.9,
    min_samples: int = 3,
) -> Estimate:
    """Estimate one job's duration (pure).

    Args:
        explicit_s: the job's declared ``estimated_duration_s``, or ``None``.
        history_s: recent recorded durations of the job's class, in seconds.
        default_s: the fallback, ``Config.default_estimate_s``.
        quantile_q: which quantile of the history to use.
        min_samples: how many durations the history needs before it is trusted.
    """
    if explicit_s is not None:
        return Estimate(float(explicit_s), EstimateSource.EXPLICIT)
    history = _history_s(sorted(history_s), quantile_q, min_samples)
    if history is None:
        return Estimate(float(default_s), EstimateSource.DEFAULT)
    return Estimate(history, EstimateSource.HISTORY)


def _history_s(values: list[float], quantile_q: float, min_samples: int) -> float | None:
    """The history statistic of already sorted durations; ``None`` while too few to trust."""
    return quantile(values, quantile_q) if len(values) >= min_samples else None


class DurationHistory:
    """Recent durations per job class, and the estimate they give.

    Holds state (the windows), but every decision is ``estimate_duration``'s rule. Each class
    keeps its window twice: in arrival order (to forget the oldest) and sorted (kept sorted by
    insertion), so a record costs one insertion and one removal, and it updates the class's
    quantile then; an estimate is a dictionary read. A simulator replaying a million jobs never
    sorts, and ``estimate_s`` (the number alone) builds no object.
    """

    def __init__(self, window: int = 100, quantile_q: float = 0.9, min_samples: int = 3):
        """Args: window: durations kept per class; the rest: see ``estimate_duration``."""
        self.window = window
        self.quantile_q = quantile_q
        self.min_samples = min_samples
        self._durations: dict[str, deque[float]] = {}
        self._sorted: dict[str, list[float]] = {}
        #: Per class with at least ``min_samples`` durations: the quantile of its window.
        self._quantile_s: dict[str, float] = {}
        #: ``quantile``'s interpolation for a full window, worked out once.
        self._full_window = _interpolation(window, quantile_q)

    @classmethod
    def from_config(cls, config) -> DurationHistory:
        """A history sized by the config's history and quantile settings."""
        return cls(config.history_window, config.estimate_quantile, config.history_min_samples)

    def record(self, job_class: str, duration_s: float) -> None:
        """Remember one finished job's duration."""
        ordered = self._sorted.get(job_class)
        if ordered is None:
            self._durations[job_class] = deque()
            ordered = self._sorted[job_class] = []
        window = self._durations[job_class]
        duration_s = float(duration_s)
        window.append(duration_s)
        insort(ordered, duration_s)
        if len(window) > self.window:  # the common case once a class has run a while
            del ordered[bisect_left(ordered, window.popleft())]
            if self.window >= self.min_samples:
                low, high, fraction = self._full_window
                self._quantile_s[job_class] = (
                    ordered[low] + (ordered[high] - ordered[low]) * fraction
                )
            return
        history = _history_s(ordered, self.quantile_q, self.min_samples)
        if history is not None:
            self._quantile_s[job_class] = history

    def durations(self, job_class: str) -> list[float]:
        """The recent durations of a class, oldest first."""
        return list(self._durations.get(job_class, ()))

    def classes(self) -> list[str]:
        """Every job class with recorded durations."""
        return list(self._durations)

    def estimate(self, job_class: str, explicit_s: float | None, default_s: float) -> Estimate:
        """``estimate_duration`` for this class with its recorded history."""
        if explicit_s is not None:
            return Estimate(float(explicit_s), EstimateSource.EXPLICIT)
        history_s = self._quantile_s.get(job_class)
        if history_s is None:
            return Estimate(float(default_s), EstimateSource.DEFAULT)
        return Estimate(history_s, EstimateSource.HISTORY)

    def estimate_s(self, job_class: str, explicit_s: float | None, default_s: float) -> float:
        """``estimate(...).duration_s``, without building the ``Estimate`` (the simulator's
        per-job path)."""
        if explicit_s is not None:
            return float(explicit_s)
        return self._quantile_s.get(job_class, default_s)
