"""experiments/bench_results.py runs small in CI and prints its ratios (no speed is asserted)."""

from __future__ import annotations

import pytest

from tests.conftest import require_redis_server, run_experiment


@pytest.mark.redis
def test_bench_results_runs_small_and_prints_its_ratios():
    require_redis_server()
    done = run_experiment("bench_results.py", "--samples", "30", "--jobs", "1000", "--repeat", "1")
    for expected in (
        "result round trip (ms)",
        "same, async client (ms)",
        "bare Redis PING",
        "storing results (pairs)",
    ):
        assert expected in done.stdout, done.stdout
