"""experiments/bench_fleet_trace.py runs small in CI and prints its ratios (no speed asserted)."""

from __future__ import annotations

import pytest

from tests.conftest import require_redis_server, run_experiment


@pytest.mark.redis
def test_bench_fleet_trace_runs_small_and_prints_its_ratios():
    require_redis_server()
    done = run_experiment("bench_fleet_trace.py", "--jobs", "1000", "--repeat", "1")
    for expected in (
        "throughput trace on / off",
        "Redis bytes per trace row",
        "CPU per job trace on / off",
        "as a share of a no-op job",
    ):
        assert expected in done.stdout, done.stdout
