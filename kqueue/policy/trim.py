"""When a process gives the memory its finished jobs freed back to the OS: one rule, both sides.

The runtime applies it with glibc's ``malloc_trim`` (``kqueue.tiers.heap``); the simulator's pool
and inline tiers (``sim.model.tiers``) apply the same rule to the memory they model, when the
host profile says the host's processes can give memory back (``HostProfile.gives_back_memory``,
measured by ``kqueue calibrate``).

- A pool process trims after a job that left it holding at least ``TRIM_AFTER_GROWTH_MB`` more
  than after its last trim, once it has waited ``POOL_IDLE_S`` for its next request, so a job
  seldom waits for one; but a process busy for ``POOL_BUSY_TRIM_S`` since its last trim (or its
  start) trims between two jobs at once, so a process that is never idle for ``POOL_IDLE_S``
  does not hold its jobs' high-water mark for its whole life.
- The worker trims at most every ``WORKER_TRIM_INTERVAL_S``, when inline jobs ended since.
"""

from __future__ import annotations

#: The growth since the last trim that makes a pool process's trim due, MB.
TRIM_AFTER_GROWTH_MB = 1.0
#: How long a pool process with a trim due waits for a request before it trims, seconds.
POOL_IDLE_S = 1.0
#: A pool process with a trim due that has not trimmed for this long trims between two jobs,
#: without waiting to be idle, seconds.
POOL_BUSY_TRIM_S = 10.0
#: The least time between two of the worker's trims, seconds.
WORKER_TRIM_INTERVAL_S = 5.0


def pool_trim_due(floor_mb: float, resident_mb: float) -> bool:
    """True when a pool process at ``resident_mb`` after a job, ``floor_mb`` after its last trim
    (or at start), should trim once idle."""
    return resident_mb - floor_mb >= TRIM_AFTER_GROWTH_MB


def pool_busy_trim_due(last_trim_s: float, now_s: float) -> bool:
    """True when a pool process with a trim due, which last trimmed (or started) at
    ``last_trim_s``, trims now rather than once idle (seconds, one clock)."""
    return now_s - last_trim_s >= POOL_BUSY_TRIM_S


def worker_trim_due(jobs_since: bool, last_trim_s: float, now_s: float) -> bool:
    """True when the worker should trim now: inline jobs ended since its last trim, at
    ``last_trim_s``, and ``WORKER_TRIM_INTERVAL_S`` has passed since (seconds, one clock)."""
    return jobs_since and now_s - last_trim_s >= WORKER_TRIM_INTERVAL_S
