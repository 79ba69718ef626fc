"""The last hour of the fleet trace, kept up to date from the backend, and what it says.

``TraceWindow.refresh`` reads only the rows appended since its last read (the backend's trace
cursor), so a refresh costs what is new, and a restarted dashboard has the whole hour again from
its first read: the history is the backend's, not the dashboard's. The aggregates (jobs per
minute per tier and per queue, waits per queue and tier, the job classes) are computed from one
pandas frame when rows came in, and cached until more do.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pandas as pd

from kqueue.policy.trace import window_throughput_per_min
from kqueue.policy.trace_wire import decode_rows

#: How much of the trace the dashboard keeps and charts, seconds.
WINDOW_S = 3600.0
#: Most rows read per refresh (a dashboard started on a busy day catches up over a few).
READ_LIMIT_ROWS = 200_000
#: The recent part of the window an alert looks at, seconds.
RECENT_S = 300.0
#: The columns kept of each row.
KEPT = ("finished_at", "due_at", "queue", "tier", "job_class", "wait_s", "duration_s",
        "memory_mb", "status")  # fmt: skip
_FAILED = ("failed", "timeout", "killed", "memory", "lost")


class TraceWindow:
    """The fleet trace's rows that finished in the last ``window_s``, from ``backend``.

    Args:
        backend: where the fleet trace is (``read_trace``).
        window_s: how far back rows are kept, seconds.
        clock: the wall clock (seconds), for tests.
    """

    def __init__(self, backend, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time):
        self.backend, self.window_s, self.clock = backend, window_s, clock
        #: Rows skipped as unreadable since start.
        self.bad_rows = 0
        self._cursor = ""
        self._frame = pd.DataFrame(columns=list(KEPT))
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Read the rows appended since the last refresh and drop those past the window.

        Returns how many rows came in. Raises what the backend raises (the caller shows it).
        """
        with self._lock:
            now = self.clock()
            batch = self.backend.read_trace(
                after=self._cursor, since=now - self.window_s, limit=READ_LIMIT_ROWS
            )
            self._cursor = batch.cursor or self._cursor
            rows, bad = decode_rows(batch.rows)
            self.bad_rows += bad
            fresh = pd.DataFrame([[getattr(r, c) for c in KEPT] for r in rows], columns=list(KEPT))
            old = self._frame[self._frame["finished_at"] >= now - self.window_s]
            changed = bool(rows) or len(old) != len(self._frame)
            if rows:
                old = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
            self._frame = old
            if changed:
                self._cache = {}
            return len(rows)

    @property
    def rows(self) -> int:
        """Rows in the window now."""
        return len(self._frame)

    def frame(self) -> pd.DataFrame:
        """The window's rows (shared: do not modify)."""
        return self._frame

    def _cached(self, key: str, compute: Callable[[], object]):
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = compute()
        return found

    def per_minute(self, by: str) -> dict[str, list[int]]:
        """Jobs finished per minute by ``by`` (``tier`` or ``queue``), the last 60 minutes.

        Each list has one count per minute, oldest first; the last is the current minute.
        """
        return self._cached(f"per_minute:{by}", lambda: self._per_minute(by))

    def _per_minute(self, by: str) -> dict[str, list[int]]:
        minutes = int(self.window_s // 60)
        frame, now_min = self._frame, int(self.clock() // 60)
        if frame.empty:
            return {}
        age = now_min - (frame["finished_at"] // 60).astype(int)
        keep = (age >= 0) & (age < minutes)
        counts = frame[keep].groupby([frame[by][keep], age[keep]]).size()
        out: dict[str, list[int]] = {}
        for (name, minute_age), n in counts.items():
            out.setdefault(str(name), [0] * minutes)[minutes - 1 - int(minute_age)] = int(n)
        return dict(sorted(out.items()))

    def waits(self, by: str) -> dict[str, dict[str, float | None]]:
        """p50 and p95 wait (s) over the window and p95 over the last ``RECENT_S``, by ``by``."""
        return self._cached(f"waits:{by}", lambda: self._waits(by))

    def _waits(self, by: str) -> dict[str, dict[str, float | None]]:
        frame = self._frame
        if frame.empty:
            return {}
        recent = frame[frame["finished_at"] >= self.clock() - RECENT_S]
        out = {}
        for name, group in frame.groupby(by):
            late = recent["wait_s"][recent[by] == name]
            out[str(name)] = {
                "jobs": len(group),
                "p50_wait_s": _q(group["wait_s"], 0.5),
                "p95_wait_s": _q(group["wait_s"], 0.95),
                "recent_p95_wait_s": _q(late, 0.95),
            }
        return out

    def throughput_per_min(self) -> float:
        """Jobs per minute by the simulator's throughput rule (``kqueue.policy.trace``), so the
        Plan page compares like with like: those finished by the last arrival, per minute of
        the arrival window (first to last due time); the makespan if all arrived at once."""
        frame = self._frame
        if len(frame) < 2:
            return 0.0
        due = frame["due_at"].where(frame["due_at"].notna(), frame["finished_at"])
        first_s, last_s = float(due.min()), float(due.max())
        finished_s = frame["finished_at"]
        by_last = int((finished_s <= last_s).sum())
        end_s = float(finished_s.max())
        return window_throughput_per_min(first_s, last_s, by_last, len(frame), end_s)

    def classes(self) -> list[dict]:
        """Per job class: jobs, waits, runtimes, failure rate, tier, memory and trend."""
        return self._cached("classes", self._classes)

    def _classes(self) -> list[dict]:
        frame, now = self._frame, self.clock()
        out = []
        for name, group in frame.groupby("job_class"):
            ages = ((now - group["finished_at"]) // (self.window_s / 6)).astype(int)
            trend = [int((ages == 5 - i).sum()) for i in range(6)]
            out.append(
                {
                    "job_class": str(name),
                    "jobs": len(group),
                    "p50_wait_s": _q(group["wait_s"], 0.5),
                    "p95_wait_s": _q(group["wait_s"], 0.95),
                    "p50_runtime_s": _q(group["duration_s"], 0.5),
                    "p95_runtime_s": _q(group["duration_s"], 0.95),
                    "failure_rate": float(group["status"].isin(_FAILED).mean()),
                    "tier": str(group["tier"].mode().iloc[0]) if len(group) else "",
                    "p95_memory_mb": _q(group["memory_mb"], 0.95),
                    "trend": trend,
                }
            )
        out.sort(key=lambda c: -c["jobs"])
        return out


def _q(values: pd.Series, q: float) -> float | None:
    """The ``q`` quantile of the known values, or None without any."""
    known = values.dropna()
    if known.empty:
        return None
    value = float(known.quantile(q))
    return value if math.isfinite(value) else None
