"""The runtime's pool scaler sees the backlog: jobs in the backend whose class routes to the pool.

A real worker object on a real SQLite backend, and its real pool of processes: nothing is leased,
yet the pool grows for the pool jobs waiting in the backend, and only for those.
"""

from __future__ import annotations

import asyncio
import time

from kqueue.backends.memory import MemoryBackend
from kqueue.errors import BackendUnavailable
from kqueue.job import App
from kqueue.policy.config import Config, Tier
from kqueue.worker.backlog import BACKLOG_INTERVAL_S, PoolBacklog
from kqueue.worker.loop import Worker

#: A pool of 1 that may grow to 20 in one step; the cooldown keeps it to that one step.
CONFIG = Config(pool_size=1, pool_max_size=20, pool_scale_step=20, pool_scale_cooldown_s=60.0)


def _app(tmp_path) -> App:
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    app.job(time.sleep, name="resize", tier="pool")
    app.job(time.sleep, name="mail", tier="inline")
    app.job(time.sleep, name="video", tier="isolated")
    app.job(time.sleep, name="report")  # auto: the default estimate routes it to the pool
    return app


def test_pool_grows_for_the_pool_jobs_waiting_in_the_backend_it_has_not_leased(tmp_path):
    # Given a worker (pool of 1, idle) and, in its backend, 6 pool jobs, 2 routed to the pool by
    # the default estimate, 20 inline and 3 isolated ones, and 4 of a class it does not know
    app = _app(tmp_path)
    worker = Worker(app, CONFIG)
    app.jobs["resize"].dispatch_many([((1.0,), {})] * 6)
    app.jobs["report"].dispatch_many([((1.0,), {})] * 2)
    app.jobs["mail"].dispatch_many([((1.0,), {})] * 20)
    app.jobs["video"].dispatch_many([((1.0,), {})] * 3)
    app.backend.enqueue_many("default", [(f"x{i}", b"{}") for i in range(4)], job_class="gone")
    pool = worker.runners[Tier.POOL]
    assert worker.intake.waiting_count() == 0  # nothing leased: all of it is in the backend

    async def scale() -> tuple[int, int]:
        await pool.start()
        await pool.ready()  # its processes are forked without waiting
        try:
            before = pool.capacity()
            # When the pool takes its scaling step, with no job held by the worker
            pool.maintain(0, time.monotonic())
            return before, pool.capacity()
        finally:
            await pool.stop(0.0)

    before, after = asyncio.run(scale())
    # Then it grew by the 8 pool jobs waiting (one process idle already), not by the other 27
    assert (before, after) == (1, 8)
    assert pool.backlog() == 8


def test_the_backlog_is_read_at_most_once_per_interval_whatever_the_ticks():
    # Given a backend with pool and inline jobs, and a clock the test moves
    backend = MemoryBackend()
    backend.enqueue_many("a", [(f"p{i}", b"") for i in range(3)], job_class="pool.job")
    backend.enqueue_many("b", [(f"q{i}", b"") for i in range(2)], job_class="pool.job")
    backend.enqueue_many("a", [(f"i{i}", b"") for i in range(9)], job_class="inline.job")
    now = [100.0]
    backlog = PoolBacklog(backend, ("a", "b"), lambda name: name == "pool.job", lambda: now[0])
    # When the scaler asks many times within one interval, then after it
    assert [backlog() for _ in range(50)] == [5] * 50
    assert backlog.reads == 2  # one read per queue
    backend.enqueue_many("a", [("late", b"")], job_class="pool.job")
    assert backlog() == 5  # cached until the interval passed
    now[0] += BACKLOG_INTERVAL_S
    assert backlog() == 6
    assert backlog.reads == 4


def test_a_backend_that_is_down_counts_no_backlog():
    class Down(MemoryBackend):
        def pending_by_class(self, queue):
            raise BackendUnavailable("down")

    backlog = PoolBacklog(Down(), ("a",), lambda name: True)
    assert backlog() == 0
