"""The scheduling rules in the simulated worker: priorities, shared limits, pauses, schedules.

The same ``kqueue.policy`` rules as the runtime: a tier's waiting jobs leave highest priority
first, then in submission order (``ordering.backlog_key``); a job class's ``rate_limit`` is a
token bucket and its ``concurrency_limit`` a counted semaphore (``ratelimit``); a paused class
never starts; a schedule's ticks (``schedule.due_ticks``) add jobs to the replay.

Scenario: a job whose class is limited waits in its class's own backlog (priority order) when
its class has no token or no free slot, and goes on to its tier as soon as one comes (the next
token's time, or the end of a job of its class). The runtime holds it back in the broker and
looks again after a short wait; the model skips that wait's noise. Other classes are never held
behind it. Priorities and limits come per class from the config's ``[jobs."<name>"]`` tables
(the trace says which class each job is).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import simpy

from kqueue.policy import Config
from kqueue.policy.ordering import backlog_key
from kqueue.policy.ratelimit import (
    Bucket,
    RateLimit,
    acquire_slots,
    parse_rate_limit,
    release_slots,
    take_tokens,
    token_wait_s,
)
from kqueue.policy.schedule import Schedule, due_ticks
from sim.engine.clock import Call
from sim.model.jobs import Jobs


class BacklogQueue:
    """A tier's waiting jobs in priority order (``deque``'s ``append`` / ``popleft`` / ``len``).

    Args:
        priority: per job, its priority.
    """

    def __init__(self, priority: Sequence[int]):
        self._priority = priority
        self._heap: list[tuple[tuple[int, float, int], int]] = []

    def append(self, job: int) -> None:
        """Queue ``job`` (its index is its submission order)."""
        heapq.heappush(self._heap, (backlog_key(self._priority[job], 0.0, job), job))

    def popleft(self) -> int:
        """The next job to start."""
        return heapq.heappop(self._heap)[1]

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)


@dataclass(frozen=True)
class ClassRules:
    """The per-class rules of a replay, resolved once from the config."""

    #: Per job, its class's priority (all 0 when no class has one).
    priority: list[int]
    rate: dict[str, RateLimit]
    concurrency: dict[str, int]
    paused: frozenset[str]

    @property
    def prioritised(self) -> bool:
        """True when some job's priority is not 0."""
        return any(self.priority)

    @property
    def gated(self) -> bool:
        """True when some class has a limit or is paused."""
        return bool(self.rate or self.concurrency or self.paused)


def class_rules(jobs: Jobs, config: Config, paused: Sequence[str] = ()) -> ClassRules:
    """The rules of ``jobs``' classes under ``config`` (``paused``: class names)."""
    tables = config.jobs
    priority_of = {name: (options.priority or 0) for name, options in tables.items()}
    rate = {
        name: parse_rate_limit(options.rate_limit, f'[jobs."{name}"]')
        for name, options in tables.items()
        if options.rate_limit is not None
    }
    concurrency = {
        name: options.concurrency_limit
        for name, options in tables.items()
        if options.concurrency_limit is not None
    }
    priority = [priority_of.get(name, 0) for name in jobs.job_class]
    return ClassRules(priority, rate, concurrency, frozenset(paused))


