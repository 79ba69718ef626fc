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
    assert re.search(r"^\| jobs \| 1,000 dispatched \| 1,000 finished \| 0 lost, 0 dup", out, re.M)
    assert "worker tree PSS (tree_pss_mb)" in out and "standing distinct anonymous" in out, out
    rows = re.findall(r"^\s+1" + r"\s+([\d.]+|nan)" * 11 + "$", out, re.M)
    assert rows, out
    names = ("w_mb", "w_rss", "pool_mb", "pool_uss", "standing_mb", "anon_mb", "iso", "tree_mb",
             "w_fds", "pool_fds", "iso_fds")  # fmt: skip
    cells = dict(zip(names, map(float, rows[0]), strict=True))
    # two workers, each with a pool of three: tens of MB each, some descriptors each
    assert 20 < cells["w_mb"] <= cells["standing_mb"] <= cells["tree_mb"], out
    assert cells["w_rss"] >= cells["w_mb"] and cells["pool_uss"] <= cells["pool_mb"], out
    assert cells["w_fds"] > 20 and cells["pool_fds"] >= 6 * 6, out
    # the README table: one row per measure, minute 5 against the last minute
    table = re.findall(r"^\| (.+?) \| ([\d.]+|nan) \| ([\d.]+|nan) \| (.+) \|$", out, re.M)
    assert {label for label, *_ in table} >= {
        "the 2 worker processes, PSS, MB",
        "open fds: the pool processes",
        "workers + pools (standing), PSS, MB",
    }, out
