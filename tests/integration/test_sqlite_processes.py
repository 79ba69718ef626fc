"""Shared limits and the schedule leader over real ``kqueue run`` processes on one SQLite file.

The unit tests run SQLite's limits and leader lease on threads of one process; these run them
where they matter: separate processes, each with its own connection, one of them SIGKILLed.
Jobs write when they started and ended to files, so the test sees every start in every process.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import pytest

import kqueue
from kqueue.worker.periodic import tick_job_id
from tests.conftest import start_kqueue
from tests.integration.test_redis_faults import stop, wait_until

pytestmark = pytest.mark.slow

APP = """
import os, time
from pathlib import Path
import kqueue
from kqueue import App

app = App()
RUNS = Path(os.environ["KQUEUE_TEST_RUNS"])


def note(kind, what):
    with open(RUNS / f"{kind}-{os.getpid()}", "a") as out:
        out.write(what + "\\n")


@app.job(name="capped", tier="inline", concurrency_limit=2)
def capped(i):
    started = time.time()
    time.sleep(0.3)
    note("capped", f"{i} {started!r} {time.time()!r}")


@app.job(name="tick", tier="inline")
def tick():
    note("tick", kqueue.current_job().id)
"""
SCHEDULE = """
leader_lease_s = 2.0

[schedules.every-second]
job = "tick"
every_s = 1
"""
LEASE_S = 2.0


def _lines(runs: Path, kind: str) -> list[tuple[str, str]]:
    """Each line a job wrote, with the file (one per process) it is in."""
    return [
        (line, path.name)
        for path in runs.glob(f"{kind}-*")
        for line in path.read_text().split("\n")
        if line
    ]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    (tmp_path / "procapp.py").write_text(APP)
    (tmp_path / "kqueue.toml").write_text(SCHEDULE)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(runs))
    return tmp_path


def _workers(app_dir: Path, url: str, count: int, *extra: str):
    args = ("run", "--app", "procapp:app", "--backend", url, "--shutdown-grace", "1")
    args += ("--pool-size", "0", "--pool-max-size", "0", *extra)
    return [start_kqueue(app_dir, *args) for _ in range(count)]


@pytest.mark.timeout(120)
def test_concurrency_limit_holds_across_two_worker_processes_on_one_sqlite_file(app_dir):
    url = f"sqlite:///{app_dir / 'kqueue.db'}"
    app = kqueue.App(url)
    capped = app.job(lambda i: None, name="capped")
    # Given two worker processes on one SQLite file, and 16 jobs of 0.3 s limited to 2 at once
    workers = _workers(app_dir, url, 2)
    try:
        wait_until(lambda: len(app.backend.worker_statuses()) == 2, 30, "both workers")
        capped.dispatch_many([((i,), {}) for i in range(16)])
        samples = []
        deadline = time.monotonic() + 60
        while len(_lines(app_dir / "runs", "capped")) < 16 and time.monotonic() < deadline:
            samples.append(len(app.backend.slot_holders("concurrency:capped")))
            time.sleep(0.05)
    finally:
        stop(workers)
        app.close()
    rows = [(line.split(), name) for line, name in _lines(app_dir / "runs", "capped")]
    # Then each ran once, never more than 2 at once (by their clocks and sampled in SQLite)
    assert sorted(int(fields[0]) for fields, _ in rows) == list(range(16))
    spans = [(float(fields[1]), float(fields[2])) for fields, _ in rows]
    print(f"overlap {_max_overlap(spans)}, sampled slots at most {max(samples)}, "
          f"{len({name for _, name in rows})} processes ran jobs")  # fmt: skip
    assert _max_overlap(spans) <= 2 and max(samples) <= 2


@pytest.mark.timeout(120)
def test_a_sigkilled_leader_process_is_replaced_and_each_tick_runs_once(app_dir):
    url = f"sqlite:///{app_dir / 'kqueue.db'}"
    app = kqueue.App(url)
    # Given three worker processes on one SQLite file and a schedule every second
    workers = _workers(app_dir, url, 3, "--config", "kqueue.toml", "--visibility-timeout", "5")
    try:
        wait_until(lambda: app.backend.leader() is not None, 30, "a leader")
        first_tick = math.ceil(time.time()) + 1
        # When the leader process is SIGKILLed 5 s in
        time.sleep(max(0.0, first_tick + 5 - time.time()))
        leader_pid = int(app.backend.leader()[0].split(":")[1])
        victim = next(w for w in workers if w.pid == leader_pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        # Then another process leads within one lease (and a renew interval)
        wait_until(
            lambda: (app.backend.leader() or ("",))[0].split(":")[1:2] != [str(leader_pid)],
            LEASE_S + 3,
            "a new leader",
        )
        took_s = time.monotonic() - killed_at
        time.sleep(max(0.0, first_tick + 12 + 2 * LEASE_S - time.time()))
    finally:
        stop([w for w in workers if w.poll() is None])
        app.close()
    # And each of the 12 seconds' ticks ran, none twice
    ran = [line for line, _ in _lines(app_dir / "runs", "tick")]
    window = [tick_job_id("every-second", float(first_tick + k)) for k in range(12)]
    missing = [k for k, job_id in enumerate(window) if job_id not in set(ran)]
    print(f"new leader after {took_s:.1f} s; {12 - len(missing)} of 12 ticks ran, "
          f"{len(ran) - len(set(ran))} twice")  # fmt: skip
    assert len(ran) == len(set(ran)), "a tick ran twice"
    assert len(missing) <= 1, missing