class Gate:
    """Holds back jobs of limited or paused classes until their token or slot comes.

    Args:
        env: the environment.
        rules: the classes' rules.
        job_class: per job, its class.
        submit: hands a job on to its tier (the model's routing step).
    """

    def __init__(
        self,
        env: simpy.Environment,
        rules: ClassRules,
        job_class: Sequence[str],
        submit: Callable[[int], None],
    ):
        self.env, self.rules, self._class, self._submit = env, rules, job_class, submit
        self._buckets: dict[str, Bucket | None] = dict.fromkeys(rules.rate)
        self._slots: dict[str, dict[str, float]] = {name: {} for name in rules.concurrency}
        self._held: dict[str, list[tuple[tuple[int, float, int], int]]] = {}
        self._timer_armed: set[str] = set()
        #: Jobs held back at least once, and jobs of paused classes never started.
        self.held_back = 0

    def offer(self, job: int) -> None:
        """A job was leased: start it now if its class allows, else hold it in its backlog."""
        name = self._class[job]
        if name in self.rules.paused:
            self.held_back += 1
            return
        held = self._held.get(name)
        if held or not self._admit(name, job):
            key = backlog_key(self.rules.priority[job], 0.0, job)
            heapq.heappush(self._held.setdefault(name, []), (key, job))
            self.held_back += 1
            self._wake_later(name)
            return
        self._submit(job)

    def ended(self, job: int) -> None:
        """``job`` ended: its slot is free; its class's next held job may start."""
        name = self._class[job]
        if name in self._slots:
            self._slots[name] = release_slots(self._slots[name], [str(job)])
            self._drain(name)

    def _admit(self, name: str, job: int) -> bool:
        now = self.env.now
        if name in self._slots:
            limit = self.rules.concurrency[name]
            granted, after = acquire_slots(limit, self._slots[name], [str(job)], now, math.inf)
            if not granted:
                return False
            self._slots[name] = after
        if name in self._buckets:
            got, self._buckets[name] = take_tokens(
                self.rules.rate[name], self._buckets[name], now, 1
            )
            if not got:
                if name in self._slots:
                    self._slots[name] = release_slots(self._slots[name], [str(job)])
                return False
        return True

    def _drain(self, name: str) -> None:
        held = self._held.get(name)
        while held and self._admit(name, held[0][1]):
            self._submit(heapq.heappop(held)[1])
        if held:
            self._wake_later(name)

    def _wake_later(self, name: str) -> None:
        """Look at a rate-limited class again when its next token comes."""
        if name not in self.rules.rate or name in self._timer_armed:
            return
        wait_s = token_wait_s(self.rules.rate[name], self._buckets[name], self.env.now)
        self._timer_armed.add(name)
        Call(self.env, max(wait_s, 1e-6), self._woken, name)

    def _woken(self, event: simpy.Event) -> None:
        name = event._value
        self._timer_armed.discard(name)
        self._drain(name)


def add_schedule_jobs(
    jobs: Jobs,
    schedules: Mapping[str, Schedule],
    origin_s: float,
    duration_s: Mapping[str, float],
    *,
    cpu_share: float = 0.0,
    memory_mb: float = 0.0,
) -> Jobs:
    """``jobs`` with one job per schedule tick over the replay's span, merged in time order.

    Args:
        jobs: the replay (time 0 = ``origin_s``, epoch seconds).
        schedules: the schedules to fire (``[schedules]``), each tick at its epoch time.
        origin_s: the replay's time 0, epoch seconds (ticks are wall-clock).
        duration_s: each scheduled job class's duration, seconds (e.g. its trace median).
        cpu_share: the part of a scheduled job's duration that is CPU work.
        memory_mb: a scheduled job's memory.

    Raises:
        KeyError: a schedule's job has no duration in ``duration_s``.
    """
    end_s = jobs.submitted_s[-1] if len(jobs) else 0.0
    added = []
    for schedule in schedules.values():
        for tick in due_ticks(schedule, origin_s, origin_s + end_s, 10**7):
            added.append((tick - origin_s, schedule.job_name))
    columns = (jobs.submitted_s, jobs.duration_s, jobs.cpu_s, jobs.memory_mb, jobs.job_class)
    rows = list(zip(*columns, strict=True))
    for at_s, name in added:
        d = duration_s[name]
        rows.append((at_s, d, d * cpu_share, memory_mb, name))
    rows.sort(key=lambda row: row[0])  # stable: the trace's own order stays
    merged = list(zip(*rows, strict=True)) if rows else [[], [], [], [], []]
    return Jobs(*(list(column) for column in merged))


def with_schedule_rows(trace, schedules: Mapping[str, Schedule]):
    """A trace DataFrame with one row per schedule tick over its span (``[schedules]``).

    Each added row is a job of the schedule's class due at the tick, with that class's median
    ``duration_s`` (and ``cpu_s`` / ``memory_mb`` when the trace has them) from the trace.

    Raises:
        ValueError: a schedule's job class has no rows in the trace (its duration is unknown).
    """
    import pandas as pd

    start_s, end_s = float(trace["submitted_at"].min()), float(trace["submitted_at"].max())
    added = []
    for schedule in schedules.values():
        rows = trace[trace["job_class"] == schedule.job_name]
        if rows.empty:
            raise ValueError(
                f"schedule {schedule.name!r} fires {schedule.job_name!r}, which the trace has no "
                "rows of: its duration is unknown"
            )
        typical = {c: float(rows[c].median()) for c in ("duration_s", "cpu_s", "memory_mb")
                   if c in rows}  # fmt: skip
        for tick in due_ticks(schedule, start_s, end_s, 10**7):
            added.append({"submitted_at": tick, "job_class": schedule.job_name, **typical})
    if not added:
        return trace
    return pd.concat([trace, pd.DataFrame(added)], ignore_index=True)
