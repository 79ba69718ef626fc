"""``kqueue trace import`` and ``kqueue trace record-celery``: traces from logs nobody here made.

``add_trace_parsers(commands)`` adds both to the subparsers of ``kqueue trace`` (beside ``synth``,
which ``sim.cli`` adds). ``import`` converts a Parallel Workloads Archive SWF log, or a CSV with its
own column names and units, into a kqueue trace; ``record-celery`` records a running Celery
deployment's task events as trace rows. ``plain_warnings()`` shows kqueue's warnings as one
``kqueue: warning:`` line each instead of Python's file-and-line form.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings

from kqueue.errors import KQueueError, KQueueWarning


def add_trace_parsers(commands) -> None:
    """Add ``import`` and ``record-celery`` to the ``kqueue trace`` subparsers object."""
    _add_import(commands)
    _add_record_celery(commands)


def _add_import(commands) -> None:
    from kqueue.policy.trace_args import add_trace_read_arguments

    p = commands.add_parser(
        "import",
        help="convert an SWF log (Parallel Workloads Archive) or a mapped CSV into a trace",
        description="Convert a job log into a kqueue trace CSV. SWF: 18 fields a line, -1 = "
        "missing; submit time (field 2), wait (3), run time (4), processors (5) x used memory "
        "in KB per processor (7), status (11), user (12) as job_class user-<id>, queue (15). "
        "CSV: --columns and the unit flags say how it differs from a trace.",
    )
    p.add_argument("input", metavar="IN", help="the log (SWF or CSV; .gz, .bz2, .xz read too)")
    p.add_argument(
        "--format",
        choices=("swf", "csv"),
        help="the log's format (default: swf for a .swf/.swf.gz name, else csv)",
    )
    p.add_argument("--out", required=True, help="trace CSV (or Parquet) to write")
    p.add_argument(
        "--max-classes",
        type=int,
        metavar="N",
        help="keep the N-1 most frequent job classes, the rest as user-other",
    )
    add_trace_read_arguments(p)
    p.set_defaults(func=run_import)


def _add_record_celery(commands) -> None:
    p = commands.add_parser(
        "record-celery",
        help="record a running Celery deployment's task events as trace rows",
        description="Listen to the task events of Celery workers (run them with -E, or pass "
        "--enable-events) and append one trace row per finished attempt to --out. Stops "
        "after --duration-s, after --max-events task events, or on Ctrl-C. Needs "
        "pip install kqueue[celery].",
    )
    p.add_argument("--broker", required=True, help="the deployment's broker URL (redis://...)")
    p.add_argument("--out", required=True, help="trace CSV to append rows to")
    p.add_argument("--duration-s", type=float, help="stop after this many seconds")
    p.add_argument("--max-events", type=int, help="stop after this many task events")
    p.add_argument(
        "--enable-events",
        action="store_true",
        help="ask the running workers to start sending task events",
    )
    p.set_defaults(func=run_record_celery)


def run_import(args: argparse.Namespace) -> int:
    """``trace import``: read the log, write the trace, say what was written; the exit code."""
    from kqueue.policy import COLUMNS, write_trace
    from kqueue.policy.trace_args import trace_read_options
    from kqueue.policy.trace_input import read_trace_report
    from kqueue.policy.trace_swf import group_classes, read_swf

    try:
        options = trace_read_options(args)
        kind = args.format or ("swf" if ".swf" in args.input.lower() else "csv")
        if kind == "swf":
            if options.columns or options.time_unit or options.duration_unit or options.memory_unit:
                raise KQueueError(
                    "--columns and the unit flags are for --format csv; SWF's "
                    "fields and units are fixed"
                )
            read = read_swf(args.input, drop_invalid=options.drop_invalid)
        else:
            read = read_trace_report(args.input, options)
        for message in read.warnings:
            print(f"kqueue trace import: warning: {message}", file=sys.stderr)
        frame = read.frame[list(COLUMNS)]
        if args.max_classes is not None:
            frame = group_classes(frame, args.max_classes)
        write_trace(frame, args.out)
    except (KQueueError, ValueError, OSError) as exc:
        print(f"kqueue trace import: error: {exc}", file=sys.stderr)
        return 2
    print(_import_summary(frame, args.out), file=sys.stderr)
    return 0


def _import_summary(frame, out: str) -> str:
    span_s = float(frame["submitted_at"].max() - frame["submitted_at"].min())
    memory = int(frame["memory_mb"].notna().sum())
    return (
        f"wrote {len(frame):,} jobs to {out}: {frame['job_class'].nunique():,} classes, "
        f"arrivals over {span_s / 86400:,.1f} days, duration p50 "
        f"{float(frame['duration_s'].median()):,.0f} s, memory on {memory:,} rows"
    )


def run_record_celery(args: argparse.Namespace) -> int:
    """``trace record-celery``: record until told to stop; the exit code."""
    from kqueue.ops.celery_trace import record_celery

    def ready() -> None:
        print(
            f"kqueue trace record-celery: recording task events from {args.broker} into {args.out}",
            file=sys.stderr,
            flush=True,
        )

    try:
        for name in ("duration_s", "max_events"):
            value = getattr(args, name)
            if value is not None and value <= 0:
                raise KQueueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        seen = record_celery(
            args.broker,
            args.out,
            duration_s=args.duration_s,
            max_events=args.max_events,
            enable_events=args.enable_events,
            on_ready=ready,
        )
    except (KQueueError, OSError) as exc:
        print(f"kqueue trace record-celery: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"kqueue trace record-celery: {seen.events:,} task events, {seen.rows:,} rows "
        f"({len(seen.classes)} task names) written to {args.out}",
        file=sys.stderr,
    )
    if seen.unmatched:
        print(
            f"kqueue trace record-celery: {seen.unmatched:,} tasks finished that started "
            "before recording began (not written)",
            file=sys.stderr,
        )
    if not seen.events:
        print(
            "kqueue trace record-celery: no task events: are the workers running with -E "
            "(or pass --enable-events)?",
            file=sys.stderr,
        )
    return 0


@contextlib.contextmanager
def plain_warnings():
    """Within it, kqueue's warnings print as ``kqueue: warning: ...`` on standard error."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, KQueueWarning):
            print(f"kqueue: warning: {message}", file=file or sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
