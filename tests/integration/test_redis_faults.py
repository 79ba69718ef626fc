"""The Redis backend under faults: killed workers, a crashed Redis, dropped connections.

Each test starts its own private redis-server (never the shared one) and real ``kqueue run``
processes. Jobs append their id to a per-process file (not Redis, so a Redis outage cannot lose
or double a record): a test counts every run of every job and knows which process ran it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from kqueue.backends.redis import RedisBackend
from kqueue.errors import BackendUnavailable
from kqueue.job import App
from kqueue.policy.config import Config
from kqueue.testing import RedisServer
from kqueue.worker import Worker
from kqueue.worker.recorder import DURATIONS_FLUSH_S
from tests.conftest import require_redis_server, start_kqueue

pytestmark = [pytest.mark.redis, pytest.mark.slow]

RUNS_APP = """
import os, time
from kqueue import App

app = App()
_fd = []


def _log():
    if not _fd:
        path = os.path.join(os.environ["KQUEUE_TEST_RUNS"], f"{os.getpid()}.runs")
        _fd.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    return _fd[0]


@app.job(name="work", tier="inline", max_attempts=10)
def work(i, sleep_s):
    time.sleep(sleep_s)
    os.write(_log(), f"{i}\\n".encode())
"""


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """A folder with the test app and a ``runs`` folder its jobs record into."""
    require_redis_server()
    (tmp_path / "runs_app.py").write_text(RUNS_APP)
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(tmp_path / "runs"))
    return tmp_path


def runs(app_dir: Path) -> dict[int, list[int]]:
    """Job number -> the pids of the processes that finished a run of it."""
    by_job: dict[int, list[int]] = {}
    for path in (app_dir / "runs").glob("*.runs"):
        pid = int(path.stem)
        for line in path.read_text().split():
            by_job.setdefault(int(line), []).append(pid)
    return by_job


def dispatch(url: str, n: int, sleep_s: float) -> None:
    app = App(url)
    work = app.job(lambda i, sleep_s: None, name="work")
    work.dispatch_many([((i, sleep_s), {}) for i in range(n)])
    app.close()


def worker(app_dir: Path, url: str, *extra: str) -> subprocess.Popen:
    return start_kqueue(
        app_dir, "run", "--app", "runs_app:app", "--backend", url, "--inline", *extra
    )


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def queue_empty(backend: RedisBackend) -> bool:
    try:
        return not any(sum(c.values()) for c in backend.counts().values())
    except BackendUnavailable:
        return False


def worker_log(app_dir: Path) -> str:
    """What the one worker started in ``app_dir`` has logged so far."""
    return "".join(path.read_text() for path in app_dir.glob("worker-*.log"))


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(30)


@pytest.mark.timeout(150)
def test_chaos_killed_workers_and_a_redis_crash_lose_no_job(app_dir):
    # Given a durable private Redis (appendfsync always, as production runs it), 5,000 jobs
    # and three workers whose leases last 8 s
    server = RedisServer(app_dir / "redis", appendonly=True).start()
    n, args = 5000, ("--visibility-timeout", "8", "--max-concurrent-inline", "8")
    dispatch(server.url, n, 0.02)  # >= 4 s of work for 3 x 8 slots: time for several kills
    backend = RedisBackend.from_url(server.url)
    workers = [worker(app_dir, server.url, *args) for _ in range(3)]
    killed: set[int] = set()
    try:
        # When worker 0 is SIGKILLed and restarted every 1 s, and Redis crashes once (SIGKILL,
        # down 1 s, restarted on the same port from its append-only file)
        started, crashed = time.monotonic(), False
        while len(runs(app_dir)) < n:
            assert time.monotonic() - started < 100, f"only {len(runs(app_dir))} of {n} ran"
            time.sleep(1.0)
            if not crashed and time.monotonic() - started > 2:
                server.restart(down_s=1.0, crash=True)
                crashed = True
            if len(runs(app_dir)) < n * 0.9:
                workers[0].kill()
                workers[0].wait()
                killed.add(workers[0].pid)
                workers[0] = worker(app_dir, server.url, *args)
        wait_until(lambda: queue_empty(backend), 60, "the queue to drain")
        assert all(w.poll() is None for w in workers[1:]), "a surviving worker died"
    finally:
        stop(workers)
        backend.close()
        server.stop()
    # Then every job ran; a job ran twice only if a killed worker ran it first
    by_job = runs(app_dir)
    assert sorted(by_job) == list(range(n))
    duplicates = {i: pids for i, pids in by_job.items() if len(pids) > 1}
    unexplained = {
        i: pids for i, pids in duplicates.items() if sum(p not in killed for p in pids) > 1
    }
    print(
        f"chaos: {n} jobs, {sum(map(len, by_job.values()))} runs, {len(killed)} worker kills, "
        f"1 redis crash, {len(duplicates)} duplicated job(s), all by killed workers"
    )
    assert crashed and len(killed) >= 2
    assert unexplained == {}


@pytest.mark.timeout(90)
def test_dropped_connections_mid_run_do_not_stop_the_worker(app_dir):
    # Given one worker draining 1,500 jobs from a private Redis
    with RedisServer(app_dir / "redis") as server:
        n = 1500
        dispatch(server.url, n, 0.01)  # >= 1.9 s of work on 8 slots: time for the kills
        # a LEASE whose reply a kill cut off leaves its jobs leased to nobody until the lease
        # expires (at least once, never lost): a short lease keeps that wait short
        lease = ("--visibility-timeout", "4")
        process = worker(app_dir, server.url, "--max-concurrent-inline", "8", *lease)
        admin = redis.Redis(port=server.port)
        try:
            wait_until(lambda: len(runs(app_dir)) > 0, 30, "the worker to start")
            # When every client connection is killed (CLIENT KILL), ten times while it runs
            kills = 0
            for _ in range(10):
                if len(runs(app_dir)) >= n:
                    break
                kills += admin.client_kill_filter(_type="normal", skipme=True)
                time.sleep(0.15)
            # Then the same worker process carries on and finishes every job
            wait_until(lambda: len(runs(app_dir)) == n, 60, "every job to run")
            backend = RedisBackend.from_url(server.url)
            wait_until(lambda: queue_empty(backend), 30, "the acks")
            backend.close()
            assert process.poll() is None, "the worker exited"
            assert kills >= 3, "the run ended before connections were killed"
        finally:
            stop([process])
            admin.close()
    assert process.returncode == 0
    assert sorted(runs(app_dir)) == list(range(n))


def test_worker_backs_off_while_redis_is_down_and_resumes(app_dir):
    # Given a worker, up and serving, whose Redis goes away (non-durable, so it comes back empty)
    with RedisServer(app_dir / "redis") as server:
        process = worker(app_dir, server.url)
        try:
            status = RedisBackend.from_url(server.url)
            wait_until(lambda: status.worker_statuses(), 30, "the worker to be up")
            status.close()
            server.kill()
            # (what the test waits for is the worker noticing, not a guess of how long it takes)
            wait_until(lambda: "backend unavailable" in worker_log(app_dir), 30, "the outage")
            # When Redis is back and jobs arrive
            server.start()
            dispatch(server.url, 20, 0.0)
            # Then the same worker runs them, having logged the outage without the traceback spam
            wait_until(lambda: len(runs(app_dir)) == 20, 30, "jobs after the restart")
        finally:
            stop([process])
    log = worker_log(app_dir)
    assert "backend unavailable" in log and "reachable again" in log
    assert "Traceback" not in log


def test_a_worker_started_before_redis_waits_for_it_and_stops_cleanly_while_it_is_down(app_dir):
    # Given a worker started while its Redis is not up yet
    server = RedisServer(app_dir / "redis")
    process = worker(app_dir, server.url)
    try:
        wait_until(lambda: "backend unavailable" in worker_log(app_dir), 30, "a first try")
        assert process.poll() is None, "the worker gave up on a Redis that was not up yet"
        # When Redis comes up and jobs arrive, then the worker runs them
        server.start()
        dispatch(server.url, 10, 0.0)
        wait_until(lambda: len(runs(app_dir)) == 10, 30, "jobs once Redis is up")
        # And when Redis goes away again, SIGTERM still stops the worker cleanly
        server.kill()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()


@pytest.mark.timeout(60)
def test_a_stop_while_redis_is_down_ends_the_worker_even_with_durations_to_share(tmp_path):
    # Given a worker that ran a job, whose duration it has not shared yet, when Redis died
    require_redis_server()
    server = RedisServer(tmp_path / "redis").start()
    app = App(server.url)
    ran = threading.Event()
    app.job(ran.set, name="faults.once").dispatch()
    worker = Worker(app, Config(), force_inline=True)
    summaries = []
    thread = threading.Thread(target=lambda: summaries.append(asyncio.run(worker.run())))
    thread.start()
    try:
        assert ran.wait(30), "the job did not run"
        server.kill()
        time.sleep(DURATIONS_FLUSH_S + 0.5)  # sharing the duration is due: the worker backs off
        # When it is asked to stop while Redis is still down
        worker.request_stop()
        thread.join(15)
        # Then it stops at once instead of waiting for Redis to come back
        assert not thread.is_alive(), "the worker waited for Redis to stop"
        assert summaries[0].done == 1
    finally:
        server.start()  # lets a stuck worker finish, so the thread ends either way
        thread.join(30)
        server.stop()
        app.close()
