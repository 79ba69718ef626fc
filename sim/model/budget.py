"""The simulated worker's memory budget: the runtime's admission rule over the model's memory.

Scenario: with ``memory_budget_mb`` set, a job routed to the pool or the isolated tier does not go
to its tier at once; it waits here, in arrival order, until ``kqueue.policy.admission.admit`` (the
function the runtime's ``kqueue.worker.budget`` calls) lets it start. What the worker holds now
is the model's own memory: the worker's base, the inline tier's and the pool's memory logs, and
each admitted isolated job's process; a running job adds its prediction less what it already
holds (in the model a job holds its memory from its start, where the runtime sees it grow). Its
need is its class's predicted memory (``kqueue.policy.memory``, fed with each finished job's
memory, the trace's ``memory_mb``), plus a process for an isolated job. As in the runtime, each
tier offers as many jobs as it has slots for (one queued per slot beyond the running ones), the
pool's scaler counts the jobs held here and grows only as far as ``pool_room`` allows, and a
pool process is recycled when it pushes the total over the budget.
"""

from __future__ import annotations

import math
from collections import deque

from kqueue.policy import Config, HostProfile
from kqueue.policy.admission import Candidate, Holding, admit, pool_room, recycle_for_budget
from kqueue.policy.memory import MemoryHistory, cold_start_mb
from kqueue.policy.router import TierLoad, pool_wait_s, route_by_load
from sim.model.jobs import ISOLATED, POOL, TIER_CODE

CODE_TIER = {code: tier for tier, code in TIER_CODE.items()}

#: Jobs a tier takes per slot beyond the running ones (the runtime's ``BACKLOG_PER_*``).
QUEUED_PER_SLOT = 1


