"""The pure policy shared by the runtime and the simulator.

Layout: ``config`` (settings, precedence, ``kqueue.toml``), ``trace`` (the trace row and its file;
``trace_input``, ``trace_swf`` and ``trace_args`` read other forms of it), ``host`` (the host
profile: measured constants, ``host.toml``), ``status`` (how an attempt ended, where a job is),
``estimator`` (expected duration), ``router`` (which tier), ``scaler`` (how big the pool),
``fetch`` (how many to lease), ``threads`` (inline threads), ``retry`` (whether and when a failed
attempt runs again), ``units`` (rates and sizes as people write them), ``cron``,
``schedule`` and ``leader`` (periodic jobs), ``ordering`` (priorities, queue order),
``ratelimit`` (shared rate and concurrency limits). Nothing here does I/O
except reading and writing trace, config and host files on request.
"""

from kqueue.policy.config import Config, JobOptions, JobSettings, Tier, resolve_job, retry_delay_s
from kqueue.policy.estimator import DurationHistory, Estimate, EstimateSource, estimate_duration
from kqueue.policy.host import HostProfile
from kqueue.policy.retry import Failure, RetryPolicy, classify, retry_after_s
from kqueue.policy.router import route
from kqueue.policy.scaler import PoolSnapshot, target_pool_size, target_size
from kqueue.policy.status import JobState, Status
from kqueue.policy.trace import (
    COLUMNS,
    REQUIRED,
    TraceRow,
    TraceWriter,
    rows_to_frame,
    validate_trace,
    write_trace,
)

#: Names imported on first use: reading traces as they come is the planner's, not a worker's
#: (a worker's start does not pay for ``trace_input`` and ``trace_swf``).
_LAZY = {
    "TraceRead": "kqueue.policy.trace_input",
    "TraceReadOptions": "kqueue.policy.trace_input",
    "read_trace": "kqueue.policy.trace_input",
    "read_trace_report": "kqueue.policy.trace_input",
    "read_swf": "kqueue.policy.trace_swf",
}


def __getattr__(name: str):
    """The trace readers, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # config
    "Config",
    "JobOptions",
    "JobSettings",
    "Tier",
    "resolve_job",
    "retry_delay_s",
    # host
    "HostProfile",
    # estimator and router
    "DurationHistory",
    "Estimate",
    "EstimateSource",
    "estimate_duration",
    "route",
    # scaler
    "PoolSnapshot",
    "target_pool_size",
    "target_size",
    # retry
    "Failure",
    "RetryPolicy",
    "classify",
    "retry_after_s",
    # trace
    "COLUMNS",
    "REQUIRED",
    "JobState",
    "Status",
    "TraceRow",
    "TraceWriter",
    "read_trace",
    "rows_to_frame",
    "validate_trace",
    "write_trace",
    # reading traces as they come
    "TraceRead",
    "TraceReadOptions",
    "read_swf",
    "read_trace_report",
]
