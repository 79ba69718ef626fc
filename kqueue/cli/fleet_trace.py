"""``kqueue trace export`` and fleet-trace URLs for ``simulate --trace`` / ``tune --trace``.

``trace export --backend URL [--since 1h] --out jobs.csv`` writes the fleet trace (the rows every
worker appended to the backend) as a trace file. ``simulate`` and ``tune`` take a backend URL as
``--trace`` (``redis://host:6379/0?since=24h``): this module wraps their handlers so the fleet
trace is read here (``kqueue.ops.fleet_trace``) and handed to the planner as a trace file, which
keeps ``sim`` free of backends and makes the result the same as on an exported file.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from kqueue.errors import KQueueError


def add_export(commands) -> None:
    """Add ``export`` to the ``kqueue trace`` subparsers object."""
    p = commands.add_parser(
        "export",
        help="write the fleet trace kept in the backend as a trace file",
        description="Write the rows every worker appended to the backend's fleet trace "
        "(trace_keep_rows of them at most) to a trace CSV, or Parquet by its suffix.",
    )
    p.add_argument("--backend", required=True, help="backend URL (redis://..., sqlite:///...)")
    p.add_argument("--since", help="only rows from this long ago on, e.g. 1h (default: all kept)")
    p.add_argument("--out", required=True, help="trace file to write")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """``trace export``: read the fleet trace, write it; the exit code."""
    from kqueue.backends import redact_url
    from kqueue.ops.fleet_trace import export_fleet_trace
    from kqueue.policy.units import parse_duration

    try:
        since_s = parse_duration(args.since) if args.since else None
        rows, bad = export_fleet_trace(args.backend, args.out, since_s)
    except (KQueueError, ValueError, OSError) as exc:
        print(f"kqueue trace export: error: {exc}", file=sys.stderr)
        return 2
    skipped = f" ({bad:,} unreadable rows skipped)" if bad else ""
    print(
        f"wrote {rows:,} jobs from {redact_url(args.backend)} to {args.out}{skipped}",
        file=sys.stderr,
    )
    return 0


def accept_backend_traces(subparsers, commands: tuple[str, ...] = ("simulate", "tune")) -> None:
    """Let each of ``commands`` take a backend URL as ``--trace`` (wraps its handler)."""
    for name in commands:
        parser = subparsers.choices[name]
        parser.set_defaults(func=_with_fleet_trace(parser.get_default("func"), name))


def _with_fleet_trace(handler, command: str):
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        import tempfile

        from kqueue.ops.fleet_trace import is_backend_url, read_fleet_trace

        if not is_backend_url(getattr(args, "trace", None)):
            return handler(args)
        with tempfile.TemporaryDirectory(prefix="kqueue-fleet-") as folder:
            try:
                frame, bad = read_fleet_trace(args.trace)
                path = Path(folder) / "fleet-trace.csv"
                from kqueue.policy import write_trace

                write_trace(frame, path)
            except (KQueueError, ValueError, OSError) as exc:
                print(f"kqueue {command}: error: {exc}", file=sys.stderr)
                return 2
            if bad:
                print(f"kqueue {command}: {bad:,} bad fleet-trace rows skipped", file=sys.stderr)
            return handler(argparse.Namespace(**{**vars(args), "trace": str(path)}))

    return run
