"""Scale out: workers in separate folders ("hosts") share one Redis; ``kqueue stats``."""

from __future__ import annotations

import json
import sys

import pytest

from kqueue.backends.redis import RedisBackend
from kqueue.testing import RedisServer
from kqueue.worker.rates import RateWindow
from tests.conftest import ROOT, run_kqueue
from tests.integration.test_redis_faults import RUNS_APP, dispatch, runs, stop, wait_until, worker
from tests.integration.test_redis_faults import app_dir as app_dir  # the fixture, shared

pytestmark = pytest.mark.redis


def test_rate_window_counts_the_last_minute_per_key():
    window = RateWindow()
    window.add("inline", 1000.2)
    window.add("inline", 1000.7, 2)
    window.add("pool", 1030.0)
    assert window.per_minute(1030.5) == {"inline": 3, "pool": 1}
    assert window.per_minute(1061.0) == {"pool": 1}
    assert window.per_minute(1200.0) == {}


@pytest.mark.timeout(90)
def test_two_hosts_share_one_redis_and_stats_shows_them(app_dir, tmp_path):
    # Given two workers started from two separate folders (two "hosts") on one private Redis
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
        (host / "runs_app.py").write_text(RUNS_APP)
    with RedisServer(tmp_path / "redis") as server:
        workers = [worker(host, server.url, "--max-concurrent-inline", "4") for host in hosts]
        backend = RedisBackend.from_url(server.url)
        try:
            wait_until(lambda: len(backend.worker_statuses()) == 2, 30, "both workers")
            # When 400 jobs of 10 ms are dispatched
            dispatch(server.url, 400, 0.01)
            wait_until(lambda: len(runs(app_dir)) == 400, 60, "every job")
            # Then both hosts ran a share of them, each job once
            by_pid = {}
            for pids in runs(app_dir).values():
                assert len(pids) == 1
                by_pid[pids[0]] = by_pid.get(pids[0], 0) + 1
            assert sorted(by_pid) == sorted(w.pid for w in workers)
            assert min(by_pid.values()) >= 40, by_pid
            # And kqueue stats shows the queue, both workers, and the inline rate, once both
            # have published a status counting their finished jobs (every 2 s, on a loop round)
            wait_until(lambda: _published_inline(backend) == 400, 30, "both workers' rates")
            backend.enqueue("default", "later", b"{}", delay_s=60)
            shown = run_kqueue(hosts[0], "stats", "--backend", server.url, "--json")
            assert shown.returncode == 0, shown.stderr
            report = json.loads(shown.stdout)
            assert report["queues"]["default"]["scheduled"] == 1
            assert report["per_minute"]["inline"] == 400
            assert {w["pid"] for w in report["workers"]} == {w.pid for w in workers}
            assert all("inline" in w["tiers"] for w in report["workers"])
            text = run_kqueue(hosts[0], "stats", "--backend", server.url).stdout
            assert "live workers: 2" in text and "inline 400" in text
        finally:
            stop(workers)
            backend.close()


def _published_inline(backend: RedisBackend) -> int:
    """Inline jobs per minute, summed over the statuses the workers last published."""
    bodies = [json.loads(status.body) for status in backend.worker_statuses()]
    return sum(int((body.get("per_minute") or {}).get("inline", 0)) for body in bodies)


@pytest.mark.timeout(120)
def test_benchmark_runs_tiny_and_prints_its_table():
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "bench_redis.py"),
            "--jobs",
            "300",
            "--samples",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("ceiling RPOP", "1 worker process", "2 worker processes", "p50", "p99"):
        assert row in done.stdout
