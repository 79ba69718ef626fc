"""The in-process backend (``memory://``): for an application's own unit tests.

Everything lives in this process's dicts under one lock, with the same contract as SQLite and
Redis (the contract suite runs against all three): leases with tokens and expiry, delays,
dead letters, finished records with a TTL, unique-key locks and cancellation. Nothing survives
the process, and other processes (``kqueue run``) cannot see it: use it with
``kqueue.testing.run_until_empty``, which runs the worker in this process.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kqueue.backends.base import (
    Backend,
    DeadLetter,
    JobRecord,
    Lease,
    Records,
    State,
    WorkerStatus,
    unknown,
    waiting_state,
)
from kqueue.backends.memory_limits import MemoryLimits
from kqueue.backends.memory_trace import MemoryTrace
from kqueue.policy.ordering import backlog_key
from kqueue.policy.status import JobState

#: How often ``wait_for_work`` looks for a change, seconds.
WAKE_POLL_S = 0.002


@dataclass
class _Message:
    job_id: str
    queue: str
    body: bytes
    enqueued_at: float
    due_at: float
    available_at: float
    seq: int
    attempts: int = 0
    token: str | None = None
    worker: str = ""
    error: str = ""
    dead_at: float | None = None
    unique_key: str | None = None
    cancel: tuple[bytes, float] | None = None
    priority: int = 0
    job_class: str = ""


class MemoryBackend(MemoryTrace, MemoryLimits, Backend):
    """A backend in this process's memory; safe for its threads, invisible to other processes."""

    schemes = ("memory",)
    wakes_on_enqueue = True
    wakes_on_finish = True

    def __init__(self) -> None:
        self._messages: dict[str, _Message] = {}
        self._records: dict[str, tuple[str, bytes, float]] = {}  # id -> (queue, record, expiry)
        self._locks: dict[tuple[str, str], tuple[str, float]] = {}  # (queue, key) -> (id, until)
        self._statuses: dict[str, tuple[bytes, float, float]] = {}
        self._durations: dict[str, list[float]] = {}
        self._changed = threading.Condition()
        self._seq = 0
        #: Counts additions and requeues (what ``wait_for_work`` waits for).
        self._version = 0

    @classmethod
    def from_url(cls, url: str) -> MemoryBackend:
        """``memory://`` (a fresh, empty store each time)."""
        return cls()

    # --- messages ---------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        self.submit(queue, job_id, body, delay_s=delay_s, priority=priority, job_class=job_class)

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
        now = time.time()
        with self._changed:
            if unique_key is not None:
                holder = self._holder(queue, unique_key, now)
                if holder is not None:
                    return holder
            if job_id in self._messages:
                return job_id
            if unique_key is not None:
                self._locks[queue, unique_key] = (job_id, now + unique_for_s)
            due = now + max(0.0, delay_s)
            self._seq += 1
            self._messages[job_id] = _Message(
                job_id, queue, body, now, due, due, self._seq, unique_key=unique_key,
                priority=priority, job_class=job_class,
            )  # fmt: skip
            self._version += 1
            self._changed.notify_all()
        return job_id

    def _holder(self, queue: str, key: str, now: float) -> str | None:
        lock = self._locks.get((queue, key))
        if lock is None:
            return None
        holder, until = lock
        message = self._messages.get(holder)
        if until > now or (message is not None and message.dead_at is None):
            return holder
        return None

    def lease(
        self, queue: str, worker_id: str, limit: int, visibility_timeout_s: float
    ) -> list[Lease]:
        now = time.time()
        token, expires_at = uuid.uuid4().hex, now + visibility_timeout_s
        with self._changed:
            self._purge(now)
            due = sorted(
                (m for m in self._messages.values() if self._leasable(m, queue, now)),
                key=lambda m: backlog_key(m.priority, m.available_at, m.seq),
            )
            leases = []
            for message in due[: max(0, limit)]:
                if message.cancel is not None:  # cancelled while leased, its worker died
                    self._finish(message, {message.job_id: message.cancel}, now)
                    self._leave_line(message.job_class, message.job_id)
                    continue
                message.attempts += 1
                message.token, message.worker = token, worker_id
                message.available_at = expires_at
                leases.append(
                    Lease(
                        message.job_id,
                        queue,
                        message.body,
                        message.attempts,
                        message.enqueued_at,
                        token,
                        expires_at,
                        message.priority,
                    )
                )
        leases.sort(key=lambda lease: (-lease.priority, lease.enqueued_at))
        return leases

    @staticmethod
    def _leasable(message: _Message, queue: str, now: float) -> bool:
        return message.queue == queue and message.dead_at is None and message.available_at <= now

    def _purge(self, now: float) -> None:
        for job_id in [i for i, (_, _, expiry) in self._records.items() if expiry <= now]:
            del self._records[job_id]

    def _held(self, lease: Lease) -> _Message | None:
        message = self._messages.get(lease.job_id)
        if message is None or message.token != lease.token or message.dead_at is not None:
            return None
        return message

    def _finish(self, message: _Message, records: Records | None, now: float) -> None:
        del self._messages[message.job_id]
        record = (records or {}).get(message.job_id)
        if record is not None and record[1] > 0:
            self._records[message.job_id] = (message.queue, record[0], now + record[1])
        self._release_lock(message, now)
        self._changed.notify_all()

    def _release_lock(self, message: _Message, now: float) -> None:
        key = (message.queue, message.unique_key)
        lock = self._locks.get(key)
        if lock is not None and lock[0] == message.job_id and lock[1] <= now:
            del self._locks[key]

    def ack(self, leases: Sequence[Lease], records: Records | None = None) -> int:
        now, held = time.time(), 0
        with self._changed:
            for lease in leases:
                message = self._held(lease)
                if message is not None:
                    self._finish(message, records, now)
                    held += 1
        return held

    def extend(self, leases: Sequence[Lease], visibility_timeout_s: float) -> list[Lease]:
        expires_at = time.time() + visibility_timeout_s
        with self._changed:
            held = [lease for lease in leases if self._held(lease) is not None]
            for lease in held:
                self._messages[lease.job_id].available_at = expires_at
        return [lease.with_expiry(expires_at) for lease in held]

    def retry(self, lease: Lease, delay_s: float, error: str) -> bool:
        with self._changed:
            message = self._held(lease)
            if message is None:
                return False
            if message.cancel is not None:  # cancelled while it ran: never retried
                self._finish(message, {message.job_id: message.cancel}, time.time())
                return True
            self._requeue(message, delay_s)
            message.error = error
            return True

    def _requeue(self, message: _Message, delay_s: float) -> None:
        message.token, message.worker = None, ""
        message.available_at = time.time() + delay_s
        self._version += 1
        self._changed.notify_all()

    def release(self, leases: Sequence[Lease], delay_s: float = 0.0) -> int:
        with self._changed:
            held = [self._held(lease) for lease in leases]
            for message in filter(None, held):
                self._requeue(message, delay_s)
                message.attempts = max(0, message.attempts - 1)
        return sum(1 for message in held if message is not None)

    def dead(self, lease: Lease, reason: str) -> bool:
        now = time.time()
        with self._changed:
            message = self._held(lease)
            if message is None:
                return False
            message.token, message.worker = None, ""
            message.error, message.dead_at = reason, now
            self._release_lock(message, now)
            self._leave_line(message.job_class, message.job_id)
            self._changed.notify_all()
            return True

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._changed:
            dead = [
                m
                for m in self._messages.values()
                if m.dead_at is not None and queue in (None, m.queue)
            ]
        dead.sort(key=lambda m: (m.dead_at, m.seq), reverse=True)
        return [
            DeadLetter(m.job_id, m.queue, m.body, m.attempts, m.error, m.dead_at)
            for m in dead[:limit]
        ]

    def requeue_dead(self, job_ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        wanted = None if job_ids is None else set(job_ids)
        now, n = time.time(), 0
        with self._changed:
            for message in self._messages.values():
                if message.dead_at is None or queue not in (None, message.queue):
                    continue
                if wanted is not None and message.job_id not in wanted:
                    continue
                message.dead_at, message.error, message.attempts = None, "", 0
                message.available_at = now
                n += 1
            self._version += 1
            self._changed.notify_all()
        return n

    def counts(self, queue: str | None = None) -> dict[str, dict[str, int]]:
        now = time.time()
        result: dict[str, dict[str, int]] = {}
        with self._changed:
            for m in self._messages.values():
                if queue not in (None, m.queue):
                    continue
                if m.dead_at is not None:
                    state = State.DEAD
                elif m.token is not None and m.available_at > now:
                    state = State.LEASED
                else:
                    state = State.SCHEDULED if m.available_at > now else State.READY
                counts = result.setdefault(m.queue, {s.value: 0 for s in State})
                counts[state.value] += 1
        return result

    def pending_by_class(self, queue: str) -> dict[str, int]:
        """Counted under the store's lock (in-process: a pass over its dicts is the cheap way)."""
        now, pending = time.time(), {}
        with self._changed:
            for m in self._messages.values():
                if self._leasable(m, queue, now):
                    pending[m.job_class] = pending.get(m.job_class, 0) + 1
        return pending

    # --- handles ----------------------------------------------------------------------------

    def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        now = time.time()
        with self._changed:
            message = self._messages.get(job_id)
            if message is not None and queue in (None, message.queue):
                return self._record(message, now)
            found = self._records.get(job_id)
        if found is None or found[2] <= now or queue not in (None, found[0]):
            return unknown(job_id)
        return JobRecord(job_id, JobState.DONE, queue=found[0], record=found[1])

    @staticmethod
    def _record(m: _Message, now: float) -> JobRecord:
        if m.dead_at is not None:
            state = JobState.DEAD
        elif m.token is not None and m.available_at > now:
            state = JobState.RUNNING
        else:
            state = waiting_state(now, m.available_at, m.due_at, m.error)
        return JobRecord(
            m.job_id,
            state,
            queue=m.queue,
            attempts=m.attempts,
            enqueued_at=m.enqueued_at,
            due_at=m.due_at,
            available_at=m.available_at,
            worker=m.worker,
            error=m.error,
            failed_at=m.dead_at if m.dead_at is not None else math.nan,
            body=m.body,
        )

    def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        now = time.time()
        with self._changed:
            message = self._messages.get(job_id)
            if message is None or queue not in (None, message.queue):
                return self.lookup(job_id, queue).state
            before = self._record(message, now).state
            if before is JobState.RUNNING:
                message.cancel = (record, ttl_s)
            elif not before.finished:
                self._finish(message, {job_id: (record, ttl_s)}, now)
                self._leave_line(message.job_class, job_id)
        return before

    def cancel_requested(self, leases: Sequence[Lease]) -> set[str]:
        with self._changed:
            return {
                lease.job_id
                for lease in leases
                if (m := self._messages.get(lease.job_id)) is not None and m.cancel is not None
            }

    def wait_finished(self, job_id: str, queue: str, timeout_s: float) -> None:
        """Wait on the store's condition: any change wakes the waiter, which looks again."""
        with self._changed:
            if job_id in self._messages and self._messages[job_id].dead_at is None:
                self._changed.wait(max(0.0, timeout_s))

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None:
        """Return when a message was added or requeued, at the latest after ``timeout_s``.

        In-process, so a check every ``WAKE_POLL_S`` of a change counter costs nothing.
        """
        seen, deadline = self._version, time.monotonic() + timeout_s
        while self._version == seen and time.monotonic() < deadline:
            await asyncio.sleep(min(WAKE_POLL_S, max(0.0, deadline - time.monotonic())))

    # --- worker statuses and history --------------------------------------------------------

    def publish_status(self, worker_id: str, body: bytes, ttl_s: float) -> None:
        now = time.time()
        with self._changed:
            self._statuses[worker_id] = (body, now, now + ttl_s)

    def worker_statuses(self) -> list[WorkerStatus]:
        now = time.time()
        with self._changed:
            live = [(w, b, p) for w, (b, p, expiry) in self._statuses.items() if expiry > now]
        return [WorkerStatus(w, b, p) for w, b, p in sorted(live)]

    def remove_status(self, worker_id: str) -> None:
        with self._changed:
            self._statuses.pop(worker_id, None)

    def record_durations(self, durations: Mapping[str, Sequence[float]], keep: int) -> None:
        with self._changed:
            for job_class, values in durations.items():
                kept = self._durations.setdefault(job_class, [])
                kept.extend(float(v) for v in values)
                del kept[:-keep]

    def load_durations(self, keep: int) -> dict[str, list[float]]:
        with self._changed:
            return {c: list(v[-keep:]) for c, v in self._durations.items() if v}
