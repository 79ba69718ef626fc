"""The worker's side of shared limits and pauses: admit a leased job, or hold it back.

Before a leased job joins its tier's local queue, ``Limiter.admit`` asks the backend
(``kqueue.backends.limits.LimitStore``) whether its queue or class is paused, for a slot of its
class's ``concurrency_limit`` and for its turn under its ``rate_limit`` (``kqueue.policy.ratelimit``
holds the rules). A job held back goes back to the backend without counting an attempt and is
looked at again after a short wait: it does not take a slot here, so other classes carry on
(a job behind a full semaphore may instead wait on this worker for a slot: ``full_slots`` names
the semaphore, and the intake keeps it, ``kqueue.policy.slot_wait``). A job behind a full
semaphore keeps its place on its class's wait list in the backend while it is held back
(``kqueue.policy.slot_queue``): freed slots go to the first in priority-then-due order.
A rate-limited job that finds no token reserves one (a ticket in the backend) and goes back
until its turn; whichever worker leases it then starts it on that ticket. The limiter keeps
the turns of the jobs it held back, so the loop's idle wait ends at the earliest one rather
than at the next poll. A slot is given back when the job ends, and renewed with the job's lease
while it runs, so the slots of a worker that dies lapse after one ``visibility_timeout_s``.
"""

from __future__ import annotations

import heapq
import time

from kqueue.backends.base import Backend
from kqueue.backends.limits import LimitStore
from kqueue.policy.config import JobSettings
from kqueue.policy.ratelimit import (
    TURN_WAKE_S,
    RateLimit,
    held_back_wait_s,
    parse_rate_limit,
    rate_key,
)
from kqueue.policy.slot_queue import slot_key, wait_order
from kqueue.worker.held import Pending, best_effort

#: How often the paused names are read from the backend, seconds.
PAUSE_REFRESH_S = 1.0
#: A job of a paused queue or class is looked at again after this long, seconds.
PAUSED_WAIT_S = 1.0


def pause_names(queue: str, job_name: str) -> tuple[str, str]:
    """The names a pause of this job's queue or of its class is kept under."""
    return f"queue:{queue}", f"job:{job_name}"


class Limiter:
    """Admits leased jobs under their class's shared limits and the pauses; renews slots.

    Args:
        backend: the broker (limits are enforced only if it is a ``LimitStore``).
        slot_lease_s: how long a slot is held without renewal (the visibility timeout).
        poll_s: how long a job held back by a full semaphore waits before a worker looks again.
    """

    def __init__(self, backend: Backend, slot_lease_s: float, poll_s: float):
        self.store = backend if isinstance(backend, LimitStore) else None
        self.slot_lease_s, self.poll_s = slot_lease_s, poll_s
        #: job id -> the semaphore key it holds a slot of, and that semaphore's limit.
        self._slots: dict[str, tuple[str, int]] = {}
        self._rates: dict[str, RateLimit] = {}
        self._paused: set[str] = set()
        self._paused_read_s = -PAUSE_REFRESH_S
        #: The turns (``time.monotonic``) of the jobs this worker held back for their ticket.
        self._turns_s: list[float] = []
        #: Jobs held back so far.
        self.held_back = 0
        #: The semaphore (key, limit) whose full slots held back the job ``admit`` last held
        #: back, else None (a pause or a rate limit held it, or it was admitted).
        self.full_slots: tuple[str, int] | None = None

    def begin_round(self) -> None:
        """A fetch round starts."""

    def admit(self, pending: Pending) -> float | None:
        """None when the job may run now; else how long to hold it back, seconds."""
        self.full_slots = None
        if self.store is None:
            return None
        job_name = pending.invocation.job.name
        if self._is_paused(pending.lease.queue, job_name):
            return self._hold(PAUSED_WAIT_S)
        settings = pending.invocation.settings
        if settings.concurrency_limit is not None:
            key = slot_key(job_name)
            job_id = pending.lease.job_id
            order = wait_order(pending.lease.priority, pending.due_at)
            if not self.store.claim_slot(
                key, settings.concurrency_limit, job_id, order, self.slot_lease_s
            ):
                self.full_slots = (key, settings.concurrency_limit)
                return self._hold(held_back_wait_s(0.0, True, self.poll_s))
            self._slots[job_id] = (key, settings.concurrency_limit)
        wait_s = self._rate_wait_s(pending, job_name, settings)
        if wait_s is not None:
            self.release(pending.lease.job_id)
            return self._hold(wait_s)
        return None

    def _hold(self, wait_s: float) -> float:
        self.held_back += 1
        return wait_s

    def _rate_wait_s(self, pending: Pending, job_name: str, settings: JobSettings) -> float | None:
        if settings.rate_limit is None:
            return None
        limit = self._rates.get(job_name)
        if limit is None:
            limit = self._rates[job_name] = parse_rate_limit(settings.rate_limit, job_name)
        key, job_id = rate_key(job_name), pending.lease.job_id
        wait_s = self.store.reserve_turn(key, limit, job_id, pending.lease.priority)
        if wait_s <= 0.0:
            return None
        heapq.heappush(self._turns_s, time.monotonic() + wait_s)
        return wait_s

    def next_turn_in_s(self) -> float | None:
        """How long until the earliest turn of a job this worker held back (and a little, so
        its release is due), seconds; None when it knows of none to come."""
        now = time.monotonic()
        while self._turns_s and self._turns_s[0] + TURN_WAKE_S <= now:
            heapq.heappop(self._turns_s)
        return self._turns_s[0] + TURN_WAKE_S - now if self._turns_s else None

    def _is_paused(self, queue: str, job_name: str) -> bool:
        now = time.monotonic()
        if now - self._paused_read_s >= PAUSE_REFRESH_S:
            self._paused = self.store.paused()
            self._paused_read_s = now
        return any(name in self._paused for name in pause_names(queue, job_name))

    def release(self, job_id: str) -> str | None:
        """Give back the slot ``job_id`` holds, if any (it ended or went back); returns the
        semaphore key it freed a slot of, else None."""
        held = self._slots.pop(job_id, None)
        if held is not None and self.store is not None:
            what = f"release the slot of job {job_id}"
            best_effort(what, self.store.release_slots, held[0], [job_id])
            return held[0]
        return None

    def leave_line(self, pending: Pending) -> None:
        """``pending`` waited here for a slot and ends for good (cancelled): it leaves its
        class's wait list now, so the next in line is not held back until its entry lapses."""
        if self.store is not None:
            job_id = pending.lease.job_id
            key = slot_key(pending.invocation.job.name)
            best_effort(
                f"take job {job_id} off its wait list", self.store.release_slots, key, [job_id]
            )

    def renew(self, job_ids: list[str]) -> None:
        """Renew the slots of jobs this worker still holds (with their leases)."""
        by_key: dict[tuple[str, int], list[str]] = {}
        for job_id in job_ids:
            if job_id in self._slots:
                by_key.setdefault(self._slots[job_id], []).append(job_id)
        for (key, limit), holders in by_key.items():
            # a holder with a live slot keeps it; one whose slot lapsed competes again
            self.store.acquire_slots(key, limit, holders, self.slot_lease_s)
