"""Does load-aware routing help? Three simulated scenarios, routing off and on side by side.

Scenario: one worker on the default host constants (2 cores unless ``--cores``), the twin running
``kqueue.policy.router.route_by_load`` exactly as the runtime does (a pool job takes a free
isolated slot while the pool's expected wait passes ``load_route_enter_wait_s``, until it falls
below ``load_route_exit_wait_s``):

- ``burst_io``: 400 I/O-bound 2 s jobs (5% CPU) in a 20 s burst onto a pool fixed at 4 processes,
  with 5 idle isolated slots: the case the rule is for.
- ``steady``: 2 s jobs at 1/s onto the same pool: the pool keeps up; the rule must not trigger.
- ``burst_cpu``: the burst, but CPU-bound (90% CPU) on 2 cores: more processes cannot go faster.
- ``burst_scaling``: the I/O burst with the pool free to grow from 4 to 20 (the default
  scaler, which now counts the backlog): what the rule adds beside it.

Printed: per scenario, the p95 and mean wait and the jobs routed isolated with routing off and
on, and the ratio on/off. Run: ``python experiments/load_routing.py [--cores N]``; seconds.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from kqueue.policy import Config, HostProfile
from sim.model.replay import simulate

JOBS = 400
BURST_S = 20.0


def trace(jobs: int, span_s: float, cpu_fraction: float, seed: int = 0) -> pd.DataFrame:
    """``jobs`` 2 s jobs of one class arriving uniformly at random over ``span_s``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "submitted_at": np.sort(rng.uniform(0.0, span_s, jobs)),
            "job_class": ["resize"] * jobs,
            "duration_s": [2.0] * jobs,
            "cpu_s": [2.0 * cpu_fraction] * jobs,
            "memory_mb": [20.0] * jobs,
        }
    )


SCENARIOS = {
    "burst_io": (trace(JOBS, BURST_S, 0.05), {"pool_size": 4, "pool_max_size": 4}),
    "steady": (trace(120, 120.0, 0.05), {"pool_size": 4, "pool_max_size": 4}),
    "burst_cpu": (trace(JOBS, BURST_S, 0.9), {"pool_size": 4, "pool_max_size": 4}),
    "burst_scaling": (trace(JOBS, BURST_S, 0.05), {"pool_size": 4, "pool_max_size": 20}),
}


def figures(frame: pd.DataFrame, settings: dict, host: HostProfile, on: bool) -> dict:
    """One simulation's waits and isolated count."""
    config = Config.from_mapping({"default_estimate_s": 2.0, **settings, "load_routing": on})
    result = simulate(frame, config, host)
    return {
        "p95_wait_s": result.overall.p95_wait_s,
        "mean_wait_s": result.overall.mean_wait_s,
        "isolated": int((result.outcome.tier == 2).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    host = HostProfile(cores=args.cores)
    print(f"{'scenario':<15}{'metric':<13}{'off':>9}{'on':>9}{'on/off':>8}")
    verdicts = {}
    for name, (frame, settings) in SCENARIOS.items():
        off, on = figures(frame, settings, host, False), figures(frame, settings, host, True)
        for key in off:
            ratio = on[key] / off[key] if off[key] else float("nan")
            print(f"{name:<15}{key:<13}{off[key]:>9.2f}{on[key]:>9.2f}{ratio:>8.2f}")
        verdicts[name] = (off, on)
    helps = verdicts["burst_io"][1]["p95_wait_s"] < verdicts["burst_io"][0]["p95_wait_s"]
    quiet = verdicts["steady"][1]["isolated"] == 0
    print(f"helps on the I/O burst: {helps}; does not trigger on the steady load: {quiet}")
    return 0 if helps and quiet else 1


if __name__ == "__main__":
    sys.exit(main())
