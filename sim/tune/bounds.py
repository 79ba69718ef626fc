"""Bounds on what a trace needs, before any simulation (issue 6, issue 14).

Whether one host can work at all (``one_host_bound``: the offered CPU against the cores, the least
mean memory of any split against the budget) and, when not, how many hosts each bound alone asks
for (``host_bounds``): the host count search starts from the larger.
"""

from __future__ import annotations

import math

from sim.tune.evaluate import Problem
from sim.tune.space import (
    INLINE_SAFE_MAX_S,
    MAX_CPU_UTILISATION,
    TraceProfile,
    cpu_stretch,
    memory_floor_mb,
    splits,
    with_pool_tier,
)


def one_host_bound(trace: TraceProfile, problem: Problem) -> str:
    """Why no config can work on one host, from bounds alone ("" when the bounds allow one)."""
    host = problem.host
    if host.cores and trace.cpu_load_cores >= host.cores * MAX_CPU_UTILISATION:
        return (
            f"CPU: the trace offers {trace.cpu_load_cores:.1f} cores of CPU work, over "
            f"{MAX_CPU_UTILISATION:.0%} of the host's {host.cores} cores"
        )
    floor = min_memory_floor(trace, problem)
    if floor > problem.memory_budget_mb:
        return (
            f"memory: the mean memory in use is at least {floor:,.0f} MB for any thresholds, "
            f"over the {problem.memory_budget_mb:,.0f} MB budget"
        )
    return ""


def min_memory_floor(trace: TraceProfile, problem: Problem) -> float:
    """The least mean-memory bound over every split (MB)."""
    stretch = cpu_stretch(trace, problem.host)
    if not math.isfinite(stretch):
        stretch = 1.0
    found = splits(trace, problem.host, stretch, inline_cap(problem))
    pooled = with_pool_tier(problem.base)
    return min(memory_floor_mb(s, problem.host, pooled) for s in found)


def inline_cap(problem: Problem) -> float:
    """Longest class estimate that may go inline: the safe bound, or the base config's."""
    return max(INLINE_SAFE_MAX_S, problem.base.inline_max_duration_s)


def host_bounds(trace: TraceProfile, problem: Problem) -> dict[str, int]:
    """Hosts each bound alone asks for: ``{"CPU": k, "memory": k}`` (those that bind)."""
    host, budget = problem.host, problem.memory_budget_mb
    found = {}
    if host.cores:
        found["CPU"] = max(1, math.ceil(trace.cpu_load_cores / (host.cores * MAX_CPU_UTILISATION)))
    floor = min_memory_floor(trace, problem)
    if math.isfinite(budget) and budget > host.worker_mb:
        found["memory"] = max(1, math.ceil((floor - host.worker_mb) / (budget - host.worker_mb)))
    return found
