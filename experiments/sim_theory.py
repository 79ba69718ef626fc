"""Does the simulator agree with queueing theory? M/M/c against Erlang C, M/D/1 against P-K.

Scenario: Poisson arrivals, every host constant zero (``HostProfile.ideal()``), every job routed to
a fixed pool of ``c`` processes (``sim.model.theory.pool_only_config``). For each ``c`` in 1, 2, 5,
10 and utilisation 0.5, 0.8, 0.9 the simulated mean wait and probability of waiting are compared
with Erlang C; for M/D/1 (constant service) the mean wait with Pollaczek-Khinchine and the
probability of waiting with ``rho``. The first 5% of jobs are a warm-up and are not counted.
``ci95`` is the batch-means 95% half-width of the simulated mean wait, relative to the theory:
an error within it is sampling noise.

Usage: ``python experiments/sim_theory.py [--jobs 1000000] [--tolerance 0.03] [--check]``.
Prints one row per case; with ``--check`` exits 1 if an error exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from kqueue.policy import HostProfile
from sim.model.replay import simulate
from sim.model.theory import (
    erlang_c,
    md1_mean_wait_s,
    mmc_mean_wait_s,
    poisson_trace,
    pool_only_config,
)

SERVERS = (1, 2, 5, 10)
UTILISATIONS = (0.5, 0.8, 0.9)
MEAN_SERVICE_S = 1.0
WARM_UP_FRACTION = 0.05
BATCHES = 20


def simulated_waits(jobs: int, servers: int, rho: float, deterministic: bool, seed: int):
    """Waits (s) of one simulated run after the warm-up, and its wall time (s)."""
    rate = rho * servers / MEAN_SERVICE_S
    trace = poisson_trace(jobs, rate, MEAN_SERVICE_S, deterministic=deterministic, seed=seed)
    began = time.perf_counter()
    result = simulate(trace, pool_only_config(servers), HostProfile.ideal())
    wall_s = time.perf_counter() - began
    o = result.outcome
    waits = (o.started_s - o.submitted_s)[int(jobs * WARM_UP_FRACTION) :]
    return waits, wall_s


def ci95_half_width(values: np.ndarray) -> float:
    """Batch-means 95% half-width of the mean of correlated ``values``."""
    means = np.array([batch.mean() for batch in np.array_split(values, BATCHES)])
    return 2.09 * means.std(ddof=1) / np.sqrt(BATCHES)  # t(0.975, 19 df)


def case_row(kind: str, servers: int, rho: float, jobs: int, seed: int) -> dict:
    """Simulate one case and compare it with theory."""
    deterministic = kind == "M/D/1"
    waits, wall_s = simulated_waits(jobs, servers, rho, deterministic, seed)
    rate = rho * servers / MEAN_SERVICE_S
    if deterministic:
        wait_s, p_wait = md1_mean_wait_s(rate, MEAN_SERVICE_S), rho
    else:
        wait_s, p_wait = mmc_mean_wait_s(servers, rate, MEAN_SERVICE_S), erlang_c(servers, rate)
    sim_p_wait = float((waits > 1e-9).mean())
    return {
        "model": kind,
        "c": servers,
        "rho": rho,
        "wait_theory": wait_s,
        "wait_sim": float(waits.mean()),
        "wait_err": float(waits.mean()) / wait_s - 1,
        "ci95": ci95_half_width(waits) / wait_s,
        "pwait_theory": p_wait,
        "pwait_sim": sim_p_wait,
        "pwait_err": sim_p_wait / p_wait - 1,
        "jobs_per_s": jobs / wall_s,
    }


def cases():
    """Every (model, c, rho) of the study."""
    for servers in SERVERS:
        for rho in UTILISATIONS:
            yield "M/M/c", servers, rho
    for rho in UTILISATIONS:
        yield "M/D/1", 1, rho


def main(argv: list[str] | None = None) -> int:
    """Run the study, print the table; with ``--check`` return 1 if an error is too large."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs per case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.03, help="relative error allowed")
    parser.add_argument("--check", action="store_true", help="exit 1 if beyond the tolerance")
    args = parser.parse_args(argv)
    header = "model   c  rho  wait(theory)  wait(sim)   err   ci95  P(wait) th   sim    err  jobs/s"
    print(header)
    worst = 0.0
    for number, (kind, servers, rho) in enumerate(cases()):
        row = case_row(kind, servers, rho, args.jobs, seed=args.seed * 1000 + number)
        worst = max(worst, abs(row["wait_err"]), abs(row["pwait_err"]))
        print(
            f"{row['model']:6} {row['c']:2d} {row['rho']:4.1f} {row['wait_theory']:12.4f} "
            f"{row['wait_sim']:10.4f} {row['wait_err']:+6.1%} {row['ci95']:5.1%} "
            f"{row['pwait_theory']:10.4f} {row['pwait_sim']:6.4f} {row['pwait_err']:+6.1%} "
            f"{row['jobs_per_s']:7,.0f}",
            flush=True,
        )
    print(f"worst error {worst:.2%} (tolerance {args.tolerance:.0%}, {args.jobs:,} jobs per case)")
    return 1 if args.check and worst > args.tolerance else 0


if __name__ == "__main__":
    sys.exit(main())
