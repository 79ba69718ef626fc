"""The seeded split of a trace over ``N`` workers: one rule for ``simulate --hosts`` and ``tune``.

Workers sharing one backend pull: a worker leases only what its tiers have room for
(``kqueue.policy.fetch``), so a job goes to a worker with room, not to a worker drawn at random.
The ``balanced`` rule (the default) models that: in arrival order, each job goes to the worker
with the fewest jobs of its class in flight (assigned, and not yet ended if it had started at
once), then the fewest in flight of any class, ties drawn with ``numpy.random.default_rng(seed)``.
The ``random`` rule draws every job's worker uniformly (a static hash split; what the tuner did
before issue 14): each share is then an independent thinning of the arrivals, whose bursts are
much larger relative to its mean than the whole trace's, and the host count it needs with them.
``shares`` returns every worker's part; ``share`` one of them.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from collections.abc import Mapping

import numpy as np

from sim.model.jobs import TraceJobs
from sim.tune.evaluate import subset

#: The split rules: ``balanced`` (pull: least in flight) and ``random`` (uniform draw).
RULES = ("balanced", "random")
DEFAULT_RULE = "balanced"


def owners(prepared: TraceJobs, hosts: int, seed: int, rule: str = DEFAULT_RULE) -> np.ndarray:
    """Per job (replay order), the worker (0 .. hosts-1) that runs it."""
    if hosts < 1:
        raise ValueError(f"hosts must be at least 1, got {hosts}")
    if rule not in RULES:
        raise ValueError(f"unknown split rule {rule!r}; valid rules: {', '.join(RULES)}")
    n = len(prepared.jobs)
    if hosts == 1:
        return np.zeros(n, np.int64)
    rng = np.random.default_rng(seed)
    if rule == "random":
        return rng.integers(hosts, size=n)
    return _balanced(prepared, hosts, rng)


def _balanced(prepared: TraceJobs, hosts: int, rng: np.random.Generator) -> np.ndarray:
    jobs = prepared.jobs
    names = sorted(set(jobs.job_class))
    code = {name: i for i, name in enumerate(names)}
    # key[c, h]: jobs of class c in flight on host h, scaled to dominate, plus all in flight on h
    scale = float(len(jobs) + 1)
    key = np.zeros((len(names), hosts))
    # ties: host order rotated by a seeded offset per job (``_rotation``)
    rotation = _rotation(hosts)
    offsets = rng.integers(hosts, size=len(jobs)).tolist()
    classes = [code[name] for name in jobs.job_class]
    ending: list[tuple[float, int, int]] = []
    owner = np.empty(len(jobs), np.int64)
    pop, push, argmin = heapq.heappop, heapq.heappush, np.argmin
    for j, at_s in enumerate(jobs.submitted_s):
        while ending and ending[0][0] <= at_s:
            _, host, c = pop(ending)
            key[c, host] -= scale
            key[:, host] -= 1.0
        c = classes[j]
        host = int(argmin(key[c] + rotation(offsets[j])))
        owner[j] = host
        key[c, host] += scale
        key[:, host] += 1.0
        push(ending, (at_s + jobs.duration_s[j], host, c))
    return owner


#: Above this many hosts the tie-break rows are computed per job, not kept as a hosts x hosts
#: table (at 10,000 hosts the table alone is 800 MB).
ROTATION_TABLE_MAX_HOSTS = 1_024


def _rotation(hosts: int):
    """``rotation(offset)``: the hosts' tie-break order rotated by ``offset``, as fractions of
    one (below any difference of whole jobs). The same numbers with or without the table."""
    order = np.arange(hosts)
    if hosts > ROTATION_TABLE_MAX_HOSTS:
        return lambda offset: ((order - offset) % hosts) / hosts
    table = ((order[None, :] - order[:, None]) % hosts) / hosts
    return table.__getitem__


class Splits:
    """The splits of one trace asked for during one tune, each computed once.

    ``owners`` costs a pass over every job (about a second for 200,000 on this machine); a
    host count's search, its check over every seed and its fixes ask for the same splits.
    """

    def __init__(self, prepared: TraceJobs, rule: str = DEFAULT_RULE):
        self.prepared = prepared
        self.rule = rule
        self._owners: dict[tuple[int, int], np.ndarray] = {}
        self._totals = class_totals(prepared)

    def owners(self, hosts: int, seed: int) -> np.ndarray:
        """``owners(prepared, hosts, seed, rule)``, remembered."""
        if (hosts, seed) not in self._owners:
            self._owners[hosts, seed] = owners(self.prepared, hosts, seed, self.rule)
        return self._owners[hosts, seed]

    def shares(self, hosts: int, seed: int) -> list[TraceJobs]:
        """Every worker's share (as ``shares``)."""
        if hosts == 1:
            return [self.prepared]
        owner, whole, totals = self.owners(hosts, seed), self.prepared, self._totals
        return [
            with_fleet_part(subset(whole, np.flatnonzero(owner == h)), whole, totals)
            for h in range(hosts)
        ]

    def share(self, hosts: int, seed: int, host: int = 0) -> TraceJobs:
        """Worker ``host``'s share (as ``share``)."""
        if hosts == 1:
            return self.prepared
        part = subset(self.prepared, np.flatnonzero(self.owners(hosts, seed) == host))
        return with_fleet_part(part, self.prepared, self._totals)


def shares(prepared: TraceJobs, hosts: int, seed: int, rule: str = DEFAULT_RULE) -> list[TraceJobs]:
    """Every worker's share of ``prepared`` when arrivals are split over ``hosts`` workers."""
    if hosts == 1:
        return [prepared]
    owner, totals = owners(prepared, hosts, seed, rule), class_totals(prepared)
    return [
        with_fleet_part(subset(prepared, np.flatnonzero(owner == host)), prepared, totals)
        for host in range(hosts)
    ]


def share(
    prepared: TraceJobs, hosts: int, seed: int, host: int = 0, rule: str = DEFAULT_RULE
) -> TraceJobs:
    """Worker ``host``'s share (see ``shares``)."""
    if hosts == 1:
        return prepared
    part = subset(prepared, np.flatnonzero(owners(prepared, hosts, seed, rule) == host))
    return with_fleet_part(part, prepared)


def class_totals(whole: TraceJobs) -> Counter[str]:
    """Jobs per class in ``whole``: what ``with_fleet_part`` divides by, counted once per split
    (a pass over every job: about a second per split of the HPC2N trace at 50 hosts when each
    share counted it again)."""
    return Counter(whole.jobs.job_class)


def with_fleet_part(
    part: TraceJobs, whole: TraceJobs, totals: Mapping[str, int] | None = None
) -> TraceJobs:
    """``part`` knowing, per class, the fraction of the fleet's jobs of that class it holds
    (``TraceJobs.fleet_part``: its host gets that fraction of a shared limit).

    Args:
        part: one worker's share of ``whole``.
        whole: the trace it was split from.
        totals: ``class_totals(whole)`` when the caller has it (one count for all the shares);
            counted here otherwise.
    """
    if totals is None:
        totals = class_totals(whole)
    outer = whole.fleet_part
    fleet_part = {
        name: outer.get(name, 1.0) * count / totals[name]
        for name, count in Counter(part.jobs.job_class).items()
    }
    return dataclasses.replace(part, fleet_part=fleet_part)
