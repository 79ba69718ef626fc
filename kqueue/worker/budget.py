"""The worker's memory budget: measure its process tree, predict each job, admit by the policy.

``MemoryBudget`` is the runtime side of ``kqueue.policy.admission``: every ``SAMPLE_INTERVAL_S``
it reads the proportional set size (PSS, ``/proc/<pid>/smaps_rollup``) of the worker, of the
pool's zygote and of each live pool and isolated process, so pages a forked process still
shares with the worker count once.
A running job whose process has not yet grown by its predicted memory keeps the difference
reserved. ``select`` hands the loop the waiting pool and isolated jobs that ``admit`` lets start
(oldest first, with the head-of-line reservation); the pool asks ``room`` before it grows and
``over_budget`` after each job (recycle a process whose retained memory pushes the total over).
It also keeps the per-class memory history and the quarantine, fed by ``finished``, and routes
through them in ``reroute`` (quarantine, then load-aware routing).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from kqueue.policy.admission import (
    Candidate,
    Holding,
    admit,
    check_budget,
    expected_mb,
    pool_room,
    recycle_for_budget,
)
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.memory import MemoryHistory, cold_start_mb
from kqueue.policy.quarantine import Quarantine, limit_mb
from kqueue.policy.router import TierLoad, pool_wait_s, route_by_load
from kqueue.policy.status import Status
from kqueue.tiers.procs import pss_mb
from kqueue.worker.held import Pending

log = logging.getLogger("kqueue.worker.budget")

#: How often the tree's memory is measured, seconds.
SAMPLE_INTERVAL_S = 0.1
#: A fresh process's own memory before any pool process was measured, MB.
FRESH_PROCESS_MB = 30.0
#: Time to fork an isolated process, for load-aware routing, seconds.
SPAWN_S = 0.05
#: The tiers whose jobs wait for memory.
GATED = (Tier.POOL, Tier.ISOLATED)


def tree_pss_mb(pid: int) -> float:
    """PSS of one process from ``/proc/<pid>/smaps_rollup``, MB (psutil's where absent; NaN if
    gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        return math.nan
    except OSError:
        pass
    return pss_mb(pid)


@dataclass
class _Running:
    """A job admitted by the budget, until it ends."""

    need_mb: float
    ends_at_s: float
    tier: Tier
    #: Its process's PSS when first seen running it (pool), MB; isolated processes are all its.
    base_mb: float = math.nan


class MemoryBudget:
    """Keeps a worker within ``memory_budget_mb`` (see the module docstring).

    Args:
        config: the worker's settings.
        runners: the tiers' runners, by tier (pool and isolated give ``pids`` and ``job_pids``).
    """

    def __init__(self, config: Config, runners: dict[Tier, Any]):
        self.config, self.runners = config, runners
        self.budget_mb = config.memory_budget_mb
        self.enabled = not math.isinf(self.budget_mb)
        self.memory = MemoryHistory.from_config(config)
        self.quarantine = Quarantine(config)
        self._running: dict[str, _Running] = {}
        self._pss: dict[int, float] = {}
        self._measured_mb = 0.0
        self._sampled_at = -math.inf
        self._spilling = False
        #: The oldest job that waits for memory after the last admission (None: none waits).
        self._head: Pending | None = None
        #: Highest expected memory seen, and rounds in which a job waited for memory.
        self.peak_mb = 0.0
        self.held_back = 0

    # --- start ---------------------------------------------------------------------------

    def check(self, settings: dict[str, JobSettings], source: str = "worker start") -> None:
        """Refuse a budget this worker cannot keep (``ConfigError``), before the first job."""
        worker_mb = tree_pss_mb(os.getpid())
        limits = {name: s.max_memory_mb for name, s in settings.items()}
        check_budget(self.budget_mb, 0.0 if math.isnan(worker_mb) else worker_mb, limits, source)

    # --- measuring -----------------------------------------------------------------------

    def sample(self, now_s: float | None = None) -> float:
        """Measure the tree (at most every ``SAMPLE_INTERVAL_S``); returns the measured MB."""
        now_s = time.monotonic() if now_s is None else now_s
        if now_s - self._sampled_at < SAMPLE_INTERVAL_S:
            return self._measured_mb
        self._sampled_at = now_s
        pids = [os.getpid()]
        for tier in (Tier.POOL, Tier.ISOLATED):  # their zygotes stand in the tree
            if tier in self.runners:
                pids.extend(self.runners[tier].standing_pids())
        for tier in GATED:
            if tier in self.runners:
                pids.extend(self.runners[tier].pids())
        self._pss = {pid: value for pid in pids if not math.isnan(value := tree_pss_mb(pid))}
        self._measured_mb = sum(self._pss.values())
        return self._measured_mb

    def used_mb(self) -> float:
        """The memory the worker expects now: measured plus what running jobs may still add."""
        self.sample()
        reserved = 0.0
        pids = self._job_pids()
        for job_id, job in self._running.items():
            pid = pids.get(job_id)
            own = self._pss.get(pid, math.nan) if pid is not None else math.nan
            if math.isnan(own):
                reserved += job.need_mb  # not started in its process yet
                continue
            if job.tier is Tier.POOL:
                if math.isnan(job.base_mb):
                    job.base_mb = own
                own -= job.base_mb
            reserved += max(0.0, job.need_mb - own)
        used = expected_mb(self._measured_mb, reserved)
        self.peak_mb = max(self.peak_mb, used)
        return used

    def _job_pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        for tier in GATED:
            if tier in self.runners:
                pids.update(self.runners[tier].job_pids())
        return pids

    def process_mb(self) -> float:
        """What a fresh process costs: the least PSS of the pool's processes, MB."""
        pool = self.runners.get(Tier.POOL)
        sizes = [self._pss[pid] for pid in (pool.pids() if pool else ()) if pid in self._pss]
        return min(sizes, default=FRESH_PROCESS_MB)

    # --- admission -----------------------------------------------------------------------

    def need_mb(self, pending: Pending) -> float:
        """A job's need: its predicted memory, plus a fresh process for an isolated one."""
        default_mb = cold_start_mb(
            self.config.default_job_memory_mb, pending.invocation.settings.max_memory_mb
        )
        predicted = self.memory.predict_mb(pending.invocation.job.name, default_mb)
        return predicted + (self.process_mb() if pending.tier is Tier.ISOLATED else 0.0)

    def select(self, waiting: dict[Tier, deque[Pending]]) -> list[Pending]:
        """Take from the pool and isolated queues the jobs that may start now (oldest first)."""
        offered: list[Pending] = []
        for tier in GATED:
            if tier in waiting:
                offered.extend(list(waiting[tier])[: self.runners[tier].free()])
        if not offered:
            return []
        offered.sort(key=lambda pending: pending.due_at)
        now_s = time.monotonic()
        needs = [self.need_mb(pending) for pending in offered]
        candidates = [Candidate(need, p.estimate_s) for need, p in zip(needs, offered, strict=True)]
        running = [Holding(job.ends_at_s, job.need_mb) for job in self._running.values()]
        chosen = admit(candidates, self.used_mb(), self.budget_mb, running, now_s)
        if len(chosen) < len(offered):
            self.held_back += 1
        self._head = next((p for i, p in enumerate(offered) if i not in set(chosen)), None)
        for index in chosen:
            pending = offered[index]
            waiting[pending.tier].remove(pending)
            self._running[pending.lease.job_id] = _Running(
                needs[index], now_s + pending.estimate_s, pending.tier
            )
        return [offered[index] for index in chosen]

    def room(self) -> int | None:
        """Pool processes the budget allows beyond the pool's size now (None: no budget)."""
        if not self.enabled:
            return None
        return pool_room(self.used_mb(), self.budget_mb, self.process_mb())

    def over_budget(self, pid: int, rss_mb: float) -> bool:
        """True when the pool process ``pid`` should be recycled: the total is over the budget
        and it holds more than a fresh process."""
        if not self.enabled:
            return False
        retained_mb = self._pss.get(pid, math.nan) - self.process_mb()
        head_mb = self.need_mb(self._head) if self._head is not None else 0.0
        return recycle_for_budget(self.used_mb(), self.budget_mb, retained_mb, head_mb)

    # --- after a job -----------------------------------------------------------------------

    def finished(self, pending: Pending, status: Status, memory_mb: float) -> None:
        """Forget the job's reservation; feed the memory history and the quarantine."""
        self._running.pop(pending.lease.job_id, None)
        name = pending.invocation.job.name
        self.memory.record(name, memory_mb)
        if status is Status.CANCELLED:
            return
        change = self.quarantine.record(name, status)
        if change is True:
            log.warning("job class %s quarantined: it runs isolated until it behaves", name)
        elif change is False:
            log.info("job class %s released from quarantine", name)

    # --- routing ---------------------------------------------------------------------------

    def reroute(
        self, name: str, tier: Tier, settings: JobSettings, held: dict[Tier, deque]
    ) -> tuple[Tier, JobSettings]:
        """Quarantine (a pool or routed job of a quarantined class goes isolated, with its limit
        from history), then load-aware routing (routed jobs only: an explicit tier stands)."""
        if Tier.ISOLATED not in self.runners:
            return tier, settings
        if self.quarantine.is_quarantined(name):
            limit = limit_mb(self.memory.peak_mb(name), settings.max_memory_mb, self.config)
            return Tier.ISOLATED, dataclasses.replace(settings, max_memory_mb=limit)
        if not self.config.load_routing or Tier.POOL not in self.runners:
            return tier, settings
        if settings.tier is not Tier.AUTO:
            return tier, settings
        pool, isolated = self.runners[Tier.POOL], self.runners[Tier.ISOLATED]
        ahead = len(held.get(Tier.POOL, ())) + pool.running() - pool.capacity()
        mean_s = _mean_estimate_s(held.get(Tier.POOL, ()), self.config.default_estimate_s)
        free = isolated.capacity() - isolated.running() - len(held.get(Tier.ISOLATED, ()))
        load = TierLoad(pool_wait_s(ahead, mean_s, pool.capacity()), free, SPAWN_S)
        tier, self._spilling = route_by_load(tier, load, self.config, spilling=self._spilling)
        return tier, settings

    def status(self) -> dict[str, Any]:
        """The budget's part of the worker's status document."""
        return {
            "memory_budget_mb": None if not self.enabled else self.budget_mb,
            "expected_mb": round(self.used_mb(), 1),
            "peak_expected_mb": round(self.peak_mb, 1),
            "held_back_rounds": self.held_back,
            "quarantined": self.quarantine.quarantined(),
        }


def connect_pool(runners: dict[Tier, Any], budget: MemoryBudget, backlog) -> None:
    """Give the pool its budget ceiling, its recycle check and the backend's backlog."""
    pool = runners.get(Tier.POOL)
    if pool is None:
        return
    pool.room, pool.over_budget, pool.backlog = budget.room, budget.over_budget, backlog


def add_budget_status(tiers: dict[str, dict[str, Any]], budget: MemoryBudget) -> None:
    """Show the budget and the quarantined classes beside the isolated tier's status."""
    if Tier.ISOLATED.value in tiers:
        tiers[Tier.ISOLATED.value].update(budget.status())


def _mean_estimate_s(held, default_s: float) -> float:
    estimates = [pending.estimate_s for pending in held]
    return sum(estimates) / len(estimates) if estimates else default_s
