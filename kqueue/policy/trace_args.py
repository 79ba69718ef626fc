"""The trace-reading options as command-line flags, for every command that reads a trace.

``add_trace_read_arguments(parser)`` adds ``--columns``, ``--time-unit``, ``--duration-unit``,
``--memory-unit`` and ``--drop-invalid``; ``trace_read_options(args)`` turns the parsed flags into
a ``TraceReadOptions``. They sit in ``kqueue.policy`` rather than with the ``kqueue`` command
because the planner's commands (``sim.cli``) use them, and ``sim`` imports only ``kqueue.policy``
and ``kqueue.errors``.
"""

from __future__ import annotations

import argparse

from kqueue.policy.trace_input import (
    DURATION_UNITS_S,
    MEMORY_UNITS,
    TIME_UNITS_S,
    TraceReadOptions,
)


def add_trace_read_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags that say how a trace file differs from a kqueue trace, as one group."""
    group = parser.add_argument_group(
        "reading the trace",
        "for a trace that is not in kqueue's own form; without these flags numeric times are "
        "seconds (epoch-ms detected), ISO-8601 times are read, durations are seconds and memory "
        "is MB, and values that look like another unit warn",
    )
    group.add_argument(
        "--columns",
        metavar="TRACE=FILE,...",
        help="rename file columns to trace columns, e.g. "
        "submitted_at=enqueued_at,job_class=class,duration_s=runtime",
    )
    group.add_argument(
        "--time-unit",
        choices=list(TIME_UNITS_S),
        help="unit of numeric submitted_at/started_at/finished_at "
        "(default: s, or ms when they look like epoch milliseconds)",
    )
    group.add_argument(
        "--duration-unit",
        choices=list(DURATION_UNITS_S),
        help="unit of duration_s, wait_s, cpu_s, estimated_s (default s)",
    )
    group.add_argument(
        "--memory-unit",
        metavar="|".join(MEMORY_UNITS),
        help="unit of memory_mb (default MB; KB, MB, GB are binary, as "
        "KiB, MiB, GiB: 1 MB = 2**20 bytes)",
    )
    group.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop bad rows and count them by reason (default: the first bad "
        "row is an error naming its line and column)",
    )


def trace_read_options(args: argparse.Namespace) -> TraceReadOptions:
    """The ``TraceReadOptions`` the flags of ``add_trace_read_arguments`` ask for.

    Raises:
        ConfigError: a malformed ``--columns`` or an unknown ``--memory-unit``.
    """
    return TraceReadOptions.from_strings(
        columns=getattr(args, "columns", None),
        time_unit=getattr(args, "time_unit", None),
        duration_unit=getattr(args, "duration_unit", None),
        memory_unit=getattr(args, "memory_unit", None),
        drop_invalid=bool(getattr(args, "drop_invalid", False)),
    )
