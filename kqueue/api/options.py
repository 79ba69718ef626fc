"""The options of one dispatch (``job.options(...)``), checked once where the user wrote them.

Outcomes chosen for odd input (docs/DECISIONS.md, "Dispatch options"): ``at`` in the past runs
as soon as a worker is free (as a cron job that is late, never an error); a negative or
non-finite ``delay_s`` is an error; ``delay_s`` and ``at`` together are an error; a unique key
or job id must be a non-empty string.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

from kqueue.errors import ConfigError, JobError
from kqueue.policy.ordering import check_priority


@dataclass(frozen=True)
class DispatchOptions:
    """How one call is dispatched; ``None`` means the job's own setting."""

    delay_s: float = 0.0
    #: When it may first run, epoch seconds (from ``at``), or None.
    at_s: float | None = None
    job_id: str | None = None
    unique_key: str | None = None
    unique_for_s: float = 0.0
    result_ttl_s: float | None = None
    #: Its priority within the queue (None: the job's own, else 0).
    priority: int | None = None

    def due_in_s(self, now_s: float) -> float:
        """Seconds from ``now_s`` until the job is due (0 for at-in-the-past)."""
        if self.at_s is not None:
            return max(0.0, self.at_s - now_s)
        return self.delay_s


def dispatch_options(
    job_name: str,
    *,
    delay_s: float | None = None,
    at: datetime.datetime | float | None = None,
    job_id: str | None = None,
    unique_key: str | None = None,
    unique_for_s: float | None = None,
    result_ttl_s: float | None = None,
    priority: int | None = None,
) -> DispatchOptions:
    """Check the options of a dispatch of ``job_name``.

    Raises:
        JobError: a bad value, naming the option, the job and what is expected.
    """
    where = f"job {job_name!r}: options"
    if delay_s is not None and at is not None:
        raise JobError(f"{where}: give delay_s or at, not both")
    for name, value in (("job_id", job_id), ("unique_key", unique_key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise JobError(f"{where}({name}={value!r}): expected a non-empty string")
    return DispatchOptions(
        delay_s=_seconds(where, "delay_s", delay_s, 0.0),
        at_s=None if at is None else _epoch_s(where, at),
        job_id=job_id,
        unique_key=unique_key,
        unique_for_s=_seconds(where, "unique_for_s", unique_for_s, 0.0),
        result_ttl_s=_seconds(where, "result_ttl_s", result_ttl_s, None),
        priority=_priority(where, priority),
    )


def _priority(where: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return check_priority(value, where)
    except ConfigError as exc:
        raise JobError(str(exc)) from None


def _seconds(where: str, name: str, value: Any, default: float | None = 0.0) -> float | None:
    if value is None:
        return default
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:
        raise JobError(f"{where}({name}={value!r}): expected a number of seconds >= 0")
    return float(value)


def _epoch_s(where: str, at: Any) -> float:
    if isinstance(at, datetime.datetime):
        return at.timestamp()  # a naive datetime is local time, as datetime.now() gives
    ok = isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at)
    if not ok:
        raise JobError(f"{where}(at={at!r}): expected a datetime or epoch seconds")
    return float(at)
