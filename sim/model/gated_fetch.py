"""The simulated worker's lease rounds under class rules, as the runtime's loop and intake run.

Scenario: the arrivals due reach the backend (``lease_gate.GivenBack``, by priority then due
time). Each round leases what the tiers have room for (``intake.LeaseRoom``: the runtime's
``plan_fetch``), routes each job, gives back one a full tier will not take (``RELEASE_DELAY_S``)
or a limit holds back (``lease_gate.LeaseGate``: until its turn, or a poll), and hands the rest
to their tiers after one release round trip per give-back. The next round comes at once while
the round leased jobs and the tiers have room, else at a job's end or the next poll (or, with
room, the next arrival on a backend that wakes the worker). A job given back wakes no one,
but the turn of a job held back for its rate limit wakes the sleeping fetcher (the runtime's
idle wait ends there).

A mixin of ``sim.model.worker.Model``: it uses the model's fetcher state (``_leased``,
``_idle_for_s``, ``_fetch_at_s``, the fetch timer) and its ``dispatch`` / ``_to_tier``.
"""

from __future__ import annotations

import bisect
import math

import simpy

from kqueue.policy.ratelimit import TURN_WAKE_S, held_back_wait_s
from kqueue.policy.slot_wait import SlotWaiters
from sim.engine.clock import Call

#: Times closer than this (seconds) are equal when the fetcher plans a poll: job ends computed
#: along different paths differ by round-off, which must not move a poll by a whole interval.
TIME_TOLERANCE = 1e-9


