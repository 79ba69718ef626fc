"""The async client on every backend: dispatch, status, info, result, cancel, awaited.

Redis uses redis.asyncio (no thread); SQLite and memory:// run their blocking calls on a pool of
their own. Each test runs a real worker on a thread of this process (``WorkerThread``) and drives
the client from ``asyncio.run``; a ticker task shows the event loop keeps running while a result
is awaited.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import kqueue
from kqueue.backends import aio
from kqueue.testing import WorkerThread, free_port
from tests.conftest import require_redis_server
from tests.unit.api.conftest import FAST


def register(app):
    @app.job(name="add", tier="inline")
    def add(a: int, b: int) -> int:
        return a + b

    @app.job(name="slow", tier="inline")
    def slow(seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    @app.job(name="fails", tier="inline", max_attempts=1)
    def fails():
        raise ValueError("broken on purpose")

    @app.job(name="async.wait", tier="inline")
    async def wait():
        await asyncio.sleep(60)

    return add, slow, fails, wait


def run(app, coroutine_function):
    """Run ``coroutine_function()`` on a fresh event loop, closing the app's async client."""

    async def main():
        try:
            return await coroutine_function()
        finally:
            await app.aclose()

    return asyncio.run(main())


def test_dispatch_async_and_every_awaited_call_of_a_handle(app):
    add, _, _, _ = register(app)

    async def scenario():
        # Given a job dispatched from a coroutine
        handle = await add.dispatch_async(2, 3)
        assert isinstance(handle, kqueue.JobHandle) and len(handle.id) == 32
        assert await handle.status_async() is kqueue.JobState.QUEUED
        # When a worker runs it, the awaited result, status and info come back
        with WorkerThread(app, FAST):
            assert await handle.result_async(timeout_s=10) == 5
        assert await handle.status_async() is kqueue.JobState.DONE
        info = await app.handle(handle.id).info_async()
        assert (info.state, info.name, info.attempts) == ("done", "add", 1)
        # And the same id seen by the blocking API agrees
        assert handle.result(timeout_s=1) == 5

    run(app, scenario)


def test_options_dispatch_async_delay_unique_and_cancel_async(app):
    add, _, _, _ = register(app)

    async def scenario():
        # Given a delayed job and a unique one dispatched twice
        later = await add.options(delay_s=60).dispatch_async(1, 1)
        first = await add.options(unique_key="k").dispatch_async(1, 2)
        second = await add.options(unique_key="k").dispatch_async(9, 9)
        assert second == first
        assert await later.status_async() is kqueue.JobState.SCHEDULED
        # When the delayed one is cancelled, it is cancelled and never runs
        assert await later.cancel_async() is kqueue.JobState.SCHEDULED
        assert await later.status_async() is kqueue.JobState.CANCELLED
        with WorkerThread(app, FAST):
            assert await first.result_async(timeout_s=10) == 3
        with pytest.raises(kqueue.JobCancelled):
            await later.result_async(timeout_s=1)
        # And cancelling a finished job changes nothing
        assert await first.cancel_async() is kqueue.JobState.DONE

    run(app, scenario)


def test_result_async_raises_as_result_does(app):
    _, slow, fails, _ = register(app)

    async def scenario():
        with pytest.raises(kqueue.JobNotFound, match="unknown"):
            await app.handle("never-dispatched").result_async(timeout_s=1)
        waiting = await slow.dispatch_async(0.0)
        with pytest.raises(TimeoutError, match="still queued"):
            await waiting.result_async(timeout_s=0.2)
        dead = await fails.dispatch_async()
        with WorkerThread(app, FAST):
            with pytest.raises(kqueue.JobFailed, match="broken on purpose"):
                await dead.result_async(timeout_s=10)
            assert await waiting.result_async(timeout_s=10) == "slept"

    run(app, scenario)


