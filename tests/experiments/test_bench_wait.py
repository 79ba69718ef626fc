"""The WAIT cost benchmark runs small and prints its three modes side by side."""

from __future__ import annotations

import pytest

from tests.conftest import require_redis_server, run_experiment

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(150)
def test_bench_wait_prints_each_mode_against_the_baseline():
    require_redis_server()
    out = run_experiment("bench_wait.py", "--jobs", "300", "--repeat", "1", timeout=140).stdout
    lines = {tuple(line.split()[:2]): line.split() for line in out.splitlines()[1:]}
    for mode in ("redis://", "sentinel", "sentinel+wait"):
        for measure in ("dispatch", "drain"):
            assert float(lines[(mode, measure)][2]) > 0, out
    assert lines[("redis://", "dispatch")][3] == "1.00", out
