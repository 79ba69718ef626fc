"""How one attempt of a job ended (a trace row's ``status``), and where a job is in its life.

``Status`` is shared by the tiers and the twin; ``JobState`` is what a handle reports.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """How one attempt of a job ended."""

    #: The job returned.
    OK = "ok"
    #: The job raised an exception.
    FAILED = "failed"
    #: The job ran past its ``timeout_s`` and was stopped.
    TIMEOUT = "timeout"
    #: The process running the job died or was killed from outside.
    KILLED = "killed"
    #: The job went past its ``max_memory_mb`` and was stopped.
    MEMORY = "memory"
    #: The job was cancelled while it ran (its process killed, its task cancelled): not retried.
    CANCELLED = "cancelled"


class JobState(enum.StrEnum):
    """Where one job is in its life, as ``JobHandle.status()`` reports it."""

    #: Waiting for its due time (``delay_s`` or ``at``); it never runs before.
    SCHEDULED = "scheduled"
    #: Due, waiting for a worker.
    QUEUED = "queued"
    #: Leased by a worker that runs it now.
    RUNNING = "running"
    #: An attempt failed; waiting for its retry's due time.
    RETRYING = "retrying"
    #: Returned; its result is kept for ``result_ttl_s``.
    DONE = "done"
    #: Failed for good; kept in the dead-letter store with its error.
    DEAD = "dead"
    #: Cancelled before or while it ran; never retried.
    CANCELLED = "cancelled"
    #: Never seen, or finished longer ago than its ``result_ttl_s``.
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """True for the states a job never leaves (done, dead, cancelled)."""
        return self in _FINISHED


_FINISHED = frozenset({JobState.DONE, JobState.DEAD, JobState.CANCELLED})
