"""How much memory a job is expected to use: its class's recorded peaks, else a default.

Kept like the duration history (``kqueue.policy.estimator``): the same window and the same high
quantile of the last ``history_window`` recorded peaks of the class (``memory_mb`` of its trace
rows: what the job added to its process or to the worker, ``job_memory_mb``), trusted once there
are ``history_min_samples`` of them, and before that ``cold_start_mb``:
``Config.default_job_memory_mb`` capped by the job's own ``max_memory_mb`` (by default the limit
itself: a job cannot pass it, so a budget holds from the first job, at the price of admitting
few unknown jobs at once). A high quantile is what admission needs: a class that is small half
the time and large the other half is admitted for its large runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from kqueue.policy.estimator import DurationHistory, quantile


def job_memory_mb(peak_rss_mb: float, base_rss_mb: float) -> float:
    """A job's memory, MB: the peak resident memory of where it ran while it ran, less that
    place's own base (never below 0).

    The one quantity a trace row's ``memory_mb`` holds on both sides. The twin adds a job's
    ``memory_mb`` on top of its process's own memory (``HostProfile.pool_process_mb``,
    ``isolated_process_mb``) or the worker's, so the runtime records the same thing: in a pool
    or isolated process the base is the process's resident memory when fresh, before its first
    job (the interpreter it inherited); inline, the worker's peak before the job. A pool job
    that runs after a bigger one reads that one's retained heap too, as the twin's pool
    process keeps its high-water mark.
    """
    return max(0.0, float(peak_rss_mb) - float(base_rss_mb))


def cold_start_mb(default_mb: float, limit_mb: float) -> float:
    """The prediction for a class with no history: the default, never above the job's limit, MB."""
    return min(default_mb, limit_mb)


def predict_memory_mb(
    history_mb: Iterable[float], default_mb: float, *, quantile_q: float = 0.9, min_samples: int = 3
) -> float:
    """The predicted memory of one job, MB (pure).

    Args:
        history_mb: recent recorded peaks of the job's class, MB (NaN values are skipped).
        default_mb: the prediction before there are ``min_samples`` of them.
        quantile_q: which quantile of the peaks to use.
        min_samples: how many peaks the history needs before it is trusted.
    """
    values = sorted(value for value in history_mb if not math.isnan(value))
    if len(values) < min_samples:
        return float(default_mb)
    return quantile(values, quantile_q)


class MemoryHistory:
    """Recent memory peaks per job class, and the prediction they give.

    The windows are ``DurationHistory``'s (the same sorted-window bookkeeping, so a record is one
    insertion and one removal); only the numbers are megabytes. Unknown memory (NaN: a job
    killed before its peak was read) is not recorded.
    """

    def __init__(self, window: int = 100, quantile_q: float = 0.9, min_samples: int = 3):
        """Args: see ``predict_memory_mb``; ``window``: peaks kept per class."""
        self._peaks = DurationHistory(window, quantile_q, min_samples)

    @classmethod
    def from_config(cls, config) -> MemoryHistory:
        """A history sized by the config's history and quantile settings."""
        return cls(config.history_window, config.estimate_quantile, config.history_min_samples)

    def record(self, job_class: str, memory_mb: float) -> None:
        """Remember one finished job's peak memory (NaN or negative: ignored)."""
        if memory_mb is None or math.isnan(memory_mb) or memory_mb < 0:
            return
        self._peaks.record(job_class, memory_mb)

    def predict_mb(self, job_class: str, default_mb: float) -> float:
        """The predicted memory of a job of ``job_class``, MB."""
        return self._peaks.estimate_s(job_class, None, default_mb)

    def has_history(self, job_class: str) -> bool:
        """True once the class has enough recorded peaks to be trusted."""
        return self._peaks.estimate(job_class, None, -1.0).duration_s != -1.0

    def peaks_mb(self, job_class: str) -> list[float]:
        """The recent peaks of a class, oldest first, MB."""
        return self._peaks.durations(job_class)

    def peak_mb(self, job_class: str) -> float:
        """The largest recent peak of a class, MB (NaN without history)."""
        return max(self._peaks.durations(job_class), default=math.nan)
