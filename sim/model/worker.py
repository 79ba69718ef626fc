"""The SimPy model of one kqueue worker: fetch, estimate, route, and run jobs on three tiers.

Scenario: jobs arrive in a backend at the times of a trace. One worker leases them in batches of
up to ``fetch_batch_size`` (one backend round trip, ``HostProfile.fetch_s``, per batch), and when
the backend is empty it polls again every ``poll_interval_s`` (sooner when a job ends, which wakes
the runtime's loop too). For each job it resolves the job's
settings, estimates its duration and routes it with the same ``kqueue.policy`` functions as the
runtime, then hands it to the tier's FIFO. A job holds its tier slot (an inline slot, a pool
process or an isolated process) from the moment it leaves the FIFO until it ends: first the
tier's dispatch overhead (and, isolated, the process spawn), then its off-CPU time
(``duration_s - cpu_s``), then its CPU work, which shares the host's cores (``sim.engine.cpu``):
at least what faulting in the memory its tier does not already hold for it costs
(``HostProfile.fault_cpu_s_per_mb``), since a job cannot use memory it has not touched.
When a job ends its measured duration goes into its class's history, so routing learns.

Under class rules (priorities, limits, pauses) the fetcher leases as the runtime's intake does
instead (``sim.model.gated_fetch``): only what the tiers have room for, in the backend's priority
order, with limits applied at lease.

For speed, nothing is a SimPy process: each job is a couple of timed callbacks
(``sim.engine.clock``; the hot paths read the time as ``env._now``, as it does, not through
SimPy's ``now`` property), and so is the worker's fetch loop (a round trip, then the next fetch
or the sleep until the next arrival). Job data lives in parallel lists indexed by the job's
position in the trace (sorted by
``submitted_at``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable

import simpy

from kqueue.policy import (
    Config,
    DurationHistory,
    HostProfile,
    JobOptions,
    JobSettings,
    Status,
    Tier,
    resolve_job,
    route,
)
from kqueue.policy.estimator import LEARNS_FROM
from kqueue.policy.fork import standing_mb
from kqueue.policy.limits import after_kill_s, kill_status, over_timeout
from kqueue.policy.quarantine import HARMFUL, Quarantine
from kqueue.policy.scaler import pool_backlog
from sim.engine.clock import Call, CallAt
from sim.engine.cpu import Cpu
from sim.model.backlog import ArrivalBacklog
from sim.model.budget import BudgetGate, route_by_load_code
from sim.model.fault_in import FaultIn, Rest
from sim.model.gated_fetch import TIME_TOLERANCE, RuleFetcher
from sim.model.intake import LeaseRoom
from sim.model.jobs import INLINE, ISOLATED, POOL, TIER_CODE, TIERS, Jobs
from sim.model.lease_gate import GivenBack, LeaseGate
from sim.model.rules import ClassRules, class_rules
from sim.model.tiers import InlineTier, IsolatedTier, PoolTier

#: Progress callback: ``progress(jobs_fetched, jobs_total)``.
Progress = Callable[[int, int], None]


class Model(RuleFetcher):
    """One worker and its three tiers inside a SimPy environment.

    Build it, then ``env.run()``; per-job outcomes are in the lists ``started_s``,
    ``finished_s``, ``slot_s`` (when the job got its tier slot), ``tier``, ``estimated_s``
    and ``process`` (pool process or isolated spawn number, -1 inline).

    Args:
        env: the environment (time 0 is the trace's time 0).
        jobs: what to replay.
        config: the worker's settings (routing, limits, pool sizing, fetch, poll).
        host: the host constants.
        force_inline: the worker's ``--inline``: every job inline.
        progress: called now and then with (jobs fetched, jobs total).
        cpu_fast_path: see ``sim.engine.cpu``; turned off only by the test that proves it exact.
        merge_trips: on a backend that wakes the worker, the wake at an arrival and the round
            trip after it as one event; turned off only by the test that proves it exact.
    """

    def __init__(
        self,
        env: simpy.Environment,
        jobs: Jobs,
        config: Config,
        host: HostProfile,
        *,
        force_inline: bool = False,
        progress: Progress | None = None,
        cpu_fast_path: bool = True,
        rules: ClassRules | None = None,
        merge_trips: bool = True,
    ):
        self.env, self.jobs, self.config, self.host = env, jobs, config, host
        self._fetch_s = host.fetch_s
        self.force_inline = force_inline
        #: What the worker's tree holds before any job: the worker, and the pool's zygote when
        #: the runtime would run one (``kqueue.policy.fork``), MB.
        self.standing_mb = standing_mb(host, config, force_inline=force_inline)
        self.progress = progress
        n = len(jobs)
        self.started_s = [math.nan] * n
        self.finished_s = [math.nan] * n
        self.slot_s = [math.nan] * n
        self.tier = [-1] * n
        self.estimated_s = [math.nan] * n
        self.process = [-1] * n
        #: Per job, the memory its attempt faults in afresh (the tier it starts on says), MB.
        self.fresh_mb = [0.0] * n
        self._fault_s_per_mb = host.fault_cpu_s_per_mb
        #: Jobs faulting their fresh memory in, and what that takes off the memory curve.
        self.fault_in = FaultIn(len(TIERS))
        self.history = DurationHistory.from_config(config)
        self.cpu = Cpu(
            env,
            host.cores * host.cpu_share,
            self._cpu_done,
            fast_path=cpu_fast_path,
            gil_threads_bonus=host.gil_threads_bonus,
        )
        self._cpu_shared = host.cores > 0  # unlimited cores: only the GIL shares
        #: CPU work per job, capped at its duration (a multi-threaded job's extra is not modelled).
        self._cpu_s = [min(c, d) for c, d in zip(jobs.cpu_s, jobs.duration_s, strict=True)]
        self._duration_s, self._job_class = jobs.duration_s, jobs.job_class
        #: Per class: its declared tier, declared estimate and settings, then the estimate it
        #: was last routed with and the router's tier code for it.
        self._classes: dict[str, list] = {}
        self._default_estimate_s = config.default_estimate_s
        self._load_routing = config.load_routing and not force_inline
        self._job_memory_mb = jobs.memory_mb
        #: The runtime's limits (``kqueue.policy.limits``): memory as each attempt holds it (a
        #: job over its ``max_memory_mb`` on a limited tier holds at most that), the kill due
        #: at the end of a running attempt, when it started, the attempt number of retried jobs,
        #: attempts killed per (tier code, status) and each dead-lettered job's last status.
        self.memory_mb = list(jobs.memory_mb)
        self._kill: dict[int, Status] = {}
        self._attempt_start_s: dict[int, float] = {}
        self.attempts: dict[int, int] = {}
        self.kills: dict[tuple[int, Status], int] = {}
        self.dead: dict[int, Status] = {}
        #: Jobs leased so far (the next one to lease is this index), and when to report progress.
        self._leased = self._next_report = 0
        self._report_every = max(1, n // 100)
        #: While the fetcher sleeps: the arrival it waits for (NaN otherwise), when it will
        #: fetch, and the timer armed for that.
        self._idle_for_s = math.nan
        self._fetch_at_s = self._fetch_timer_s = math.inf
        self._fetch_timer: Call | None = None
        # The tiers get the lists they share with the model and the callbacks they need, not the
        # model: the pool and isolated tiers ask the inline tier's memory, which forks inherit.
        inline = InlineTier(
            env,
            self.run,
            config.max_concurrent_inline,
            host,
            memory_mb=self.memory_mb,
            slot_s=self.slot_s,
            inline_computing=self.cpu.inline_computing,
            worker_rate=self.cpu.worker_rate,
            fresh_mb=self.fresh_mb,
        )
        #: The memory budget (``sim.model.budget``): holds pool and isolated jobs until they fit.
        self.gate = BudgetGate(
            env,
            config,
            host,
            memory_mb=self.memory_mb,
            estimated_s=self.estimated_s,
            job_class=jobs.job_class,
            started_s=self.started_s,
            standing_mb=self.standing_mb,
        )
        self._spilling = False
        #: Classes moved to the isolated tier (``kqueue.policy.quarantine``, the runtime's rule);
        #: only classes that ever died for memory are followed (the others cannot be moved).
        self.quarantine = Quarantine(config)
        self._harmed: set[str] = set()
        #: The backend's jobs not leased yet, per class, for the pool scaler (as the runtime's).
        self._arrivals = ArrivalBacklog(jobs.submitted_s, jobs.job_class)
        rules = rules if rules is not None else class_rules(jobs, config)
        #: Under class rules, the backend's jobs not leased yet (``sim.model.gated_fetch``).
        self.given_back = GivenBack(rules.priority, jobs.job_class)
        self.tiers = (
            inline,
            PoolTier(
                env,
                self.run,
                config,
                host,
                memory_mb=self.memory_mb,
                process=self.process,
                inline_level_mb=inline.level_mb,
                held_waiting=self.gate.held_pool,
                room=self.gate.room,
                over_budget=self.gate.over_budget,
                backlog=self.pool_backlog,
                fresh_mb=self.fresh_mb,
            ),
            IsolatedTier(
                env,
                self.run,
                config.max_concurrent_isolated,
                host,
                process=self.process,
                inline_level_mb=inline.level_mb,
                memory_mb=self.memory_mb,
                fresh_mb=self.fresh_mb,
            ),
        )
        self.gate.tiers = self.tiers
        self._submit = self._submits()
        self._install_rules(rules)
        self._merge_trips = merge_trips and host.fetch_s > 0
        #: An inline job's end touches neither the memory budget nor the class rules.
        self._plain_ends = not self.gate.enabled and self.class_gate is None
        self._inline_release = inline.release
        if n:
            Call(env, 0, self._fetch_when_due)

    def _install_rules(self, rules: ClassRules) -> None:
        """Priorities order the tiers' waiting jobs; limits and pauses gate the classes
        (``sim.model.rules``, the runtime's rules from ``kqueue.policy``)."""
        #: Per job, the priority its backlog orders it by.
        self.priority = rules.priority
        #: Under class rules the model leases as the runtime's intake does (``sim.model.
        #: intake``): the backend's jobs by priority (``given_back``), only what the tiers
        #: have room for, limits and pauses applied as each is leased (``lease_gate``).
        self.class_gate = self.room = None
        if rules.gated or rules.prioritised:
            self.class_gate = LeaseGate(
                rules, self._job_class, self.config.poll_interval_s, self.jobs.submitted_s
            )
            self.room = LeaseRoom(self.tiers, self.config)
        #: While a lease round is dispatched: the jobs it admitted, how many a limit gave back,
        #: and whether a full tier gave any back.
        self._round: list[int] | None = None
        self._round_given = self._round_kept = 0
        #: Jobs a full semaphore held back that wait here for a slot (made on first use).
        self.slot_waiters = None
        self._round_overflow = False
        #: True when the fetcher has nothing left to lease (a later give-back wakes it).
        self._fetcher_done = False

    def _to_tier(self, job: int) -> None:
        """Hand a job its class's rules let go on to its tier, through the memory budget's
        admission for a pool or isolated job."""
        self._submit[self.tier[job]](job)

    def _submits(self) -> list[Callable[[int], None]]:
        """Per tier code, what takes a job routed there: the tier, or the memory budget's
        admission for a pool or isolated job."""
        if not self.gate.enabled:
            return [tier.submit for tier in self.tiers]
        gate = self.gate
        return [self.tiers[INLINE].submit] + [
            lambda job, tier=tier: gate.submit(job, tier) for tier in (POOL, ISOLATED)
        ]

    # --- the worker loop ------------------------------------------------------------------

    def _fetch(self, _event: simpy.Event | None = None) -> None:
        """Lease a batch: one backend round trip, then ``_fetched``."""
        if self._fetch_s:
            Call(self.env, self._fetch_s, self._fetched)
        else:
            self._fetched(None)

    def _fetched(self, _event: simpy.Event | None) -> None:
        """The lease came back: dispatch the jobs due by now (a batch at most), lease again
        while jobs are due, else wait for the next arrival."""
        if self.class_gate is not None:
            self._gated_round()
            return
        env, submitted, dispatch = self.env, self.jobs.submitted_s, self.dispatch
        total, batch = len(submitted), self.config.fetch_batch_size
        while True:
            fetched, now = self._leased, env._now
            # every job submitted by now (at least the one due: guards the timeout's round-off)
            due = now if now > submitted[fetched] else submitted[fetched]
            last = fetched + batch
            end = bisect_right(submitted, due, fetched, total if total < last else last)
            for job in range(fetched, end):
                self._leased = job + 1  # the rest of the batch is still the backend's backlog
                dispatch(job)
            self._leased = end
            if self.progress is not None and end >= self._next_report:
                self.progress(end, total)
                self._next_report = end + self._report_every
            if end == total:
                return
            if submitted[end] > now:
                self._fetch_when_due()
                return
            if self._fetch_s:  # a backlog: the next round trip (a loop when it costs nothing)
                Call(env, self._fetch_s, self._fetched)
                return

    def _fetch_when_due(self, _event: simpy.Event | None = None) -> None:
        """Fetch the next job now if it is due, else sleep until the fetch that finds it: the
        next poll, or (a backend that wakes the worker) its arrival. A job given back wakes
        no one: a poll or a job's end finds it."""
        leased, submitted = self._leased, self.jobs.submitted_s
        arrival_s = submitted[leased] if leased < len(submitted) else math.inf
        back_s = self.given_back.next_due_s() if self.given_back.count else math.inf
        now = self.env._now
        if back_s < arrival_s:
            self._sleep_until_poll(back_s, arrival_s, now)
            return
        if arrival_s == math.inf:
            self._fetcher_done = True
            return
        if arrival_s <= now:
            self._fetch()
        elif self.host.polls:
            self._idle_for_s = arrival_s
            self._fetch_at_s = self._next_fetch_s(arrival_s, now)
            self._arm_fetch_timer()
        else:
            self._fetch_at_arrival(arrival_s, now)

    def _fetch_at_arrival(self, arrival_s: float, now: float) -> None:
        """A backend that wakes the worker: it fetches at ``arrival_s``. The wake and the round
        trip's return are one event at the return (nothing reads the fetcher in between), at
        the very float time the two events would give."""
        if self._merge_trips:
            CallAt(self.env, (now + (arrival_s - now)) + self.host.fetch_s, self._fetched)
        else:
            Call(self.env, arrival_s - now, self._fetch)

    def _next_fetch_s(self, arrival_s: float, now: float) -> float:
        """When the polling worker, finding the backend empty ``now``, next sees a job arriving
        at ``arrival_s``."""
        interval = self.config.poll_interval_s
        # the tolerance keeps round-off in ``now`` (a job's end) from skipping a whole interval
        return now + math.ceil((arrival_s - now) / interval - TIME_TOLERANCE) * interval

    # The runtime's loop sleeps ``poll_interval_s`` after an empty fetch, but every job that ends
    # wakes it to fetch at once, and the next poll counts from there. One timer at a time stands
    # for the planned fetch: a pending timer that fires no later than the plan is kept (when it
    # fires, it re-arms for the plan, or does nothing if the fetcher is awake), so only a plan
    # earlier than the pending timer costs a new event.

    def _arm_fetch_timer(self) -> None:
        if self._fetch_timer is not None:
            if self._fetch_timer_s <= self._fetch_at_s:
                return  # it will fire first and re-arm
            self._fetch_timer.callbacks = ()  # superseded
        self._fetch_timer_s = self._fetch_at_s
        self._fetch_timer = Call(self.env, self._fetch_at_s - self.env._now, self._fetch_timer_due)

    def _fetch_timer_due(self, _event: simpy.Event) -> None:
        self._fetch_timer = None
        if self._idle_for_s != self._idle_for_s:
            return  # NaN: the fetcher is awake
        if self._fetch_at_s > self.env._now + TIME_TOLERANCE:
            self._arm_fetch_timer()  # a job end moved the fetch later
        else:
            self._wake_fetcher()

    def _wake_fetcher(self) -> None:
        self._idle_for_s = math.nan
        self._fetch_at_s = math.inf
        self._fetch()

    def _job_ended_idle(self, now: float) -> None:
        """A job ended while the fetcher sleeps: it fetches now, and polls on from now."""
        arrival_s = self._idle_for_s
        if arrival_s <= now + TIME_TOLERANCE:
            self._wake_fetcher()
            return
        fetch_at_s = self._next_fetch_s(arrival_s, now)
        if fetch_at_s < self._fetch_at_s - TIME_TOLERANCE:
            self._fetch_at_s = fetch_at_s
            self._arm_fetch_timer()
        else:
            self._fetch_at_s = fetch_at_s  # later: the pending timer fires first and re-arms

    def _routed(self, job_class: str) -> tuple[int, float, Tier, JobSettings]:
        """A class's tier code now (router, then quarantine), estimate, declared tier and
        settings: what a job of it leased now gets, before load-aware routing."""
        known = self._classes.get(job_class)
        if known is None:
            resolved = resolve_job(self.config, job_class, JobOptions())
            known = [resolved.tier, resolved.estimated_duration_s, resolved, None, INLINE]
            self._classes[job_class] = known
        declared, explicit_s, resolved, routed_s, tier = known
        estimate_s = self.history.estimate_s(job_class, explicit_s, self._default_estimate_s)
        # ``route`` is pure in the estimate (the rest is fixed per class): ask it again only
        # when the class's estimate moved
        if routed_s != estimate_s:
            routed = route(declared, estimate_s, self.config, force_inline=self.force_inline)
            tier = TIER_CODE[routed]
            known[3], known[4] = estimate_s, tier
        harmed = tier != INLINE and job_class in self._harmed
        if harmed and self.quarantine.is_quarantined(job_class) and not self.force_inline:
            tier = ISOLATED
        return tier, estimate_s, declared, resolved

    def pool_backlog(self) -> int:
        """Jobs in the backend (arrived, not leased) whose class routes to the pool now: the
        runtime's ``PoolBacklog`` over the model's backend."""
        leased, submitted, now = self._leased, self.jobs.submitted_s, self.env._now
        if not self.given_back.count and (leased == len(submitted) or submitted[leased] > now):
            return 0  # nothing arrived that is not leased (the common case: asked per pool job)
        pending = self._arrivals.pending_by_class(leased, now)
        if self.given_back.count:  # under class rules the arrivals are in ``given_back``
            pending = {**pending}
            for name, count in self.given_back.by_class.items():
                if count:
                    pending[name] = pending.get(name, 0) + count
        if not pending:
            return 0
        return pool_backlog(pending, lambda name: self._routed(name)[0] == POOL)

    def dispatch(self, job: int) -> None:
        """Estimate and route one leased job, then hand it to its tier."""
        tier, estimate_s, declared, resolved = self._routed(self._job_class[job])
        self.estimated_s[job] = estimate_s
        if self._load_routing and declared is Tier.AUTO:
            _, pool, isolated = self.tiers
            tier, self._spilling = route_by_load_code(
                self.config,
                tier,
                pool,
                isolated,
                self.gate.held_pool(),
                self.estimated_s,
                self._spilling,
            )
        self.tier[job] = tier
        memory_mb = self._job_memory_mb[job]
        if tier != INLINE and memory_mb > resolved.max_memory_mb:
            memory_mb = resolved.max_memory_mb  # the limit stops it there
        self.memory_mb[job] = memory_mb
        if self.class_gate is None:
            self._submit[tier](job)
            return
        if not self.room.accept(tier, estimate_s):
            self._give_back(job, self.room.overflow_wait_s(), overflow=True)
            return
        wait_s = self.class_gate.admit(job, self.env.now)
        if wait_s is None:
            self._round.append(job)
            self.room.pending[tier] += 1
        elif wait_s != math.inf and not self._wait_for_slot(job):  # inf: paused, never starts
            self._give_back(job, wait_s, turn_s=self.class_gate.held_for_turn_s)

    # --- one job's life on its slot ------------------------------------------------------

    def run(self, job: int, overhead_s: float) -> None:
        """Start ``job`` on the slot it just got: overhead, off-CPU time, then CPU work; a job
        with fresh memory faults it in first (``sim.model.fault_in``)."""
        env = self.env
        now = env._now
        self.slot_s[job] = now
        if self.started_s[job] != self.started_s[job]:  # NaN: the first attempt (waits count it)
            self.started_s[job] = now + overhead_s
        duration_s, cpu_s = self._duration_s[job], self._cpu_s[job]
        inline = self.tier[job] == INLINE
        if not inline:
            duration_s, cpu_s = self._limit(job, now + overhead_s, duration_s, cpu_s)
        fault_s = self.fresh_mb[job] * self._fault_s_per_mb
        if fault_s > cpu_s:  # faulting its fresh memory in takes more CPU than the row's
            duration_s += fault_s - cpu_s
            cpu_s = fault_s
        if cpu_s > 0 and (inline or self._cpu_shared):
            if fault_s > 0:  # first its fault-in (``sim.model.fault_in``), then the rest
                rest = Rest(duration_s - cpu_s, cpu_s - fault_s)
                self.fault_in.begin(job, self.tier[job], now + overhead_s, self.fresh_mb[job], rest)
                self.cpu.start(job, overhead_s, fault_s, inline)
            else:
                self.cpu.start(job, overhead_s + duration_s - cpu_s, cpu_s, inline)
        else:
            Call(env, overhead_s + duration_s, self._ended, job)

    def _ended(self, event: simpy.Event) -> None:
        self._cpu_done(event._value)

    def _faulted_in(self, job: int, rest: Rest) -> None:
        """``job``'s memory is resident: its off-CPU time, then the rest of its CPU work."""
        if rest.cpu_s > 0:
            self.cpu.start(job, rest.off_s, rest.cpu_s, self.tier[job] == INLINE)
        else:
            Call(self.env, rest.off_s, self._ended, job)

    def _limit(self, job: int, start_s: float, duration_s: float, cpu_s: float):
        """The (duration, CPU) this attempt runs under its limits; notes a kill due at its end."""
        settings = self._classes[self._job_class[job]][2]
        self._attempt_start_s[job] = start_s
        status = kill_status(TIERS[self.tier[job]], duration_s, self.jobs.memory_mb[job], settings)
        if status is None:
            return duration_s, cpu_s
        self._kill[job] = status
        if duration_s > settings.timeout_s:  # stopped at the timeout, its CPU work pro rata
            cpu_s *= settings.timeout_s / duration_s
            duration_s = settings.timeout_s
        return duration_s, cpu_s

    def _cpu_done(self, job: int) -> None:
        now = self.env._now
        rest = self.fault_in.end(job, now)
        if rest is not None:
            self._faulted_in(job, rest)
            return
        tier = self.tier[job]
        if tier == INLINE and self._plain_ends:  # most jobs: no limit, gate or health to note
            self.finished_s[job] = now
            self.history.record(self._job_class[job], now - self.started_s[job])
            self._inline_release(job)
            if self._idle_for_s == self._idle_for_s:  # not NaN: the fetcher sleeps
                self._job_ended_idle(now)
            return
        status = None
        if tier != INLINE:
            status = self._kill.pop(job, None)
            settings = self._classes[self._job_class[job]][2]
            start_s = self._attempt_start_s.pop(job)
            if status is None and over_timeout(now - start_s, settings.timeout_s):
                status = Status.TIMEOUT  # CPU sharing stretched it past its timeout
        else:
            start_s = self.started_s[job]  # an inline job's only attempt
        if status is None or status in LEARNS_FROM:  # this attempt's duration, as the runtime's
            self.history.record(self._job_class[job], now - start_s)
        if status is None:
            self.finished_s[job] = now
            self.tiers[tier].release(job)
        else:
            self._killed(job, tier, status, settings, now)
        if self.gate.enabled:
            self.gate.finished(job)
        if tier != INLINE and (status in HARMFUL or self._job_class[job] in self._harmed):
            self._note_health(self._job_class[job], status or Status.OK)
        if self.class_gate is not None:
            self._slot_freed(self.class_gate.ended(job))
        if self._idle_for_s == self._idle_for_s:  # not NaN: the fetcher sleeps
            self._job_ended_idle(now)

    def _note_health(self, job_class: str, status: Status) -> None:
        self._harmed.add(job_class)
        self.quarantine.record(job_class, status)

    def _killed(self, job: int, tier: int, status: Status, settings: JobSettings, now: float):
        """A limit ended this attempt: free its slot, then retry it after the backoff (routed
        again, as the runtime's fetch does) or dead-letter it."""
        key = (tier, status)
        self.kills[key] = self.kills.get(key, 0) + 1
        if tier == POOL:
            self.tiers[POOL].killed.add(job)
        self.tiers[tier].release(job)
        attempt = self.attempts.get(job, 1)
        delay_s = after_kill_s(settings, attempt)
        if delay_s is None:
            self.finished_s[job] = now
            self.dead[job] = status
            return
        self.attempts[job] = attempt + 1
        Call(self.env, delay_s, self._retry, job)

    def _retry(self, event: simpy.Event) -> None:
        if self.class_gate is not None:  # back in the backend, leased in its turn
            self._give_back(event._value, 0.0)
        else:
            self.dispatch(event._value)
