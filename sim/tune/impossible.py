"""Jobs no host can run: found before any search (issue 14).

A job runs in a process of its own once it is too big for the worker's threads, so the least a
host needs for it is the worker process, one process and the job's own memory
(``worker_mb + isolated_process_mb + memory_mb``, the smaller of the pool's and the isolated
tier's process cost). A job needing more than the per-host budget fits no host whatever the
number of hosts or the config. ``impossible_jobs`` names them (count, largest, classes);
``tune`` refuses, or with ``--drop-impossible`` plans without them and says how many it dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from kqueue.errors import ConfigError
from kqueue.policy import HostProfile
from sim.model.jobs import TraceJobs
from sim.tune.evaluate import subset


@dataclass(frozen=True)
class Impossible:
    """The jobs too big for any host: their positions, the largest (MB), jobs per class."""

    index: np.ndarray
    largest_mb: float
    classes: dict[str, int]
    need_mb: float
    budget_mb: float

    @property
    def count(self) -> int:
        return len(self.index)

    def describe(self) -> str:
        """``3 jobs need more than the 65,536 MB budget per host (largest 110,592 MB; ...)``."""
        classes = ", ".join(f"{name} ({n})" for name, n in sorted(self.classes.items()))
        return (
            f"{self.count} job{'s' if self.count != 1 else ''} cannot run on any host: each "
            f"needs more than the {self.budget_mb:,.0f} MB memory budget per host with the "
            f"worker and its process (largest job {self.largest_mb:,.0f} MB, needing "
            f"{self.need_mb:,.0f} MB); classes: {classes}"
        )


def process_overhead_mb(host: HostProfile) -> float:
    """The worker plus the cheaper of one pool or isolated process, MB."""
    return host.worker_mb + min(host.pool_process_mb, host.isolated_process_mb)


def impossible_jobs(prepared: TraceJobs, host: HostProfile, budget_mb: float) -> Impossible:
    """The jobs of ``prepared`` that no host within ``budget_mb`` can run."""
    memory = np.asarray(prepared.jobs.memory_mb, float)
    overhead = process_overhead_mb(host)
    if not math.isfinite(budget_mb):
        index = np.zeros(0, np.int64)
    else:
        index = np.flatnonzero(memory + overhead > budget_mb)
    names = np.asarray(prepared.jobs.job_class, dtype=object)[index]
    largest = float(memory[index].max()) if len(index) else 0.0
    return Impossible(index, largest, dict(Counter(names.tolist())), largest + overhead, budget_mb)


def without(prepared: TraceJobs, impossible: Impossible) -> TraceJobs:
    """``prepared`` minus the impossible jobs (times keep their origin)."""
    keep = np.setdiff1d(np.arange(len(prepared.jobs)), impossible.index)
    if len(keep) == 0:
        raise ConfigError("every job of the trace is too big for a host; nothing left to plan")
    return subset(prepared, keep)
