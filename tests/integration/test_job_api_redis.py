"""The job API on one private Redis with two real ``kqueue run`` workers: unique, delay, cancel.

Jobs write what they did to files (not Redis), so a test counts every run of every job and
knows which process ran it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

import kqueue
from kqueue.testing import RedisServer
from tests.conftest import require_redis_server, start_kqueue
from tests.integration.test_redis_faults import stop, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = """
import os, time
from pathlib import Path
from kqueue import App

app = App()
RUNS = Path(os.environ["KQUEUE_TEST_RUNS"])


@app.job(name="once", tier="inline")
def once(i):
    with open(RUNS / f"once-{os.getpid()}", "a") as out:
        out.write(f"{i}\\n")


@app.job(name="stamp", tier="inline")
def stamp():
    (RUNS / "stamp").write_text(repr(time.time()))


@app.job(name="hang", tier="pool", max_attempts=3, estimated_duration_s=60)
def hang(i):
    (RUNS / f"hang-{i}").write_text(str(os.getpid()))
    time.sleep(600)
"""


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """A private Redis and two workers (5 pool processes each) serving the test app on it."""
    require_redis_server()
    (tmp_path / "jobapp.py").write_text(APP)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(runs))
    with RedisServer(tmp_path / "redis") as server:
        args = ("run", "--app", "jobapp:app", "--backend", server.url, "--shutdown-grace", "1")
        pool = ("--pool-size", "5", "--pool-max-size", "5")
        workers = [start_kqueue(tmp_path, *args, *pool) for _ in range(2)]
        app = kqueue.App(server.url)
        try:
            wait_until(lambda: len(app.backend.worker_statuses()) == 2, 30, "both workers")
            yield app, runs, workers
        finally:
            stop(workers)
            app.close()


def client_jobs(app: kqueue.App):
    """The client's view of the app's jobs (names and signatures only)."""
    return (
        app.job(lambda i: None, name="once"),
        app.job(lambda: None, name="stamp"),
        app.job(lambda i: None, name="hang", tier="pool"),
    )


def once_runs(runs: Path) -> list[int]:
    return [int(x) for path in runs.glob("once-*") for x in path.read_text().split()]


@pytest.mark.timeout(120)
def test_unique_keys_dispatched_twice_run_once_each(fleet):
    app, runs, _ = fleet
    once, _, _ = client_jobs(app)
    # When 1,000 jobs with unique keys are each dispatched twice while two workers run them
    handles = []
    for i in range(1000):
        call = once.options(unique_key=f"order:{i}", unique_for_s=300)
        handles.append((call.dispatch(i), call.dispatch(i)))
    # Then the second dispatch returned the first's handle, and each job ran exactly once
    assert all(first == second for first, second in handles)
    wait_until(lambda: len(once_runs(runs)) >= 1000, 60, "1,000 runs")
    time.sleep(1.0)  # a duplicate, if any, would run by now
    done = once_runs(runs)
    assert sorted(done) == list(range(1000))
    assert handles[-1][0].result(timeout_s=10) is None


@pytest.mark.timeout(60)
def test_a_job_delayed_3_s_starts_between_3_0_and_3_5_s_after_dispatch(fleet):
    app, runs, _ = fleet
    _, stamp, _ = client_jobs(app)
    dispatched = time.time()
    handle = stamp.options(delay_s=3).dispatch()
    assert handle.status() is kqueue.JobState.SCHEDULED
    handle.result(timeout_s=20)
    started_after_s = float((runs / "stamp").read_text()) - dispatched
    print(f"delayed 3 s, started {started_after_s:.3f} s after dispatch")
    assert 3.0 <= started_after_s <= 3.5, started_after_s


def fill_pools(hang, runs: Path, processes: int) -> list[tuple[int, kqueue.JobHandle]]:
    """Dispatch blockers until ``processes`` of them run; returns (number, handle) of those."""
    handles = {i: hang.dispatch(i) for i in range(processes)}
    deadline = time.monotonic() + 60
    while len(list(runs.glob("hang-*"))) < processes:
        assert time.monotonic() < deadline, "the pools never filled"
        time.sleep(0.5)
        if len(list(runs.glob("hang-*"))) < processes:
            handles[len(handles)] = hang.dispatch(len(handles))
    started = sorted(int(p.name.split("-")[1]) for p in runs.glob("hang-*"))
    return [(i, handles[i]) for i in started]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.timeout(120)
def test_cancel_50_queued_and_5_running_pool_jobs(fleet):
    app, runs, workers = fleet
    _, _, hang = client_jobs(app)
    # Given both pools full (10 pool jobs running; a worker may hold one unstarted behind its
    # full pool, so blockers are added until every process runs one) and 50 queued behind them
    running = fill_pools(hang, runs, processes=10)
    queued = [hang.dispatch(100 + i) for i in range(50)]
    time.sleep(0.5)  # the workers hold some of them, unstarted, behind their full pools
    # When the 50 queued are cancelled, then 5 of the running ones
    before = [handle.cancel() for handle in queued]
    assert set(before) <= {kqueue.JobState.QUEUED, kqueue.JobState.RUNNING}
    time.sleep(1.0)
    pids = {h.id: int((runs / f"hang-{i}").read_text()) for i, h in running[:5]}
    cancelled_at = time.monotonic()
    assert {h.cancel() for _, h in running[:5]} == {kqueue.JobState.RUNNING}
    wait_until(lambda: all(_gone(pid) for pid in pids.values()), 5, "killed processes")
    gone_s = time.monotonic() - cancelled_at
    # Then each running process is gone within 1 s, and nothing cancelled runs (again)
    print(f"5 cancelled pool processes gone {gone_s:.3f} s after cancel()")
    assert gone_s < 1.0, gone_s
    for handle in [*queued, *(h for _, h in running[:5])]:
        with pytest.raises(kqueue.JobCancelled):
            handle.result(timeout_s=10)
    time.sleep(1.5)  # a retry or a queued job would have started by now
    started = sorted(int(p.name.split("-")[1]) for p in runs.glob("hang-*"))
    assert all(i < 100 for i in started), started  # no queued job ever started
    rerun = {i for i, h in running[:5] if int((runs / f"hang-{i}").read_text()) != pids[h.id]}
    assert rerun == set()  # and no cancelled one ran again
    assert all(h.info().attempts == 1 for _, h in running[:5])
    assert {h.status() for _, h in running[5:]} == {kqueue.JobState.RUNNING}
    assert all(w.poll() is None for w in workers) and os.getpid()
