"""Did a change to the simulator change any result? A fingerprint of several scenarios' runs.

Scenario: the prototype mix (``sim.model.workload.PROTOTYPE_MIX``) replayed under nine configs
and hosts that reach every part of the model: the ``sim_speed`` config; the defaults on 4
cores; a 3 GB memory budget; timeouts and memory limits that kill, retry and dead-letter; load
routing; a fixed pool; the ideal host (no fetch cost, no polling); class rules (a concurrency
limit, a rate limit and priorities, so the gated fetcher leases); and a host whose backend
wakes the worker (no polling). Each run's per-job arrays (``Outcome``: starts, ends, slots,
tiers, estimates, processes, memory, inherited memory, dead mask, priority) and counters
(pool, isolated, CPU, kills, dead letters, memory steps) are hashed (SHA-256 of their bytes),
and one line per scenario is printed: a refactoring that claims "every result identical" shows
the same lines before and after.

Usage: ``python experiments/sim_fingerprint.py [--jobs 40000] [--seed 3]``; compare the output
of two checkouts with ``diff``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys

import numpy as np

from kqueue.policy import Config, HostProfile, JobOptions
from sim.model.replay import prepare, simulate
from sim.model.workload import synth

RATE_PER_S = 1000 / 60
#: Fields of ``Outcome`` that are not results (inputs, timings of this process).
NOT_RESULTS = ("prepared", "config", "host", "wall_s", "cpu_s")

SCENARIOS: dict[str, tuple[Config, HostProfile]] = {
    "sim_speed": (Config(pool_max_size=40, max_concurrent_isolated=64), HostProfile(cores=64)),
    "defaults_4_cores": (Config(), HostProfile(cores=4)),
    "budget_3gb": (Config(memory_budget_mb=3000.0, pool_max_size=40), HostProfile(cores=8)),
    "limits_kill": (
        Config(timeout_s=50.0, max_memory_mb=420.0, max_attempts=2, retry_backoff_s=0.5),
        HostProfile(cores=8),
    ),
    "load_routing": (Config(load_routing=True, max_concurrent_isolated=20), HostProfile(cores=8)),
    "fixed_pool": (Config(pool_size=12, pool_max_size=12), HostProfile(cores=16)),
    "ideal_host": (Config(), HostProfile.ideal()),
    "class_rules": (
        Config(
            pool_max_size=30,
            jobs={
                "heavy": JobOptions(concurrency_limit=3, priority=-1),
                "medium": JobOptions(rate_limit="600/min"),
                "fast": JobOptions(priority=2),
            },
        ),
        HostProfile(cores=16),
    ),
    "no_polling": (
        Config(pool_max_size=40),
        dataclasses.replace(HostProfile(cores=16), polls=False),
    ),
}


def fingerprint(outcome) -> str:
    """SHA-256 over every result field of an ``Outcome`` (arrays by their bytes)."""
    digest = hashlib.sha256()
    for field in dataclasses.fields(outcome):
        if field.name in NOT_RESULTS:
            continue
        digest.update(field.name.encode())
        _hash_value(digest, getattr(outcome, field.name))
    return digest.hexdigest()[:16]


def _hash_value(digest, value) -> None:
    """Arrays by their bytes, dataclasses (memory steps) field by field, the rest by repr."""
    if isinstance(value, np.ndarray):
        digest.update(str(value.dtype).encode() + np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            _hash_value(digest, getattr(value, field.name))
    else:
        digest.update(repr(value).encode())


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print its fingerprint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--only", help="run this scenario only")
    args = parser.parse_args(argv)
    prepared = prepare(synth(args.jobs, RATE_PER_S, seed=args.seed))
    for name, (config, host) in SCENARIOS.items():
        if args.only and name != args.only:
            continue
        result = simulate(prepared, config, host)
        finished = int(np.isfinite(result.outcome.finished_s).sum())
        print(f"{name:18s} {fingerprint(result.outcome)} finished={finished}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
