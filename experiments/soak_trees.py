"""The soak's sampler: every process of two worker trees, by role, read from ``/proc``.

Roles: a worker (a tree's root, the ``kqueue run`` process), a pool process (listed in its
worker's published status) or an isolated child (any other). See ``soak.py``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import psutil

from kqueue.backends.redis import RedisBackend
from kqueue.ops.procmem import anon_unique_mb, read_process
from kqueue.ops.smaps import COLUMNS, breakdown

#: Without a worker status (not yet published), a child this old counts as a pool process.
STANDING_AGE_S = 60.0


@dataclass(frozen=True)
class Sample:
    """One reading of both worker trees: per role, the count and the sums (MB, descriptors)."""

    time_s: float
    workers: int
    workers_pss_mb: float
    workers_rss_mb: float
    workers_fds: int
    pool: int
    pool_pss_mb: float
    pool_uss_mb: float
    pool_fds: int
    isolated: int
    isolated_pss_mb: float
    isolated_fds: int
    #: Distinct anonymous pages of the workers and pools together (NaN when not root).
    standing_anon_mb: float

    @property
    def standing_pss_mb(self) -> float:
        """PSS of the workers and their pools."""
        return self.workers_pss_mb + self.pool_pss_mb

    @property
    def standing_fds(self) -> int:
        """Descriptors of the workers and their pools."""
        return self.workers_fds + self.pool_fds

    @property
    def tree_pss_mb(self) -> float:
        """PSS of every process of both trees."""
        return self.standing_pss_mb + self.isolated_pss_mb


def pool_pids(backend) -> dict[int, set[int]]:
    """Each live worker's pool processes and its pool's zygote (standing too, and forking them),
    by worker pid, from the statuses they publish."""
    pools: dict[int, set[int]] = {}
    for status in backend.worker_statuses():
        body = json.loads(status.body)
        pool = body.get("tiers", {}).get("pool", {})
        zygote = {pool["zygote"]} if pool.get("zygote") else set()
        pools[body["pid"]] = {p["pid"] for p in pool.get("processes", [])} | zygote
    return pools


def _roles(root: int, pools: dict[int, set[int]]) -> tuple[list[int], list[int]]:
    """The pool and the isolated pids of the tree at ``root`` now."""
    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return [], []
    listed, pool, isolated = pools.get(root), [], []
    for child in children:
        try:
            standing = (
                child.pid in listed
                if listed is not None
                else time.time() - child.create_time() >= STANDING_AGE_S
            )
        except psutil.Error:
            continue
        (pool if standing else isolated).append(child.pid)
    return pool, isolated


def read_trees(roots: list[int], pools: dict[int, set[int]], now_s: float) -> Sample:
    """Read every process of the trees rooted at ``roots`` (see the module docstring)."""
    pool, isolated = [], []
    for root in roots:
        more_pool, more_isolated = _roles(root, pools)
        pool += more_pool
        isolated += more_isolated
    w, p, i = ([r for r in map(read_process, pids) if r.fds] for pids in (roots, pool, isolated))
    return Sample(
        now_s,
        len(w), sum(r.pss_mb for r in w), sum(r.rss_mb for r in w), sum(r.fds for r in w),
        len(p), sum(r.pss_mb for r in p), sum(r.uss_mb for r in p), sum(r.fds for r in p),
        len(i), sum(r.pss_mb for r in i), sum(r.fds for r in i),
        anon_unique_mb([*roots, *pool]),
    )  # fmt: skip


#: The header of the breakdown rows (``Sampler.breakdowns``, ``soak.py --smaps-out``).
BREAKDOWN_HEADER = ("time_s", "role", "pid", "worker_pid", "kind", *COLUMNS)


def read_breakdowns(roots: list[int], pools: dict[int, set[int]], now_s: float) -> list[tuple]:
    """Each worker's and pool process's mappings by kind (``kqueue.ops.smaps``), as rows; a pool
    process's anonymous mappings split by whether its worker maps the same range."""
    rows = []
    for root in roots:
        readings = [("worker", root, breakdown(root))]
        readings += [("pool", pid, breakdown(pid, root)) for pid in sorted(pools.get(root, ()))]
        for role, pid, kinds in readings:
            for kind, totals in sorted(kinds.items()):
                values = (getattr(totals, name) for name in COLUMNS)
                rows.append((round(now_s, 1), role, pid, root, kind, *values))
    return rows


class Sampler(threading.Thread):
    """Reads the trees every ``sample_s`` until stopped; roles from the workers' statuses. With
    ``breakdown_s``, also the standing processes' mappings by kind that often (``breakdowns``)."""

    def __init__(self, pids: list[int], sample_s: float, url: str, breakdown_s: float = 0.0):
        super().__init__(daemon=True)
        self.pids, self.sample_s, self.breakdown_s = pids, sample_s, breakdown_s
        self.backend = RedisBackend.from_url(url)
        self.samples: list[Sample] = []
        self.breakdowns: list[tuple] = []
        self.halt = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        next_breakdown_s = self.breakdown_s
        try:
            while not self.halt.wait(self.sample_s):
                pools = pool_pids(self.backend)
                now_s = time.monotonic() - self.began
                self.samples.append(read_trees(self.pids, pools, now_s))
                if self.breakdown_s and now_s >= next_breakdown_s:
                    self.breakdowns += read_breakdowns(self.pids, pools, now_s)
                    next_breakdown_s += self.breakdown_s
        finally:
            self.backend.close()
