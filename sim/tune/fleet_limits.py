"""A class's shared limits in a plan: fixed, split over the hosts, checked against what arrives.

An operator's base config may fix a class's ``rate_limit`` (an external API allows 100/min) or
its ``concurrency_limit`` (a licence for 5 at once). The tuner never searches them. They hold
across every worker on the backend whatever the host count, so each host's share is simulated
with its part of them (``TraceJobs.fleet_part``, ``sim.model.rules.host_part``) and adding hosts
adds nothing to the class.

Before the search, ``fixed_limits`` sets each limit beside what the trace offers it: jobs per
second against the rate, and jobs in flight (arrival rate x mean duration, Little's law) against
the slots. A class offered more than its limit lets through has a backlog that grows whatever
the plan: ``tune`` refuses and names it, or with ``--drop-impossible`` plans without it. The
waits of a class that fits are the limit's, the same on any number of hosts: they are measured
once on the whole trace (the class alone, on an ideal host, with its whole limit), reported, and
not held to the tier SLOs, which the plan's host count cannot change for it
(``sim.tune.slo.job_groups`` leaves such classes out of the tier groups:
``sim.tune.slo.limited_classes``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from kqueue.policy import Config, HostProfile, Tier
from kqueue.policy.ratelimit import parse_rate_limit
from sim.model.jobs import TraceJobs
from sim.model.readable import format_rate

#: A class offered more than this part of its limit is held at the limit for good: its
#: backlog grows (a queue at its service rate never empties; the margin absorbs rounding).
SATURATED = 1.0


@dataclass(frozen=True)
class FixedLimit:
    """One class's shared limits beside what the trace offers it."""

    job_class: str
    jobs: int
    #: The limit's starts per second across the fleet, and its slots; None: not limited.
    rate_per_s: float | None
    slots: int | None
    #: What the trace offers: its jobs per second over the trace's span, and jobs in flight.
    offered_per_s: float
    offered_in_flight: float
    #: The class's p95 and longest wait under its limit alone (seconds; ``waits``).
    p95_wait_s: float | None = None
    max_wait_s: float | None = None

    @property
    def load(self) -> float:
        """The larger of offered rate / rate limit and jobs in flight / slots."""
        parts = []
        if self.rate_per_s is not None:
            parts.append(self.offered_per_s / self.rate_per_s)
        if self.slots is not None:
            parts.append(self.offered_in_flight / self.slots)
        return max(parts, default=0.0)

    @property
    def saturated(self) -> bool:
        """True when the limit lets through less than the trace offers."""
        return self.load >= SATURATED

    def limits_text(self) -> str:
        """``rate_limit 100/min, concurrency_limit 3``."""
        parts = []
        if self.rate_per_s is not None:
            parts.append(f"rate_limit {format_rate(self.rate_per_s * 60)}")
        if self.slots is not None:
            parts.append(f"concurrency_limit {self.slots}")
        return ", ".join(parts)

    def describe(self) -> str:
        """What the limit does to the class, in one sentence."""
        offered = (
            f"offered {format_rate(self.offered_per_s * 60)} and {self.offered_in_flight:.1f} in "
            f"flight ({self.load:.0%} of its limit)"
        )
        head = f"class {self.job_class!r} ({self.limits_text()}, fixed, shared by every host): "
        if self.saturated:
            return head + offered + "; its backlog grows whatever the host count"
        waits = ""
        if self.p95_wait_s is not None:
            waits = f"; its waits are the limit's: p95 {self.p95_wait_s:.2f} s, longest "
            waits += f"{self.max_wait_s:.2f} s on any number of hosts (not held to the tier SLOs)"
        return head + offered + waits


def fixed_limits(prepared: TraceJobs, base: Config) -> tuple[FixedLimit, ...]:
    """The trace's classes that ``base`` gives a ``rate_limit`` or ``concurrency_limit``."""
    jobs = prepared.jobs
    names = np.asarray(jobs.job_class, dtype=object)
    submitted = np.asarray(jobs.submitted_s, float)
    duration = np.asarray(jobs.duration_s, float)
    span_s = float(submitted.max() - submitted.min()) if len(submitted) > 1 else 0.0
    found = []
    for name in sorted(set(jobs.job_class)):
        options = base.jobs.get(name)
        if options is None or (options.rate_limit is None and options.concurrency_limit is None):
            continue
        mask = names == name
        count = int(mask.sum())
        rate = options.rate_limit
        per_s = parse_rate_limit(rate, f'[jobs."{name}"]').rate_per_s if rate else None
        offered = count / span_s if span_s > 0 else math.inf
        in_flight = offered * float(duration[mask].mean()) if span_s > 0 else float(count)
        found.append(FixedLimit(name, count, per_s, options.concurrency_limit, offered, in_flight))
    return tuple(found)


def with_waits(prepared: TraceJobs, base: Config, limit: FixedLimit) -> FixedLimit:
    """``limit`` with the class's waits under its whole limit alone: its jobs of the whole
    trace inline on an ideal host with a thread for each, so the limit is all that holds
    them back (the least wait any plan can give them)."""
    from sim.model.replay import simulate
    from sim.tune.evaluate import subset

    names = np.asarray(prepared.jobs.job_class, dtype=object)
    alone = subset(prepared, np.flatnonzero(names == limit.job_class))
    options = base.jobs[limit.job_class]
    tables = {limit.job_class: dataclasses.replace(options, tier=Tier.INLINE)}
    config = base.replace(max_concurrent_inline=max(1, len(alone.jobs)))
    config = dataclasses.replace(config, jobs=MappingProxyType(tables))
    outcome = simulate(alone, config, HostProfile.ideal()).outcome
    done = np.isfinite(outcome.finished_s)
    wait = outcome.started_s[done] - outcome.submitted_s[done]
    if not len(wait):
        return limit
    p95 = float(np.percentile(wait, 95))
    return dataclasses.replace(limit, p95_wait_s=p95, max_wait_s=float(wait.max()))


def concurrency_notes(limits: tuple[FixedLimit, ...], hosts: int) -> list[str]:
    """A note for each concurrency limit smaller than the hosts sharing it (each host's share
    is simulated with one slot: more at once than the fleet allows, so its waits are low)."""
    return [
        f"class {limit.job_class!r}: concurrency_limit {limit.slots} is shared by {hosts} "
        "hosts; each host's share is simulated with 1 slot, more at once than the fleet allows, "
        "so its waits in the plan are optimistic"
        for limit in limits
        if limit.slots is not None and limit.slots < hosts
    ]
