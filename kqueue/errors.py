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
