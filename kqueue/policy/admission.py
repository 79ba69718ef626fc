"""Whether a pool or isolated job may start now within the worker's memory budget.

The memory a worker expects is what it measures (itself with its inline jobs, each live pool and
isolated process) plus, for each running job, what it is predicted to add and has not added yet
(``reserved_mb``). A job is admitted when that total plus its own need fits
``memory_budget_mb``; its need is its predicted memory (``kqueue.policy.memory``), plus a fresh
process's base memory when it needs a new process (isolated jobs, a pool that must grow).

**No starvation: the first job that does not fit holds a reservation** (EASY backfilling, as in
batch schedulers). Jobs are considered oldest first; the first that does not fit becomes the
head, and from the predicted ends of the running jobs the rule works out when it will fit (its
*shadow time*) and how much memory will be left beside it then. A job behind the head may still
start now only if it fits now and either is predicted to end before the shadow time or fits in
what is left beside the head: so smaller jobs use the gaps, never the memory the head waits for.
A head that could never fit beside the worker's floor (predicted above what the budget leaves)
waits for every running job, with nothing spare, and then runs alone. Everything here is pure:
the runtime and the twin call it with their own measurements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kqueue.errors import ConfigError


@dataclass(frozen=True)
class Candidate:
    """A job that waits to start."""

    #: Memory it needs to start: its prediction, plus a new process's base if it needs one, MB.
    need_mb: float
    #: Its expected duration, seconds.
    estimate_s: float


@dataclass(frozen=True)
class Holding:
    """A running job, as admission sees it."""

    #: When it is predicted to end (the same clock as ``now_s``; past: any moment now).
    ends_at_s: float
    #: Memory given back when it ends (its process's, or its prediction for a reused one), MB.
    memory_mb: float


def expected_mb(measured_mb: float, reserved_mb: float) -> float:
    """The memory the worker expects: what it measures plus what running jobs may still add."""
    return measured_mb + max(0.0, reserved_mb)


def fits(used_mb: float, need_mb: float, budget_mb: float) -> bool:
    """True when ``need_mb`` more fits beside ``used_mb`` within ``budget_mb``."""
    return used_mb + need_mb <= budget_mb


def admit(
    candidates: Sequence[Candidate],
    used_mb: float,
    budget_mb: float,
    running: Sequence[Holding] = (),
    now_s: float = 0.0,
) -> list[int]:
    """Which waiting jobs start now, oldest first (pure; see the module docstring).

    Args:
        candidates: the waiting jobs, oldest first, each with its need and estimate.
        used_mb: the memory the worker expects now (``expected_mb``), MB.
        budget_mb: ``memory_budget_mb`` (``inf``: every candidate starts).
        running: the running jobs with their predicted ends and memory.
        now_s: the current time, on the clock of ``Holding.ends_at_s``.

    Returns:
        The indices into ``candidates`` of the jobs to start, in order.
    """
    if math.isinf(budget_mb):
        return list(range(len(candidates)))
    holding = list(running)
    floor_mb = used_mb - sum(h.memory_mb for h in holding)
    admitted: list[int] = []
    shadow = None  # (shadow time, memory left beside the head then)
    for index, job in enumerate(candidates):
        if shadow is None:
            if fits(used_mb, job.need_mb, budget_mb):
                admitted.append(index)
                used_mb += job.need_mb
                holding.append(Holding(now_s + job.estimate_s, job.need_mb))
                continue
            if not fits(floor_mb, job.need_mb, budget_mb) and len(holding) == 0:
                return [index]  # it can never fit: it runs alone, once nothing else does
            shadow = _shadow(holding, used_mb, job.need_mb, budget_mb, now_s)
            continue
        shadow_s, spare_mb = shadow
        if not fits(used_mb, job.need_mb, budget_mb):
            continue
        if now_s + job.estimate_s <= shadow_s:
            admitted.append(index)
            used_mb += job.need_mb
        elif job.need_mb <= spare_mb:
            admitted.append(index)
            used_mb += job.need_mb
            shadow = (shadow_s, spare_mb - job.need_mb)
    return admitted


def _shadow(
    holding: list[Holding], used_mb: float, need_mb: float, budget_mb: float, now_s: float
) -> tuple[float, float]:
    """When the head (``need_mb``) fits as running jobs end, and the memory left beside it then;
    a head that never fits beside the floor waits for every running job (nothing spare)."""
    free_mb = budget_mb - used_mb
    last_s = now_s
    for job in sorted(holding, key=lambda h: h.ends_at_s):
        free_mb += job.memory_mb
        last_s = max(now_s, job.ends_at_s)
        if free_mb >= need_mb:
            return last_s, free_mb - need_mb
    return last_s, 0.0


def pool_room(used_mb: float, budget_mb: float, process_mb: float) -> int:
    """How many more pool processes of ``process_mb`` fit within the budget now (the scaler's
    ceiling: the pool does not grow past it)."""
    if math.isinf(budget_mb):
        return 1 << 30
    if process_mb <= 0:
        return 1 << 30 if used_mb <= budget_mb else 0
    return max(0, math.floor((budget_mb - used_mb) / process_mb))


def recycle_for_budget(
    used_mb: float, budget_mb: float, retained_mb: float, waiting_need_mb: float = 0.0
) -> bool:
    """True when a pool process that just finished a job should be recycled: it holds memory its
    past jobs left behind (``retained_mb`` above its fresh size) and the total, with the need of
    the job waiting first for memory (``waiting_need_mb``, 0 if none), is over the budget."""
    return retained_mb > 0 and used_mb + waiting_need_mb > budget_mb


def check_budget(
    budget_mb: float, worker_mb: float, job_limits_mb: Mapping[str, float], source: str
) -> None:
    """Refuse a budget the worker cannot keep, at start.

    Args:
        budget_mb: ``memory_budget_mb``.
        worker_mb: the worker's own memory as measured at start, MB.
        job_limits_mb: each registered job's resolved ``max_memory_mb``, by name.
        source: where the budget came from, for the message.

    Raises:
        ConfigError: the budget is below the worker's own memory, or a job's limit is above it.
    """
    if math.isinf(budget_mb):
        return
    if worker_mb >= budget_mb:
        raise ConfigError(
            f"{source}: memory_budget_mb ({budget_mb:g}) is not above this worker's own memory "
            f"({worker_mb:.0f} MB): no job could ever be admitted; raise the budget"
        )
    for name, limit_mb in sorted(job_limits_mb.items()):
        if limit_mb > budget_mb:
            raise ConfigError(
                f"{source}: job {name!r} has max_memory_mb = {limit_mb:g}, above "
                f"memory_budget_mb ({budget_mb:g}); lower its limit or raise the budget"
            )
