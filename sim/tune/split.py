"""The seeded split of a trace over ``N`` workers: one rule for ``simulate --hosts`` and ``tune``.

Each job goes to a worker drawn uniformly with ``numpy.random.default_rng(seed)`` (one draw per
job, in replay order), which is what N workers leasing from one backend look like when no worker
is favoured. ``shares`` returns every worker's part; ``share`` one of them.
"""

from __future__ import annotations

import numpy as np

from sim.model.jobs import TraceJobs
from sim.tune.evaluate import subset


def owners(jobs: int, hosts: int, seed: int) -> np.ndarray:
    """Per job (replay order), the worker (0 .. hosts-1) that runs it."""
    if hosts < 1:
        raise ValueError(f"hosts must be at least 1, got {hosts}")
    if hosts == 1:
        return np.zeros(jobs, np.int64)
    return np.random.default_rng(seed).integers(hosts, size=jobs)


def shares(prepared: TraceJobs, hosts: int, seed: int) -> list[TraceJobs]:
    """Every worker's share of ``prepared`` when arrivals are split over ``hosts`` workers."""
    if hosts == 1:
        return [prepared]
    owner = owners(len(prepared.jobs), hosts, seed)
    return [subset(prepared, np.flatnonzero(owner == host)) for host in range(hosts)]


def share(prepared: TraceJobs, hosts: int, seed: int, host: int = 0) -> TraceJobs:
    """Worker ``host``'s share (see ``shares``)."""
    if hosts == 1:
        return prepared
    owner = owners(len(prepared.jobs), hosts, seed)
    return subset(prepared, np.flatnonzero(owner == host))
