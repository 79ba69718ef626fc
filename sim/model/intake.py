"""How many jobs the simulated worker leases, and which it gives back: the runtime's intake.

Scenario: under class rules (priorities, limits, pauses) the model leases as the runtime's
``kqueue.worker.intake`` does, by the same ``kqueue.policy.fetch`` rules: only what the tiers
that recent jobs went to can take (``plan_fetch`` over each tier's room: free slots plus free
local-queue places; none until a tier runs low, ``refill_due``), so the rest waits in the
backend in priority order and a new urgent job
waits behind at most the few jobs already leased. A job leased for a tier whose local queue is
full goes back to the backend for ``RELEASE_DELAY_S`` (at once after a probe behind full tiers).

The model's tiers queue what they cannot start yet; a tier's jobs handed over and not ended
(``occupied``) stand for the runtime's running jobs, the tier's own queue and the intake's local
queue: the tier takes its slots' worth plus, for the pool and the isolated tier, the per-slot
backlog the runtime's tiers hold (``kqueue.policy.fetch.tier_free``: one job per isolated slot,
one or more per pool process by ``pool_backlog_per_process`` of the estimate of the job last
routed to the pool), and the rest wait in the local queue. Capacity is
``max_concurrent_inline`` inline, the live processes in the pool and
``max_concurrent_isolated`` isolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kqueue.policy import Config
from kqueue.policy.fetch import (
    BACKLOG_PER_SLOT,
    PROBE_INTERVAL_S,
    RELEASE_DELAY_S,
    FetchPlan,
    overflows,
    plan_fetch,
    pool_backlog_per_process,
    refill_due,
    tier_free,
    update_shares,
)
from sim.model.jobs import INLINE, ISOLATED, POOL, TIER_NAMES


class LeaseRoom:
    """The room the model's tiers have for leased jobs, and the tier mix of recent leases.

    Args:
        tiers: the model's tiers, in tier-code order.
        config: the worker's settings (tier capacities, batch size).
    """

    def __init__(self, tiers: Sequence, config: Config):
        self.tiers, self.config = tiers, config
        self._shares: dict[str, float] = {}
        self._last_probe_s = -math.inf
        #: Whether the round being dispatched is a probe (its overflow goes back at once).
        self.probing = False
        #: Per tier code, jobs the round being dispatched admitted but has not handed over yet
        #: (the runtime queues them locally before it launches any).
        self.pending = [0, 0, 0]
        #: The estimate of the job last routed to the pool (NaN: none yet), seconds.
        self._pool_estimate_s = math.nan

    def _capacity(self, code: int) -> int:
        if code == INLINE:
            return self.config.max_concurrent_inline
        if code == POOL:
            return self.tiers[POOL].size
        return self.config.max_concurrent_isolated

    def _state(self, code: int) -> tuple[int, int, int]:
        """The tier as the runtime's intake sees it: (waiting, free, capacity)."""
        capacity = self._capacity(code)
        occupied = self.tiers[code].occupied() + self.pending[code]
        if code == INLINE:
            backlog = 0
        elif code == POOL:
            backlog = pool_backlog_per_process(self._pool_estimate_s)
        else:
            backlog = BACKLOG_PER_SLOT
        free = tier_free(capacity, backlog, occupied)  # what the tier itself takes
        return max(0, occupied - capacity * (1 + backlog)), free, capacity

    def plan(self, now_s: float, *, begin: bool = False) -> FetchPlan:
        """How many jobs to lease now; ``begin``: a lease round starts with it (notes a probe)."""
        rooms, capacities = {}, {}
        for code in (INLINE, POOL, ISOLATED):
            waiting, free, capacity = self._state(code)
            rooms[TIER_NAMES[code]] = free + capacity - waiting
            capacities[TIER_NAMES[code]] = capacity
        probe_due = now_s - self._last_probe_s >= PROBE_INTERVAL_S
        if not probe_due and not refill_due(rooms, capacities, self._shares):
            return FetchPlan(0, deferred=True)  # the local queues still hold enough
        plan = plan_fetch(rooms, self._shares, self.config.fetch_batch_size, probe_due=probe_due)
        if begin:
            self.pending = [0, 0, 0]
            self.probing = plan.probe
            if plan.probe:
                self._last_probe_s = now_s
        return plan

    def accept(self, code: int, estimate_s: float) -> bool:
        """A leased job estimated ``estimate_s`` was routed to tier ``code``: False when that
        tier's local queue is full (the round counts it in ``pending`` until it hands it over).
        A pool job's estimate sets the pool's per-process backlog from then on (the runtime's
        pool takes it from the job it launched last; here, the last one leased for it)."""
        self._shares = update_shares(self._shares, TIER_NAMES[code])
        if overflows(*self._state(code)):
            return False
        if code == POOL:
            self._pool_estimate_s = estimate_s
        return True

    def full(self, code: int) -> bool:
        """Whether tier ``code``'s local queue is full (``overflows``), without noting a lease."""
        return overflows(*self._state(code))

    def overflow_wait_s(self) -> float:
        """How long a job given back by a full tier stays in the backend, seconds."""
        return 0.0 if self.probing else RELEASE_DELAY_S
