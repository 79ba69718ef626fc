"""The soak experiment, CI-sized: 60 s at 1000 jobs/min on two workers, nothing lost or doubled."""

from __future__ import annotations

import re

import pytest

from tests.conftest import require_redis_server, run_experiment

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.mark.timeout(300)
def test_soak_for_a_minute_loses_and_doubles_nothing():
    require_redis_server()
    done = run_experiment("soak.py", "--duration-s", "60", timeout=280)
    out = done.stdout
    assert re.search(r"1,000/1,000 finished, 0 lost, 0 duplicated", out), out
    assert "standing PSS, minute 5 -> last:" in out, out
    rows = re.findall(r"^\s+1" + r"\s+([\d.]+)" * 9 + "$", out, re.M)
    assert rows, out
    standing_mb, standing_fds, standing, workers_mb, _, tree_mb, fds, procs, rss_mb = map(
        float, rows[0]
    )
    # two workers, each with its pool: tens of MB each, some descriptors each
    assert standing >= 2 and procs >= standing and fds >= standing_fds > 20, out
    assert 20 < workers_mb <= standing_mb <= tree_mb and rss_mb >= workers_mb, out
