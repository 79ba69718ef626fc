"""The backend interface: a store of opaque job messages with leases.

Backends move bytes (Huey's storage: "given an opaque chunk of data, add it to the queue");
encoding a job into a body lives in ``kqueue.job``. Delivery is at least once: ``lease`` hands a
message out for ``visibility_timeout_s``; unless it is acked, retried, dead-lettered, released or
extended before then, it becomes available again and another worker may lease it. Every state
change is guarded by the lease's token, so a worker whose lease expired cannot ack, retry or
dead-letter a message that somebody else now holds.

Times are wall-clock seconds (``time.time()``): leases are shared across processes and hosts.

Beyond the queue, a backend keeps what a job handle asks about (``lookup``): each finished job's
record (opaque JSON bytes: its result or why it ended) for the TTL the worker gives with the ack,
expired by the backend itself; unique-key locks (``submit``), each held while its job is waiting
or running and until its ``unique_for_s`` has passed; and cancellations (``cancel``): a waiting
job is removed, a running one is flagged for the worker that holds it (``cancel_requested``).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import enum
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kqueue.policy.status import JobState


class State(enum.StrEnum):
    """Where a message is in its life."""

    #: Waiting to be leased, available now.
    READY = "ready"
    #: Waiting to be leased, not before its ``available_at`` (a retry or a scheduled job).
    SCHEDULED = "scheduled"
    #: Leased by a worker; comes back when the lease expires.
    LEASED = "leased"
    #: Failed for good; kept with its reason until requeued or purged.
    DEAD = "dead"


@dataclass(frozen=True)
class Lease:
    """A message handed to one worker until ``expires_at``."""

    job_id: str
    queue: str
    body: bytes
    #: 1 on the first lease, counts every lease since (released leases excepted).
    attempt: int
    #: When the job was first enqueued (wall clock, seconds).
    enqueued_at: float
    #: Proves this worker still holds the message; state changes check it.
    token: str
    expires_at: float
    #: Its priority (``kqueue.policy.ordering``): a batch comes highest first, then oldest.
    priority: int = 0

    def with_expiry(self, expires_at: float) -> Lease:
        """The same lease with a new expiry (after an extension)."""
        return dataclasses.replace(self, expires_at=expires_at)


@dataclass(frozen=True)
class DeadLetter:
    """A message that failed for good, with why."""

    job_id: str
    queue: str
    body: bytes
    attempts: int
    reason: str
    failed_at: float


@dataclass(frozen=True)
class JobRecord:
    """What a backend knows of one job id (``lookup``)."""

    job_id: str
    state: JobState
    queue: str = ""
    #: Attempts started so far (leases counted).
    attempts: int = 0
    #: When it was first enqueued, and when it is (was) due; NaN if unknown.
    enqueued_at: float = math.nan
    due_at: float = math.nan
    #: When it may next be leased (waiting), or when its lease expires (running).
    available_at: float = math.nan
    #: The worker holding its lease (running), if the backend records it.
    worker: str = ""
    #: The last failed attempt's error (retrying, dead).
    error: str = ""
    #: When it failed for good (dead).
    failed_at: float = math.nan
    #: The finished job's record (done, cancelled): opaque JSON bytes the worker stored.
    record: bytes = b""
    #: The message (waiting, running, dead).
    body: bytes = b""


def unknown(job_id: str) -> JobRecord:
    """The record of a job id the backend does not know (never seen, or expired)."""
    return JobRecord(job_id, JobState.UNKNOWN)


def waiting_state(now: float, available_at: float, due_at: float, error: str) -> JobState:
    """The state of a message waiting to be leased: scheduled, retrying, or queued (due)."""
    if available_at <= now:
        return JobState.QUEUED
    if error:
        return JobState.RETRYING
    return JobState.SCHEDULED if due_at > now else JobState.QUEUED


@dataclass(frozen=True)
class WorkerStatus:
    """What a live worker last published about itself (an opaque JSON body)."""

    worker_id: str
    body: bytes
    published_at: float


@dataclass(frozen=True)
class TraceBatch:
    """Fleet-trace rows read from a backend (``read_trace``), oldest first, and where to go on."""

    #: Each row's wire bytes (``kqueue.policy.trace_wire``), oldest first.
    rows: list[bytes]
    #: Pass as ``after`` to read only rows appended since (opaque; "" = from the oldest kept).
    cursor: str


#: Finished records sent with an ack: job id -> (record bytes, seconds to keep it).
Records = Mapping[str, tuple[bytes, float]]


class Backend(abc.ABC):
    """A queue store with leases. Implementations must be safe for many processes at once."""

    #: The URL scheme(s) this backend serves, e.g. ``("sqlite",)``.
    schemes: tuple[str, ...] = ()
    #: True when ``wait_for_work`` returns as soon as a job is enqueued (an idle worker does not
    #: wait for its next poll); the simulator's ``HostProfile.polls`` is its opposite.
    wakes_on_enqueue: bool = False
    #: True when ``wait_finished`` returns as soon as the job ends (else the caller sleeps a
    #: little longer each time and looks again).
    wakes_on_finish: bool = False

    @abc.abstractmethod
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
        """Add one message, available after ``delay_s`` seconds; a known ``job_id`` is ignored.

        Within a queue a higher ``priority`` is leased first; equal priorities keep due order
        (``kqueue.policy.ordering.backlog_key``). ``job_class`` (the job's registered name) is
        what ``pending_by_class`` counts it under; the body stays opaque to the backend.
        """

    def enqueue_many(
        self,
        queue: str,
        messages: Sequence[tuple[str, bytes]],
        *,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        """Add several ``(job_id, body)`` messages of one class, available now. Backends may
        batch this."""
        for job_id, body in messages:
            self.enqueue(queue, job_id, body, priority=priority, job_class=job_class)

    @abc.abstractmethod
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
        """Add one message (as ``enqueue``), guarded by a unique key; returns the id that runs.

        With ``unique_key``, one atomic step: if the key's lock is held (its job is scheduled,
        queued, running or retrying, or the lock's ``unique_for_s`` since it was taken has not
        passed) nothing is added and the holder's id is returned; else the message is added and
        takes the lock. The lock is released when its job ends (ack, dead letter, cancel) and
        ``unique_for_s`` has passed, and a lock whose job the backend no longer holds does not
        count: it cannot outlive a crash. Keys are per queue.
        """

    @abc.abstractmethod
    def lease(
        self, queue: str, worker_id: str, limit: int, visibility_timeout_s: float
    ) -> list[Lease]:
        """Lease up to ``limit`` available messages, for ``visibility_timeout_s``.

        Available means ready now, scheduled and due, or leased with an expired lease. The
        highest priority goes first, then the earliest due (``kqueue.policy.ordering``); the
        batch comes highest priority first, oldest first within a priority.
        """

    @abc.abstractmethod
    def ack(self, leases: Sequence[Lease], records: Records | None = None) -> int:
        """Remove finished messages; returns how many were still held (the rest had expired).

        ``records`` maps a job id to its finished record and how long to keep it, seconds
        (``(b'{...}', 3600.0)``); a held message with a record is ``done`` (or what the record
        says, for cancelled jobs) until the record expires. A TTL of 0 keeps nothing.
        """

    def ack_and_lease(
        self,
        acks: Sequence[Lease],
        queue: str,
        worker_id: str,
        limit: int,
        visibility_timeout_s: float,
        records: Records | None = None,
    ) -> tuple[int, list[Lease]]:
        """``ack(acks, records)`` then ``lease(queue, ...)``; backends may do both in one trip.

        Returns how many acks were still held, and the new leases. If it raises, neither the
        acks nor the lease may be assumed done: the caller keeps its acks and tries again (an
        ack is idempotent, and a lease taken but never seen comes back on expiry).
        """
        acked = self.ack(acks, records) if acks else 0
        return acked, self.lease(queue, worker_id, limit, visibility_timeout_s)

    async def ack_and_lease_async(
        self,
        acks: Sequence[Lease],
        queue: str,
        worker_id: str,
        limit: int,
        visibility_timeout_s: float,
        records: Records | None = None,
    ) -> tuple[int, list[Lease]]:
        """``ack_and_lease``, awaited on the worker's event loop: a backend that can wait for
        the reply without blocking the loop lets the jobs running on it go on meanwhile. The
        default blocks, as ``ack_and_lease`` does."""
        return self.ack_and_lease(acks, queue, worker_id, limit, visibility_timeout_s, records)

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None:
        """Return when new work may have arrived on ``queues``, at the latest after ``timeout_s``.

        A hint only: it may return early with nothing new (the caller leases and finds out),
        and work that is due later (scheduled jobs, retries, expired leases) is only found by
        the caller's next lease after the timeout. The default sleeps, i.e. plain polling.
        """
        await asyncio.sleep(timeout_s)

    def work_waiter(self, queues: Sequence[str], timeout_s: float) -> asyncio.Future:
        """``wait_for_work`` as a future that outlives a caller who stops waiting for it: the
        next call (on the same loop) returns the same future until it is done. The caller must
        not cancel it. The default runs ``wait_for_work`` as a task.
        """
        loop = asyncio.get_running_loop()
        waiter = getattr(self, "_work_task", None)
        if waiter is None or waiter.done() or waiter.get_loop() is not loop:
            waiter = self._work_task = loop.create_task(self.wait_for_work(queues, timeout_s))
        return waiter

    @abc.abstractmethod
    def extend(self, leases: Sequence[Lease], visibility_timeout_s: float) -> list[Lease]:
        """Push expiry to now + ``visibility_timeout_s``; returns the leases still held."""

    @abc.abstractmethod
    def retry(self, lease: Lease, delay_s: float, error: str) -> bool:
        """Make a failed message available again after ``delay_s``; False if the lease was lost."""

    @abc.abstractmethod
    def release(self, leases: Sequence[Lease], delay_s: float = 0.0) -> int:
        """Give unstarted or interrupted messages back without counting the attempt."""

    @abc.abstractmethod
    def dead(self, lease: Lease, reason: str) -> bool:
        """Move a message to the dead-letter store with ``reason``; False if the lease was lost."""

    @abc.abstractmethod
    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered messages, newest first, of one queue or all."""

    @abc.abstractmethod
    def requeue_dead(self, job_ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        """Make dead messages ready again with a fresh attempt count; ``None`` means all."""

    @abc.abstractmethod
    def counts(self, queue: str | None = None) -> dict[str, dict[str, int]]:
        """Messages per queue per ``State`` value, e.g. ``{"default": {"ready": 3, ...}}``."""

    @abc.abstractmethod
    def pending_by_class(self, queue: str) -> dict[str, int]:
        """Messages of ``queue`` a lease would take now, per job class (classes with none left out).

        Pending means what ``lease`` calls available: ready, scheduled or retrying and due, or
        leased with an expired lease; a scheduled job or a retry's back-off is not pending
        until it is due, a leased, dead or finished one is not. The class is the ``job_class``
        given at enqueue ("" when none was). Kept by the backend as the messages change (no
        scan of the queue's messages on Redis), so a pool scaler may read it every tick.
        """

    @abc.abstractmethod
    def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        """What the backend knows of ``job_id`` in ``queue`` (``None``: every known queue)."""

    @abc.abstractmethod
    def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        """Cancel a job; returns its state before (``UNKNOWN`` if the backend does not know it).

        A waiting job (scheduled, queued, retrying) is removed and kept as ``record`` (its
        ``cancelled`` record) for ``ttl_s``; it never runs. A running job is flagged: its
        worker sees it in ``cancel_requested`` and stops it, and a lease of a flagged job that
        expires (its worker died) ends it as cancelled instead of running it again. A finished
        job is left as it is.
        """

    @abc.abstractmethod
    def cancel_requested(self, leases: Sequence[Lease]) -> set[str]:
        """The ids among ``leases`` whose cancellation was asked (``cancel``) while leased."""

    def wait_finished(self, job_id: str, queue: str, timeout_s: float) -> None:
        """Block until ``job_id`` may have finished, at the latest after ``timeout_s``.

        A hint, as ``wait_for_work``: the caller looks the job up after it returns. The default
        sleeps ``timeout_s`` (the caller passes a short, growing one); backends that can be
        woken (Redis, memory) return when the job finishes.
        """
        time.sleep(max(0.0, timeout_s))

    def wait_and_lookup(self, job_id: str, queue: str, timeout_s: float) -> JobRecord:
        """``wait_finished`` then ``lookup``; Redis does both in one round trip."""
        self.wait_finished(job_id, queue, timeout_s)
        return self.lookup(job_id, queue)

    @abc.abstractmethod
    def publish_status(self, worker_id: str, body: bytes, ttl_s: float) -> None:
        """Record a worker's status (JSON bytes); it is forgotten ``ttl_s`` after publishing."""

    @abc.abstractmethod
    def worker_statuses(self) -> list[WorkerStatus]:
        """The statuses of live workers (not expired)."""

    @abc.abstractmethod
    def remove_status(self, worker_id: str) -> None:
        """Forget a worker's status (it stopped)."""

    @abc.abstractmethod
    def record_durations(self, durations: Mapping[str, Sequence[float]], keep: int) -> None:
        """Append finished jobs' durations per job class, keeping the newest ``keep`` per class.

        This is the estimator's history, shared by every worker on the backend, so a new
        worker routes well from its first job.
        """

    @abc.abstractmethod
    def load_durations(self, keep: int) -> dict[str, list[float]]:
        """The newest ``keep`` recorded durations of every job class, oldest first."""

    @abc.abstractmethod
    def append_trace(self, rows: Sequence[bytes], keep_rows: int) -> None:
        """Append finished attempts' trace rows (opaque bytes) to the fleet trace.

        The trace keeps about the newest ``keep_rows`` rows of every worker together (Redis
        trims approximately, in whole blocks); ``keep_rows = 0`` appends nothing.
        """

    @abc.abstractmethod
    def read_trace(self, after: str = "", since: float = 0.0, limit: int = 10_000) -> TraceBatch:
        """Up to ``limit`` fleet-trace rows, oldest first, appended after cursor ``after``.

        Without a cursor, from the oldest row appended at or after ``since`` (wall clock,
        seconds; the backend's clock for Redis). Read again with the batch's cursor to go on.
        """

    @abc.abstractmethod
    def delete_dead(self, job_ids: Sequence[str], queue: str | None = None) -> int:
        """Remove dead-lettered messages for good; returns how many were dead and are gone."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def release_after_fork(self) -> None:  # noqa: B027 - optional hook
        """In a forked child: close this process's copies of the parent's sockets, unused.

        Nothing is sent and no lock is taken (a thread of the parent may have held one at the
        fork): the parent's connections go on as they were. The backend is not used after.
        """

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
