"""experiments/bench_dashboard.py runs small in CI and prints its figures (no speed asserted)."""

from __future__ import annotations

import pytest

from tests.conftest import require_redis_server, run_experiment


@pytest.mark.redis
def test_bench_dashboard_runs_small_and_prints_its_figures():
    require_redis_server()
    done = run_experiment("bench_dashboard.py", "--rows", "2000", "--dead", "20", "--workers", "2",
                          "--requests", "5", "--seconds", "1")  # fmt: skip
    for expected in ("GET /api/overview", "the floor", "one page open", "first overview"):
        assert expected in done.stdout, done.stdout
