"""A real worker keeps its memory budget: memory-heavy pool and isolated jobs, PSS sampled."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import psutil

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.worker.budget import tree_pss_mb
from tests.conftest import kqueue_cmd, kqueue_env
from tests.support.tierapp import enqueue, ok_rows, wait_for

APP = """
import time
from pathlib import Path
from kqueue.job import App

HERE = Path(__file__).parent
app = App("sqlite:///" + str(HERE / "kq.db"))


def hog(megabytes, seconds):
    block = bytearray(int(megabytes * 1024 * 1024))
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page: resident, not only reserved
    time.sleep(seconds)
    return len(block) // (1024 * 1024)


app.job(hog, name="pool.hog", tier="pool", max_memory_mb=250)
app.job(hog, name="iso.hog", tier="isolated", max_memory_mb=250)
"""

BUDGET_TOML = """
memory_budget_mb = 600
max_memory_mb = 250
pool_size = 4
pool_max_size = 4
max_concurrent_isolated = 4
history_min_samples = 2
"""


class _PssWatcher(threading.Thread):
    """Sums the PSS of a process and its descendants every ``interval_s`` until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples_mb: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                root = psutil.Process(self.pid)
                pids = [self.pid, *(child.pid for child in root.children(recursive=True))]
            except psutil.Error:
                return
            self.samples_mb.append(sum(v for p in pids if (v := tree_pss_mb(p)) == v))


def test_worker_tree_stays_within_its_budget_and_every_job_completes(tmp_path):
    # Given a worker with a 600 MB budget and room for 8 jobs of 120 MB at once (960 MB)
    (tmp_path / "budgetjobs.py").write_text(APP)
    (tmp_path / "kqueue.toml").write_text(BUDGET_TOML)
    backend = SQLiteBackend(tmp_path / "kq.db")
    run = ("run", "--app", "budgetjobs:app", "--config", "kqueue.toml", "--trace-out", "trace.csv")
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(
            kqueue_cmd(*run), cwd=tmp_path, env=kqueue_env(tmp_path), stdout=log, stderr=log
        )
    try:
        time.sleep(1.0)
        watcher = _PssWatcher(worker.pid)
        watcher.start()
        # When 12 pool and 6 isolated jobs of 120 MB each arrive at once
        enqueue(backend, "pool.hog", 120, 0.5, count=12)
        enqueue(backend, "iso.hog", 120, 0.5, count=6)
        # Then every job completes
        done = lambda: ok_rows(tmp_path, "pool.hog") + ok_rows(tmp_path, "iso.hog") == 18  # noqa: E731
        assert wait_for(done, 120, 0.2), (tmp_path / "worker.log").read_text()[-3000:]
        watcher.done.set()
        watcher.join()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # And the tree's PSS, sampled every 100 ms, never passed the budget by more than 5%
    peak_mb = max(watcher.samples_mb)
    assert peak_mb <= 600 * 1.05, f"peak PSS {peak_mb:.0f} MB"
    print(f"peak PSS {peak_mb:.0f} MB over {len(watcher.samples_mb)} samples")
    assert peak_mb > 250  # the jobs did run side by side, as far as the budget allowed


def test_bad_budgets_are_clear_errors_at_start(tmp_path):
    from tests.conftest import run_kqueue

    (tmp_path / "budgetjobs.py").write_text(APP)
    (tmp_path / "plainjobs.py").write_text(APP.split("app.job(hog")[0] + "app.job(hog)\n")
    plain = run_kqueue(
        tmp_path, "run", "--app", "plainjobs:app", "--burst", "--memory-budget-mb", "5",
        "--max-memory-mb", "1",
    )  # fmt: skip
    assert plain.returncode != 0 and "is not above this worker's own" in plain.stderr, plain.stderr
    run = ("run", "--app", "budgetjobs:app", "--burst")
    cases = {
        ("--memory-budget-mb", "lots"): "argument --memory-budget-mb: invalid float value: 'lots'",
        ("--memory-budget-mb", "200"): "max_memory_mb (1024) is above memory_budget_mb (200)",
        # the decorator's own limit (250) above the budget
        ("--memory-budget-mb", "200", "--max-memory-mb", "100"): "max_memory_mb (250) is above",
    }
    for options, message in cases.items():
        result = run_kqueue(tmp_path, *run, *options)
        assert result.returncode != 0 and message in result.stderr, (options, result.stderr)


QUARANTINE_APP = """
from pathlib import Path
from kqueue.job import App

HERE = Path(__file__).parent
app = App("sqlite:///" + str(HERE / "kq.db"))


@app.job(name="pool.greedy", tier="pool", max_memory_mb=80, max_attempts=1)
def greedy(megabytes):
    block = bytearray(int(megabytes) << 20)
    block[::4096] = b"x" * (len(block) // 4096)
    return len(block) >> 20
"""


def test_a_class_that_keeps_dying_for_memory_is_quarantined_to_the_isolated_tier(tmp_path):
    import json

    from kqueue.policy import read_trace

    # Given a pool job class whose jobs go past their limit, quarantined after 2 such deaths
    (tmp_path / "greedy.py").write_text(QUARANTINE_APP)
    (tmp_path / "kqueue.toml").write_text(
        "pool_size = 1\npool_max_size = 1\nquarantine_after_failures = 2\nquarantine_window = 4\n"
    )
    backend = SQLiteBackend(tmp_path / "kq.db")
    run = ("run", "--app", "greedy:app", "--config", "kqueue.toml", "--trace-out", "trace.csv")
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(
            kqueue_cmd(*run), cwd=tmp_path, env=kqueue_env(tmp_path), stdout=log, stderr=log
        )
    trace = tmp_path / "trace.csv"
    rows = lambda: len(read_trace(trace)) if trace.exists() else 0  # noqa: E731
    try:
        # When two of its jobs die for memory on the pool
        enqueue(backend, "pool.greedy", 300, count=2)
        assert wait_for(lambda: rows() == 2, 60, 0.2), (tmp_path / "worker.log").read_text()
        # Then the next one runs isolated, and the worker's status lists the class
        enqueue(backend, "pool.greedy", 10)
        assert wait_for(lambda: rows() == 3, 60, 0.2), (tmp_path / "worker.log").read_text()
        status = json.loads(backend.worker_statuses()[0].body)
        assert wait_for(
            lambda: (
                "pool.greedy"
                in json.loads(backend.worker_statuses()[0].body)["tiers"]["isolated"]["quarantined"]
            ),
            10,
            0.2,
        ), status
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    table = read_trace(trace)
    assert list(table.status) == ["memory", "memory", "ok"]
    assert list(table.tier) == ["pool", "pool", "isolated"]
    assert "quarantined" in (tmp_path / "worker.log").read_text()
