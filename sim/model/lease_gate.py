"""The twin's shared limits, applied where the runtime applies them: when a job is leased.

Scenario: the worker leases a batch of due jobs (highest priority first, then earliest due) and
asks each one's class for a slot of its ``concurrency_limit`` and a token of its ``rate_limit``
(``kqueue.policy.ratelimit``, the rules the backends run). A job that gets both goes on to its
tier. One that does not goes back to the backend, not counted as an attempt, due again after the
runtime's wait: a rate-limited one at its reserved turn (``turn_queue.take_turn``: it takes its
token as a debt and holds a ticket, so when leased again it starts without asking the bucket,
and the jobs leased after it queue behind the debt, those of a higher priority taking the
earliest turns of lower ones), one behind a full semaphore after a poll
(``held_back_wait_s``), unless it waits on the worker for a slot (``full_slots`` names the
semaphore; ``sim.model.gated_fetch`` keeps it, ``kqueue.policy.slot_wait``). One held back
by a full semaphore keeps its place on the class's wait list (``kqueue.policy.slot_queue``):
a freed slot goes to the first on it by priority then due, wherever the others are. One held
back for its turn keeps its priority but not its place: it is due later, so it waits behind
the jobs of its level that were due before that. It does not block its level or other
classes. Each give-back is one more round trip of the worker's loop
(``HostProfile.fetch_s``), paid before the jobs of its batch start, as the runtime releases each
held job before it launches the batch. A paused class never starts (the runtime re-leases its
jobs every second; a pause does not change during a replay, so the model leaves them out).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from kqueue.policy.ordering import backlog_key
from kqueue.policy.ratelimit import (
    Bucket,
    held_back_wait_s,
    release_slots,
)
from kqueue.policy.slot_queue import claim_slot, wait_order
from kqueue.policy.turn_queue import Ticket, take_turn
from sim.model.rules import ClassRules


class GivenBack:
    """The jobs in the backend: arrivals not leased yet and jobs given back, each due at a time;
    one heap per priority level by due time (the backends' own layout), so a lease looks only
    at due jobs.

    Args:
        priority: per job, its priority.
        job_class: per job, its class (for the per-class counts the pool scaler reads).
    """

    def __init__(self, priority: Sequence[int], job_class: Sequence[str] = ()):
        self._priority, self._class = priority, job_class
        #: -priority -> heap of (due_s, job): sorted, the highest level comes first.
        self._levels: dict[int, list[tuple[float, int]]] = {}
        #: Jobs in it (``len``, as an attribute: the fetcher reads it at every sleep).
        self.count = 0
        #: Jobs in the backend per class (``Backend.pending_by_class``), with ``job_class``.
        self.by_class: dict[str, int] = {}

    def put(self, job: int, due_s: float) -> None:
        """``job`` is leasable again from ``due_s`` on."""
        level = backlog_key(self._priority[job], due_s, job)[0]
        if level not in self._levels:
            self._levels = dict(sorted({**self._levels, level: []}.items()))
        heapq.heappush(self._levels[level], (due_s, job))
        self.count += 1
        if self._class:
            name = self._class[job]
            self.by_class[name] = self.by_class.get(name, 0) + 1

    def next_due_s(self) -> float:
        """When the earliest given-back job is due again (inf when there is none)."""
        return min((heap[0][0] for heap in self._levels.values() if heap), default=math.inf)

    def take_due(self, now_s: float, limit: int) -> list[tuple[float, int]]:
        """Up to ``limit`` (due time, job) due by ``now_s``, highest priority first, then
        earliest due."""
        taken: list[tuple[float, int]] = []
        for heap in self._levels.values():
            while heap and heap[0][0] <= now_s and len(taken) < limit:
                taken.append(heapq.heappop(heap))
        self.count -= len(taken)
        if self._class:
            for _, job in taken:
                self.by_class[self._class[job]] -= 1
        return taken

    def __len__(self) -> int:
        return self.count


class LeaseGate:
    """Admits a leased job under its class's limits, or says how long it goes back for.

    Args:
        rules: the classes' rules.
        job_class: per job, its class.
        poll_s: the worker's ``poll_interval_s`` (the wait behind a full semaphore).
        due_s: per job, when it was due (its rank on a full semaphore's wait list, after its
            priority); empty: every job ranks as due at 0 (then by job id).
    """

    def __init__(
        self,
        rules: ClassRules,
        job_class: Sequence[str],
        poll_s: float,
        due_s: Sequence[float] = (),
    ):
        self.rules, self._class, self._poll_s, self._due_s = rules, job_class, poll_s, due_s
        self._buckets: dict[str, Bucket | None] = dict.fromkeys(rules.rate)
        self._slots: dict[str, dict[str, float]] = {name: {} for name in rules.concurrency}
        #: Per concurrency-limited class, its wait list (``kqueue.policy.slot_queue``).
        self._waiting: dict[str, dict[str, tuple[float, float]]] = {
            name: {} for name in rules.concurrency
        }
        #: Per rate-limited class, the tickets: job -> its reserved turn and priority (the
        #: backend's; ``kqueue.policy.turn_queue``).
        self._tickets: dict[str, dict[int, Ticket]] = {name: {} for name in rules.rate}
        #: Times a leased job was given back (a job can be given back many times), and jobs
        #: of paused classes, which never start.
        self.held_back = 0
        self.paused = 0
        #: The turn the last ``admit`` held its job back for (its rate limit), else None.
        self.held_for_turn_s: float | None = None
        #: The (class, limit) whose full semaphore held back the job ``admit`` last held back,
        #: else None.
        self.full_slots: tuple[str, int] | None = None

    def admit(self, job: int, now_s: float) -> float | None:
        """None when ``job`` may go on to its tier now; inf for a paused class (it never
        starts); else how long it goes back to the backend for, seconds."""
        name = self._class[job]
        self.held_for_turn_s = self.full_slots = None
        if name in self.rules.paused:
            self.paused += 1
            return math.inf
        if name in self._slots:
            limit = self.rules.concurrency[name]
            due_s = self._due_s[job] if self._due_s else 0.0
            order = wait_order(self.rules.priority[job] if self.rules.priority else 0, due_s)
            claim = claim_slot(
                limit, self._slots[name], self._waiting[name], f"{job:012d}", order, now_s, math.inf
            )
            self._slots[name], self._waiting[name] = claim.slots, claim.waiting
            if not claim.granted:
                self.held_back += 1
                self.full_slots = (name, limit)
                return held_back_wait_s(0.0, True, self._poll_s)
        if name in self._buckets:
            limit = self.rules.rate[name]
            priority = self.rules.priority[job] if self.rules.priority else 0
            turn = take_turn(limit, self._buckets[name], self._tickets[name], job, priority, now_s)
            self._buckets[name], self._tickets[name] = turn.bucket, turn.tickets
            if turn.wait_s > 0.0:
                if name in self._slots:
                    self._slots[name] = release_slots(self._slots[name], [f"{job:012d}"])
                self.held_back += 1
                self.held_for_turn_s = now_s + turn.wait_s
                return turn.wait_s
        return None

    def ticket_s(self, job: int) -> float | None:
        """The turn of the ticket ``job`` holds (it was held back for it), or None."""
        ticket = self._tickets.get(self._class[job], {}).get(job)
        return None if ticket is None else ticket.turn_s

    def ended(self, job: int) -> str | None:
        """``job`` ended: the slot of its class it held is free; returns the class whose
        semaphore it freed a slot of, else None."""
        name = self._class[job]
        holder = f"{job:012d}"
        if name in self._slots and holder in self._slots[name]:
            self._slots[name] = release_slots(self._slots[name], [holder])
            return name
        return None
