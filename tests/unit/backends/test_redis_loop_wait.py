"""The idle worker's ``BLPOP`` watched by the event loop: it wakes, survives its caller, and a
broken or abandoned wait never leaves its connection out of step with the server."""

from __future__ import annotations

import asyncio

import pytest
import redis

from kqueue.backends.redis import RedisBackend

pytestmark = pytest.mark.redis


@pytest.fixture
def backend(redis_server):
    made = RedisBackend.from_url(redis_server.url)
    made.client.flushdb()
    yield made
    made.close()


def test_a_cancelled_caller_leaves_the_wait_running_and_the_next_caller_gets_its_token(backend):
    async def scenario() -> list[bytes]:
        # Given a caller that stops awaiting its wait (woken by something else)
        first = asyncio.ensure_future(backend.wait_for_work(["q"], 5.0))
        await asyncio.sleep(0.1)
        first.cancel()
        # When a token arrives and the next caller waits
        backend.client.rpush(backend._prefix("q") + "notify", "1")
        await asyncio.wait_for(backend.wait_for_work(["q"], 5.0), 3.0)
        # Then the one outstanding BLPOP took it and the connection answers in step
        return [backend.client.ping(), backend.client.llen(backend._prefix("q") + "notify")]

    assert asyncio.run(scenario()) == [True, 0]


def test_a_killed_connection_ends_the_wait_as_failed_and_the_next_wait_reconnects(backend):
    keys = [backend._prefix("q") + "notify"]

    async def scenario() -> list[bool]:
        loop = asyncio.get_running_loop()
        waiting = backend._waits.start(loop, keys, 5.0)
        await asyncio.sleep(0.1)
        # When the server drops the waiting client
        admin = redis.Redis.from_url(backend.safe_url)
        killed = [c["id"] for c in admin.client_list() if c["cmd"] == "blpop"]
        for client_id in killed:
            admin.client_kill_filter(_id=client_id)
        admin.close()
        # Then the wait ends at once, failed, well before its 5 s timeout
        failed = await asyncio.wait_for(waiting, 3.0)
        # And the next wait works on a new connection
        again = backend._waits.start(loop, keys, 5.0)
        backend.client.rpush(keys[0], "1")
        return [len(killed) == 1, failed, await asyncio.wait_for(again, 3.0)]

    assert asyncio.run(scenario()) == [True, False, True]


def test_a_wait_left_on_a_closed_loop_does_not_answer_the_next_loops_wait(backend):
    async def abandon() -> None:
        asyncio.ensure_future(backend.wait_for_work(["q"], 0.3))
        await asyncio.sleep(0.05)

    # Given a loop that closed with a BLPOP outstanding
    asyncio.run(abandon())

    async def next_loop() -> bytes:
        # When a new loop waits and a token arrives after the old wait's timeout
        await asyncio.sleep(0.4)
        waiting = asyncio.ensure_future(backend.wait_for_work(["q"], 5.0))
        await asyncio.sleep(0.05)
        backend.client.rpush(backend._prefix("q") + "notify", "token")
        await asyncio.wait_for(waiting, 3.0)
        return backend.client.llen(backend._prefix("q") + "notify")

    # Then it takes the token (a stale reply would have woken it with none taken)
    assert asyncio.run(next_loop()) == 0
