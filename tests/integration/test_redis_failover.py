"""Redis failover under Sentinel: the primary is SIGKILLed mid-run, a replica takes over.

Each test starts its own primary, replica and three sentinels (``tests.support.sentinel``), real
``kqueue run`` workers and a dispatcher process that dispatches numbered jobs with fixed ids
(a dispatch that failed is retried with the same id: it is added once) and writes down every
dispatch that returned. Jobs append their number to a per-process file, as in the chaos test,
so a Redis failure cannot lose or double a record of a run.

Redis replicates asynchronously: a dispatch the primary acknowledged but had not yet sent to
its replica when it died is gone after the replica is promoted. Such a job is *lost*: its
dispatch returned, and it never runs. With ``wait_replicas=1`` a dispatch returns only once the
replica has it, so none may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from kqueue.backends import open_backend
from kqueue.job import App
from kqueue.testing import WorkerThread
from tests.conftest import kqueue_env, require_redis_server
from tests.integration.test_redis_faults import (
    RUNS_APP,
    dispatch,
    queue_empty,
    runs,
    stop,
    wait_until,
    worker,
)
from tests.support.sentinel import SentinelCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Dispatches numbered jobs with ids ``j<i>``, retrying each until it returns; logs each return.
DISPATCHER = """
import sys, time
from kqueue import App
from kqueue.errors import BackendUnavailable

url, n, rate, sleep_s, log = sys.argv[1:6]
n, rate = int(n), float(rate)
app = App(url)
work = app.job(lambda i, sleep_s: None, name="work")
retries = 0
with open(log, "a", buffering=1) as out:
    started = time.monotonic()
    for i in range(n):
        while True:
            try:
                work.options(job_id=f"j{i}").dispatch(i, float(sleep_s))
                break
            except BackendUnavailable:  # failover in progress, or WAIT not confirmed: again
                retries += 1
                time.sleep(0.05)
        out.write(f"{i}\\n")
        time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
