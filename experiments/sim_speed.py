"""How fast is the simulator? The full three-tier model against the simplest SimPy M/M/c.

Scenario: a trace of the prototype's mix (70% fast / 25% medium / 5% heavy, Poisson arrivals at 1000
jobs/min, ``sim.model.workload.PROTOTYPE_MIX``) replayed on the full model: fetch and poll, routing
with history, inline (GIL) / pool (scaling, recycling) / isolated (spawns), processor sharing of the
host's cores, memory. The baseline is the textbook SimPy M/M/c (``simpy.Resource`` of ``c`` servers,
one process per job with ``with res.request()``), the same number of jobs, run in the
same process, alternating with the model so both see the same machine load. Reports simulated
jobs per wall second for each, their ratio (model / baseline; >= 1 means the model is at least as
fast) and the medians over ``--repeat`` rounds. Trace generation and reporting are excluded from
the model's time; ``--with-report`` adds the time to build the result (percentiles, memory curve).

The ratio is taken on each side's process CPU seconds (``time.process_time``), and the wall
seconds are printed beside it: on a shared 2-core machine the wall time of a niced run is mostly
other processes' (one round's wall ratio swung 0.53-1.01 within a minute while the CPU ratio held
within a few percent).

Usage: ``python experiments/sim_speed.py [--jobs 1000000] [--repeat 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import simpy

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare, simulate
from sim.model.workload import synth

RATE_PER_S = 1000 / 60
#: Sized so the prototype mix at 1000 jobs/min is stable: what the tuner would have to find.
CONFIG = Config(pool_max_size=40, max_concurrent_isolated=64)
HOST = HostProfile(cores=64)
BASELINE_SERVERS = 10
BASELINE_UTILISATION = 0.8


def baseline_mmc(jobs: int, seed: int = 0) -> tuple[float, float]:
    """Run the textbook SimPy M/M/c for ``jobs`` jobs; return (CPU seconds, wall seconds)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / (BASELINE_UTILISATION * BASELINE_SERVERS), jobs).tolist()
    services = rng.exponential(1.0, jobs).tolist()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=BASELINE_SERVERS)
    waits = []

    def customer(env, service_s):
        arrived = env.now
        with servers.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(service_s)

    def arrivals(env):
        for gap, service_s in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(env, service_s))

    began, began_cpu = time.perf_counter(), time.process_time()
    env.process(arrivals(env))
    env.run()
    return time.process_time() - began_cpu, time.perf_counter() - began


def model_run(prepared, with_report: bool):
    """Replay the prepared trace on the full model; return (CPU seconds, wall seconds, result)."""
    began, began_cpu = time.perf_counter(), time.process_time()
    result = simulate(prepared, CONFIG, HOST)
    if with_report:
        return time.process_time() - began_cpu, time.perf_counter() - began, result
    return result.outcome.cpu_s, result.wall_s, result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--with-report", action="store_true", help="count the report's time too")
    args = parser.parse_args(argv)
    prepared = prepare(synth(args.jobs, RATE_PER_S, seed=args.seed))
    print(f"{args.jobs:,} jobs; model: {CONFIG.pool_max_size=} "
          f"{CONFIG.max_concurrent_isolated=} cores={HOST.cores}")  # fmt: skip
    print("round  baseline jobs/CPU s  model jobs/CPU s  ratio  wall ratio  model wall s")
    ratios, wall_ratios, model_rates, base_rates, walls = [], [], [], [], []
    for round_number in range(1, args.repeat + 1):
        base_cpu_s, base_wall_s = baseline_mmc(args.jobs, seed=round_number)
        cpu_s, wall_s, result = model_run(prepared, args.with_report)
        base_rates.append(args.jobs / base_cpu_s)
        model_rates.append(args.jobs / cpu_s)
        ratios.append(model_rates[-1] / base_rates[-1])
        wall_ratios.append(base_wall_s / wall_s)
        walls.append(wall_s)
        print(f"{round_number:5d} {base_rates[-1]:20,.0f} {model_rates[-1]:17,.0f} "
              f"{ratios[-1]:6.2f} {wall_ratios[-1]:11.2f} {wall_s:13.1f}", flush=True)  # fmt: skip
    print(f"median {statistics.median(base_rates):19,.0f} {statistics.median(model_rates):17,.0f} "
          f"{statistics.median(ratios):6.2f} {statistics.median(wall_ratios):11.2f} "
          f"{statistics.median(walls):13.1f}")  # fmt: skip
    print(
        f"ratio range {min(ratios):.2f}-{max(ratios):.2f} (CPU), "
        f"{min(wall_ratios):.2f}-{max(wall_ratios):.2f} (wall)"
    )
    print(
        f"model run: {'stable' if result.stable else 'UNSTABLE'}, "
        f"{result.throughput_per_min:.0f} jobs/min, peak memory {result.peak_memory_mb:,.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
