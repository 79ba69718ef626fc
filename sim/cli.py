"""Command-line commands of the simulator: ``simulate``, ``tune`` and ``trace synth``.

``register(subparsers)`` adds them to an argparse subparsers object (``kqueue.cli`` calls it;
``python -m sim`` does too). Each handler takes the parsed arguments and returns an exit code.
Heavy imports (SimPy, pandas) happen inside the handlers so ``kqueue --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from kqueue.policy.trace_args import add_trace_read_arguments, trace_read_options

#: Simulations with at least this many jobs show progress on a terminal's standard error.
PROGRESS_MIN_JOBS = 50_000
#: Jobs drawn by ``trace synth`` (and by ``simulate`` without a trace) when no size is given.
DEFAULT_SYNTH_JOBS = 10_000


def register(subparsers):
    """Add ``simulate``, ``tune`` and ``trace`` (``synth``); return ``trace``'s subparsers."""
    _add_simulate(subparsers)
    _add_tune(subparsers)
    trace = subparsers.add_parser("trace", help="work with trace files")
    commands = trace.add_subparsers(dest="trace_command", required=True, metavar="COMMAND")
    _add_synth(commands)
    return commands


def _add_simulate(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="replay a trace on a simulated worker and report throughput, waits and memory",
        description="Replay a trace (or a synthetic prototype-mix workload) on the simulator.",
    )
    p.add_argument("--trace", help="trace CSV/Parquet (default: synthesize the prototype mix)")
    p.add_argument("--config", help="kqueue.toml with the worker settings to simulate")
    p.add_argument("--host", help="host profile TOML (cores, dispatch, spawn, memory constants)")
    p.add_argument("--cores", type=int, help="CPU cores of the host (overrides --host/--ideal)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--rate", help="rescale arrivals to this rate, e.g. 1000/min or 20/s")
    rate.add_argument("--speed", type=float, help="compress arrival times by this factor")
    p.add_argument("--duration", help="simulate this long, e.g. 1h (cuts or repeats the trace)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic workload")
    p.add_argument("--ideal", action="store_true", help="every host constant zero")
    p.add_argument("--inline", action="store_true", help="model the worker's --inline")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--trace-out", help="write the simulated trace rows here (CSV or Parquet)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress on stderr (default: on a terminal, for long runs)")  # fmt: skip
    add_trace_read_arguments(p)
    p.set_defaults(func=run_simulate)


def _add_synth(commands) -> None:
    p = commands.add_parser(
        "synth",
        help="write a synthetic trace: Poisson arrivals, the prototype's 70/25/5 mix",
        description="Draw a synthetic trace with Poisson arrivals and a mix of job classes.",
    )
    p.add_argument("--out", required=True, help="trace file to write (CSV or Parquet)")
    p.add_argument("--jobs", type=int, help=f"number of jobs (default {DEFAULT_SYNTH_JOBS})")
    p.add_argument("--duration", help="instead of --jobs: arrivals over this long, e.g. 1h")
    p.add_argument("--rate", default="1000/min", help="mean arrival rate (default 1000/min)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", help="TOML with [[classes]] tables (default: prototype mix)")
    p.set_defaults(func=run_synth)


def _add_tune(subparsers) -> None:
    p = subparsers.add_parser(
        "tune",
        help="recommend thresholds, pool sizes and limits from a trace (writes kqueue.toml)",
        description="Search the worker settings for the least-memory config that keeps every "
        "tier stable and meets every SLO on the trace; write it as a kqueue.toml.",
    )
    p.add_argument("--trace", required=True, help="trace CSV/Parquet of your jobs")
    p.add_argument("--rate", help="plan for this arrival rate, e.g. 1000/min (rescales arrivals)")
    p.add_argument("--memory-budget", help="peak memory per host, e.g. 3GB (default: none)")
    p.add_argument("--cores", type=int, help="CPU cores of the host (overrides --host)")
    p.add_argument("--host", help="host profile TOML from kqueue calibrate")
    p.add_argument("--config", help="base kqueue.toml: settings the tuner does not search")
    p.add_argument("--slo", action="append", metavar="TIER.METRIC=VALUE",
                   help="e.g. inline.p95_wait=1s (repeatable; default: inline 1 s, pool 10 s, "
                   "isolated 60 s p95 waits)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seeds the split of jobs over hosts")
    p.add_argument("--out", default="kqueue.toml", help="config file to write (kqueue.toml)")
    p.add_argument("--report", help="directory for summary.md and the PNGs")
    p.add_argument("--processes", type=int, help="simulation processes (default: all cores)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress of each search stage on stderr (default: on)")  # fmt: skip
    add_trace_read_arguments(p)
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """``tune``: search, write the config (and the report); returns the exit code."""
    from pathlib import Path

    from kqueue.errors import KQueueError

    try:
        prepared, problem = _tune_inputs(args)
        from sim.progress import ProgressPrinter
        from sim.tune.search import tune

        def progress(label: str):
            return ProgressPrinter(f"tune {label}", unit="configs")

        found = tune(prepared, problem, processes=args.processes,
                     progress=progress if args.progress else None)  # fmt: skip
        Path(args.out).write_text(found.config.to_toml())
        if args.report:
            from sim.model.replay import simulate
            from sim.tune.report import write_report

            chosen = simulate(found.share, found.config, problem.host)
            default = simulate(found.share, problem.base, problem.host)
            write_report(args.report, found, chosen, default, args.trace)
    except (KQueueError, ValueError, OSError) as exc:
        return _fail("tune", exc)
    print(_tune_summary(found, args))
    return 0