class BudgetGate:
    """Holds pool and isolated jobs until they fit (see the module docstring).

    Args:
        env: the environment.
        config: the worker's settings (``memory_budget_mb``, history).
        host: the host constants (worker and process memory).
        memory_mb: per job, its memory (MB).
        estimated_s: per job, its estimate (the model fills it at dispatch).
        job_class: per job, its class.
        started_s: per job, when it started (NaN before).
        standing_mb: what the worker's tree holds before any job (``kqueue.policy.fork``), MB.
    """

    def __init__(
        self,
        env,
        config: Config,
        host: HostProfile,
        *,
        memory_mb,
        estimated_s,
        job_class,
        started_s,
        standing_mb: float,
    ):
        self.env, self.config, self.host = env, config, host
        #: The worker's tree before any job (the worker, and the zygote when there is one), MB.
        self.standing_mb = standing_mb
        self.budget_mb = config.memory_budget_mb
        self.enabled = not math.isinf(self.budget_mb)
        self.memory = MemoryHistory.from_config(config)
        self._memory_mb, self._estimated_s = memory_mb, estimated_s
        self._job_class, self._started_s = job_class, started_s
        self.queue: deque[tuple[int, int]] = deque()  # (job, tier code), oldest first
        #: Jobs of each tier in ``queue`` (kept with it: ``pump`` and ``held_pool`` read it).
        self._queued = {POOL: 0, ISOLATED: 0}
        self._admitted: dict[int, tuple[float, float, int]] = {}  # job -> (need, ends, tier)
        self.tiers = None  # set by the model: (inline, pool, isolated)
        self.peak_expected_mb = 0.0
        self.held = 0
        #: The prediction of a class with no history (the config is frozen: worked out once).
        self._cold_mb = cold_start_mb(config.default_job_memory_mb, config.max_memory_mb)
        #: Per class, its prediction as of its last record (``finished`` drops it): ``pump``
        #: asks for every offered job's need on every call, the history moves once per job.
        self._predicted_mb: dict[str, float] = {}

    # --- memory ---------------------------------------------------------------------------

    def used_mb(self) -> float:
        """What the worker holds now plus what admitted jobs may still add, MB."""
        inline, pool, _ = self.tiers
        used = self.standing_mb + inline.memory.level_mb + pool.memory.level_mb
        for job, (need_mb, _, tier) in self._admitted.items():
            holds = self._memory_mb[job] if self._started_s[job] == self._started_s[job] else 0.0
            if tier == ISOLATED:
                used += self.host.isolated_process_mb + holds
                need_mb -= self.host.isolated_process_mb
            used += max(0.0, need_mb - holds)
        self.peak_expected_mb = max(self.peak_expected_mb, used)
        return used

    def need_mb(self, job: int, tier: int) -> float:
        """A job's need: its class's prediction, plus a process for an isolated job, MB."""
        job_class = self._job_class[job]
        predicted = self._predicted_mb.get(job_class)
        if predicted is None:
            predicted = self.memory.predict_mb(job_class, self._cold_mb)
            self._predicted_mb[job_class] = predicted
        return predicted + (self.host.isolated_process_mb if tier == ISOLATED else 0.0)

    # --- admission ------------------------------------------------------------------------

    def submit(self, job: int, tier: int) -> None:
        """Hold a routed pool or isolated job until it fits, then hand it to its tier."""
        self.queue.append((job, tier))
        self._queued[tier] += 1
        self.pump()

    def pump(self) -> None:
        """Start the held jobs that ``admit`` lets start now (called when memory may free)."""
        if not self.queue:
            return
        slots = {POOL: self._pool_slots(), ISOLATED: self._isolated_slots()}
        # each tier offers its first min(slots, queued) jobs: once that many are offered, the
        # rest of the queue (thousands, when memory holds jobs back) offers nothing more
        left = sum(min(slots[tier], queued) for tier, queued in self._queued.items())
        offered = []
        for job, tier in self.queue:
            if left <= 0:
                break
            if slots[tier] > 0:
                slots[tier] -= 1
                left -= 1
                offered.append((job, tier))
        if not offered:
            return
        now = self.env.now
        needs = [self.need_mb(job, tier) for job, tier in offered]
        candidates = [
            Candidate(need, self._estimated_s[job])
            for need, (job, _) in zip(needs, offered, strict=True)
        ]
        running = [Holding(ends, need) for need, ends, _ in self._admitted.values()]
        chosen = admit(candidates, self.used_mb(), self.budget_mb, running, now)
        if len(chosen) < len(offered):
            self.held += 1
        for index in chosen:
            job, tier = offered[index]
            self.queue.remove((job, tier))
            self._queued[tier] -= 1
            self._admitted[job] = (needs[index], now + self._estimated_s[job], tier)
            self.tiers[tier].submit(job)

    def _pool_slots(self) -> int:
        _, pool, _ = self.tiers
        return max(0, pool.size * (1 + QUEUED_PER_SLOT) - pool.busy - len(pool.queue))

    def _isolated_slots(self) -> int:
        _, _, isolated = self.tiers
        limit = self.config.max_concurrent_isolated
        running = limit - isolated.free
        return max(0, limit * (1 + QUEUED_PER_SLOT) - running - len(isolated.queue))

    def held_pool(self) -> int:
        """Pool jobs held here (the pool's scaler counts them as waiting)."""
        return self._queued[POOL]

    def room(self) -> int | None:
        """Pool processes the budget allows beyond the pool's size (None: no budget)."""
        if not self.enabled:
            return None
        return pool_room(self.used_mb(), self.budget_mb, self.host.pool_process_mb)

    def over_budget(self, pid: int) -> bool:
        """Recycle pool process ``pid``: the total is over the budget and it keeps memory."""
        if not self.enabled:
            return False
        _, pool, _ = self.tiers
        head_mb = self.need_mb(*self.queue[0]) if self.queue else 0.0
        retained_mb = pool.high_water_mb.get(pid, 0.0)
        return recycle_for_budget(self.used_mb(), self.budget_mb, retained_mb, head_mb)

    def finished(self, job: int) -> None:
        """``job`` ended: its memory joins its class's history; held jobs may start."""
        job_class = self._job_class[job]
        self.memory.record(job_class, self._memory_mb[job])
        self._predicted_mb.pop(job_class, None)
        if self._admitted.pop(job, None) is not None or self.queue:
            self.pump()


def route_by_load_code(
    config: Config, tier: int, pool, isolated, held_pool: int, estimated_s, spilling: bool
) -> tuple[int, bool]:
    """``kqueue.policy.router.route_by_load`` on the model's tiers (tier codes in and out)."""
    ahead = len(pool.queue) + held_pool + pool.busy - pool.size
    queued = [estimated_s[job] for job in pool.queue]
    mean_s = sum(queued) / len(queued) if queued else config.default_estimate_s
    free = isolated.free - len(isolated.queue)
    load = TierLoad(pool_wait_s(ahead, mean_s, pool.size), free, isolated.overhead_s)
    chosen, spilling = route_by_load(CODE_TIER[tier], load, config, spilling=spilling)
    return TIER_CODE[chosen], spilling
