"""How many jobs to lease now, so that no tier hoards jobs and a full tier blocks no other.

The worker cannot tell a job's tier before it leases and decodes it, so it learns the tier mix of
what it fetches (``update_shares``, a moving average) and leases only what the tiers that those
jobs go to can take: ``min(room / share)`` over the tiers that have room. Jobs for a full tier
that arrive anyway are released back with a delay. When every tier that the recent jobs went to
is full, the worker leases nothing except a small probe now and then, which finds jobs of other
tiers waiting behind (no head-of-line blocking) without churning through the queue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

#: Jobs leased when there is no history of the mix, or when probing behind full tiers.
PROBE_SIZE = 2
#: Tiers with a smaller share of recent jobs do not bound the fetch.
MIN_SHARE = 0.02
#: Weight of one fetched job in the moving average of the tier mix.
SHARE_WEIGHT = 0.05
#: A tier is refilled once its room (free slots plus free local-queue places) reaches this share
#: of its capacity.
REFILL_FRACTION = 1.0
#: How long an overflow job given back waits before it can be leased again, seconds.
RELEASE_DELAY_S = 1.0
#: Least time between two probes for jobs behind full tiers, seconds.
PROBE_INTERVAL_S = 0.5
#: Jobs a pool process or an isolated slot holds beyond the one it runs, ready to start the
#: moment it frees (the tier's own queue, which ``free()`` counts as room).
BACKLOG_PER_SLOT = 1
#: For short pool jobs, up to this many per process, as long as they add up to
#: ``BACKLOG_MAX_WAIT_S`` of their estimate: the worker can then refill the pool every few jobs.
BACKLOG_MAX_PER_PROCESS = 8
BACKLOG_MAX_WAIT_S = 0.5
#: A pool process whose running job is estimated at most this long may get the next request
#: queued in its pipe: a job queued behind it waits at most about this long for a free process.
PIPELINE_MAX_ESTIMATE_S = 1.0


@dataclass(frozen=True)
class FetchPlan:
    """How many jobs to lease, and whether that is a probe behind full tiers."""

    size: int
    probe: bool = False
    #: Nothing is leased because the local queues still hold enough (``refill_due``): the
    #: loop waits for a job to finish, not for new work in the backend.
    deferred: bool = False


def refill_due(
    rooms: Mapping[str, int], capacities: Mapping[str, int], shares: Mapping[str, float]
) -> bool:
    """Whether a tier that recent jobs go to runs low: its room has reached
    ``REFILL_FRACTION`` of its capacity (pure). True with no history of the mix.
    """
    if not shares:
        return True
    return any(
        rooms.get(tier, 0) >= max(1.0, capacities.get(tier, 0) * REFILL_FRACTION)
        for tier, share in shares.items()
        if share >= MIN_SHARE
    )


def plan_fetch(
    rooms: Mapping[str, int], shares: Mapping[str, float], batch_size: int, *, probe_due: bool
) -> FetchPlan:
    """The number of jobs to lease now (pure).

    Args:
        rooms: per tier, the jobs it can take now (free slots plus free local-queue places).
        shares: per tier, the fraction of recently fetched jobs routed to it (empty: no history).
        batch_size: the most jobs one lease call may take.
        probe_due: whether a probe may be sent now (the caller rate-limits probes).
    """
    open_room = sum(room for room in rooms.values() if room > 0)
    if open_room == 0:
        return FetchPlan(0)
    if not shares:
        return FetchPlan(min(PROBE_SIZE, open_room, batch_size), probe=True)
    limits = [
        rooms[tier] / share
        for tier, share in shares.items()
        if share >= MIN_SHARE and rooms.get(tier, 0) > 0
    ]
    if limits:
        return FetchPlan(min(math.ceil(min(limits)), open_room, batch_size))
    if probe_due:
        return FetchPlan(min(PROBE_SIZE, open_room, batch_size), probe=True)
    return FetchPlan(0)


def overflows(waiting: int, free: int, capacity: int) -> bool:
    """True when a tier's local queue is full: a job leased for it goes back to the broker
    (``RELEASE_DELAY_S``, or at once after a probe) instead of being hoarded."""
    return waiting >= max(1, free + capacity)


def pool_backlog_per_process(recent_estimate_s: float) -> int:
    """Jobs the pool holds per process beyond the running ones (pure): ``BACKLOG_PER_SLOT``,
    or, when the job launched last is estimated at most ``PIPELINE_MAX_ESTIMATE_S``, as many
    as fit in ``BACKLOG_MAX_WAIT_S`` of that estimate, up to ``BACKLOG_MAX_PER_PROCESS``.

    Args:
        recent_estimate_s: the estimate of the job the pool launched last (NaN: none yet).
    """
    if not recent_estimate_s <= PIPELINE_MAX_ESTIMATE_S:  # long, or unknown (NaN)
        return BACKLOG_PER_SLOT
    fits = int(BACKLOG_MAX_WAIT_S / max(recent_estimate_s, 1e-3))
    return max(BACKLOG_PER_SLOT, min(BACKLOG_MAX_PER_PROCESS, fits))


def tier_free(capacity: int, backlog_per_slot: int, reserved: int) -> int:
    """A tier's room for jobs now (pure): ``capacity`` slots, each holding ``backlog_per_slot``
    queued jobs beyond its running one, less the ``reserved`` jobs it has (running or queued)."""
    return max(0, capacity * (1 + backlog_per_slot) - reserved)


def update_shares(shares: Mapping[str, float], tier: str) -> dict[str, float]:
    """The tier mix after one more job went to ``tier`` (a moving average; sums to 1)."""
    if not shares:
        return {tier: 1.0}
    updated = {name: share * (1 - SHARE_WEIGHT) for name, share in shares.items()}
    updated[tier] = updated.get(tier, 0.0) + SHARE_WEIGHT
    return updated