def _tune_inputs(args: argparse.Namespace):
    """The prepared trace and the ``Problem`` the ``tune`` arguments describe."""
    import math

    from kqueue.policy import Config, HostProfile, read_trace
    from kqueue.policy.units import parse_memory, parse_rate
    from sim.model.replay import prepare
    from sim.model.workload import rescale_to_rate
    from sim.tune.evaluate import Problem
    from sim.tune.slo import parse_slos

    slos = parse_slos(args.slo)
    budget = parse_memory(args.memory_budget) if args.memory_budget else math.inf
    host = HostProfile.load(args.host, cores=args.cores)
    trace = read_trace(args.trace, trace_read_options(args))
    if args.rate:
        trace = rescale_to_rate(trace, parse_rate(args.rate))
    if args.processes is not None and args.processes < 1:
        raise ValueError(f"--processes must be at least 1, got {args.processes}")
    prepared = prepare(trace, source=args.trace)
    return prepared, Problem(slos, budget, host, Config.load(args.config), args.seed)


def _tune_summary(found, args: argparse.Namespace) -> str:
    """A few lines for the terminal: the answer, the predicted numbers, where things went."""
    from sim.model.readable import format_rate

    e = found.evaluation
    lines = [
        f"hosts: {found.hosts}" + ("" if found.hosts_verified else " (at least; not verified)"),
        f"binding on one host: {found.binding or 'nothing (one host meets every target)'}",
        f"feasible: {e.feasible}  stable: {e.stable}  peak memory: {e.peak_memory_mb:,.0f} MB"
        f"  throughput: {format_rate(e.throughput_per_min)} per host",
        "SLO margins: " + ", ".join(f"{name} {m:+.0%}" for name, m in e.margins),
        f"searched {found.candidates} candidates, {found.simulations} simulations "
        f"in {found.wall_s:.1f} s",
        f"wrote {args.out}" + (f" and {args.report}/summary.md" if args.report else ""),
    ]
    return "\n".join(lines)


def run_synth(args: argparse.Namespace) -> int:
    """``trace synth``: draw a synthetic trace and write it; returns the exit code."""
    from kqueue.errors import KQueueError

    try:
        trace = _synthesize(args)
        from kqueue.policy import write_trace

        write_trace(trace, args.out)
    except (KQueueError, ValueError, OSError) as exc:
        return _fail("trace synth", exc)
    print(f"wrote {len(trace):,} jobs to {args.out}", file=sys.stderr)
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    """``simulate``: load everything, run one simulation, report; returns the exit code."""
    from kqueue.errors import KQueueError

    try:
        trace, config, host = _inputs(args)
        from kqueue.policy.schedule import load_schedules
        from sim.model.replay import prepare, simulate
        from sim.model.rules import with_schedule_rows
        from sim.progress import ProgressPrinter

        trace = with_schedule_rows(trace, load_schedules(args.config))  # [schedules] fire too

        prepared = prepare(trace, source=args.trace or "<synthetic>")
        show = args.progress
        if show is None:
            show = sys.stderr.isatty() and len(prepared.jobs) >= PROGRESS_MIN_JOBS
        progress = ProgressPrinter() if show else None
        result = simulate(prepared, config, host, force_inline=args.inline, progress=progress)
        if args.trace_out:
            from kqueue.policy import write_trace

            write_trace(result.trace(), args.trace_out)
    except (KQueueError, ValueError, OSError) as exc:
        return _fail("simulate", exc)
    if args.json:
        extra = {"seed": args.seed, "trace": args.trace, "host": host.to_dict()}
        print(result.to_json(**extra))
    else:
        print(result.table())
    return 0


def _inputs(args: argparse.Namespace):
    """The trace (rescaled and fitted), config and host profile the arguments ask for."""
    from kqueue.policy import Config, HostProfile, read_trace
    from kqueue.policy.units import parse_duration
    from sim.model.workload import fit_to_duration, rescale_to_rate, speed_up

    config = Config.load(args.config)
    host = HostProfile.ideal() if args.ideal else HostProfile.load(args.host)
    if args.ideal and args.host:
        raise ValueError("--ideal and --host contradict each other; give one of them")
    if args.cores is not None:
        host = HostProfile.load(None, **{**host.to_dict(), "cores": args.cores})
    if args.trace is None:
        return _synthesize(args), config, host
    trace = read_trace(args.trace, trace_read_options(args))
    if args.rate:
        from kqueue.policy.units import parse_rate

        trace = rescale_to_rate(trace, parse_rate(args.rate))
    elif args.speed:
        trace = speed_up(trace, args.speed)
    if args.duration:
        trace = fit_to_duration(trace, parse_duration(args.duration))
    return trace, config, host


def _synthesize(args: argparse.Namespace):
    """A synthetic trace from ``--jobs``/``--duration``, ``--rate``, ``--seed``, ``--classes``."""
    from kqueue.policy.units import parse_duration, parse_rate
    from sim.model.workload import PROTOTYPE_MIX, load_mix, synth

    rate_per_s = parse_rate(args.rate or "1000/min")
    jobs = getattr(args, "jobs", None)
    if args.duration:
        if jobs:
            raise ValueError("give --jobs or --duration, not both")
        jobs = max(1, round(parse_duration(args.duration) * rate_per_s))
    mix = load_mix(args.classes) if getattr(args, "classes", None) else PROTOTYPE_MIX
    return synth(jobs or DEFAULT_SYNTH_JOBS, rate_per_s, mix=mix, seed=args.seed)


def _fail(command: str, exc: Exception) -> int:
    print(f"kqueue {command}: error: {exc}", file=sys.stderr)
    return 2
