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


#: The host a run assumes without --host: the stated default ``HostProfile``.
HOST_HELP = (
    "host profile TOML from kqueue calibrate (default: 4 cores, worker 80 MB, 60 MB per pool or "
    "isolated process, the built-in dispatch and spawn costs)"
)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--cores 0`` is not "unlimited")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_target_arguments(p) -> None:
    """``--slo``, ``--no-default-slos`` and ``--memory-budget`` (tune and simulate)."""
    from sim.tune.slo_rule import DEFAULT_RULE

    p.add_argument("--slo", action="append", metavar="TIER.METRIC=VALUE",
                   help=f"e.g. pool.p95_wait=10s (repeatable); {DEFAULT_RULE}")  # fmt: skip
    p.add_argument("--no-default-slos", action="store_true",
                   help="only the --slo given bind (no default SLOs)")  # fmt: skip
    p.add_argument("--memory-budget", help="peak memory per host, e.g. 3GB (default: none)")


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
    p.add_argument("--host", help=HOST_HELP)
    p.add_argument(
        "--cores", type=positive_int, help="CPU cores of the host (overrides --host/--ideal)"
    )
    p.add_argument("--hosts", type=positive_int, default=1,
                   help="split the trace over this many workers with the tuner's seeded split "
                   "(--seed) and simulate every share (default 1)")  # fmt: skip
    add_target_arguments(p)
    p.add_argument("--drop-impossible", action="store_true",
                   help="leave out the jobs no host of --memory-budget can run, as tune "
                   "does")  # fmt: skip
    p.add_argument("--slo-groups-config", metavar="TOML",
                   help="the config whose routing of each class makes the SLO groups, as "
                   "tune's --config does (default: the built-in thresholds, as tune "
                   "without --config)")  # fmt: skip
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--rate", help="rescale arrivals to this rate, e.g. 1000/min or 20/s")
    rate.add_argument("--speed", type=float, help="compress arrival times by this factor")
    p.add_argument("--duration", help="simulate this long, e.g. 1h (cuts or repeats the trace)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic workload and of the split over --hosts")  # fmt: skip
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
    p.add_argument("--cores", type=positive_int, help="CPU cores of the host (overrides --host)")
    p.add_argument("--host", help=HOST_HELP)
    p.add_argument("--config", help="base kqueue.toml: settings the tuner does not search")
    add_target_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="first seed of the split of jobs over hosts")
    p.add_argument("--seeds", type=positive_int, default=3,
                   help="splits (seeds --seed, --seed+1, ...) every share of which must meet the "
                   "targets (default 3)")  # fmt: skip
    p.add_argument("--drop-impossible", action="store_true",
                   help="plan without the jobs no host can run (too big for the budget); "
                   "default: refuse and name them")  # fmt: skip
    p.add_argument("--keep-limits", action="store_true",
                   help="keep the base config's timeout_s / max_memory_mb and count what they "
                   "kill (default: set per-class limits above each class's tail)")  # fmt: skip
    p.add_argument("--search-budget", action=argparse.BooleanOptionalAction, default=True,
                   help="search the least memory_budget_mb that still meets every target and "
                   "write it (default: on; off writes --memory-budget as given)")  # fmt: skip
    p.add_argument("--out", default="kqueue.toml", help="config file to write (kqueue.toml)")
    p.add_argument("--report", help="directory for summary.md and the PNGs")
    p.add_argument("--processes", type=int, help="simulation processes (default: all cores)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="progress of each search stage on stderr (default: on)")  # fmt: skip
    add_trace_read_arguments(p)
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    """``tune``: search, write the config (and the report); returns the exit code."""
    import contextlib
    from pathlib import Path

    from kqueue.errors import KQueueError

    try:
        prepared, problem, notes = _tune_inputs(args)
        from sim.progress import TuneProgress
        from sim.tune.search import tune

        progress = TuneProgress() if args.progress else None
        with progress if progress is not None else contextlib.nullcontext():
            found = tune(prepared, problem, processes=args.processes, progress=progress)
            found, budget_lines = _budget(args, prepared, found, progress)
        notes += _shared_slot_notes(prepared, problem, found.hosts)
        Path(args.out).write_text(found.config.to_toml())
        if args.report:
            _write_tune_report(args, prepared, found, notes, budget_lines)
    except (KQueueError, ValueError, OSError) as exc:
        return _fail("tune", exc)
    print(_tune_summary(found, args, notes))
    print("\n".join(budget_lines))
    return 0


def _budget(args, prepared, found, progress):
    """(the answer with its budget written, the report's budget lines): the searched least
    budget (``sim.tune.guarantee``), or with ``--no-search-budget`` the one given."""
    if not args.search_budget:
        return _with_budget(found), []
    if not found.hosts_verified:  # its shares were too small to simulate: nothing to search on
        why = found.unverified or "the host count is a bound"
        return _with_budget(found), [f"memory budget: not searched ({why}); the one given is kept"]
    from sim.tune.guarantee import adopt, search_budget

    searched = search_budget(found, prepared, processes=args.processes, progress=progress)
    return adopt(found, searched), searched.lines()


def _with_budget(found):
    """The answer with the budget written into its config, for the runtime to keep
    (``sim.tune.budget``)."""
    import dataclasses

    from sim.tune.budget import with_budget

    budget_mb = found.problem.memory_budget_mb
    kept = with_budget(found.config, budget_mb, found.share.jobs.memory_mb)
    return dataclasses.replace(found, config=kept)


def _write_tune_report(args, prepared, found, notes=(), budget_lines=()) -> None:
    from sim.model.replay import simulate
    from sim.tune.hosts import simulate_hosts
    from sim.tune.report import write_report

    problem = found.problem
    chosen = simulate(found.share, found.config, problem.host)
    default = simulate(found.share, problem.base, problem.host)
    # a count that is a bound was not simulated: its shares are too small (even empty) to run
    verified = found.hosts > 1 and found.hosts_verified
    per_host = simulate_hosts(prepared, found.config, problem, found.hosts) if verified else ()
    write_report(args.report, found, chosen, default, args.trace, per_host=per_host,
                 spread=tune_spread(found), notes=notes, budget=budget_lines)  # fmt: skip


def tune_spread(found) -> dict[str, list[float]]:
    """The spread over seeds and shares at the answer's host count (for the report)."""
    checked = found.check
    if checked is None or len(checked.runs) <= 1:
        return {}
    spread = {
        "peak memory per host (MB)": checked.spread("peak", lambda e: e.peak_memory_mb),
        "worst SLO margin per host": checked.spread("margin", lambda e: e.worst_margin),
    }
    for name, _ in checked.runs[0].evaluation.margins:
        spread[f"{name} margin"] = checked.spread(name, lambda e, n=name: dict(e.margins)[n])
    return spread


def _tune_inputs(args: argparse.Namespace):
    """The prepared trace, the ``Problem`` the ``tune`` arguments describe, and notes to print
    (jobs dropped, empty SLO groups, the limits)."""
    from kqueue.errors import ConfigError
    from kqueue.policy import Config
    from sim.tune.class_limits import with_class_limits
    from sim.tune.evaluate import Problem
    from sim.tune.impossible import impossible_jobs, process_overhead_mb, without

    if args.processes is not None and args.processes < 1:
        raise ValueError(f"--processes must be at least 1, got {args.processes}")
    prepared, slos, budget, host = _targets_and_trace(args)
    notes = []
    impossible = impossible_jobs(prepared, host, budget)
    if impossible.count and budget >= host.worker_mb:  # else ``tune`` says the budget is too low
        if not args.drop_impossible:
            raise ConfigError(
                f"{impossible.describe()}; no host count can work. Plan without them with "
                "--drop-impossible, or raise --memory-budget"
            )
        prepared = without(prepared, impossible)
        notes.append(f"dropped (--drop-impossible): {impossible.describe()}")
    base = Config.load(args.config)
    prepared, limit_notes = _fixed_limits(prepared, base, args.drop_impossible)
    notes += limit_notes
    notes += _empty_group_notes(prepared, slos, base)
    if not args.keep_limits:
        base = with_class_limits(prepared, base, budget - process_overhead_mb(host))
    problem = Problem(slos, budget, host, base, args.seed, args.seeds, args.keep_limits)
    return prepared, problem, notes


def _fixed_limits(prepared, base, drop: bool):
    """(the trace to plan, notes): a class offered more than its fixed shared limit lets
    through is refused (no host count can hold it), or with ``drop`` planned without; each
    other limited class's waits under its limit, as notes (``sim.tune.fleet_limits``)."""
    import numpy as np

    from kqueue.errors import ConfigError
    from sim.tune.evaluate import subset
    from sim.tune.fleet_limits import fixed_limits, with_waits

    limits = fixed_limits(prepared, base)
    over = [limit for limit in limits if limit.saturated]
    notes = []
    if over:
        text = "; ".join(limit.describe() for limit in over)
        if not drop:
            raise ConfigError(f"{text}; no host count can work. Raise the limit, or plan "
                              "without the class with --drop-impossible")  # fmt: skip
        names = np.asarray(prepared.jobs.job_class, dtype=object)
        keep = np.flatnonzero(~np.isin(names, [limit.job_class for limit in over]))
        if len(keep) == 0:
            raise ConfigError(f"{text}; no other class is left to plan")
        prepared = subset(prepared, keep)
        notes.append(f"dropped (--drop-impossible): {text}")
    notes += [with_waits(prepared, base, limit).describe() for limit in limits
              if not limit.saturated]  # fmt: skip
    return prepared, notes


def _shared_slot_notes(prepared, problem, hosts: int) -> list[str]:
    """Notes on concurrency limits smaller than the answer's host count."""
    from sim.tune.fleet_limits import concurrency_notes, fixed_limits

    return concurrency_notes(fixed_limits(prepared, problem.base), hosts)


def _targets_and_trace(args: argparse.Namespace):
    """(prepared trace at the asked rate, SLOs, budget MB, host) from tune's arguments."""
    import math

    from kqueue.policy import HostProfile, read_trace
    from kqueue.policy.units import parse_memory, parse_rate
    from sim.model.replay import prepare
    from sim.model.workload import rescale_to_rate
    from sim.tune.slo import parse_slos

    slos = parse_slos(args.slo, defaults=not args.no_default_slos)
    budget = parse_memory(args.memory_budget) if args.memory_budget else math.inf
    host = (
        HostProfile.load(args.host, cores=args.cores) if args.cores else HostProfile.load(args.host)
    )
    trace = read_trace(args.trace, trace_read_options(args))
    if args.rate:
        trace = rescale_to_rate(trace, parse_rate(args.rate))
    return prepare(trace, source=args.trace), slos, budget, host


def _empty_group_notes(prepared, slos, base) -> list[str]:
    """A warning on standard error (and a note) naming the SLO groups with no jobs."""
    from sim.tune.slo import empty_groups, job_groups

    jobs = prepared.jobs
    empty = empty_groups(slos, job_groups(jobs.job_class, jobs.duration_s, base))
    if not empty:
        return []
    named = ", ".join(s.name for s in slos if s.tier in empty)
    text = (f"no jobs in the {', '.join(empty)} group{'s' if len(empty) > 1 else ''}: "
            f"{named} not checked (the other SLOs still bind)")  # fmt: skip
    print(f"kqueue: warning: {text}", file=sys.stderr)
    return [text]


def _tune_summary(found, args: argparse.Namespace, notes=()) -> str:
    """A few lines for the terminal: the answer, the predicted numbers, where things went."""
    from sim.model.readable import format_rate

    e = found.evaluation
    p = found.problem
    checked = found.check
    runs = len(checked.runs) if checked is not None else 1
    verified = (f" (every share of {p.seeds} seeds: {runs} runs)" if found.hosts_verified
                else " (at least; not verified)")  # fmt: skip
    if found.hosts == 1:
        verified = " (the whole trace)"
    elif not found.hosts_verified and found.unverified:
        verified += f": {found.unverified}"

    lines = [
        f"hosts: {found.hosts}{verified}",
        f"what sets it: {found.what_sets_count()}",
        f"binding on one host: {found.binding or 'nothing (one host meets every target)'}",
        f"feasible: {e.feasible}  stable: {e.stable}  peak memory: {e.peak_memory_mb:,.0f} MB"
        f"  throughput: {format_rate(e.throughput_per_min)} per host (host 1, seed {p.seed})",
        "SLO margins: " + ", ".join(_margin_text(name, m) for name, m in e.margins),
    ]
    if checked is not None and len(checked.runs) > 1:
        peaks = [r.evaluation.peak_memory_mb for r in checked.runs]
        margins = [r.evaluation.worst_margin for r in checked.runs]
        lines.append(f"spread over seeds and shares: peak memory {min(peaks):,.0f}-"
                     f"{max(peaks):,.0f} MB per host, worst SLO margin {min(margins):+.0%} to "
                     f"{max(margins):+.0%}")  # fmt: skip
        for seed in sorted({r.seed for r in checked.runs}):
            w = checked.worst_of_seed(seed)
            we = w.evaluation
            lines.append(f"  seed {seed}: worst host {w.host + 1}, peak "
                         f"{we.peak_memory_mb:,.0f} MB, worst margin {we.worst_margin:+.0%}, "
                         f"killed {we.killed}")  # fmt: skip
    lines.append(_limits_text(found, args))
    lines += [f"note: {note}" for note in notes]
    lines += [
        f"searched {found.candidates} candidates, {found.simulations} simulations "
        f"in {found.wall_s:.1f} s",
        f"wrote {args.out}" + (f" and {args.report}/summary.md" if args.report else ""),
    ]
    return "\n".join(lines)


def _margin_text(name: str, margin: float | None) -> str:
    return f"{name} no jobs (not checked)" if margin is None else f"{name} {margin:+.0%}"


def _limits_text(found, args) -> str:
    """Which limits the plan runs under, and what they kill."""
    e = found.evaluation
    if args.keep_limits:
        return (f"limits: the base config's (--keep-limits); they kill {e.killed} attempts, "
                f"{e.dead} jobs dead-lettered (host 1)")  # fmt: skip
    jobs = found.config.jobs
    timeouts = [o.timeout_s for o in jobs.values() if o.timeout_s is not None]
    memory = [o.max_memory_mb for o in jobs.values() if o.max_memory_mb is not None]
    if not timeouts:
        return "limits: the base config's"
    return (f"limits set for {len(jobs)} classes: timeout_s {min(timeouts):g}-{max(timeouts):g}, "
            f"max_memory_mb {min(memory):g}-{max(memory):g}; killed {e.killed}")  # fmt: skip


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
    """``simulate``: load everything, run one simulation per host's share, report; returns the
    exit code."""
    from kqueue.errors import KQueueError

    try:
        trace, config, host = _inputs(args)
        from kqueue.policy.schedule import load_schedules
        from sim.model.replay import prepare, simulate
        from sim.model.rules import with_schedule_rows
        from sim.progress import ProgressPrinter
        from sim.tune.hosts import simulate_hosts

        trace = with_schedule_rows(trace, load_schedules(args.config))  # [schedules] fire too

        prepared = prepare(trace, source=args.trace or "<synthetic>")
        problem = _simulate_problem(args, config, host)
        if args.drop_impossible:
            prepared = _drop_impossible(prepared, problem)
        if args.hosts > 1:
            results = simulate_hosts(prepared, config, problem, args.hosts)
        else:
            show = args.progress
            if show is None:
                show = sys.stderr.isatty() and len(prepared.jobs) >= PROGRESS_MIN_JOBS
            progress = ProgressPrinter() if show else None
            results = [simulate(prepared, config, host, force_inline=args.inline,
                                progress=progress)]  # fmt: skip
        if args.trace_out:
            from kqueue.policy import write_trace

            write_trace(results[0].trace(), args.trace_out)
    except (KQueueError, ValueError, OSError) as exc:
        return _fail("simulate", exc)
    print(_simulate_output(args, results, config, problem, host))
    return 0


def _drop_impossible(prepared, problem):
    """``prepared`` without the jobs no host of the budget can run, as ``tune`` drops them."""
    from sim.tune.impossible import impossible_jobs, without

    found = impossible_jobs(prepared, problem.host, problem.memory_budget_mb)
    if found.count:
        print(f"kqueue simulate: dropped (--drop-impossible): {found.describe()}", file=sys.stderr)
        return without(prepared, found)
    return prepared


def _simulate_problem(args: argparse.Namespace, config, host):
    """The targets ``simulate`` judges the run against: SLOs (the default rule), the budget."""
    import math

    from kqueue.policy import Config
    from kqueue.policy.units import parse_memory
    from sim.tune.evaluate import Problem
    from sim.tune.slo import parse_slos

    slos = parse_slos(args.slo, defaults=not args.no_default_slos)
    budget = parse_memory(args.memory_budget) if args.memory_budget else math.inf
    groups = Config.load(args.slo_groups_config) if args.slo_groups_config else Config()
    return Problem(slos, budget, host, groups, args.seed, 1, False)


def _simulate_output(args, results, config, problem, host) -> str:
    """The JSON (``hosts``, ``worst``, ``meets_targets``, kill counts) or the tables."""
    import json

    from sim.tune.hosts import judge, meets, worst_index

    evaluations = judge(results, config, problem)
    worst = worst_index(evaluations, problem.memory_budget_mb)
    ok = meets(evaluations)
    if args.json:
        if len(results) == 1:
            extra = {"seed": args.seed, "trace": args.trace, "host": host.to_dict()}
            data = json.loads(results[0].to_json(**extra))
        else:
            data = {"seed": args.seed, "trace": args.trace, "host": host.to_dict(),
                    "hosts": [json.loads(r.to_json()) for r in results]}  # fmt: skip
            data["worst"] = {"host": worst + 1, **data["hosts"][worst]}
            for key in ("killed_timeout", "killed_memory", "dead"):
                data[key] = sum(getattr(r, key) for r in results)
        data["meets_targets"] = ok
        data["slo_margins"] = [
            {"host": i + 1, **dict(e.margins)} for i, e in enumerate(evaluations)
        ]
        return json.dumps(data, indent=2)
    parts = []
    for i, result in enumerate(results):
        if len(results) > 1:
            parts.append(f"== host {i + 1} of {len(results)}'s share, seed {args.seed} ==")
        parts.append(result.table())
    parts.append(_verdict(evaluations, worst, ok, problem))
    return "\n".join(parts)


def _verdict(evaluations, worst: int, ok: bool, problem) -> str:
    """Whether the config meets the SLOs and the budget on every host, and the worst host."""
    import math

    from sim.tune.hosts import miss

    e = evaluations[worst]
    budget = problem.memory_budget_mb
    margins = ", ".join(_margin_text(name, m) for name, m in e.margins)
    head = ("meets every target on every host" if ok
            else f"does NOT meet the targets: {miss(e, budget) or 'a job was killed'}")  # fmt: skip
    budget_text = f"{budget:,.0f} MB" if math.isfinite(budget) else "none"
    return (f"targets (SLOs: {'; '.join(s.describe() for s in problem.slos)}; budget "
            f"{budget_text}): {head}; worst host {worst + 1}: peak {e.peak_memory_mb:,.0f} MB, "
            f"{margins}")  # fmt: skip


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
    if args.inline and args.hosts > 1:
        raise ValueError("--inline models one worker; give it without --hosts")
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
