"""kqueue: a job queue that runs each job in the cheapest safe place, and plans its own capacity.

Layout, imports running down: ``job`` (App, Job) and ``errors`` (one hierarchy) are the public
API with ``testing``; below them ``policy`` (pure rules shared with the simulator), ``backends``
(sqlite, redis, memory), ``api`` (codec, dispatch options, handles, ``current_job``), ``tiers``
(inline, pool, isolated), ``worker`` (the loop and its
parts), ``ops`` (what drives a real worker to measure it) and ``cli`` (the ``kqueue`` command, the
one place that composes the runtime and the simulator in ``sim``).
"""

from kqueue.api.context import CurrentJob, current_job
from kqueue.api.handle import JobHandle, JobInfo
from kqueue.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    JobCancelled,
    JobError,
    JobFailed,
    JobNotFound,
    KQueueError,
    PayloadError,
    ResultTimeout,
    Retry,
    TraceError,
    UnknownJobError,
)
from kqueue.job import App, Celery, Job, JobCall
from kqueue.policy import Config, JobState, Status, Tier

#: Imported on first use, so a worker's start does not pay for it: the trace reader.
_LAZY = {"read_trace": "kqueue.policy.trace_input"}


def __getattr__(name: str):
    """``read_trace``, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # jobs
    "App",
    "Job",
    "JobCall",
    "Celery",
    # handles and the running job
    "JobHandle",
    "JobInfo",
    "JobState",
    "CurrentJob",
    "current_job",
    "Retry",
    # settings and traces
    "Config",
    "Status",
    "Tier",
    "read_trace",
    # errors
    "BackendError",
    "BackendUnavailable",
    "ConfigError",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "KQueueError",
    "PayloadError",
    "ResultTimeout",
    "TraceError",
    "UnknownJobError",
]