def test_cancel_async_stops_a_running_async_inline_job(app):
    _, _, _, wait = register(app)

    async def scenario():
        with WorkerThread(app, FAST):
            handle = await wait.dispatch_async()
            deadline = time.monotonic() + 10
            while await handle.status_async() is not kqueue.JobState.RUNNING:
                assert time.monotonic() < deadline, "the job never started"
                await asyncio.sleep(0.01)
            assert await handle.cancel_async() is kqueue.JobState.RUNNING
            with pytest.raises(kqueue.JobCancelled):
                await handle.result_async(timeout_s=10)

    run(app, scenario)


def test_the_event_loop_keeps_running_while_a_result_is_awaited(app):
    _, slow, _, _ = register(app)
    gaps_s: list[float] = []

    async def ticker(stop: asyncio.Event):
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps_s.append(now - last)
            last = now

    async def scenario():
        # Given a job that takes a second, and a task ticking every 10 ms beside the wait
        handle = await slow.dispatch_async(1.0)
        stop = asyncio.Event()
        ticks = asyncio.create_task(ticker(stop))
        with WorkerThread(app, FAST):
            # When the result is awaited
            assert await handle.result_async(timeout_s=20) == "slept"
        stop.set()
        await ticks

    run(app, scenario)
    # Then the ticker ticked all along: no stall near the job's second (coarse, busy box)
    assert len(gaps_s) >= 20 and max(gaps_s) < 0.5, (len(gaps_s), max(gaps_s))


def test_redis_uses_redis_asyncio_and_no_thread(redis_server):
    require_redis_server()
    app = kqueue.App(redis_server.url + "?prefix=noaiothread")
    add, _, _, _ = register(app)

    async def scenario():
        handle = await add.dispatch_async(1, 2)
        client = aio.client_for(app.backend)
        assert type(client).__name__ == "RedisAsyncClient"
        assert await handle.status_async() is kqueue.JobState.QUEUED
        assert not [t for t in threading.enumerate() if t.name.startswith("kqueue-async")]

    try:
        run(app, scenario)
    finally:
        app.close()


def test_cancelling_the_awaiting_task_stops_the_wait_and_the_client_still_works(app):
    add, _, _, _ = register(app)

    async def scenario():
        handle = await add.dispatch_async(4, 4)
        waiting = asyncio.create_task(handle.result_async())
        await asyncio.sleep(0.2)
        started = time.monotonic()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert time.monotonic() - started < 1.0
        assert await handle.status_async() is kqueue.JobState.QUEUED

    run(app, scenario)


def test_an_unreachable_redis_is_backend_unavailable_from_the_async_client():
    app = kqueue.App(f"redis://127.0.0.1:{free_port()}/0")
    add, _, _, _ = register(app)

    async def scenario():
        with pytest.raises(kqueue.BackendUnavailable, match="unreachable"):
            await add.dispatch_async(1, 2)

    try:
        run(app, scenario)
    finally:
        app.close()


def test_a_redis_backend_built_from_a_client_gets_an_async_client_on_the_same_server(
    redis_server,
):
    import redis

    from kqueue.backends.redis import RedisBackend

    require_redis_server()
    backend = RedisBackend(redis.Redis(port=redis_server.port), prefix="fromclient")
    app = kqueue.App(backend)
    add, _, _, _ = register(app)

    async def scenario():
        handle = await add.dispatch_async(1, 2)
        assert type(aio.client_for(backend)).__name__ == "RedisAsyncClient"
        assert backend.lookup(handle.id).state is kqueue.JobState.QUEUED  # the same keys

    try:
        run(app, scenario)
    finally:
        app.close()


def test_fifty_concurrent_dispatches_and_waits_all_come_back(app):
    add, _, _, _ = register(app)

    async def scenario():
        # Given 50 dispatches awaited together (more than the thread pool's 4 threads)
        handles = await asyncio.gather(*(add.dispatch_async(i, i) for i in range(50)))
        assert len({h.id for h in handles}) == 50
        # When a worker runs them while 50 waits are pending at once
        with WorkerThread(app, FAST):
            results = await asyncio.gather(*(h.result_async(timeout_s=30) for h in handles))
        # Then every result came back to its own handle
        assert results == [2 * i for i in range(50)]

    run(app, scenario)
