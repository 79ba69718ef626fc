"""Handles on real workers: status, info, results, failures, options, bad input (memory and SQLite).

Each test runs a real worker in this process (``run_until_empty`` or ``WorkerThread``); pool jobs
run in forked processes.
"""

from __future__ import annotations

import datetime
import time

import pytest

import kqueue
from kqueue.testing import WorkerThread, run_until_empty
from tests.unit.api.conftest import FAST


def register(app):
    @app.job(name="add", tier="inline")
    def add(a: int, b: int) -> int:
        return a + b

    @app.job(name="pool.mul", tier="pool")
    def mul(a: int, b: int) -> int:
        return a * b

    @app.job(name="bad.return", tier="inline")
    def bad_return():
        return {1, 2}

    @app.job(name="fails", tier="pool", max_attempts=2)
    def fails():
        raise ValueError("broken on purpose")

    return add, mul, bad_return, fails


def test_dispatch_returns_a_handle_whose_result_status_and_info_come_back(app):
    add, mul, _, _ = register(app)
    # Given two jobs dispatched, one inline, one on the pool
    inline, pooled = add.dispatch(2, 3), mul.dispatch(4, 5)
    assert str(inline) == inline.id and len(inline.id) == 32
    assert inline.status() is kqueue.JobState.QUEUED
    # When a worker runs them
    run_until_empty(app, config=FAST)
    # Then each result travelled back as JSON, and its info says where it ran
    assert inline.result(timeout_s=5) == 5 and pooled.result(timeout_s=5) == 20
    assert pooled.status() is kqueue.JobState.DONE
    info = app.handle(pooled.id).info()
    assert (info.state, info.name, info.tier, info.attempts) == ("done", "pool.mul", "pool", 1)
    assert info.started_at <= info.finished_at and info.worker


def test_a_non_json_return_value_fails_the_attempt_for_good_and_the_worker_carries_on(app):
    add, _, bad_return, _ = register(app)
    bad, good = bad_return.dispatch(), add.dispatch(1, 1)
    summary = run_until_empty(app, config=FAST)
    with pytest.raises(kqueue.JobFailed, match="not JSON-serialisable") as failed:
        bad.result(timeout_s=5)
    assert "returned a set" in failed.value.traceback
    assert app.handle(bad.id).info().attempts == 1  # never retried
    assert good.result(timeout_s=5) == 2 and summary.dead_lettered == 1


def test_a_dead_job_raises_job_failed_with_its_error_and_traceback(app):
    _, _, _, fails = register(app)
    handle = fails.dispatch()
    run_until_empty(app, config=FAST)
    with pytest.raises(kqueue.JobFailed) as failed:
        handle.result(timeout_s=5)
    assert failed.value.error == "ValueError: broken on purpose"
    assert "Traceback" in failed.value.traceback and handle.status() is kqueue.JobState.DEAD


def test_result_waits_for_a_running_worker_and_times_out_as_a_timeout_error(app):
    add, _, _, _ = register(app)
    later = add.options(delay_s=30).dispatch(1, 2)
    with pytest.raises(TimeoutError, match="still scheduled"):
        later.result(timeout_s=0.2)
    with WorkerThread(app, FAST):
        assert add.dispatch(20, 22).result(timeout_s=10) == 42


def test_an_unknown_id_is_unknown_and_its_result_a_clear_error(app):
    handle = app.handle("no-such-job")
    assert handle.status() is kqueue.JobState.UNKNOWN
    with pytest.raises(kqueue.JobNotFound, match="never dispatched here"):
        handle.result(timeout_s=1)
    assert handle.cancel() is kqueue.JobState.UNKNOWN


def test_result_ttl_zero_keeps_nothing(app):
    add, _, _, _ = register(app)
    handle = add.options(result_ttl_s=0).dispatch(1, 2)
    run_until_empty(app, config=FAST)
    assert handle.status() is kqueue.JobState.UNKNOWN


def test_a_delayed_job_is_scheduled_until_due_and_never_runs_early(app):
    add, _, _, _ = register(app)
    dispatched = time.time()
    handle = add.options(delay_s=0.5).dispatch(1, 1)
    assert handle.status() is kqueue.JobState.SCHEDULED
    run_until_empty(app, config=FAST)
    assert handle.result(timeout_s=5) == 2
    assert handle.info().started_at >= dispatched + 0.5


def test_at_in_the_past_runs_now_and_at_in_the_future_is_scheduled(app):
    add, _, _, _ = register(app)
    past = add.options(at=datetime.datetime.now() - datetime.timedelta(hours=1)).dispatch(1, 2)
    future = add.options(at=time.time() + 60).dispatch(1, 2)
    assert past.status() is kqueue.JobState.QUEUED
    assert future.status() is kqueue.JobState.SCHEDULED
    assert future.cancel() is kqueue.JobState.SCHEDULED
    run_until_empty(app, config=FAST)
    assert past.result(timeout_s=5) == 3
    with pytest.raises(kqueue.JobCancelled):
        future.result(timeout_s=5)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"delay_s": -1}, r"delay_s=-1\): expected a number of seconds >= 0"),
        ({"delay_s": float("nan")}, "delay_s=nan"),
        ({"delay_s": 1, "at": 5.0}, "not both"),
        ({"at": "tomorrow"}, "expected a datetime or epoch seconds"),
        ({"unique_key": 42}, r"unique_key=42\): expected a non-empty string"),
        ({"job_id": ""}, "job_id=''"),
        ({"result_ttl_s": -5}, "result_ttl_s=-5"),
    ],
)
def test_bad_options_are_clear_errors_naming_the_option_and_the_job(app, options, match):
    add, _, _, _ = register(app)
    with pytest.raises(kqueue.JobError, match=match) as error:
        add.options(**options)
    assert "'add'" in str(error.value)


def test_arguments_that_do_not_bind_are_refused_at_dispatch_and_dead_on_arrival(app):
    add, _, _, _ = register(app)
    with pytest.raises(kqueue.JobError, match="missing a required argument: 'b'"):
        add.dispatch(1)
    # Given a message from another producer with arguments that do not bind
    from kqueue.job import encode_message

    body = encode_message("add", (1, 2, 3), {}, time.time())
    app.backend.enqueue("default", "raw", body)
    good = add.dispatch(1, 2)
    run_until_empty(app, config=FAST)
    # Then it is dead at once with why, and the next job still runs
    with pytest.raises(kqueue.JobFailed, match="arguments do not match"):
        app.handle("raw").result(timeout_s=5)
    assert app.handle("raw").info().attempts == 1 and good.result(timeout_s=5) == 3


def test_job_id_option_is_the_id_and_a_known_id_returns_the_same_job(app):
    add, _, _, _ = register(app)
    first = add.options(job_id="order-7").dispatch(1, 2)
    again = add.options(job_id="order-7").dispatch(5, 5)
    assert first.id == again.id == "order-7"
    run_until_empty(app, config=FAST)
    assert first.result(timeout_s=5) == 3


def test_unique_keys_return_the_first_jobs_handle_while_it_waits(app):
    add, _, _, _ = register(app)
    first = add.options(unique_key="report:7").dispatch(1, 2)
    second = add.options(unique_key="report:7").dispatch(9, 9)
    assert second == first
    summary = run_until_empty(app, config=FAST)
    assert summary.done == 1 and first.result(timeout_s=5) == 3
    third = add.options(unique_key="report:7").dispatch(2, 2)
    assert third != first
