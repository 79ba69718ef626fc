"""An idle worker's ``BLPOP``, its reply watched by the event loop's selector.

The worker waits for work on its event loop. A ``BLPOP`` on a thread of its own (the first way
we did it) puts two more thread hand-offs on the path of every job that arrives at an idle
worker: the thread wakes with the reply, then wakes the loop, and both want the GIL while the
loop and the inline threads run. Here the loop sends the command on a connection kept for it and
watches that socket: the reply wakes the loop itself, and no thread is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_errors

#: What a broken connection or a bad reply raises while the wait is sent or read.
WAIT_ERRORS = (redis_errors.RedisError, OSError)


class LoopWait:
    """One outstanding ``BLPOP`` at a time, on a connection taken from ``pool`` for it.

    ``start`` returns a future that resolves True when the reply (a token or the timeout's nil)
    has been read, False when the connection failed (the connection is dropped; the next
    ``start`` takes another). A wait outlives a caller who stopped awaiting it: the next
    ``start`` on the same loop returns the same future until it resolves.
    """

    def __init__(self, pool: Any):
        self._pool = pool
        self._connection: Any = None
        self._future: asyncio.Future | None = None
        self._fd: int | None = None

    def start(
        self, loop: asyncio.AbstractEventLoop, keys: Sequence[str], timeout_s: float
    ) -> asyncio.Future:
        """Send ``BLPOP keys timeout_s`` (unless one is outstanding) and return its future."""
        future = self._future
        if future is not None and not future.done() and future.get_loop() is loop:
            return future
        self._abandon()
        future = self._future = loop.create_future()
        try:
            if self._connection is None:
                self._connection = self._pool.get_connection()
            self._connection.send_command("BLPOP", *keys, timeout_s)
            self._fd = self._connection._sock.fileno()
        except WAIT_ERRORS:
            self._drop()
            future.set_result(False)
            return future
        loop.add_reader(self._fd, self._readable, loop, future)
        return future

    def _readable(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        loop.remove_reader(self._fd)
        self._fd = None
        try:
            self._connection.read_response()
            ok = True
        except WAIT_ERRORS:
            self._drop()
            ok = False
        if not future.done():
            future.set_result(ok)

    def _abandon(self) -> None:
        """A wait sent and never read (its loop went away): stop watching it and drop its
        connection, whose next reply would be that wait's."""
        if self._fd is None:
            return
        loop = self._future.get_loop()
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                loop.remove_reader(self._fd)
        self._fd = None
        self._drop()

    def _drop(self) -> None:
        """Disconnect the wait's connection and give it back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*WAIT_ERRORS):
                connection.disconnect()
            with contextlib.suppress(*WAIT_ERRORS, ValueError, KeyError):
                self._pool.release(connection)

    def close(self) -> None:
        """Abandon an outstanding wait and close its connection."""
        self._abandon()
        self._drop()
        if self._future is not None and not self._future.done():
            with contextlib.suppress(RuntimeError):  # its loop is closed
                self._future.set_result(False)
