"""A worker on each backend: in a rate-limited class a higher priority takes the earliest of
the turns lower priorities reserved (``kqueue.policy.turn_queue``)."""

from __future__ import annotations

import threading
import time

from kqueue import App
from kqueue.policy.config import Config
from kqueue.testing import WorkerThread

CONFIG = Config(max_concurrent_inline=8, poll_interval_s=0.05, pool_size=0, pool_max_size=0)


def _wait(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_high_priority_jobs_of_a_rate_limited_class_go_ahead_of_its_reserved_turns(backend):
    # Given a class limited to 10/s (a bucket of 5) and 20 of its jobs queued (15 reserve turns
    # up to 1.5 s ahead), then 3 of priority 5 of the same class
    app = App(backend)
    started: list[tuple[int, float]] = []
    lock = threading.Lock()

    @app.job(name="api", rate_limit="10/s")
    def api(i: int) -> None:
        with lock:
            started.append((i, time.monotonic()))

    api.dispatch_many([((i,), {}) for i in range(20)])
    with WorkerThread(app, CONFIG, force_inline=True):
        assert _wait(lambda: len(started) >= 5)
        time.sleep(0.1)  # the rest hold their turns
        for i in range(100, 103):
            api.options(priority=5).dispatch(i)
        assert _wait(lambda: len(started) == 23)
    # Then the high ones start in the next turns (about the 7th to 9th; before, last: 21st to
    # 23rd), ahead of most of the low ones left (a margin of 0.6 s for a slow box)
    order = [i for i, _ in started]
    high_last = max(order.index(i) for i in range(100, 103))
    assert high_last < 15, order
    assert sorted(order) == [*range(20), 100, 101, 102]
