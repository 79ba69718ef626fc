"""The ``kqueue`` command: run workers, inspect queues, and (through ``sim``) simulate and tune.

Each subcommand is a small function taking the parsed arguments and returning an exit code. The
planner's subcommands are registered by ``sim.cli`` (imported only to add its parsers; it keeps
its heavy imports inside its handlers), so the runtime itself never imports the simulator.
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
    run = subparsers.add_parser("run", help="run a worker")
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
    from kqueue.policy.config import Config
    from kqueue.worker import Worker

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
    backend = _backend_from(args)
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


def _add_stats(subparsers) -> None:
    stats = subparsers.add_parser(
        "stats", help="queue depth per state, jobs per tier per minute, live workers"
    )
    source = stats.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")
    stats.add_argument("--json", action="store_true", help="print one JSON document")
    stats.set_defaults(func=cmd_stats)


def cmd_stats(args) -> int:
    """``kqueue stats``: what is queued, how fast each tier finishes jobs, who is working."""
    backend = _backend_from(args)
    workers = []
    for status in backend.worker_statuses():
        try:
            body = json.loads(status.body)
        except ValueError:
            body = {}
        workers.append(
            {
                "worker": status.worker_id,
                "age_s": time.time() - status.published_at,
                **(body if isinstance(body, dict) else {}),
            }
        )
    per_minute: dict[str, int] = {}
    for worker in workers:
        for tier, count in (worker.get("per_minute") or {}).items():
            per_minute[tier] = per_minute.get(tier, 0) + int(count)
    report = {"queues": backend.counts(), "per_minute": per_minute, "workers": workers}
    print(json.dumps(report, indent=2) if args.json else _format_stats(report))
    return 0


def _format_stats(report: dict) -> str:
    states = ("ready", "scheduled", "leased", "dead")
    lines = ["queue" + "".join(f"{s:>11}" for s in states)]
    for name, counts in sorted(report["queues"].items()):
        lines.append(name + "".join(f"{counts.get(s, 0):>11}" for s in states))
    if not report["queues"]:
        lines.append("(no jobs)")
    rates = ", ".join(f"{t} {n}" for t, n in sorted(report["per_minute"].items())) or "none"
    lines += ["", f"jobs per minute (live workers, last 60 s): {rates}", ""]
    lines.append(f"live workers: {len(report['workers'])}")
    for worker in report["workers"]:
        tiers = "; ".join(
            f"{tier} " + " ".join(f"{k}={v}" for k, v in sorted(status.items()))
            for tier, status in sorted((worker.get("tiers") or {}).items())
        )
        queues = ",".join(worker.get("queues") or [])
        lines.append(
            f"  {worker['worker']}  queues={queues}  done={worker.get('done', 0)}  "
            f"seen {worker['age_s']:.1f} s ago"
        )
        lines.append(f"    {tiers}")
    return "\n".join(lines)


def _backend_from(args):
    from kqueue.backends import open_backend

    if getattr(args, "backend", None):
        return open_backend(args.backend)
    return load_app(args.app).backend


def _add_pool(subparsers) -> None:
    pool = subparsers.add_parser("pool", help="show each running worker's tiers and processes")
    source = pool.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")
    pool.add_argument("--json", action="store_true", help="print the raw published statuses")
    pool.set_defaults(func=cmd_pool)


def cmd_pool(args) -> int:
    """``kqueue pool``: what each live worker last published (every 2 s) about its tiers."""
    statuses = [json.loads(status.body) for status in _backend_from(args).worker_statuses()]
    if args.json:
        print(json.dumps(statuses, indent=2))
        return 0
    if not statuses:
        print("no running workers")
    for status in statuses:
        print("\n".join(_worker_lines(status)))
    return 0


def _worker_lines(status: dict) -> list[str]:
    age_s = time.time() - status.get("published_at", time.time())
    lines = [
        f"worker {status['worker']}  pid {status['pid']}  queues {','.join(status['queues'])}"
        f"  done {status['done']}  (published {age_s:.0f} s ago)",
        f"  {'tier':<10}{'running':>8}{'capacity':>9}{'waiting':>8}",
    ]
    tiers = status.get("tiers", {})
    for tier, info in tiers.items():
        lines.append(
            f"  {tier:<10}{info.get('running', 0):>8}{info.get('capacity', 0):>9}"
            f"{info.get('waiting', 0):>8}"
        )
    for tier, info in tiers.items():
        processes = info.get("processes") or []
        if processes:
            lines.append(f"  {tier} processes:")
            lines.append(f"    {'pid':>8}  {'state':<9}{'jobs':>6}{'memory_mb':>11}  job")
        for proc in processes:
            memory = "-" if proc.get("memory_mb") is None else f"{proc['memory_mb']:.1f}"
            job = proc.get("job") or ""
            if proc.get("running_s") is not None:
                job += f" ({proc['running_s']:.1f} s)"
            lines.append(
                f"    {proc['pid']:>8}  {proc.get('state', ''):<9}"
                f"{proc.get('jobs_done', '-'):>6}{memory:>11}  {job}"
            )
    return lines


def _add_demo(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="dispatch a small mixed workload and run it")
    demo.add_argument("--backend", default=None, help="backend URL (default: ./kqueue.db)")
    demo.add_argument("--trace-out", default="kqueue-demo-trace.csv", help="trace CSV to write")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """``kqueue demo``: the prototype's check, 3 jobs of 3 s plus fast ones, on a burst worker."""
    from kqueue import demo

    return demo.main(args.backend, Path(args.trace_out))