print(f"retries={retries}")
"""


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """A folder with the runs app, the dispatcher, and a ``runs`` folder."""
    require_redis_server()
    (tmp_path / "runs_app.py").write_text(RUNS_APP)
    (tmp_path / "dispatcher.py").write_text(DISPATCHER)
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(tmp_path / "runs"))
    return tmp_path


def start_dispatcher(app_dir: Path, url: str, n: int, rate_per_s: float) -> subprocess.Popen:
    """The dispatcher process: ``n`` jobs of 5 ms at ``rate_per_s``."""
    command = [sys.executable, "dispatcher.py", url, str(n), str(rate_per_s), "0.005"]
    out = open(app_dir / "dispatcher.out", "w")  # noqa: SIM115 - the child keeps its copy
    with out:
        return subprocess.Popen(
            [*command, str(app_dir / "dispatched.log")],
            cwd=app_dir,
            env=kqueue_env(app_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def dispatched(app_dir: Path) -> set[int]:
    """The jobs whose dispatch returned (its call was acknowledged)."""
    path = app_dir / "dispatched.log"
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


def failover_run(
    app_dir: Path, wait_replicas: int, lag_s: float = 0.0, n: int = 3000
) -> dict[str, int]:
    """Two workers and a dispatcher against a Sentinel cluster whose primary is SIGKILLed once
    a quarter of the jobs are dispatched; returns what was lost and duplicated.

    With ``lag_s`` the replica stops receiving writes that long before the kill (a lagging
    replica): what the primary acknowledged meanwhile is on no replica.
    """
    with SentinelCluster(app_dir / "redis") as cluster:
        url = cluster.url(wait_replicas=wait_replicas, wait_timeout_ms=500)
        lease = ("--visibility-timeout", "4", "--max-concurrent-inline", "8")
        workers = [worker(app_dir, url, *lease) for _ in range(2)]
        sender = start_dispatcher(app_dir, url, n, rate_per_s=600)
        backend = open_backend(url)
        try:
            # When the primary is SIGKILLed mid-run and the sentinels promote the replica
            wait_until(lambda: len(dispatched(app_dir)) > n // 4, 60, "dispatches")
            old = cluster.master_port()
            with cluster.replicas_lagging(old) if lag_s else contextlib.nullcontext():
                time.sleep(lag_s)
                cluster.kill(old)
            killed_at = time.monotonic()
            new = cluster.wait_failover(old, 60)
            failover_s = time.monotonic() - killed_at
            # (a supervisor restarts the dead server; it rejoins as the new primary's replica)
            cluster.rejoin(old)
            # Then the same workers and dispatcher carry on against the new primary
            assert sender.wait(120) == 0, (app_dir / "dispatcher.out").read_text()
            wait_until(lambda: queue_empty(backend), 90, "the queue to drain")
            assert all(w.poll() is None for w in workers), "a worker died"
        finally:
            stop(workers)
            if sender.poll() is None:
                sender.kill()
            backend.close()
    by_job, sent = runs(app_dir), dispatched(app_dir)
    return {
        "dispatched": len(sent),
        "lost": len(sent - set(by_job)),
        "ran": len(by_job),
        "duplicated": sum(len(pids) > 1 for pids in by_job.values()),
        "failover_ms": round(failover_s * 1000),
        "moved": int(new != old),
    }


#: The replica lags at every crash: that is the case where a failover can lose what it had
#: acknowledged, so without ``WAIT`` it shows the loss and with it proves none. Runs with the
#: replica in sync (lag 0) asserted nothing these do not: the same failover, with and without
#: ``WAIT``, only with nothing to lose (docs/DECISIONS.md, issue 20: CI wall time).
LAG_S = 0.4


@pytest.mark.timeout(240)
@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_workers_and_dispatchers_follow_a_failover(app_dir, wait_replicas):
    # Given a primary, a replica, three sentinels, two workers and a dispatcher at 600 jobs/s,
    # and a replica that stopped receiving writes LAG_S before the crash
    result = failover_run(app_dir, wait_replicas, LAG_S)
    print(f"failover wait_replicas={wait_replicas} lag_s={LAG_S}: {result}")
    # Then the workers and the dispatcher moved to the new primary and every job ran, except,
    # without WAIT, dispatches the old primary acknowledged but never passed to the replica
    assert result["moved"] == 1 and result["dispatched"] == 3000
    assert result["ran"] == 3000 - result["lost"]
    assert "retries=" in (app_dir / "dispatcher.out").read_text()
    if wait_replicas:
        assert result["lost"] == 0, result
        # a rerun only for jobs whose lease or ack was in flight at the crash (16 slots, acks
        # sent with the next lease)
        assert result["duplicated"] <= 100, result
    # Without WAIT a lagging replica may lose dispatches the old primary acknowledged (209 and
    # 241 of 3,000 in two loaded runs, none in a quiet one, where the replica had caught up
    # before the crash): the count is printed above, not asserted, since it depends on how far
    # behind the replica was; losing none is what WAIT guarantees, asserted above.


@pytest.mark.timeout(240)
def test_the_chaos_scenario_on_sentinel_with_wait(app_dir):
    # Given the chaos test's scenario (5,000 jobs, three workers with 8 s leases, worker 0
    # SIGKILLed and restarted every second, the durable primary crashing once for 1 s) on a
    # primary with a replica behind Sentinel, every dispatch and ack waiting for the replica
    # (wait_replicas=1); its sentinels wait 5 s before failing over, so the crash is a restart
    # from the append-only file, as in the chaos test. (Without WAIT this is the chaos test
    # itself, tests/integration/test_redis_faults.py, behind a Sentinel URL, which the failover
    # test above follows through a real failover.)
    n, args = 5000, ("--visibility-timeout", "8", "--max-concurrent-inline", "8")
    with SentinelCluster(app_dir / "redis", appendonly=True, down_after_ms=5000) as cluster:
        url = cluster.url(wait_replicas=1, wait_timeout_ms=1000)
        dispatch(url, n, 0.02)
        backend = open_backend(url)
        workers = [worker(app_dir, url, *args) for _ in range(3)]
        killed: set[int] = set()
        try:
            started, crashed = time.monotonic(), False
            while len(runs(app_dir)) < n:
                assert time.monotonic() - started < 150, f"only {len(runs(app_dir))} of {n} ran"
                time.sleep(1.0)
                if not crashed and time.monotonic() - started > 2:
                    primary = cluster.master_port()
                    cluster.kill(primary)
                    time.sleep(1.0)
                    cluster.start_server(primary)
                    crashed = True
                if len(runs(app_dir)) < n * 0.9:
                    workers[0].kill()
                    workers[0].wait()
                    killed.add(workers[0].pid)
                    workers[0] = worker(app_dir, url, *args)
            wait_until(lambda: queue_empty(backend), 60, "the queue to drain")
            elapsed_s = time.monotonic() - started
            assert all(w.poll() is None for w in workers[1:]), "a surviving worker died"
        finally:
            stop(workers)
            backend.close()
    # Then every job ran; a job ran twice only if a killed worker ran it first
    by_job = runs(app_dir)
    assert sorted(by_job) == list(range(n))
    duplicates = {i: pids for i, pids in by_job.items() if len(pids) > 1}
    unexplained = {
        i: pids for i, pids in duplicates.items() if sum(p not in killed for p in pids) > 1
    }
    print(
        f"chaos on sentinel, wait_replicas=1: {n} jobs, "
        f"{sum(map(len, by_job.values()))} runs, {len(killed)} worker kills, 1 primary crash, "
        f"{len(duplicates)} duplicated, {len(unexplained)} unexplained, {elapsed_s:.1f} s"
    )
    assert crashed and len(killed) >= 2
    assert unexplained == {}


@pytest.mark.timeout(90)
def test_async_dispatch_and_result_go_through_the_sentinels_and_wait(tmp_path):
    # Given an app on a Sentinel URL with wait_replicas=1, and a worker beside the test
    require_redis_server()
    with SentinelCluster(tmp_path / "redis") as cluster:
        app = App(cluster.url(wait_replicas=1))
        double = app.job(lambda x: 2 * x, name="double", tier="inline")
        primary = redis.Redis(port=cluster.master_port())
        try:
            with WorkerThread(app):
                # When a job is dispatched and awaited from asyncio
                async def roundtrip() -> int:
                    handle = await double.dispatch_async(21)
                    return await handle.result_async(timeout_s=30)

                # Then it ran through the current master, with WAIT after dispatch and ack
                assert asyncio.run(roundtrip()) == 42
            assert int(primary.info("commandstats")["cmdstat_wait"]["calls"]) >= 2
        finally:
            primary.close()
            app.close()
