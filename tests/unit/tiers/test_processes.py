"""The pool and isolated tiers on real worker processes, real children and real signals."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest

from tests.conftest import run_kqueue
from tests.support.tierapp import (
    children,
    enqueue,
    gone,
    left_in_queue,
    ok_rows,
    trace,
    wait_for,
    worker_running,
    write_app,
)

RUN = ("run", "--app", "tierjobs:app", "--trace-out", "trace.csv")


def burst(tmp_path, *options: str, timeout: float = 90):
    """Run a burst worker to completion; returns its JSON summary."""
    done = run_kqueue(tmp_path, *RUN, "--burst", *options, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("job", "limit"), [("pool.sleep", "--pool-size"), ("iso.sleep", None)])
def test_three_jobs_of_3_s_finish_together(tmp_path, job, limit):
    # Given three 3 s jobs routed to the tier
    backend = write_app(tmp_path)
    ids = enqueue(backend, job, 3.0, count=3)
    # When a burst worker runs them
    options = (limit, "3") if limit else ("--max-concurrent-isolated", "3")
    summary = burst(tmp_path, *options)
    # Then they ran at once (each started before any ended, however slow the processes were to
    # start), each once, and left the queue
    rows = trace(tmp_path)
    assert summary["by_status"] == {"ok": 3}
    assert sorted(rows.job_id) == sorted(ids)
    assert (rows.attempt == 1).all()
    assert rows.started_at.max() < rows.finished_at.min(), rows[["started_at", "finished_at"]]
    assert left_in_queue(backend) == 0


def test_pool_processes_are_reused(tmp_path):
    # Given 100 pool jobs that record the pid that ran them, and a pool of 4
    backend = write_app(tmp_path)
    enqueue(backend, "pool.pid", count=100)
    # When a burst worker runs them (no growth: pool_max_size = pool_size)
    summary = burst(tmp_path, "--pool-size", "4", "--pool-max-size", "4")
    # Then the same 4 processes served all of them, and the trace says pool
    pids = (tmp_path / "pids.txt").read_text().split()
    assert summary["by_status"] == {"ok": 100}
    assert len(pids) == 100
    assert len(set(pids)) == 4
    assert set(trace(tmp_path).tier) == {"pool"}


@pytest.mark.parametrize("tier", ["pool", "iso"])
def test_killed_child_job_is_retried(tmp_path, tier):
    # Given a worker with a pool of 2, running a job whose first attempt sleeps long
    backend = write_app(tmp_path)
    enqueue(backend, f"{tier}.once", "first.pid", 60.0)
    with worker_running(
        tmp_path, *RUN, "--burst", "--pool-size", "2", "--pool-max-size", "2"
    ) as worker:
        assert wait_for(lambda: (tmp_path / "first.pid").exists(), 30)
        victim = int((tmp_path / "first.pid").read_text())
        assert victim in children(worker.pid)
        # When that process is killed from outside
        psutil.Process(victim).send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        # Then the pool is back to full size within 1 s, and the job is retried and succeeds
        if tier == "pool":
            assert wait_for(lambda: _pool_is_full(worker.pid, victim, 2), 1.0, 0.01)
            assert time.monotonic() - killed_at < 1.0
        assert worker.wait(timeout=60) == 0
    rows = trace(tmp_path).sort_values("attempt")
    assert list(rows.status) == ["killed", "ok"]
    assert list(rows.attempt) == [1, 2]
    assert left_in_queue(backend) == 0


def _pool_is_full(worker_pid: int, victim: int, size: int) -> bool:
    alive = children(worker_pid)
    return victim not in alive and len(alive) == size


@pytest.mark.parametrize("job", ["pool.late", "iso.late", "inline.late"])
def test_job_past_its_timeout_is_stopped(tmp_path, job):
    # Given a job with timeout_s = 1 that sleeps 30 s, and an ordinary job after it
    backend = write_app(tmp_path)
    enqueue(backend, job, 30.0)
    enqueue(backend, "pool.sleep", 0.1)
    # When a burst worker runs them
    summary = burst(tmp_path, "--pool-size", "1")
    # Then the late job is stopped with status timeout, long before its 30 s sleep would have
    # ended (its own row's times, so the worker's start-up on a busy machine does not count),
    # and the worker carries on
    rows = trace(tmp_path).set_index("job_class")
    assert rows.loc[job, "status"] == "timeout"
    assert rows.loc[job, "finished_at"] - rows.loc[job, "started_at"] < 15.0
    assert rows.loc["pool.sleep", "status"] == "ok"
    assert summary["dead_lettered"] == 1


@pytest.mark.parametrize("job", ["pool.hog", "iso.hog"])
def test_job_past_its_memory_limit_is_stopped(tmp_path, job):
    # Given a job limited to 100 MB that allocates 400 MB, and an ordinary job after it
    backend = write_app(tmp_path)
    enqueue(backend, job, 400)
    enqueue(backend, "pool.sleep", 0.1)
    enqueue(backend, job, 10)
    # When a burst worker runs them
    burst(tmp_path, "--pool-size", "1")
    # Then the big one ends with status memory, the others run: the worker was not taken down
    rows = trace(tmp_path)
    assert sorted(rows.status) == ["memory", "ok", "ok"]
    assert left_in_queue(backend) == 0


def test_inline_jobs_flow_while_isolated_tier_is_full(tmp_path):
    # Given the isolated tier saturated by long jobs, with more long jobs queued
    backend = write_app(tmp_path)
    enqueue(backend, "iso.sleep", 60.0, count=6)
    with worker_running(
        tmp_path,
        *RUN,
        "--max-concurrent-isolated",
        "2",
        "--pool-size",
        "1",
        "--shutdown-grace",
        "1",
    ) as worker:
        assert wait_for(lambda: len(children(worker.pid)) >= 3, 30)
        # When 200 inline jobs arrive behind them
        enqueue(backend, "inline.sleep", 0.05, count=200)
        # Then they all finish while the isolated tier is still full: none of its 60 s jobs has
        # ended, so none of its slots was free (what orders the two is the jobs' lengths, not
        # the machine's speed; 50 s is room for a box many times slower than this one)
        assert wait_for(lambda: ok_rows(tmp_path, "inline.sleep") == 200, 50, 0.1)
        assert ok_rows(tmp_path, "iso.sleep") == 0
        assert len(children(worker.pid)) >= 3
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_sigterm_during_mixed_load_loses_nothing(tmp_path):
    # Given a worker busy with pool, isolated and inline jobs, more queued behind
    backend = write_app(tmp_path)
    total = len(enqueue(backend, "pool.sleep", 3.0, count=6))
    total += len(enqueue(backend, "iso.sleep", 20.0, count=3))
    total += len(enqueue(backend, "inline.sleep", 0.2, count=30))
    options = ("--pool-size", "2", "--pool-max-size", "2", "--max-concurrent-isolated", "2")
    with worker_running(tmp_path, *RUN, *options, "--shutdown-grace", "1") as worker:
        assert wait_for(lambda: len(children(worker.pid)) >= 4, 30)
        time.sleep(1.0)
        family = children(worker.pid)
        # When it gets SIGTERM
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    # Then no process of its family is left, and every job is done or back in the queue
    assert wait_for(lambda: gone(family), 30)
    done = ok_rows(tmp_path, "pool.sleep") + ok_rows(tmp_path, "inline.sleep")
    counts = backend.counts()["default"]
    assert counts.get("leased", 0) == 0
    assert done + left_in_queue(backend) == total
    assert left_in_queue(backend) > 0  # the 20 s isolated jobs could not have finished


def test_kqueue_pool_shows_the_tiers(tmp_path):
    # Given a running worker with a pool of 2 busy on one job
    backend = write_app(tmp_path)
    enqueue(backend, "pool.sleep", 30.0)
    url = f"sqlite:///{tmp_path / 'kq.db'}"
    grace = ("--shutdown-grace", "1")  # the 30 s job is stopped and requeued at the end
    with worker_running(
        tmp_path, *RUN, "--pool-size", "2", "--pool-max-size", "2", *grace
    ) as worker:
        assert wait_for(lambda: backend.worker_statuses(), 30)
        assert wait_for(lambda: b'"busy"' in backend.worker_statuses()[0].body, 30)
        pool_pids = children(worker.pid)
        # When kqueue pool reads what the worker published
        shown = run_kqueue(tmp_path, "pool", "--backend", url)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    # Then it lists the worker, its pool processes with their states, and the tiers' queues
    assert shown.returncode == 0, shown.stderr
    assert str(worker.pid) in shown.stdout
    for pid in pool_pids:
        assert str(pid) in shown.stdout
    assert "busy" in shown.stdout and "idle" in shown.stdout
    assert "isolated" in shown.stdout
