"""The simulated backend's backlog: jobs that arrived and the worker has not leased yet.

The runtime's pool scaler counts, beside the jobs the worker holds for the pool, the jobs still
waiting in the backend whose class routes to the pool (``Backend.pending_by_class`` through
``kqueue.policy.scaler.pool_backlog``). The model keeps its backend as the trace itself (jobs
sorted by arrival, leased in that order up to an index), so the same counts are "arrived by now,
not yet leased", per class: ``ArrivalBacklog.pending_by_class``. The pool tier then scales by the
same rule, with the same two inputs, as the runtime.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


class ArrivalBacklog:
    """Per-class counts of the jobs arrived in ``[leased, now]`` (the trace's arrival order).

    Args:
        submitted_s: each job's arrival, seconds, sorted.
        job_class: each job's class.
    """

    def __init__(self, submitted_s: Sequence[float], job_class: Sequence[str]):
        self._submitted_s, self._job_class = submitted_s, job_class
        self._positions: dict[str, list[int]] = {}
        for index, name in enumerate(job_class):
            self._positions.setdefault(name, []).append(index)

    def pending_by_class(self, leased: int, now_s: float) -> dict[str, int]:
        """Jobs arrived by ``now_s`` from index ``leased`` on (not leased yet), per class.

        A short backlog is counted job by job, a long one by bisecting each class's positions,
        whichever is cheaper: O(min(backlog, classes x log n)).
        """
        arrived = bisect.bisect_right(self._submitted_s, now_s, leased)
        if arrived <= leased:
            return {}
        counts: dict[str, int] = {}
        if arrived - leased <= len(self._positions):
            for name in self._job_class[leased:arrived]:
                counts[name] = counts.get(name, 0) + 1
            return counts
        for name, positions in self._positions.items():
            n = bisect.bisect_left(positions, arrived) - bisect.bisect_left(positions, leased)
            if n:
                counts[name] = n
        return counts
