"""The prototype's question: 1000 jobs/min of the 70/25/5 mix, in under 3 GB?

Scenario: Poisson arrivals at 1000 jobs/min of the prototype's mix
(``sim.model.workload.PROTOTYPE_MIX``, lognormal per class, chosen to land in the prototype's tier
bounds fast < 1 s, medium 1-30 s, heavy > 30 s; fast jobs mostly waiting on I/O):

    class   share  duration median (sigma)  CPU share of duration  memory median (sigma)
    fast     70%   0.1 s (0.8)              20%                     10 MB (0.5)
    medium   25%   4 s (0.5)                60%                     150 MB (0.4)
    heavy     5%   45 s (0.3)               70%                     400 MB (0.3)

For a host with this machine's cores and for a 16-core host (the default host constants, e.g.
60 MB per idle pool or isolated process), ``kqueue tune`` looks for the least-memory config meeting
the default SLOs (inline/pool/isolated p95 waits 1 s / 10 s / 60 s) within 3 GB per host, and for
the least number of hosts (workers against one Redis) when one host cannot. Next to it, the
prototype's own design is simulated on one host: pool of 10, 5 isolated, 128 MB per process.

Usage: ``python experiments/seed_target.py [--jobs 30000] [--seed 0]``. CI runs it small.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare, simulate
from sim.model.workload import PROTOTYPE_MIX, synth
from sim.tune.evaluate import Problem
from sim.tune.report import peak_isolated
from sim.tune.search import share, tune
from sim.tune.slo import DEFAULT_SLOS, group_stats, job_groups

RATE_PER_MIN = 1000.0
BUDGET_MB = 3 * 1024.0
PROTOTYPE_DESIGN = Config(pool_size=10, pool_max_size=10, max_concurrent_isolated=5)
PROTOTYPE_PROCESS_MB = 128.0


def heavy_load_erlangs() -> float:
    """Concurrent heavy jobs needed on average (Little's law): rate x mean duration."""
    heavy = next(c for c in PROTOTYPE_MIX if c.name == "heavy")
    mean_s = heavy.duration_median_s * 2.718281828 ** (heavy.duration_sigma**2 / 2)
    return RATE_PER_MIN / 60 * heavy.share * mean_s


def row(label, cores, hosts, result, config, groups) -> dict:
    """One line of the table: what one host sees, throughput over all hosts."""
    stats = group_stats(result, groups)
    wait = {t: stats[t]["p95_wait_s"] for t in ("inline", "pool", "isolated")}
    return {
        "cores": cores,
        "design": label,
        "hosts": hosts,
        "stable": result.stable,
        "jobs/min (all hosts)": round(result.throughput_per_min * hosts),
        "peak MB/host": round(result.peak_memory_mb),
        "<= 3 GB": result.peak_memory_mb <= BUDGET_MB,
        "p95 wait s fast/medium/heavy": "/".join(
            "-" if w is None else f"{w:.1f}" for w in wait.values()
        ),
        "pool": config.pool_max_size,
        "isolated": config.max_concurrent_isolated,
        "isolated peak": peak_isolated(result),
    }


def study(prepared, cores: int, seed: int) -> list[dict]:
    """The tuned answer and the prototype's design for one host size."""
    host = HostProfile(cores=cores)
    problem = Problem(DEFAULT_SLOS, BUDGET_MB, host, Config(), seed)
    found = tune(prepared, problem)
    groups = job_groups(found.share.jobs.job_class, found.share.jobs.duration_s, Config())
    tuned = simulate(found.share, found.config, host)
    label = "tuned" + ("" if found.hosts_verified else " (hosts: bound)")
    rows = [row(label, cores, found.hosts, tuned, found.config, groups)]
    proto_host = dataclasses.replace(
        host, pool_process_mb=PROTOTYPE_PROCESS_MB, isolated_process_mb=PROTOTYPE_PROCESS_MB
    )
    all_groups = job_groups(prepared.jobs.job_class, prepared.jobs.duration_s, Config())
    proto = simulate(prepared, PROTOTYPE_DESIGN, proto_host)
    rows.append(row("prototype, 1 host", cores, 1, proto, PROTOTYPE_DESIGN, all_groups))
    if found.hosts > 1:
        part = share(prepared, found.hosts, seed)
        spread = simulate(part, PROTOTYPE_DESIGN, proto_host)
        part_groups = job_groups(part.jobs.job_class, part.jobs.duration_s, Config())
        rows.append(row("prototype, same hosts", cores, found.hosts, spread, PROTOTYPE_DESIGN,
                        part_groups))  # fmt: skip
    print(f"\n{cores} cores: {found.binding or 'one host meets every target'}")
    print(f"  recommended per host: {_settings(found.config)}")
    return rows


def _settings(config: Config) -> str:
    keys = ("inline_max_duration_s", "pooled_max_duration_s", "pool_size", "pool_max_size",
            "max_concurrent_inline", "max_concurrent_isolated", "max_worker_memory_mb")  # fmt: skip
    return ", ".join(f"{k}={getattr(config, k):g}" for k in keys)


def print_table(rows: list[dict]) -> None:
    """A plain fixed-width table."""
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def main() -> None:
    """Parse the arguments, run both host sizes, print the table and check its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    prepared = prepare(synth(args.jobs, RATE_PER_MIN / 60, seed=args.seed))
    print(f"{args.jobs:,} jobs at {RATE_PER_MIN:g}/min of the 70/25/5 mix; budget 3 GB per host")
    print(f"heavy jobs alone keep {heavy_load_erlangs():.0f} processes busy on average "
          "(Little's law), against the prototype's 5 isolated")  # fmt: skip
    rows = []
    for cores in sorted({len(os.sched_getaffinity(0)), 16}):
        rows += study(prepared, cores, args.seed)
    print()
    print_table(rows)
    for r in rows:
        if r["design"] == "prototype, 1 host":
            assert not r["stable"], "the prototype's design cannot keep up at 1000/min"
        if r["design"] == "tuned" and r["hosts"] == 1:
            assert r["<= 3 GB"], "a verified one-host answer must fit the budget"


if __name__ == "__main__":
    main()
