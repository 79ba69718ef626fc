"""The loop's wake-up: set before or after waiting, timeouts that cancel nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kqueue.worker.wake import Wake, first_of


def test_a_wake_set_before_the_wait_ends_it_at_once_and_clear_rearms_it():
    async def scenario() -> list[bool]:
        wake = Wake()
        wake.set()
        await asyncio.wait_for(wake.wait(), 1.0)
        wake.clear()
        pending = wake.future()
        await asyncio.sleep(0.01)
        return [wake.is_set(), pending.done()]

    assert asyncio.run(scenario()) == [False, False]


def test_a_timed_out_wait_leaves_the_wake_usable():
    async def scenario() -> bool:
        wake = Wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), 0.01)
        asyncio.get_running_loop().call_later(0.02, wake.set)
        await asyncio.wait_for(wake.wait(), 1.0)
        return wake.is_set()

    assert asyncio.run(scenario())


def test_first_of_returns_with_the_first_future_or_the_timeout_and_cancels_none():
    async def scenario() -> tuple[float, float, bool, bool]:
        loop = asyncio.get_running_loop()
        slow, fast = loop.create_future(), loop.create_future()
        loop.call_later(0.02, fast.set_result, None)
        started = time.monotonic()
        await first_of([slow, fast], 5.0)
        by_future = time.monotonic() - started
        started = time.monotonic()
        await first_of([slow], 0.05)
        by_timeout = time.monotonic() - started
        return by_future, by_timeout, slow.cancelled(), fast.done()

    by_future, by_timeout, cancelled, done = asyncio.run(scenario())
    assert by_future < 2.0 and 0.04 <= by_timeout < 2.0
    assert not cancelled and done
