"""The one error hierarchy of kqueue.

Every error a user can cause says what was wrong, where, and how to fix it.
"""

from __future__ import annotations


class KQueueError(Exception):
    """Raised as the base class of every kqueue error; catch it to catch them all."""


class ConfigError(KQueueError, ValueError):
    """Raised when a config file, CLI option or job option has an unknown key or a bad value."""


class TraceError(KQueueError, ValueError):
    """Raised when a trace file is missing, empty, or has a bad value (names file, line, column)."""


class JobError(KQueueError):
    """Raised when a job is declared or dispatched wrongly (bad name, non-JSON arguments)."""


class PayloadError(KQueueError, ValueError):
    """Raised when a message read from the broker cannot be decoded into a job."""


class UnknownJobError(KQueueError, LookupError):
    """Raised when a message names a job that the worker's app does not register."""


class BackendError(KQueueError):
    """Raised when a backend URL is malformed or its backend cannot be used."""


class JobTimeout(KQueueError):
    """Raised inside the runtime when a job ran past its ``timeout_s``."""


class JobMemoryExceeded(KQueueError):
    """Raised inside the runtime when a job went past its ``max_memory_mb``."""


class JobKilled(KQueueError):
    """Raised inside the runtime when the process running a job died or was killed."""


class BackendUnavailable(BackendError):
    """Raised when the backend cannot be reached now (connection lost, server restarting)."""


class KQueueWarning(UserWarning):
    """Raised (as a warning) as the base of kqueue's warnings; filter it to silence them all."""


class TraceWarning(KQueueWarning):
    """Raised (as a warning) when a trace reads but looks wrong (a unit mistake, dropped rows)."""


class JobFailed(KQueueError):
    """Raised by ``JobHandle.result()`` when the job failed for good (it is dead-lettered).

    ``error`` is the last attempt's error and ``traceback`` its traceback text (both may be
    empty when the process died without one).
    """

    def __init__(self, job_id: str, error: str, traceback: str = ""):
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id, self.error, self.traceback = job_id, error, traceback


class JobCancelled(KQueueError):
    """Raised by ``JobHandle.result()`` when the job was cancelled before it finished."""

    def __init__(self, job_id: str):
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class ResultTimeout(KQueueError, TimeoutError):
    """Raised by ``JobHandle.result(timeout_s)`` when the job has not finished in time."""


class Retry(KQueueError):
    """Raised by a job to ask for another attempt after ``delay_s`` seconds (default: backoff).

    ``max_attempts`` still applies: on the last attempt the job is dead-lettered.
    """

    def __init__(self, delay_s: float | None = None, reason: str = ""):
        if delay_s is not None and not delay_s >= 0:
            raise ValueError(f"Retry(delay_s={delay_s!r}): expected a number >= 0 or None")
        super().__init__(reason or f"retry requested (delay_s={delay_s})")
        self.delay_s = delay_s


class JobNotFound(KQueueError, LookupError):
    """Raised by ``JobHandle.result()`` for a job id the backend does not know: never
    dispatched there, or finished longer ago than its ``result_ttl_s`` (0 keeps nothing)."""


class ReplicationTimeout(BackendUnavailable):
    """Raised when a Redis write was not confirmed by ``wait_replicas`` replicas within
    ``wait_timeout_ms`` (the write may survive or not: retry it, dispatches are idempotent)."""