def _add_calibrate(subparsers) -> None:
    calibrate = subparsers.add_parser(
        "calibrate", help="measure this host's constants for simulate/tune (under a minute)"
    )
    calibrate.add_argument("--out", default="host.toml", help="host profile to write")
    calibrate.add_argument("--app", help="module:attribute of your App, so memory includes it")
    calibrate.add_argument("--backend", help="backend to measure against (default: temp SQLite)")
    calibrate.add_argument("--jobs", type=int, default=200, help="no-op jobs per tier")
    calibrate.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> int:
    """``kqueue calibrate``: run the real runtime briefly and write a host profile."""
    from kqueue.calibrate import calibrate

    started = time.perf_counter()
    base = load_app(args.app) if args.app else None
    measured = calibrate(args.backend, base, jobs_per_tier=args.jobs)
    Path(args.out).write_text(measured.to_toml())
    print(measured.to_toml(), end="")
    print(f"# wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def _add_replay(subparsers) -> None:
    replay = subparsers.add_parser(
        "replay", help="re-run a trace for real: its jobs, at their times, on a live worker"
    )
    replay.add_argument("--trace", required=True, help="trace CSV (or .csv.gz, .parquet)")
    replay.add_argument("--rate", help="rescale arrivals to this mean rate, e.g. 600/min")
    replay.add_argument("--backend", help="backend URL (default: a fresh replay.db here)")
    replay.add_argument("--config", help="kqueue.toml for the worker")
    replay.add_argument("--inline", action="store_true", help="run every job inline")
    replay.add_argument("--trace-out", required=True, help="CSV for the live trace")
    replay.add_argument("--memory-out", help="CSV of PSS samples (elapsed_s, pss_mb)")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    """``kqueue replay``: dispatch a trace's jobs on time to a real worker and record it."""
    from kqueue.job import App
    from kqueue.policy.config import Config
    from kqueue.policy.trace import read_trace
    from kqueue.policy.units import parse_rate
    from kqueue.replay import replay

    frame = read_trace(args.trace)
    rate = _parsed(parse_rate, args.rate, "--rate")
    config = Config.load(args.config)
    backend = args.backend or f"sqlite:///{Path.cwd() / 'replay.db'}"
    result = replay(
        frame,
        App(backend),
        config,
        rate_per_s=rate,
        trace_out=args.trace_out,
        force_inline=args.inline,
    )
    if args.memory_out:
        Path(args.memory_out).write_text(
            "elapsed_s,pss_mb\n" + "".join(f"{t:.3f},{mb:.1f}\n" for t, mb in result.memory)
        )
    print(
        json.dumps(
            {
                "jobs": result.jobs,
                "elapsed_s": round(result.elapsed_s, 3),
                "done": result.summary.done,
                "by_status": result.summary.by_status,
                "peak_memory_mb": round(result.peak_memory_mb, 1),
                "trace_out": args.trace_out,
            }
        )
    )
    return 0


def _parsed(parse, text: str | None, option: str):
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise KQueueError(f"{option}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``kqueue`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="kqueue", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_dead, _add_pool, _add_stats, _add_demo, _add_replay, _add_calibrate):
        add(subparsers)
    _register_planner(subparsers)
    return parser


def _register_planner(subparsers) -> None:
    """Add the planner's subcommands (``sim.cli`` imports nothing heavy until they run)."""
    from sim import cli as planner

    planner.register(subparsers)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kqueue`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except KQueueError as exc:
        print(f"kqueue: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
