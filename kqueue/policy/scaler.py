"""How big the pool should be: grow while jobs wait, shrink back when idle, in bounded steps.

Like Horizon's auto-balancing (``balanceMaxShift`` / ``balanceCooldown``): the pool moves at most
``pool_scale_step`` processes per step and takes a step at most every ``pool_scale_cooldown_s``
seconds, between ``pool_size`` and ``pool_max_size``. The runtime's pool supervisor and the
simulator's pool both call ``target_pool_size`` and apply its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kqueue.policy.config import Config


@dataclass(frozen=True)
class PoolSnapshot:
    """What the pool looks like now."""

    #: Processes alive (busy or idle).
    size: int
    #: Processes running a job.
    busy: int
    #: Jobs routed to the pool that wait for a process.
    waiting: int
    #: The current time, seconds (any clock, the same as ``last_scaled_at_s``).
    now_s: float
    #: When the pool last changed size by a scaling step, or ``None`` if never.
    last_scaled_at_s: float | None = None


def target_pool_size(snapshot: PoolSnapshot, config: Config) -> int:
    """The size the pool should have now (pure); equal to ``snapshot.size`` for "no change".

    Grows by up to ``pool_scale_step`` (never past ``pool_max_size`` nor past what the waiting
    jobs need) while jobs wait; shrinks by up to ``pool_scale_step`` idle processes (never below
    ``pool_size`` nor below the busy count) when nothing waits. Below ``pool_size`` (a process
    died) it returns ``pool_size`` at once: replacing a dead process is not scaling.
    """
    return target_size(
        snapshot.size,
        snapshot.busy,
        snapshot.waiting,
        snapshot.now_s,
        snapshot.last_scaled_at_s,
        config,
    )


def cooling_down(now_s: float, last_scaled_at_s: float | None, config: Config) -> bool:
    """True while the last scaling step's ``pool_scale_cooldown_s`` runs: a pool of at least
    ``pool_size`` keeps its size then, whatever waits (``target_size``)."""
    return last_scaled_at_s is not None and now_s - last_scaled_at_s < config.pool_scale_cooldown_s


def target_size(
    size: int,
    busy: int,
    waiting: int,
    now_s: float,
    last_scaled_at_s: float | None,
    config: Config,
) -> int:
    """``target_pool_size`` with the snapshot's fields as arguments: the simulator asks after
    every pool job's start and end, and a snapshot object each time costs more than the rule."""
    floor, ceiling, step = config.pool_size, config.pool_max_size, config.pool_scale_step
    if size < floor:
        return floor
    if cooling_down(now_s, last_scaled_at_s, config):
        return size
    idle = size - busy
    if waiting > idle and size < ceiling:
        return min(ceiling, size + step, size + waiting - idle)
    if waiting == 0 and size > floor and idle > 0:
        return max(floor, busy, size - step)
    return size


def pool_backlog(pending_by_class: Mapping[str, int], routes_to_pool: Callable[[str], bool]) -> int:
    """Jobs waiting in the backend whose class routes to the pool (the per-class pending counts
    the backends keep; a class never seen routes by the default estimate, as the router does)."""
    return sum(
        count for name, count in pending_by_class.items() if count > 0 and routes_to_pool(name)
    )


def target_size_with_backlog(
    size: int,
    busy: int,
    waiting: int,
    backlog: int,
    now_s: float,
    last_scaled_at_s: float | None,
    config: Config,
    *,
    room: int | None = None,
) -> int:
    """``target_size`` counting the backend's backlog for the pool as waiting, capped by the
    memory budget.

    Args:
        waiting: jobs the worker holds for the pool.
        backlog: jobs in the backend that route to the pool (``pool_backlog``), not yet leased.
        room: pool processes the memory budget allows beyond ``size`` now
            (``kqueue.policy.admission.pool_room``), or None for no budget.
    """
    target = target_size(size, busy, waiting + max(0, backlog), now_s, last_scaled_at_s, config)
    if room is not None and target > size:
        target = size + min(target - size, max(0, room))
    return target
