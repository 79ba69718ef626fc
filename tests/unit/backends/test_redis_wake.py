"""Idle workers on Redis wake when work arrives (BLPOP on a notify list), not at the next poll."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from kqueue.job import App
from kqueue.testing import RedisServer
from tests.conftest import require_redis_server, start_kqueue
from tests.integration.test_redis_faults import stop, wait_until

pytestmark = pytest.mark.redis

STAMP_APP = """
import time
import redis
from kqueue import App

app = App()


@app.job(name="stamp", tier="inline")
def stamp(url, sent_at):
    redis.Redis.from_url(url).rpush("waits", time.time() - sent_at)
"""


def test_wait_for_work_ends_soon_after_an_enqueue(redis_server):
    from kqueue.backends.redis import RedisBackend

    backend = RedisBackend.from_url(redis_server.url)
    backend.client.flushdb()

    async def scenario() -> float:
        # Given an idle wait of up to 5 s
        waiting = asyncio.ensure_future(backend.wait_for_work(["default"], 5.0))
        await asyncio.sleep(0.2)
        # When a job is enqueued
        started = time.monotonic()
        await asyncio.to_thread(backend.enqueue, "default", "j", b"x")
        await waiting
        return time.monotonic() - started

    try:
        # Then the wait ends long before its timeout (a coarse bound for a busy machine)
        assert asyncio.run(scenario()) < 3.0
    finally:
        backend.close()


@pytest.mark.timeout(90)
def test_an_idle_worker_starts_a_job_long_before_its_poll_interval(tmp_path):
    # Given a worker polling only every 3 s, idle on a private Redis
    require_redis_server()
    (tmp_path / "stamp_app.py").write_text(STAMP_APP)
    (tmp_path / "kqueue.toml").write_text("poll_interval_s = 3.0\n")
    with RedisServer(tmp_path / "redis") as server:
        app = App(server.url)
        stamp = app.job(lambda url, sent_at: None, name="stamp")
        client = redis.Redis(port=server.port)
        worker = start_kqueue(
            tmp_path, "run", "--app", "stamp_app:app", "--backend", server.url,
            "--config", "kqueue.toml", "--inline",
        )  # fmt: skip
        try:
            wait_until(lambda: app.backend.worker_statuses(), 30, "the worker")
            # When five jobs are dispatched one at a time, 0.5 s apart
            for _ in range(5):
                time.sleep(0.5)
                stamp.dispatch(server.url, time.time())
            wait_until(lambda: client.llen("waits") == 5, 30, "five jobs")
            # Then each started well within the poll interval (polling would give 0-3 s each)
            waits = [float(x) for x in client.lrange("waits", 0, -1)]
            assert max(waits) < 1.5, waits
        finally:
            stop([worker])
            client.close()
            app.close()
