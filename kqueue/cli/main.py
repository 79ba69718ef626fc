"""The ``kqueue`` command: run workers, inspect queues, and (through ``sim``) simulate and tune.

This is the one place that composes the runtime and the simulator. Each subcommand is a small
function taking the parsed arguments and returning an exit code: the worker's commands (``run``,
``dead``, ``demo``) live in ``kqueue.cli.worker``, the job commands (``job``, ``cancel``) in
``kqueue.cli.jobs``, the operator's (``pool``, ``stats``, ``calibrate``, ``replay``) in
``kqueue.cli.ops``. The planner's subcommands are registered by
``sim.cli``, which keeps its heavy imports inside its handlers. ``kqueue run`` builds only its own
subcommand's parser (``build_parser(only="run")``): a worker's start does not build the other
twenty or import the planner's command module; ``kqueue --help`` and every other command see the
whole parser.
"""

from __future__ import annotations

import argparse
import logging
import sys

from kqueue.cli import dashboard, fleet_trace, jobs, ops, schedule, trace, worker
from kqueue.errors import KQueueError


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``kqueue`` argument parser with every subcommand, or with only ``run`` (``only="run"``,
    what a worker's start parses)."""
    parser = argparse.ArgumentParser(prog="kqueue", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    if only == "run":
        worker.add_run(subparsers)
        return parser
    for add in (
        worker.add_run,
        worker.add_dead,
        jobs.add_job,
        jobs.add_cancel,
        ops.add_pool,
        ops.add_stats,
        worker.add_demo,
        ops.add_replay,
        ops.add_calibrate,
        dashboard.add_dashboard,
        schedule.add_pause,
        schedule.add_schedules,
    ):
        add(subparsers)
    _register_planner(subparsers)
    return parser


def _register_planner(subparsers) -> None:
    """Add the planner's subcommands (``sim.cli`` imports nothing heavy until they run)."""
    from sim import cli as planner

    commands = planner.register(subparsers)
    trace.add_trace_parsers(commands)
    fleet_trace.add_export(commands)
    fleet_trace.accept_backend_traces(subparsers)


def _command(argv: list[str]) -> str | None:
    """``"run"`` when the command line runs a worker (its one parser suffices), else None."""
    words = [word for word in argv if word not in ("-v", "--verbose")]
    return "run" if words[:1] == ["run"] else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kqueue`` console script."""
    args = build_parser(_command(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        with trace.plain_warnings():
            return args.func(args)
    except KQueueError as exc:
        print(f"kqueue: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
