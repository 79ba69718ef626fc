"""The scheduling rules in the simulated worker: priorities, shared limits, pauses, schedules.

The same ``kqueue.policy`` rules as the runtime: the backend's waiting jobs are leased highest
priority first, then earliest due (``ordering.backlog_key``, in ``lease_gate.GivenBack``); a
job class's ``rate_limit`` is a token bucket and its ``concurrency_limit`` a counted semaphore
(``ratelimit``); a paused class never starts; a schedule's ticks (``schedule.due_ticks``) add
jobs to the replay.

Scenario: the limits gate a job when the worker leases it, as in the runtime
(``sim.model.lease_gate``): one that gets no token or no slot goes back to the backend until
its next look. Other classes are never held behind it. Limits come per class from the config's
``[jobs."<name>"]`` tables; a job's priority is what its trace row records, else its class's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from kqueue.policy import Config
from kqueue.policy.ratelimit import (
    RateLimit,
    parse_rate_limit,
)
from kqueue.policy.schedule import Schedule, due_ticks
from sim.model.jobs import Jobs


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
    """The rules of ``jobs``' classes under ``config`` (``paused``: class names).

    A job's priority is the one its trace row records (what the runtime leased it at, a
    ``job.options(priority=...)`` included); a row without one gets its class's ``[jobs]``
    priority, else 0.
    """
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
    recorded = jobs.priority if len(jobs.priority) else [math.nan] * len(jobs)
    priority = [
        int(given) if given == given else priority_of.get(name, 0)  # NaN: not recorded
        for name, given in zip(jobs.job_class, recorded, strict=True)
    ]
    return ClassRules(priority, rate, concurrency, frozenset(paused))


def host_part(config: Config, fleet_part: Mapping[str, float]) -> Config:
    """``config`` for one host of a fleet: each shared limit cut to the host's part of it.

    A class's ``rate_limit`` and ``concurrency_limit`` hold across every worker on the
    backend, so a host that runs the fraction ``f`` of the class's jobs (``fleet_part``) gets
    ``f`` of its rate (the bucket's 0.5 s of tokens scale with it) and ``floor(f x limit)``
    slots, at least one: a limit smaller than the hosts that share it is simulated as one slot
    each, more than the fleet has (``sim.tune.fleet_limits`` says so in the plan).
    """
    tables = dict(config.jobs)
    changed = False
    for name, part in fleet_part.items():
        options = tables.get(name)
        if options is None or part >= 1.0:
            continue
        rate, slots = options.rate_limit, options.concurrency_limit
        if rate is not None:
            per_s = parse_rate_limit(rate, f'[jobs."{name}"]').rate_per_s * part
            rate = f"{per_s!r}/s"
        if slots is not None:
            slots = max(1, math.floor(slots * part + 1e-9))
        if (rate, slots) != (options.rate_limit, options.concurrency_limit):
            tables[name] = dataclasses.replace(options, rate_limit=rate, concurrency_limit=slots)
            changed = True
    return dataclasses.replace(config, jobs=MappingProxyType(tables)) if changed else config


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
    recorded = jobs.priority if len(jobs.priority) else [math.nan] * len(jobs)
    columns = (jobs.submitted_s, jobs.duration_s, jobs.cpu_s, jobs.memory_mb, jobs.job_class)
    rows = list(zip(*columns, recorded, strict=True))
    for at_s, name in added:
        d = duration_s[name]
        rows.append((at_s, d, d * cpu_share, memory_mb, name, math.nan))  # its class's priority
    rows.sort(key=lambda row: row[0])  # stable: the trace's own order stays
    merged = list(zip(*rows, strict=True)) if rows else [[]] * 6
    *kept, priority = (list(column) for column in merged)
    return Jobs(*kept, priority=priority if len(jobs.priority) else [])


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
