"""How one attempt of a job ended: a trace row's ``status``, shared by the tiers and the twin."""

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
