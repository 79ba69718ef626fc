"""The worker's commands: ``kqueue run`` (a worker), ``kqueue dead``, ``kqueue demo``.

Each ``add_x`` registers one subcommand on the parser ``kqueue.cli.main.build_parser`` builds, and
its ``cmd_x`` handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from kqueue.cli.common import backend_from
from kqueue.job import App

log = logging.getLogger("kqueue.cli")


def add_run(subparsers) -> None:
    """Register ``kqueue run`` on ``subparsers``."""
    run = subparsers.add_parser(
        "run",
        help="run a worker",
        description="Run a worker. SIGTERM or SIGINT stops it gracefully; SIGUSR1 makes it "
        "finish what is queued and exit, as --burst does; SIGHUP makes it finish its running "
        "jobs and restart with the app and config as they are now (reload on deploy).",
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
    run.add_argument(
        "--queue-order",
        default="strict",
        help="strict (the order of --queue) or weighted:QUEUE=W,... (turns by weight, e.g. "
        "weighted:high=3,default=1)",
    )
    run.add_argument("--trace-out", help="append a trace row per finished attempt to this CSV")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    run.add_argument("--pool-size", type=int, help="pool processes at start (config pool_size)")
    run.add_argument("--pool-max-size", type=int, help="config pool_max_size")
    run.add_argument("--max-concurrent-inline", type=int, help="config max_concurrent_inline")
    run.add_argument("--max-concurrent-isolated", type=int, help="config max_concurrent_isolated")
    run.add_argument("--timeout", type=float, dest="timeout_s", help="default job timeout_s")
    run.add_argument(
        "--memory-budget-mb",
        type=float,
        help="keep the worker's whole tree within this many MB (config memory_budget_mb)",
    )
    run.add_argument(
        "--max-memory-mb", type=float, help="default per-job memory limit (config max_memory_mb)"
    )
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
    "memory_budget_mb",
    "max_memory_mb",
    "visibility_timeout_s",
    "shutdown_grace_s",
)


def cmd_run(args) -> int:
    """``kqueue run``: a worker until stopped, drained (``--burst``) or ``--max-jobs`` done."""
    from kqueue.ops import reload
    from kqueue.ops.worker_process import term_with_parent_from_env
    from kqueue.policy.config import Config
    from kqueue.policy.ordering import parse_queue_order
    from kqueue.policy.schedule import load_schedules
    from kqueue.tiers.heap import freeze_for_fork
    from kqueue.worker import Worker
    from kqueue.worker.allocator import limit_arenas
    from kqueue.worker.gil import shorten_switch_interval

    hangups = reload.note_hangups()  # a SIGHUP from now on reloads (see kqueue.ops.reload)
    term_with_parent_from_env()  # started by replay or calibrate: end with them
    limit_arenas()  # before the app or the worker starts a thread (see kqueue.worker.allocator)
    shorten_switch_interval()  # the loop hands jobs over behind computing ones (kqueue.worker.gil)
    app = App.from_spec(args.app)
    if args.backend:
        app = app.with_backend(args.backend)
    config = Config.load(args.config, **{k: getattr(args, k) for k in _CLI_SETTINGS})

    queue_order = parse_queue_order(args.queue_order)
    schedules = {**app.schedules, **load_schedules(args.config)}
    freeze_for_fork()  # the app is loaded, no child forked yet (see kqueue.tiers.heap)

    def make_worker() -> Worker:
        return Worker(
            app,
            config,
            queues=tuple(args.queue or [app.queue]),
            force_inline=args.inline,
            max_jobs=args.max_jobs,
            burst=args.burst,
            trace_out=args.trace_out,
            metrics_port=args.metrics_port,
            queue_order=queue_order,
            schedules=schedules,
        )

    summary = reload.serve(make_worker, args.app, args.config, _print_summary, hangups)
    if summary.abandoned:
        log.warning(
            "%d inline job(s) still running at exit were returned to the queue", summary.abandoned
        )
        sys.stdout.flush()
        os._exit(0)  # their threads cannot be joined
    return 0


def _print_summary(summary) -> None:
    print(
        json.dumps(
            {
                "worker": summary.worker_id,
                "done": summary.done,
                "by_status": summary.by_status,
                "dead_lettered": summary.dead_lettered,
            }
        ),
        flush=True,
    )


def add_dead(subparsers) -> None:
    """Register ``kqueue dead`` on ``subparsers``."""
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


def add_demo(subparsers) -> None:
    """Register ``kqueue demo`` on ``subparsers``."""
    demo = subparsers.add_parser("demo", help="dispatch a small mixed workload and run it")
    demo.add_argument("--backend", default=None, help="backend URL (default: ./kqueue.db)")
    demo.add_argument("--trace-out", default="kqueue-demo-trace.csv", help="trace CSV to write")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """``kqueue demo``: the prototype's check, 3 jobs of 3 s plus fast ones, on a burst worker."""
    from kqueue.ops import demo

    return demo.main(args.backend, Path(args.trace_out))
