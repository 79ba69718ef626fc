"""Priorities through the job API: decorator, options, bad input, and the start order they give."""

from __future__ import annotations

import threading
import time

import pytest

from kqueue import App
from kqueue.errors import ConfigError, JobError
from kqueue.policy.config import Config
from kqueue.policy.ordering import parse_queue_order
from kqueue.testing import WorkerThread


def _app():
    app = App("memory://")
    started: list[str] = []
    lock = threading.Lock()

    @app.job(name="low")
    def low(i: int) -> None:
        with lock:
            started.append(f"low{i}")
        time.sleep(0.005)

    @app.job(name="high", priority=10)
    def high(i: int) -> None:
        with lock:
            started.append(f"high{i}")
        time.sleep(0.005)

    return app, low, high, started


def test_priority_from_the_decorator_and_from_options_orders_the_queue():
    app, low, high, _ = _app()
    low.dispatch(0)
    high.dispatch(0)
    low.options(priority=20).dispatch(1)
    leases = app.backend.lease("default", "w", 10, 30.0)
    assert [lease.priority for lease in leases] == [20, 10, 0]


@pytest.mark.parametrize("bad", ["high", 1.5, True, 5000])
def test_a_priority_that_is_not_a_bounded_integer_is_refused(bad):
    app, low, _, _ = _app()
    with pytest.raises(ConfigError, match="priority"):
        app.job(name="x", priority=bad)(lambda: None)
    with pytest.raises(JobError, match="priority"):
        low.options(priority=bad)


def test_twenty_high_jobs_start_before_the_low_backlog_with_one_inline_slot():
    # Given one inline slot, and 200 low jobs queued and running one by one
    app, low, high, started = _app()
    low.dispatch_many([((i,), {}) for i in range(200)])
    config = Config(max_concurrent_inline=1, poll_interval_s=0.01, pool_size=0, pool_max_size=0)
    with WorkerThread(app, config, force_inline=True):
        while len(started) < 5:
            time.sleep(0.005)
        # When 20 high jobs are dispatched (at once: the 20 are queued, then run; dispatched one
        # by one, a loaded machine lets the worker lease lows between two of them, rightly)
        before = len(started)
        high.dispatch_many([((i,), {}) for i in range(20)])
        while sum(name.startswith("high") for name in started) < 20:
            time.sleep(0.005)
    # Then they start before every low job that was not already running or in hand
    after = started[before:]
    last_high = max(i for i, name in enumerate(after) if name.startswith("high"))
    lows_between = [name for name in after[:last_high] if name.startswith("low")]
    assert len(lows_between) <= 1, after[:30]  # the one already leased into its local queue


def test_weighted_queue_order_does_not_starve_the_second_queue():
    # Given a busy first queue and a few jobs on the second, one inline slot
    app = App("memory://")
    started: list[str] = []

    @app.job(name="busy", queue="high")
    def busy(i: int) -> None:
        started.append("high")

    @app.job(name="other", queue="default")
    def other(i: int) -> None:
        started.append("default")

    busy.dispatch_many([((i,), {}) for i in range(60)])
    other.dispatch_many([((i,), {}) for i in range(10)])
    config = Config(max_concurrent_inline=1, poll_interval_s=0.01, pool_size=0, pool_max_size=0)
    order = parse_queue_order("weighted:high=3,default=1")
    # When a worker serves both with weighted order
    with WorkerThread(app, config, queues=("high", "default"), force_inline=True,
                      queue_order=order):  # fmt: skip
        deadline = time.monotonic() + 30
        while len(started) < 70 and time.monotonic() < deadline:
            time.sleep(0.01)
    # Then the second queue got turns long before the first was empty
    assert len(started) == 70
    assert started[:40].count("default") >= 5, started[:40]
