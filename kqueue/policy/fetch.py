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


def update_shares(shares: Mapping[str, float], tier: str) -> dict[str, float]:
    """The tier mix after one more job went to ``tier`` (a moving average; sums to 1)."""
    if not shares:
        return {tier: 1.0}
    updated = {name: share * (1 - SHARE_WEIGHT) for name, share in shares.items()}
    updated[tier] = updated.get(tier, 0.0) + SHARE_WEIGHT
    return updated
