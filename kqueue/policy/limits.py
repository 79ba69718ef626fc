"""The runtime's per-job limits: which tier can enforce them, when an attempt is killed, what next.

One rule for the tiers and the twin (issue 14):

- ``timeout_s`` and ``max_memory_mb`` (per job, after precedence: ``resolve_job``) are enforced
  where a job has a process of its own: the pool (the process is killed past the timeout; a job
  past its memory limit gets ``MemoryError`` under a soft ``RLIMIT_AS``) and the isolated tier
  (killed past the timeout; a hard ``RLIMIT_AS``). Inline jobs share the worker's process: a sync
  one cannot be stopped, and no memory limit applies to it (``can_limit``).
- An attempt that goes over both is recorded ``memory``: the allocation fails while it runs,
  before the clock would stop it (``kill_status``).
- A killed attempt is retried with the job's backoff (``kqueue.policy.retry``, rule 4) until its
  ``max_attempts`` are used, then dead-lettered (``after_kill_s``).
"""

from __future__ import annotations

import dataclasses

from kqueue.policy.config import JobSettings, Tier, retry_policy
from kqueue.policy.retry import Failure, retry_after_s
from kqueue.policy.status import Status

#: The tiers that run a job in a process of its own, where a limit can stop it.
LIMITED_TIERS = frozenset({Tier.POOL, Tier.ISOLATED})


def can_limit(tier: Tier) -> bool:
    """True when ``tier`` enforces ``timeout_s`` and ``max_memory_mb`` (not inline)."""
    return tier in LIMITED_TIERS


def timeout_left_s(started_at: float, timeout_s: float, now: float) -> float:
    """Seconds until an attempt started at ``started_at`` passes ``timeout_s`` (at least 0)."""
    return max(0.0, started_at + timeout_s - now)


def over_timeout(run_s: float, timeout_s: float) -> bool:
    """True when an attempt that ran ``run_s`` seconds passed its ``timeout_s``."""
    return run_s > timeout_s


def over_memory(memory_mb: float, max_memory_mb: float) -> bool:
    """True when a job needing ``memory_mb`` passes its ``max_memory_mb``."""
    return memory_mb > max_memory_mb


def kill_status(tier: Tier, run_s: float, memory_mb: float, settings: JobSettings) -> Status | None:
    """How a limit ends an attempt of ``run_s`` s needing ``memory_mb`` MB on ``tier``, or None.

    Memory comes first: the failing allocation happens while the job runs, before the timeout.
    """
    if not can_limit(tier):
        return None
    if over_memory(memory_mb, settings.max_memory_mb):
        return Status.MEMORY
    if over_timeout(run_s, settings.timeout_s):
        return Status.TIMEOUT
    return None


def after_kill_s(settings: JobSettings, attempt: int) -> float | None:
    """Seconds until the next attempt of a job whose ``attempt`` (1-based) a limit killed, or
    None when its attempts are used up (dead-lettered). No jitter: the twin is deterministic."""
    policy = dataclasses.replace(retry_policy(settings), jitter=False)
    return retry_after_s(policy, attempt, Failure())
