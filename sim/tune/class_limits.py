"""Per-class limits the tuner writes: ``timeout_s`` and ``max_memory_mb`` above each class's tail.

The runtime kills a pool or isolated job past its ``timeout_s`` or ``max_memory_mb``
(``kqueue.policy.limits``), and the twin does the same, so a plan must either set limits its jobs
fit or count what the base config's limits kill (``tune --keep-limits``). The rule (DECISIONS,
"Limits above each class's tail"): a class's timeout is ``TIMEOUT_MARGIN`` times its longest
duration in the trace, its memory limit ``MEMORY_MARGIN`` times its largest memory, each rounded
up to two significant digits and never below the base config's own limit for the class.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import numpy as np

from kqueue.policy import Config, JobOptions, JobSettings, resolve_job
from sim.model.jobs import TraceJobs

#: A job's run in the twin (and on the host) stretches past its measured duration when CPU is
#: shared; at most about 2x at the 95% CPU ceiling the search allows for the classes that
#: compute, so twice the longest duration keeps every traced job alive with room for the next.
TIMEOUT_MARGIN = 2.0
#: Memory does not stretch with load; a quarter above the largest job covers the allocator's
#: rounding and a modestly larger input.
MEMORY_MARGIN = 1.25


def round_up(value: float) -> float:
    """``value`` rounded up to two significant digits (``1234.5`` -> ``1300.0``)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return float(f"{math.ceil(value / scale - 1e-9) * scale:.3g}")


def with_class_limits(prepared: TraceJobs, base: Config, cap_mb: float = math.inf) -> Config:
    """``base`` with a ``[jobs."<class>"]`` table per class of the trace setting its limits.

    ``cap_mb`` caps the memory limits (the per-host budget less the worker and one process:
    a larger limit could never be kept, and the config would be refused with the budget); it
    never goes below a class's largest traced job (those above it are impossible jobs, found
    before this).
    """
    jobs = prepared.jobs
    names = np.asarray(jobs.job_class, dtype=object)
    duration = np.asarray(jobs.duration_s, float)
    memory = np.asarray(jobs.memory_mb, float)
    tables = dict(base.jobs)
    for name in sorted(set(jobs.job_class)):
        mask = names == name
        own = resolve_job(base, name, JobOptions())
        timeout_s = max(round_up(TIMEOUT_MARGIN * float(duration[mask].max())), own.timeout_s)
        largest_mb = float(memory[mask].max())
        memory_mb = max(round_up(MEMORY_MARGIN * largest_mb), own.max_memory_mb)
        memory_mb = max(min(memory_mb, cap_mb), largest_mb)
        table = base.job_options(name)
        tables[name] = dataclasses.replace(table, timeout_s=timeout_s, max_memory_mb=memory_mb)
    return dataclasses.replace(base, jobs=MappingProxyType(tables))


def limits_of(config: Config, classes: list[str]) -> dict[str, JobSettings]:
    """Each class's resolved settings (its limits after precedence)."""
    return {name: resolve_job(config, name, JobOptions()) for name in classes}
