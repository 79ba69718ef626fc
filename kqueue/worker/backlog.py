"""The pool's view of the backlog: jobs waiting in the backend whose class routes to the pool.

The pool scaler (``kqueue.policy.scaler.target_size_with_backlog``) counts, beside the jobs the
worker holds for the pool, the jobs still in the backend that it would send there. The backend
keeps per-class pending counts (``Backend.pending_by_class``), so one read per queue gives them;
``kqueue.policy.scaler.pool_backlog`` keeps the classes the worker routes to the pool. The read
is cached for ``BACKLOG_INTERVAL_S``: at most once per scaler tick, never per job.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from kqueue.backends.base import Backend
from kqueue.policy.scaler import pool_backlog
from kqueue.worker.held import best_effort

#: Least time between two reads of the backend's per-class pending counts, seconds.
BACKLOG_INTERVAL_S = 0.5


class PoolBacklog:
    """Callable: the backend's pending jobs (worker's queues) whose class routes to the pool.

    Args:
        backend: where the counts are read.
        queues: the queues this worker leases from.
        routes_to_pool: whether this worker sends a job class to the pool (``Intake``).
        clock: monotonic seconds (a test may pass its own).
    """

    def __init__(
        self,
        backend: Backend,
        queues: Sequence[str],
        routes_to_pool: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.backend, self.queues, self.routes_to_pool = backend, tuple(queues), routes_to_pool
        self.clock = clock
        #: Backend reads so far (one per queue per refresh).
        self.reads = 0
        self._value = 0
        self._read_at = -math.inf

    def __call__(self) -> int:
        now_s = self.clock()
        if now_s - self._read_at >= BACKLOG_INTERVAL_S:
            self._read_at = now_s
            self._value = self._read()
        return self._value

    def _read(self) -> int:
        total = 0
        for queue in self.queues:
            self.reads += 1
            counts = best_effort("read pending counts", self.backend.pending_by_class, queue)
            total += pool_backlog(counts or {}, self.routes_to_pool)
        return total
