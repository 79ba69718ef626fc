"""The planner on real logs: `kqueue tune` on each shared trace at its own rate and at 1000/min.

Scenario (issue 14): a capacity planner takes the Parallel Workloads Archive logs in
``/work/shared/traces/`` (HPC batch jobs nobody here made: NASA iPSC, KTH SP2, HPC2N; see its
README) and asks ``kqueue tune`` how many hosts of ``--cores`` cores and ``--memory-budget``
each it takes, with the default SLOs, ``--drop-impossible`` and ``--seeds`` seeds, at the log's
own arrival rate and rescaled to 1000 jobs/min. Each run goes through the command's own inputs
(``sim.cli._tune_inputs``: impossible jobs dropped, per-class limits set, the budget kept) and
``sim.tune.search.tune``. Printed, one row per run (a Markdown table): hosts (and whether
verified on every share of every seed, or a bound and why), the spread over seeds and shares at
that count (peak memory per host, worst SLO margin), what fails at N-1, the highest peak memory
of a host, the limits set, the wall time.

    python experiments/shared_logs.py                      # every log, both rates
    python experiments/shared_logs.py --jobs 100000        # each log cut to its first 100,000 jobs
    python experiments/shared_logs.py --only KTH --rates own --jobs 3000   # CI-sized
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.cli import _tune_inputs, _with_budget, register
from sim.tune.search import tune

TRACES = Path("/work/shared/traces")
LOGS = ("NASA-iPSC-1993-3.1-cln", "KTH-SP2-1996-2.1-cln", "HPC2N-2002-2.1-cln")
RATES = {"own": None, "1000/min": "1000/min"}


def tune_log(path: Path, rate: str | None, args: argparse.Namespace) -> dict:
    """One ``kqueue tune`` run, in this process; the row of the table."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    argv = ["tune", "--trace", str(path), "--cores", str(args.cores), "--memory-budget",
            args.memory_budget, "--drop-impossible", "--seeds", str(args.seeds)]  # fmt: skip
    argv += ["--rate", rate] if rate else []
    began = time.perf_counter()
    prepared, problem, notes = _tune_inputs(parser.parse_args(argv))
    found = _with_budget(tune(prepared, problem, processes=args.processes))
    return {"found": found, "jobs": len(prepared.jobs), "notes": notes,
            "wall_s": time.perf_counter() - began}  # fmt: skip


def row(name: str, rate: str, result: dict) -> list[str]:
    """The table's cells for one run."""
    found = result["found"]
    checked = found.check
    runs = checked.runs if checked is not None else ()
    peaks = [r.evaluation.peak_memory_mb for r in runs] or [found.evaluation.peak_memory_mb]
    margins = [r.evaluation.worst_margin for r in runs] or [found.evaluation.worst_margin]
    if found.hosts == 1:
        hosts = "1 (whole trace)"
    elif found.hosts_verified:
        hosts = f"{found.hosts:,} (every share of {found.problem.seeds} seeds, {len(runs)} runs)"
    else:
        hosts = f"at least {found.hosts:,} (bound, not verified: {found.unverified})"
    below = found.what_sets_count() if found.hosts > 1 else "-"
    return [
        name, rate, f"{result['jobs']:,}", hosts,
        f"{min(peaks):,.0f}-{max(peaks):,.0f} MB; {min(margins):+.0%} to {max(margins):+.0%}",
        below, f"{max(peaks):,.0f} MB", _limits(found), f"{result['wall_s']:.0f} s",
    ]  # fmt: skip


def _limits(found) -> str:
    jobs = found.config.jobs
    timeouts = [o.timeout_s for o in jobs.values() if o.timeout_s is not None]
    memory = [o.max_memory_mb for o in jobs.values() if o.max_memory_mb is not None]
    if not timeouts:
        return "base config's"
    return (f"{len(jobs)} classes: timeout_s {min(timeouts):,.0f}-{max(timeouts):,.0f}, "
            f"max_memory_mb {min(memory):,.0f}-{max(memory):,.0f}")  # fmt: skip


def cut(path: Path, jobs: int | None, workdir: Path) -> Path:
    """The log itself, or its first ``jobs`` rows as a CSV in ``workdir``."""
    if jobs is None:
        return path
    with gzip.open(path) as stream:
        frame = pd.read_csv(stream, nrows=jobs)
    out = workdir / f"{path.name.split('.csv')[0]}-{jobs}.csv"
    frame.to_csv(out, index=False)
    return out


HEADER = ["log", "rate", "jobs", "hosts",
          "spread over seeds and shares: peak per host; worst SLO margin",
          "what fails at N-1", "highest peak per host", "limits set", "wall"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the logs whose name contains this")
    parser.add_argument("--rates", default="own,1000/min", help="own and/or 1000/min")
    parser.add_argument("--jobs", type=int, help="cut each log to its first JOBS rows")
    parser.add_argument("--cores", type=int, default=32)
    parser.add_argument("--memory-budget", default="64GB")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--processes", type=int)
    args = parser.parse_args(argv)
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    with tempfile.TemporaryDirectory() as workdir:
        for name in LOGS:
            if args.only and args.only not in name:
                continue
            path = cut(TRACES / f"{name}.csv.gz", args.jobs, Path(workdir))
            for rate in args.rates.split(","):
                result = tune_log(path, RATES[rate], args)
                print("| " + " | ".join(row(name, rate, result)) + " |", flush=True)
                for note in result["notes"]:
                    print(f"  note ({name}, {rate}): {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
