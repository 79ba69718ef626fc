"""The ``kqueue`` operator commands: inspect live workers and queues, calibrate, replay.

``pool`` and ``stats`` read what workers publish; ``calibrate`` and ``replay`` run the real runtime
briefly. Each ``add_x`` registers one subcommand on the parser that ``kqueue.cli.main.build_parser``
builds, and its ``cmd_x`` handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

from kqueue.cli.common import backend_from
from kqueue.errors import KQueueError

log = logging.getLogger("kqueue.cli")


def add_pool(subparsers) -> None:
    """Register ``kqueue pool`` on ``subparsers``."""
    pool = subparsers.add_parser("pool", help="show each running worker's tiers and processes")
    source = pool.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")
    pool.add_argument("--json", action="store_true", help="print the raw published statuses")
    pool.set_defaults(func=cmd_pool)


_STATUS_KEYS = {"worker", "pid", "queues", "done"}


def live_statuses(backend) -> list[dict]:
    """The statuses live workers published; one that is not a worker status is skipped (logged)."""
    statuses = []
    for status in backend.worker_statuses():
        try:
            body = json.loads(status.body)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.keys() >= _STATUS_KEYS:
            log.warning("skipping an unreadable status published as %r", status.worker_id)
            continue
        statuses.append(
            {**body, "worker": status.worker_id, "age_s": time.time() - status.published_at}
        )
    return statuses


def cmd_pool(args) -> int:
    """``kqueue pool``: what each live worker last published (every 2 s) about its tiers."""
    statuses = live_statuses(backend_from(args))
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


def add_stats(subparsers) -> None:
    """Register ``kqueue stats`` on ``subparsers``."""
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
    backend = backend_from(args)
    workers = live_statuses(backend)
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


def add_calibrate(subparsers) -> None:
    """Register ``kqueue calibrate`` on ``subparsers``."""
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
    from kqueue.ops.calibrate import calibrate

    started = time.perf_counter()
    measured = calibrate(args.backend, args.app, jobs_per_tier=args.jobs)
    text = measured.to_toml("measured by kqueue calibrate on " + time.strftime("%Y-%m-%d %H:%M:%S"))
    Path(args.out).write_text(text)
    print(text, end="")
    print(f"# wrote {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def add_replay(subparsers) -> None:
    """Register ``kqueue replay`` on ``subparsers``."""
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
    from kqueue.ops.replay import replay
    from kqueue.policy import read_trace
    from kqueue.policy.config import Config
    from kqueue.policy.units import parse_rate

    # a SIGTERM ends this process through its finally blocks, which stop the worker process
    signal.signal(signal.SIGTERM, _exit_on_signal)
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


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _parsed(parse, text: str | None, option: str):
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise KQueueError(f"{option}: {exc}") from None
