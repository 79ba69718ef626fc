"""The loop's wake-up: an ``asyncio.Event`` whose waiting costs no task.

An idle worker waits for the first of three things: a finished job or a stop (``Wake``), new
work in the backend (``Backend.work_waiter``), or its poll interval. ``asyncio.wait`` over two
tasks made that four loop iterations and two tasks per idle period on the path of every job that
reaches an idle worker; ``first_of`` over plain futures is two iterations and no task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class Wake:
    """Set, clear and wait as ``asyncio.Event``, plus ``future()`` to combine with others."""

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future | None = None

    def set(self) -> None:
        self._set = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def future(self) -> asyncio.Future:
        """A future that resolves when the wake is set (at once if it is set now)."""
        future = self._future
        if future is None or future.cancelled() or (future.done() and not self._set):
            future = self._future = asyncio.get_running_loop().create_future()
            if self._set:
                future.set_result(None)
        return future

    async def wait(self) -> None:
        """Return once the wake is set (cancelling the caller leaves the wake as it was)."""
        await asyncio.shield(self.future())


async def first_of(futures: Sequence[asyncio.Future], timeout_s: float) -> None:
    """Return when any of ``futures`` is done or after ``timeout_s``; cancels none of them."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finish(_: object = None) -> None:
        if not done.done():
            done.set_result(None)

    for future in futures:
        future.add_done_callback(finish)
    timer = loop.call_later(max(0.0, timeout_s), finish)
    try:
        await done
    finally:
        timer.cancel()
        for future in futures:
            future.remove_done_callback(finish)
