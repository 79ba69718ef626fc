"""What job handles ask of the Redis backend: unique submits, lookups, cancels, waits.

A mixin of ``RedisBackend`` (its scripts, keys and pipelined batches); the scripts are
``SUBMIT`` in ``redis_scripts``, ``LOOKUP``, ``CANCEL`` and ``CANCEL_REQUESTED`` in
``redis_scripts_handles``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence

from redis import exceptions as redis_errors

from kqueue.backends.base import JobRecord, Lease, unknown
from kqueue.backends.redis_replies import WAIT_MAX_S, job_record, translated
from kqueue.policy.status import JobState


class RedisHandles:
    """The handle half of ``RedisBackend`` (needs its ``_run``, ``_batch``, ``_keys``)."""

    @translated
    def submit(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
        unique_for_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> str:
        if unique_key is None:
            self._enqueue(queue, [(job_id, body)], delay_s, priority, job_class)
            return job_id
        keys = self._keys(queue, "pending", "notify", "dead")
        args = [self._prefix(queue), repr(float(delay_s)), job_id, body, unique_key]
        call = ("SUBMIT", keys, [*args, repr(float(unique_for_s)), str(int(priority)), job_class])
        [holder] = self._batch([call], lambda pipe: pipe.sadd(f"{self.prefix}:queues", queue))
        return holder.decode()

    # --- handles: lookup, cancel, wait ------------------------------------------------------

    @translated
    def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        names = [queue] if queue else self._queues()
        calls = [
            ("LOOKUP", self._keys(name, "pending", "leased", "dead"), [self._prefix(name), job_id])
            for name in names
        ]
        now = time.time()
        for name, reply in zip(names, self._batch(calls) if calls else [], strict=True):
            record = job_record(job_id, name, reply, now)
            if record.state is not JobState.UNKNOWN:
                return record
        return unknown(job_id)

    @translated
    def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        names = [queue] if queue else self._queues()
        for name in names:
            keys = self._keys(name, "pending", "leased", "dead")
            args = [self._prefix(name), job_id, record, max(1, math.ceil(ttl_s * 1000))]
            before = self._run("CANCEL", keys, args).decode()
            if before == "finished":
                return self.lookup(job_id, name).state
            if before != "unknown":
                return JobState(before)
        return JobState.UNKNOWN

    @translated
    def cancel_requested(self, leases: Sequence[Lease]) -> set[str]:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for lease in leases:
            by_queue[lease.queue].append(lease.job_id)
        calls = [
            ("CANCEL_REQUESTED", [], [self._prefix(queue), *ids]) for queue, ids in by_queue.items()
        ]
        replies = self._batch(calls) if calls else []
        return {job_id.decode() for reply in replies for job_id in reply}

    @translated
    def wait_and_lookup(self, job_id: str, queue: str, timeout_s: float) -> JobRecord:
        """``BLMOVE`` and the LOOKUP script pipelined: the job's end and its record in one trip."""
        key = self._prefix(queue) + f"done:{job_id}"
        wait_s = min(WAIT_MAX_S, max(0.001, timeout_s))
        keys = self._keys(queue, "pending", "leased", "dead")
        lookup = ("LOOKUP", keys, [self._prefix(queue), job_id])
        replies = self._batch([lookup], lambda pipe: pipe.blmove(key, key, wait_s, "LEFT", "LEFT"))
        return job_record(job_id, queue, replies[0], time.time())

    def wait_finished(self, job_id: str, queue: str, timeout_s: float) -> None:
        """``BLMOVE`` the job's ``done`` list onto itself: returns as it ends (every waiter)."""
        key = self._prefix(queue) + f"done:{job_id}"
        try:
            self.client.blmove(key, key, min(WAIT_MAX_S, max(0.001, timeout_s)), "LEFT", "LEFT")
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            time.sleep(min(timeout_s, 0.1))  # the caller's next lookup reports the outage
