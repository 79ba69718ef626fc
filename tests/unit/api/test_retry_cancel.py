"""Per-job retry policy and cancellation on real workers (memory and SQLite backends).

Running pool jobs are cancelled by killing their process; inline async jobs by cancelling their
task; inline sync jobs see ``kqueue.current_job().cancelled`` and return.
"""

from __future__ import annotations

import time

import psutil
import pytest

import kqueue
from kqueue.testing import WorkerThread, run_until_empty
from tests.unit.api.conftest import FAST


def wait_for(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_no_retry_on_and_retry_on_send_errors_that_cannot_succeed_to_the_dead_letters(app):
    attempts = {"io": 0, "value": 0}

    @app.job(name="io", tier="inline", max_attempts=3, retry_on=(OSError,))
    def io():
        attempts["io"] += 1
        raise ConnectionError("flaky")

    @app.job(name="value", tier="inline", max_attempts=3, no_retry_on=(ValueError,))
    def value():
        attempts["value"] += 1
        raise ValueError("bad input")

    io.dispatch(), value.dispatch()
    run_until_empty(app, config=FAST)
    assert attempts == {"io": 3, "value": 1}


def test_raise_retry_runs_again_after_the_delay_it_asked_for(app):
    seen = []

    @app.job(name="poll", tier="inline", max_attempts=3, retry_backoff_s=60)
    def poll():
        seen.append(time.time())
        if len(seen) == 1:
            raise kqueue.Retry(delay_s=0.3)
        return kqueue.current_job().attempt

    handle = poll.dispatch()
    run_until_empty(app, config=FAST)
    assert handle.result(timeout_s=5) == 2
    assert 0.3 <= seen[1] - seen[0] < 5  # its own delay, not the 60 s backoff


def test_cancel_a_queued_job_and_it_never_runs(app):
    ran = []

    @app.job(name="touch", tier="inline")
    def touch():
        ran.append(1)

    handle = touch.dispatch()
    assert handle.cancel() is kqueue.JobState.QUEUED
    assert handle.status() is kqueue.JobState.CANCELLED
    run_until_empty(app, config=FAST)
    assert ran == []
    with pytest.raises(kqueue.JobCancelled):
        handle.result(timeout_s=1)


def test_cancel_a_running_pool_job_kills_its_process_within_a_second_and_no_retry(app, tmp_path):
    pid_file = tmp_path / "pid"

    @app.job(name="pool.hang", tier="pool", max_attempts=3)
    def hang():
        pid_file.write_text(str(__import__("os").getpid()))
        time.sleep(60)

    with WorkerThread(app, FAST):
        handle = hang.dispatch()
        wait_for(pid_file.exists)
        pid = int(pid_file.read_text())
        assert handle.cancel() is kqueue.JobState.RUNNING
        cancelled_at = time.monotonic()
        wait_for(lambda: _gone(pid))
        gone_s = time.monotonic() - cancelled_at
        with pytest.raises(kqueue.JobCancelled):
            handle.result(timeout_s=5)
    assert gone_s < 1.0
    assert app.handle(handle.id).info().state is kqueue.JobState.CANCELLED


def test_cancel_a_running_async_inline_job_cancels_its_task(app):
    started, stopped = [], []

    @app.job(name="async.wait", tier="inline")
    async def wait():
        import asyncio

        started.append(1)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(1)
            raise

    with WorkerThread(app, FAST):
        handle = wait.dispatch()
        wait_for(lambda: started)
        handle.cancel()
        with pytest.raises(kqueue.JobCancelled):
            handle.result(timeout_s=5)
    assert stopped == [1]


def test_a_running_sync_inline_job_sees_current_job_cancelled_and_stops(app):
    steps = []

    @app.job(name="sync.loop", tier="inline")
    def loop():
        for _ in range(1000):
            if kqueue.current_job().cancelled:
                return "stopped"
            steps.append(1)
            time.sleep(0.01)
        return "finished"

    with WorkerThread(app, FAST):
        handle = loop.dispatch()
        wait_for(lambda: len(steps) > 3)
        handle.cancel()
        with pytest.raises(kqueue.JobCancelled):
            handle.result(timeout_s=5)
    assert len(steps) < 500


def test_current_job_outside_a_job_is_a_clear_error():
    with pytest.raises(LookupError, match="only available inside a job"):
        kqueue.current_job()


def test_the_trace_has_due_at_and_a_cancelled_row(app, tmp_path):
    # Given a delayed job and a job cancelled while it runs, on a worker writing a trace
    started = []

    @app.job(name="quick", tier="inline")
    def quick():
        return 1

    @app.job(name="async.block", tier="inline")
    async def block():
        import asyncio

        started.append(1)
        await asyncio.sleep(60)

    trace = tmp_path / "trace.csv"
    with WorkerThread(app, FAST, trace_out=str(trace)):
        delayed = quick.options(delay_s=0.3).dispatch()
        blocked = block.dispatch()
        wait_for(lambda: started)
        blocked.cancel()
        delayed.result(timeout_s=5)
        with pytest.raises(kqueue.JobCancelled):
            blocked.result(timeout_s=5)
    rows = {row.job_class: row for row in kqueue.read_trace(trace).itertuples()}
    # Then the delayed row says when it was due, and its wait counts from then
    assert rows["quick"].due_at >= rows["quick"].submitted_at + 0.299
    assert rows["quick"].wait_s < 0.3
    assert rows["async.block"].status == "cancelled"


def test_an_isolated_jobs_result_comes_back_and_cancel_kills_its_process(app, tmp_path):
    pid_file = tmp_path / "pid"

    @app.job(name="iso.square", tier="isolated")
    def square(x):
        return {"x": x, "square": x * x, "attempt": kqueue.current_job().attempt}

    @app.job(name="iso.hang", tier="isolated", max_attempts=3)
    def hang():
        pid_file.write_text(str(__import__("os").getpid()))
        time.sleep(60)

    with WorkerThread(app, FAST):
        # Given an isolated job's result, back through its process's pipe
        assert square.dispatch(7).result(timeout_s=10) == {"x": 7, "square": 49, "attempt": 1}
        # When a running isolated job is cancelled
        handle = hang.dispatch()
        wait_for(pid_file.exists)
        pid = int(pid_file.read_text())
        handle.cancel()
        cancelled_at = time.monotonic()
        wait_for(lambda: _gone(pid))
        # Then its process is gone within a second and it is not retried
        assert time.monotonic() - cancelled_at < 1.0
        with pytest.raises(kqueue.JobCancelled):
            handle.result(timeout_s=5)
    assert app.handle(handle.id).info().state is kqueue.JobState.CANCELLED


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped counts; it may vanish as we look)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
