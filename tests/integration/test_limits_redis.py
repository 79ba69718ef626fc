"""Shared limits over two real ``kqueue run`` workers on one private Redis.

Jobs write when they started and ended to files (not Redis), so a test sees every start of
every job in every process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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


def note(kind, i, started, ended):
    with open(RUNS / f"{kind}-{os.getpid()}", "a") as out:
        out.write(f"{i} {started!r} {ended!r}\\n")


@app.job(name="rated", tier="inline", rate_limit="10/s")
def rated(i):
    note("rated", i, time.time(), time.time())


@app.job(name="capped", tier="inline", concurrency_limit=3)
def capped(i):
    started = time.time()
    time.sleep(0.3)
    note("capped", i, started, time.time())


@app.job(name="stuck", tier="inline", concurrency_limit=2)
def stuck(i):
    note("stuck", i, time.time(), 0.0)
    time.sleep(600)


@app.job(name="serial", tier="inline", concurrency_limit=1)
def serial(i, sleep_s=0.15):
    note("serial", i, time.time(), 0.0)
    time.sleep(sleep_s)


@app.job(name="free", tier="inline")
def free(i):
    note("free", i, time.time(), time.time())
"""
LEASE_S = 4.0


class Fleet(list):
    """The worker processes, and the arguments that started them."""

    args: tuple[str, ...] = ()


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """A private Redis and two workers on it, leases (and slots) of ``LEASE_S``."""
    require_redis_server()
    (tmp_path / "limitapp.py").write_text(APP)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(runs))
    with RedisServer(tmp_path / "redis") as server:
        args = ("run", "--app", "limitapp:app", "--backend", server.url, "--shutdown-grace", "1")
        args += ("--visibility-timeout", str(LEASE_S), "--pool-size", "0", "--pool-max-size", "0")
        workers = Fleet(start_kqueue(tmp_path, *args) for _ in range(2))
        workers.args = args
        app = kqueue.App(server.url)
        try:
            wait_until(lambda: len(app.backend.worker_statuses()) == 2, 30, "both workers")
            yield app, runs, workers
        finally:
            stop(workers)
            app.close()


def runs_of(runs: Path, kind: str) -> list[tuple[int, float, float, str]]:
    rows = []
    for path in runs.glob(f"{kind}-*"):
        for line in path.read_text().split("\n"):
            if line:
                i, started, ended = line.split()
                rows.append((int(i), float(started), float(ended), path.name))
    return sorted(rows, key=lambda row: row[1])


def client(app):
    return {
        name: app.job(lambda i, sleep_s=0.15: None, name=name)
        for name in ("rated", "capped", "stuck", "serial", "free")
    }


@pytest.mark.timeout(120)
def test_rate_limit_10_per_s_holds_across_two_workers_and_other_classes_run(fleet):
    app, runs, _ = fleet
    jobs = client(app)
    # Given 200 rate-limited jobs, then 50 unlimited ones behind them
    jobs["rated"].dispatch_many([((i,), {}) for i in range(200)])
    jobs["free"].dispatch_many([((i,), {}) for i in range(50)])
    # Then the unlimited class does not wait behind the limited one
    wait_until(lambda: len(runs_of(runs, "free")) == 50, 15, "the unlimited jobs")
    wait_until(lambda: len(runs_of(runs, "rated")) == 200, 60, "200 rated runs")
    rows = runs_of(runs, "rated")
    assert sorted(r[0] for r in rows) == list(range(200))  # each once
    assert len({r[3] for r in rows}) == 2  # both workers ran some
    # And every 5 s window after the first second starts 10/s within 10%
    first = rows[0][1] + 1.0
    starts = [r[1] for r in rows]
    windows = [sum(1 for s in starts if t <= s < t + 5) for t in (first, first + 5, first + 10)]
    print(f"starts per 5 s window: {windows}")
    assert all(45 <= n <= 55 for n in windows), windows
    # And no held-back job counted as an attempt
    assert not app.backend.dead_letters()


def _max_overlap(rows) -> int:
    edges = sorted([(r[1], 1) for r in rows] + [(r[2], -1) for r in rows])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.timeout(120)
