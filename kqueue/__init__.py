"""kqueue: a job queue that runs each job in the cheapest safe place, and plans its own capacity.

Layout, imports running down: ``job`` (App, Job, message encoding) and ``errors`` (one hierarchy)
are the public API with ``testing``; below them ``policy`` (pure rules shared with the simulator),
``backends`` (sqlite, redis), ``tiers`` (inline, pool, isolated), ``worker`` (the loop and its
parts), ``ops`` (what drives a real worker to measure it) and ``cli`` (the ``kqueue`` command, the
one place that composes the runtime and the simulator in ``sim``).
"""

from kqueue.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    JobError,
    KQueueError,
    PayloadError,
    TraceError,
    UnknownJobError,
)
from kqueue.job import App, Job
from kqueue.policy import Config, Status, Tier, read_trace

__all__ = [
    # jobs
    "App",
    "Job",
    # settings and traces
    "Config",
    "Status",
    "Tier",
    "read_trace",
    # errors
    "BackendError",
    "BackendUnavailable",
    "ConfigError",
    "JobError",
    "KQueueError",
    "PayloadError",
    "TraceError",
    "UnknownJobError",
]
