"""How leased jobs get into a worker: how many to lease, which tier each goes to, what goes back.

Fetching is bounded by the free slots of the tiers that recent jobs went to (``policy.fetch``), and
a tier's local queue never holds more jobs than the tier can run at once: extra jobs go back to the
broker instead of being hoarded, so a full tier never stops the others. A job that cannot run at
all (undecodable payload, unknown name) is dead-lettered on arrival. ``extend_leases`` keeps the
leases of the jobs the worker holds while they wait and run.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from kqueue.api.context import CurrentJob
from kqueue.backends.base import Backend, Lease
from kqueue.errors import BackendUnavailable, PayloadError
from kqueue.job import App, decode_message
from kqueue.policy.config import Config, JobSettings, Tier, resolve_job
from kqueue.policy.estimator import DurationHistory
from kqueue.policy.fetch import (
    PROBE_INTERVAL_S,
    RELEASE_DELAY_S,
    FetchPlan,
    overflows,
    plan_fetch,
    refill_due,
    update_shares,
)
from kqueue.policy.ratelimit import held_back_wait_s
from kqueue.policy.router import route
from kqueue.policy.slot_wait import SlotWaiters
from kqueue.tiers.base import Invocation
from kqueue.worker.budget import GATED
from kqueue.worker.held import Pending, best_effort
from kqueue.worker.limits import Limiter

log = logging.getLogger("kqueue.worker")


class Intake:
    """Plans each lease, routes leased jobs into the tiers' waiting queues, gives back overflow.

    Args:
        app: the jobs this worker can run, and its backend.
        config: the worker's settings.
        runners: the tiers' runners, by tier.
        history: the estimator's history, for each job's duration estimate.
        force_inline: route every job to the inline tier.

    ``waiting`` holds each tier's local queue: filled by ``accept``, drained by ``take_ready``.
    """

    def __init__(
        self,
        app: App,
        config: Config,
        runners: dict[Tier, Any],
        history: DurationHistory,
        *,
        force_inline: bool = False,
    ):
        self.app, self.config, self.backend = app, config, app.backend
        self.runners, self.history = runners, history
        self.force_inline = force_inline
        #: Each tier's local queue of leased jobs waiting for a free slot.
        self.waiting: dict[Tier, deque[Pending]] = {tier: deque() for tier in runners}
        #: Jobs queued for a tier so far (``max_jobs`` counts these).
        self.accepted = 0
        #: Jobs given back to the broker, and jobs dead-lettered on arrival, so far.
        self.released = self.dead_lettered = 0
        #: Resolved settings per job name (the config does not change during a run).
        self._settings: dict[str, JobSettings] = {}
        #: The tier mix of recently fetched jobs, and when the last probe behind full tiers ran.
        self._shares: dict[str, float] = {}
        self._last_probe_s = 0.0
        self._probing = False
        #: The worker's memory budget (``kqueue.worker.budget``): admits pool and isolated jobs
        #: and reroutes quarantined classes; None runs them as their tiers free.
        self.budget = None
        #: Shared limits and pauses (``kqueue.worker.limits``).
        self.limiter = Limiter(app.backend, config.visibility_timeout_s, config.poll_interval_s)
        #: Jobs a full semaphore held back that wait here for a slot of it to free
        #: (``kqueue.policy.slot_wait``); they hold no tier slot and no local-queue place.
        self.slot_waiters: SlotWaiters[Pending] = SlotWaiters()

    def plan(self, *, stopping: bool, max_jobs: int | None) -> FetchPlan:
        """Lease only what the tiers that recent jobs went to can take (``policy.fetch``).

        Args:
            stopping: the worker is shutting down (lease nothing).
            max_jobs: the most jobs this run accepts in all, or None for no limit.
        """
        if stopping:
            return FetchPlan(0)
        rooms = {
            tier.value: runner.free() + runner.capacity() - len(self.waiting[tier])
            for tier, runner in self.runners.items()
        }
        probe_due = time.monotonic() - self._last_probe_s >= PROBE_INTERVAL_S
        capacities = {tier.value: runner.capacity() for tier, runner in self.runners.items()}
        if not probe_due and not refill_due(rooms, capacities, self._shares):
            return FetchPlan(0, deferred=True)
        plan = plan_fetch(rooms, self._shares, self.config.fetch_batch_size, probe_due=probe_due)
        if max_jobs is not None:
            plan = FetchPlan(max(0, min(plan.size, max_jobs - self.accepted)), plan.probe)
        return plan

    def begin_round(self, plan: FetchPlan) -> None:
        """Note that a fetch with ``plan`` starts (a probe's overflow goes back without delay)."""
        self._probing = plan.probe
        self.limiter.begin_round()
        now = time.monotonic()
        if plan.probe:
            self._last_probe_s = now
        for pending in self.slot_waiters.expired(now):  # a slot may free on another worker
            lease = pending.lease
            best_effort(f"hand back job {lease.job_id}", self.backend.release, [lease], 0.0)

    def accept(self, lease: Lease) -> bool:
        """Queue a leased job for its tier; False when the tier is full (give it back)."""
        pending = self._prepare(lease)
        if pending is None:
            return True
        self._shares = update_shares(self._shares, pending.tier.value)
        waiting = self.waiting[pending.tier]
        runner = self.runners[pending.tier]
        if overflows(len(waiting), runner.free(), runner.capacity()):
            return False  # do not hoard a full tier
        wait_s = self.limiter.admit(pending)
        if wait_s is not None:  # paused or limited: back in the backend, not an attempt
            if not self._wait_for_slot(pending):
                what = f"hold back job {lease.job_id}"
                best_effort(what, self.backend.release, [lease], wait_s)
            return True
        self.accepted += 1
        waiting.append(pending)
        return True

    def _wait_for_slot(self, pending: Pending) -> bool:
        """Keep a job its full semaphore held back waiting here for a slot (``policy.
        slot_wait``); False when it goes back to the backend instead."""
        full = self.limiter.full_slots
        if full is None:
            return False
        key, limit = full
        wait_s = held_back_wait_s(0.0, True, self.config.poll_interval_s)
        priority = pending.lease.priority
        holder = pending.lease.job_id
        bumped = self.slot_waiters.make_room(key, limit, priority, pending.due_at, holder)
        if bumped is not None:  # it comes later in line: it waits in the backend instead
            lease = bumped.lease
            best_effort(f"hold back job {lease.job_id}", self.backend.release, [lease], wait_s)
        deadline_s = time.monotonic() + wait_s
        return self.slot_waiters.add(
            key, limit, pending, priority, pending.due_at, deadline_s, holder
        )

    def job_ended(self, job_id: str) -> None:
        """A job settled: give back the semaphore slot it held, and let the first job waiting
        here for a slot of that semaphore ask for it now (into its tier's local queue, unless
        that queue is full: then it waits on)."""
        key = self.limiter.release(job_id)
        while key is not None and (pending := self.slot_waiters.head(key)) is not None:
            runner = self.runners[pending.tier]
            if overflows(len(self.waiting[pending.tier]), runner.free(), runner.capacity()):
                return
            try:
                wait_s = self.limiter.admit(pending)
            except BackendUnavailable:
                return  # the job that ended is settled already: the waiter's deadline holds
            if wait_s is not None and self.limiter.full_slots is not None:
                return  # another worker took the slot: it waits on
            self.slot_waiters.remove(pending)
            if wait_s is None:
                self.accepted += 1
                self.waiting[pending.tier].append(pending)
                return
            lease = pending.lease  # its rate limit or a pause holds it: back in the backend
            best_effort(f"hold back job {lease.job_id}", self.backend.release, [lease], wait_s)

    def slot_wait_in_s(self) -> float | None:
        """How long until the first job waiting here for a slot goes back, seconds (None:
        none waits)."""
        if not self.slot_waiters:
            return None
        return max(0.0, self.slot_waiters.next_deadline_s() - time.monotonic())

    def give_back(self, leases: list[Lease]) -> None:
        """Release leases this worker will not run now (their lease expires if this fails)."""
        # a probe's catch goes to the back of the queue at once, other overflow waits a bit
        delay_s = 0.0 if self._probing else RELEASE_DELAY_S
        released = best_effort(
            f"release {len(leases)} job(s)", self.backend.release, leases, delay_s=delay_s
        )
        self.released += released or 0

    def take_ready(self) -> Iterator[Pending]:
        """The jobs to launch now: each tier's queue from the head, while the tier has a free slot;
        with a memory budget, pool and isolated jobs as ``MemoryBudget.select`` admits them.

        Lazy: launch each job before asking for the next, so the tier's free count is current.
        """
        gated = self.budget is not None and self.budget.enabled
        for tier, queue in self.waiting.items():
            if gated and tier in GATED:
                continue
            runner = self.runners[tier]
            while queue and runner.free() > 0:
                yield queue.popleft()
        if gated:
            yield from self.budget.select(self.waiting)

    def all_settings(self) -> dict[str, JobSettings]:
        """The resolved settings of every job the app registers, by name."""
        for name, job in self.app.jobs.items():
            if name not in self._settings:
                self._settings[name] = resolve_job(self.config, name, job.declared)
        return dict(self._settings)

    def routes_to_pool(self, name: str) -> bool:
        """Whether a job of class ``name`` leased now would go to the pool (the router, then
        the quarantine); False for a name this worker does not register (it never runs it)."""
        job = self.app.jobs.get(name)
        if job is None or Tier.POOL not in self.runners:
            return False
        settings = self._settings.get(name)
        if settings is None:
            settings = self._settings[name] = resolve_job(self.config, name, job.declared)
        estimate = self.history.estimate(
            name, settings.estimated_duration_s, self.config.default_estimate_s
        )
        tier = route(
            settings.tier, estimate.duration_s, self.config, force_inline=self.force_inline
        )
        if tier is Tier.POOL and self.budget is not None:
            return not self.budget.quarantine.is_quarantined(name)
        return tier is Tier.POOL

    def waiting_count(self, tier: Tier | None = None) -> int:
        """Jobs waiting in one tier's local queue, or in all of them."""
        if tier is not None:
            return len(self.waiting[tier])
        return sum(len(queue) for queue in self.waiting.values()) + len(self.slot_waiters)

    def held(self) -> list[Pending]:
        """Every job waiting in the local queues or for a slot (their leases are extended while
        they wait)."""
        queued = [pending for queue in self.waiting.values() for pending in queue]
        return queued + self.slot_waiters.items()

    def drop(self, pending: Pending) -> bool:
        """Take a waiting job out of its tier's queue (it was cancelled); False if not there."""
        queue = self.waiting[pending.tier]
        if pending in queue:
            queue.remove(pending)
            return True
        if self.slot_waiters.remove(pending):
            self.limiter.leave_line(pending)
            return True
        return False

    def take_waiting(self) -> list[Lease]:
        """Empty the local queues (shutdown); returns the leases to give back."""
        leases = [pending.lease for pending in self.held()]
        for queue in self.waiting.values():
            queue.clear()
        for pending in self.slot_waiters.items():
            self.slot_waiters.remove(pending)
        for lease in leases:
            self.limiter.release(lease.job_id)
        return leases

    def _prepare(self, lease: Lease) -> Pending | None:
        try:
            message = decode_message(lease.body)
        except PayloadError as exc:
            return self._dead_on_arrival(lease, f"undecodable payload: {exc}")
        job = self.app.jobs.get(message.name)
        if job is None:
            known = ", ".join(sorted(self.app.jobs)[:20]) or "none"
            return self._dead_on_arrival(
                lease, f"unknown job name {message.name!r}; this worker's app registers: {known}"
            )
        problem = job.bind_error(message.args, message.kwargs)
        if problem is not None:  # another attempt cannot bind them either
            return self._dead_on_arrival(lease, f"job {job.name!r}: {problem}")
        settings = self._settings.get(job.name)
        if settings is None:
            settings = self._settings[job.name] = resolve_job(self.config, job.name, job.declared)
        estimate = self.history.estimate(
            job.name, settings.estimated_duration_s, self.config.default_estimate_s
        )
        tier = route(
            settings.tier, estimate.duration_s, self.config, force_inline=self.force_inline
        )
        if self.budget is not None and not self.force_inline and tier is not Tier.INLINE:
            tier, settings = self.budget.reroute(job.name, tier, settings, self.waiting)
        invocation = Invocation(
            lease.job_id,
            job,
            message.args,
            message.kwargs,
            settings,
            lease.attempt,
            estimate_s=estimate.duration_s,
            context=CurrentJob(lease.job_id, job.name, lease.attempt),
        )
        return Pending(
            lease, invocation, tier, estimate.duration_s, message.submitted_at, message=message
        )

    def _dead_on_arrival(self, lease: Lease, reason: str) -> None:
        log.error("job %s dead-lettered: %s", lease.job_id, reason)
        # if the backend is down, the job comes back on expiry and lands here again
        if (
            best_effort(f"dead-letter job {lease.job_id}", self.backend.dead, lease, reason)
            is not None
        ):
            self.dead_lettered += 1
        return None


def extend_leases(backend: Backend, pendings: list[Pending], visibility_timeout_s: float) -> None:
    """Keep the leases of jobs this worker holds (waiting or running) for another timeout.

    Each pending job gets its renewed lease; a lease the backend no longer grants is logged
    (another worker may run that job too).

    Args:
        backend: the broker that granted the leases.
        pendings: the held jobs.
        visibility_timeout_s: the new lease length, seconds.

    Raises:
        BackendUnavailable: no lease was extended; the caller tries again next round.
    """
    if not pendings:
        return
    held = {
        lease.job_id: lease
        for lease in backend.extend([p.lease for p in pendings], visibility_timeout_s)
    }
    for pending in pendings:
        renewed = held.get(pending.lease.job_id)
        if renewed is None:
            log.warning(
                "lost the lease of job %s; another worker may run it too", pending.lease.job_id
            )
        else:
            pending.lease = renewed
