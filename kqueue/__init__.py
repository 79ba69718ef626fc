"""kqueue: a job queue that runs each job in the cheapest safe place, and plans its own capacity.

Layout: ``job`` (App, Job, message encoding), ``worker`` (the worker loop, with ``intake`` leasing
and routing jobs and ``recorder`` recording finished ones), ``tiers`` (inline, pool, isolated),
``backends`` (sqlite, redis), ``policy`` (pure rules shared with the simulator), ``errors`` (one
hierarchy), ``cli`` and ``cli_ops`` (the ``kqueue`` command). The simulator lives in ``sim``.
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
