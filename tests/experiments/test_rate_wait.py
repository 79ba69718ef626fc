"""The rate-limit wait experiment runs small on two live workers and checks the live p95."""

from __future__ import annotations

import pytest

from tests.conftest import require_redis_server, run_experiment

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(90)
def test_rate_wait_runs_small_and_the_live_tail_is_near_a_fcfs_buckets():
    require_redis_server()
    # 30 jobs at 4/s against 5/s (a bucket of 2.5 tokens): about 8 s of sending
    done = run_experiment(
        "rate_wait.py", "--jobs", "30", "--rate", "5/s", "--arrivals", "4", "--check", timeout=80
    )
    for name in ("live", "twin", "fcfs"):
        assert f"{name}     p50" in done.stdout