def test_concurrency_limit_3_over_two_workers_and_a_killed_workers_slots_return(fleet, tmp_path):
    app, runs, workers = fleet
    fleet_args = workers.args
    jobs = client(app)
    # Given 30 jobs of 0.3 s with concurrency_limit=3 over two workers
    jobs["capped"].dispatch_many([((i,), {}) for i in range(30)])
    samples = []
    deadline = time.monotonic() + 40
    while len(runs_of(runs, "capped")) < 30 and time.monotonic() < deadline:
        samples.append(len(app.backend.slot_holders("concurrency:capped")))
        time.sleep(0.05)
    rows = runs_of(runs, "capped")
    assert sorted(r[0] for r in rows) == list(range(30))
    # Then never more than 3 ran at once (by their own clocks, and sampled in Redis)
    assert _max_overlap(rows) <= 3 and max(samples) <= 3
    assert _max_overlap(rows) >= 2  # and the limit, not one worker, set the pace
    # When a worker holding both slots of "stuck" is SIGKILLed
    jobs["stuck"].dispatch_many([((i,), {}) for i in range(3)])
    wait_until(lambda: len(runs_of(runs, "stuck")) == 2, 20, "two stuck jobs running")
    holder_pids = {int(r[3].split("-")[1]) for r in runs_of(runs, "stuck")}
    victims = [w for w in workers if w.pid in holder_pids]
    for victim in victims:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    killed_at = time.monotonic()
    if len(victims) == len(workers):  # each held one: a fresh worker takes over
        workers.append(start_kqueue(tmp_path, *fleet_args))
    # Then the slots come back within one lease: a stuck job starts again (the third, or a
    # killed one whose lease expired too)
    wait_until(lambda: len(runs_of(runs, "stuck")) >= 3, 3 * LEASE_S + 10, "a new start")
    took_s = time.monotonic() - killed_at
    print(f"slots back after {took_s:.1f} s (lease {LEASE_S} s)")
    assert took_s <= 2 * LEASE_S + 5


@pytest.mark.timeout(120)
def test_a_concurrency_limited_class_takes_its_slot_in_priority_then_dispatch_order(fleet):
    app, runs, _ = fleet
    serial = client(app)["serial"]
    # Given 12 jobs of concurrency_limit=1 dispatched in order over two workers (all but the
    # first held back at least once), then 3 of a higher priority while they wait
    for i in range(12):
        serial.dispatch(i)
        time.sleep(0.01)
    wait_until(lambda: len(runs_of(runs, "serial")) >= 2, 15, "two serial starts")
    for i in range(100, 103):
        serial.options(priority=5).dispatch(i)
        time.sleep(0.01)
    wait_until(lambda: len(runs_of(runs, "serial")) == 15, 30, "15 serial runs")
    order = [r[0] for r in runs_of(runs, "serial")]
    print(f"start order: {order}")
    assert len({r[3] for r in runs_of(runs, "serial")}) == 2  # both workers ran some
    # Then each priority started in dispatch order, and the high ones before the low ones
    # still waiting (one low job may have taken the slot as they were dispatched)
    lows = [i for i in order if i < 100]
    assert lows == sorted(lows) and [i for i in order if i >= 100] == [100, 101, 102]
    first_high = order.index(100)
    assert order[first_high : first_high + 3] == [100, 101, 102]
    assert first_high <= 4, order


@pytest.mark.timeout(120)
def test_a_worker_killed_while_its_job_is_on_the_wait_list_stalls_the_class_one_lease(fleet):
    app, runs, workers = fleet
    serial = client(app)["serial"]
    waiting_key = app.backend._limit_key("concurrency:serial", "waiting")
    # Given a 2 s job holding the one slot and two jobs waiting behind it
    serial.dispatch(0, sleep_s=2.0)
    wait_until(lambda: len(runs_of(runs, "serial")) == 1, 15, "the long job")
    serial.dispatch(1)
    serial.dispatch(2)
    wait_until(lambda: app.backend.client.zcard(waiting_key) >= 1, 10, "a job on the wait list")
    # When the other worker (which may hold a waiting job) is SIGKILLed
    runner_pid = int(runs_of(runs, "serial")[0][3].split("-")[1])
    victim = next(w for w in workers if w.pid != runner_pid)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    # Then both waiting jobs run on the survivor, within one lease of the kill
    wait_until(lambda: len(runs_of(runs, "serial")) == 3, 3 * LEASE_S + 10, "the waiting jobs")
    took_s = time.monotonic() - killed_at
    print(f"the class ran on after {took_s:.1f} s (lease {LEASE_S} s)")
    assert sorted(r[0] for r in runs_of(runs, "serial")) == [0, 1, 2]
    assert took_s <= LEASE_S + 3