class RuleFetcher:
    """The lease rounds of a ``Model`` whose classes have rules (see the module docstring)."""

    def _gated_round(self) -> None:
        """One lease round under class rules, as the runtime's intake runs it: the arrivals due
        by now reach the backend; lease what the tiers have room for (``LeaseRoom``), highest
        priority first, then earliest due; give back what a full tier or a limit will not take;
        start the rest after the give-backs' round trips."""
        env, submitted = self.env, self.jobs.submitted_s
        now, total = env.now, len(submitted)
        fetched = self._leased
        if fetched < total and submitted[fetched] <= now + TIME_TOLERANCE:
            due = now if now > submitted[fetched] else submitted[fetched]
            end = bisect.bisect_right(submitted, due, fetched, total)
            for job in range(fetched, end):
                self.given_back.put(job, submitted[job])
            self._leased = end
            if self.progress is not None and end >= self._next_report:
                self.progress(end, total)
                self._next_report = end + self._report_every
        plan = self.room.plan(now, begin=True)
        jobs = self.given_back.take_due(now + TIME_TOLERANCE, plan.size)
        self._round, self._round_given, self._round_overflow = [], 0, False
        self._round_kept = 0
        for _, job in jobs:
            self.dispatch(job)
        admitted, self._round = self._round, None
        # one release round trip per job a limit held back, one for a full tier's overflow
        trips = self._round_given + self._round_overflow
        # held-back jobs (given back, or kept waiting for a slot) are no reason to lease again
        leased = len(jobs) - self._round_given - self._round_kept
        if trips and self.host.fetch_s:
            Call(env, trips * self.host.fetch_s, self._round_done, (admitted, leased))
        else:
            self._start_admitted(admitted, leased)

    def _round_done(self, event: simpy.Event) -> None:
        self._start_admitted(*event._value)

    def _start_admitted(self, admitted: list[int], leased: int) -> None:
        """Hand the round's admitted jobs to their tiers, then plan the next lease as the
        runtime's loop does: at once while it leased jobs and has room, else at a job's end
        or the next poll (or, with room, the next arrival)."""
        for job in admitted:
            self._to_tier(job)
        self.room.pending = [0, 0, 0]
        now = self.env.now
        due_s = self._next_due_s()
        if due_s == math.inf:
            self._fetcher_done = True
            return
        room = self.room.plan(now).size
        if leased and room > 0 and due_s <= now + TIME_TOLERANCE:
            Call(self.env, self.host.fetch_s, self._fetched)
        elif room == 0 or due_s <= now + TIME_TOLERANCE:
            self._idle_for_s = now  # a job's end wakes it
            self._fetch_at_s = now + self.config.poll_interval_s
            self._arm_fetch_timer()
        else:
            self._fetch_when_due()

    def _next_due_s(self) -> float:
        """When the next job (an arrival, or a job given back) can be leased."""
        leased, submitted = self._leased, self.jobs.submitted_s
        arrival_s = submitted[leased] if leased < len(submitted) else math.inf
        return min(arrival_s, self.given_back.next_due_s())

    def _give_back(
        self, job: int, wait_s: float, *, overflow: bool = False, turn_s: float | None = None
    ) -> None:
        """``job`` goes back to the backend for ``wait_s`` (``overflow``: its tier was full,
        else a limit held it back; ``turn_s``: its rate limit's turn); the fetcher looks again
        then, or at the turn."""
        now = self.env.now
        due_s = now + wait_s
        self.given_back.put(job, due_s)
        if turn_s is not None:  # the runtime's idle wait ends at a turn it held a job for
            Call(self.env, turn_s - now + TURN_WAKE_S, self._turn_due)
        if self._round is not None:
            if overflow:
                self._round_overflow = True
            else:
                self._round_given += 1
            return  # the round plans the next lease
        if self._fetcher_done:
            self._fetcher_done = False
            self._fetch_when_due()
        elif self._idle_for_s == self._idle_for_s and due_s < self._idle_for_s:
            self._idle_for_s = due_s
            fetch_at_s = self._next_fetch_s(due_s, now)
            if fetch_at_s < self._fetch_at_s - TIME_TOLERANCE:
                self._fetch_at_s = fetch_at_s
                self._arm_fetch_timer()

    def _wait_for_slot(self, job: int) -> bool:
        """Keep ``job``, held back by its class's full semaphore, waiting here for a slot
        (``kqueue.policy.slot_wait``, as the runtime's intake does); False: it goes back."""
        full = self.class_gate.full_slots
        if full is None:
            return False
        if self.slot_waiters is None:
            self.slot_waiters = SlotWaiters()
        name, limit = full
        now = self.env.now
        wait_s = held_back_wait_s(0.0, True, self.config.poll_interval_s)
        due_s = self.jobs.submitted_s[job]
        holder = f"{job:012d}"  # its id on the class's wait list (``lease_gate``)
        bumped = self.slot_waiters.make_room(name, limit, self.priority[job], due_s, holder)
        if bumped is not None:  # it comes later in line: it waits in the backend instead
            self._give_back(bumped, wait_s)
        added = self.slot_waiters.add(
            name, limit, job, self.priority[job], due_s, now + wait_s, holder
        )
        if not added:
            return False
        Call(self.env, wait_s, self._slot_wait_over, job)
        if self._round is not None:
            self._round_kept += 1
        return True

    def _slot_wait_over(self, event: simpy.Event) -> None:
        """The jobs still waiting for a slot at their deadline go back to the backend, due now
        (by deadline: a job bumped, ``make_room``, may wait here again under a later one)."""
        for job in self.slot_waiters.expired(self.env.now + TIME_TOLERANCE):
            self._give_back(job, 0.0)

    def _slot_freed(self, name: str | None) -> None:
        """A job of class ``name`` freed a slot of its semaphore (None: it held none): the
        first job waiting here for one asks now, into its tier unless the tier is full."""
        waiters = self.slot_waiters
        while name is not None and waiters is not None and (job := waiters.head(name)) is not None:
            if self.room.full(self.tier[job]):
                return
            wait_s = self.class_gate.admit(job, self.env.now)
            if wait_s is not None and self.class_gate.full_slots is not None:
                return
            waiters.remove(job)
            if wait_s is None:
                self._to_tier(job)
                return
            if wait_s != math.inf:  # its rate limit holds it now: back in the backend
                self._give_back(job, wait_s, turn_s=self.class_gate.held_for_turn_s)

    def _turn_due(self, _event: simpy.Event) -> None:
        """A job held back for its turn is due: a sleeping fetcher with room wakes and leases
        (``Limiter.next_turn_in_s`` in the runtime's idle wait)."""
        if self._idle_for_s == self._idle_for_s and self.room.plan(self.env.now).size > 0:
            self._wake_fetcher()

    def _sleep_until_poll(self, back_s: float, arrival_s: float, now: float) -> None:
        """Sleep until the poll that finds a job given back (or the earlier arrival that wakes
        a backend that notifies)."""
        if back_s <= now + TIME_TOLERANCE:
            self._fetch()
            return
        fetch_at_s = self._next_fetch_s(back_s, now)
        if not self.host.polls and arrival_s < fetch_at_s:
            self._fetch_at_arrival(arrival_s, now)  # notified: it wakes the worker
            return
        self._idle_for_s, self._fetch_at_s = back_s, fetch_at_s
        self._arm_fetch_timer()
