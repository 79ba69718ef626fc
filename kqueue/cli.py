"""The ``kqueue`` command: run workers, inspect queues, and (through ``sim``) simulate and tune.

Each subcommand is a small function taking the parsed arguments and returning an exit code. The
planner's subcommands are registered by ``sim.cli`` (imported only to add its parsers; it keeps
its heavy imports inside its handlers), so the runtime itself never imports the simulator.
This module holds the worker's commands (``run``, ``dead``, ``demo``); the operator and inspection
commands (``pool``, ``stats``, ``calibrate``, ``replay``) live in ``kqueue.cli_ops``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from kqueue.errors import KQueueError

log = logging.getLogger("kqueue.cli")


def load_app(spec: str):
    """Import ``module:attribute`` from the working directory (as ``python -m`` would).

    Raises:
        KQueueError: the spec is malformed, the module does not import, or the attribute is
            missing or not a ``kqueue.App``.
    """
    from kqueue.job import App

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise KQueueError(f"--app {spec!r}: expected module:attribute, e.g. tasks:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KQueueError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise KQueueError(f"--app {spec!r}: {module_name}.{attribute} is not a kqueue.App")
    return app


def _add_run(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a worker",
        description="Run a worker. SIGTERM or SIGINT stops it gracefully; SIGUSR1 makes it "
        "finish what is queued and exit, as --burst does.",
    )
    run.add_argument("--app", required=True, help="module:attribute of your kqueue.App")
    run.add_argument("--backend", help="backend URL; overrides the app's")
    run.add_argument("--config", help="kqueue.toml with settings")
    run.add_argument(
        "--queue", action="append", help="queue to serve (repeatable; default: default)"
    )
    run.add_argument("--inline", action="store_true", help="run every job inline (no processes)")
    run.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    run.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    run.add_argument("--trace-out", help="append a trace row per finished attempt to this CSV")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    run.add_argument("--pool-size", type=int, help="pool processes at start (config pool_size)")
    run.add_argument("--pool-max-size", type=int, help="config pool_max_size")
    run.add_argument("--max-concurrent-inline", type=int, help="config max_concurrent_inline")
    run.add_argument("--max-concurrent-isolated", type=int, help="config max_concurrent_isolated")
    run.add_argument("--timeout", type=float, dest="timeout_s", help="default job timeout_s")
    run.add_argument(
        "--visibility-timeout",
        type=float,
        dest="visibility_timeout_s",
        help="lease length in seconds",
    )
    run.add_argument(
        "--shutdown-grace",
        type=float,
        dest="shutdown_grace_s",
        help="seconds running jobs get on SIGTERM",
    )
    run.set_defaults(func=cmd_run)


_CLI_SETTINGS = (
    "pool_size",
    "pool_max_size",
    "max_concurrent_inline",
    "max_concurrent_isolated",
    "timeout_s",
    "visibility_timeout_s",
    "shutdown_grace_s",
)


def cmd_run(args) -> int:
    """``kqueue run``: a worker until stopped, drained (``--burst``) or ``--max-jobs`` done."""
    from kqueue.allocator import limit_arenas
    from kqueue.policy.config import Config
    from kqueue.worker import Worker
    from kqueue.worker_process import term_with_parent_from_env

    term_with_parent_from_env()  # started by replay or calibrate: end with them
    limit_arenas()  # before the app or the worker starts a thread (see kqueue.allocator)
    app = load_app(args.app)
    if args.backend:
        app = app.with_backend(args.backend)
    config = Config.load(args.config, **{k: getattr(args, k) for k in _CLI_SETTINGS})
    worker = Worker(
        app,
        config,
        queues=tuple(args.queue or [app.queue]),
        force_inline=args.inline,
        max_jobs=args.max_jobs,
        burst=args.burst,
        trace_out=args.trace_out,
        metrics_port=args.metrics_port,
    )
    summary = asyncio.run(worker.run())
    print(
        json.dumps(
            {
                "worker": summary.worker_id,
                "done": summary.done,
                "by_status": summary.by_status,
                "dead_lettered": summary.dead_lettered,
            }
        )
    )
    if summary.abandoned:
        log.warning(
            "%d inline job(s) still running at exit were returned to the queue", summary.abandoned
        )
        sys.stdout.flush()
        os._exit(0)  # their threads cannot be joined
    return 0


def _add_dead(subparsers) -> None:
    dead = subparsers.add_parser("dead", help="list dead-lettered jobs, or requeue them")
    source = dead.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")
    dead.add_argument("--queue", help="only this queue")
    dead.add_argument("--limit", type=int, default=50, help="how many to list (default 50)")
    dead.add_argument(
        "--requeue",
        nargs="*",
        metavar="JOB_ID",
        help="requeue these jobs (no ids: all listed queue's dead jobs)",
    )
    dead.set_defaults(func=cmd_dead)


def cmd_dead(args) -> int:
    """``kqueue dead``: list dead letters with their reasons, or requeue them."""
    backend = backend_from(args)
    if args.requeue is not None:
        count = backend.requeue_dead(args.requeue or None, queue=args.queue)
        print(f"requeued {count} job(s)")
        return 0
    letters = backend.dead_letters(args.queue, args.limit)
    if not letters:
        print("no dead-lettered jobs")
    for letter in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.failed_at))
        reason = letter.reason.strip().splitlines() or [""]
        print(f"{letter.job_id}  {letter.queue}  {when}  attempts={letter.attempts}")
        print(f"    {reason[-1]}")
    return 0


def backend_from(args):
    """The backend named by ``--backend``, else the one of the ``--app``'s App."""
    from kqueue.backends import open_backend

    if getattr(args, "backend", None):
        return open_backend(args.backend)
    return load_app(args.app).backend


def _add_demo(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="dispatch a small mixed workload and run it")
    demo.add_argument("--backend", default=None, help="backend URL (default: ./kqueue.db)")
    demo.add_argument("--trace-out", default="kqueue-demo-trace.csv", help="trace CSV to write")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """``kqueue demo``: the prototype's check, 3 jobs of 3 s plus fast ones, on a burst worker."""
    from kqueue import demo

    return demo.main(args.backend, Path(args.trace_out))


def build_parser() -> argparse.ArgumentParser:
    """The ``kqueue`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="kqueue", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    from kqueue import cli_ops  # imports this module: only once it is fully loaded

    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_run,
        _add_dead,
        cli_ops.add_pool,
        cli_ops.add_stats,
        _add_demo,
        cli_ops.add_replay,
        cli_ops.add_calibrate,
    ):
        add(subparsers)
    _register_planner(subparsers)
    return parser


def _register_planner(subparsers) -> None:
    """Add the planner's subcommands (``sim.cli`` imports nothing heavy until they run)."""
    from kqueue.trace_cli import add_trace_parsers
    from sim import cli as planner

    add_trace_parsers(planner.register(subparsers))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kqueue`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from kqueue.trace_cli import plain_warnings

    try:
        with plain_warnings():
            return args.func(args)
    except KQueueError as exc:
        print(f"kqueue: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
