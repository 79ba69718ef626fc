"""The backend's scripts on one connection of its own: the hot calls without redis-py's layers.

Every dispatch sends one ``EVALSHA`` and every worker round one pipelined ack and lease. Through
the client, each call also passes redis-py's ``Script`` wrapper, ``execute_command``, its retry
closure, its observability hooks and the pool's checkout and return (a deprecation check on every
``get_connection``): more CPU than packing, sending and reading the reply together. Here the
backend keeps one connection of the client's pool and sends the packed commands on it directly.

Whoever takes the line first uses it; a thread that finds it busy (another thread is mid-call)
is told so and goes through the client as before, so threads never wait on each other here. A
connection error drops the line's connection and the caller repeats the call through the client,
whose own retry then applies, as it did before: every script is idempotent or guarded by lease
tokens, so a repeat after a lost reply is safe. A forked child never uses its parent's
connection (it takes a fresh one from the pool, which redis-py resets after a fork).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from redis import exceptions as redis_errors

#: What a broken connection raises; the caller repeats the call through the client.
LINE_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


class Busy(Exception):
    """The line is in use by another thread, or its connection just failed: use the client."""


class DirectLine:
    """One connection taken from ``pool``, used by one caller at a time, never waited for."""

    def __init__(self, pool: Any):
        self._pool = pool
        self._lock = threading.Lock()
        self._connection: Any = None
        self._pid = os.getpid()

    def call(self, *command: Any) -> Any:
        """Send one command and return its reply; an error reply raises as in redis-py.

        Raises:
            Busy: the line is busy or its connection failed (send it through the client).
            redis.exceptions.ResponseError: the server answered with an error.
        """
        return self.pipeline([command])[0]

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list:
        """Send ``commands`` in one round trip and return their replies in order.

        As redis-py's pipeline: every reply is read, then the first error reply is raised.

        Raises:
            Busy: the line is busy or its connection failed (send them through the client).
            redis.exceptions.ResponseError: a command's reply was an error.
        """
        self._after_fork()
        if not self._lock.acquire(blocking=False):
            raise Busy
        try:
            return self._exchange(commands)
        finally:
            self._lock.release()

    async def pipeline_async(self, commands: Sequence[Sequence[Any]]) -> list:
        """``pipeline``, on the running event loop: the commands are sent, then the loop runs
        other callbacks until the line's socket is readable, then the replies are read.

        Raises:
            Busy: as ``pipeline``.
            redis.exceptions.ResponseError: as ``pipeline``.
        """
        self._after_fork()
        if not self._lock.acquire(blocking=False):
            raise Busy
        try:
            with self._guarded():
                connection = self._send(commands)
                await _readable(connection._sock.fileno(), connection.socket_timeout)
                replies, error = self._read(connection, len(commands))
        finally:
            self._lock.release()
        if error is not None:
            raise error
        return replies

    def _exchange(self, commands: Sequence[Sequence[Any]]) -> list:
        with self._guarded():
            replies, error = self._read(self._send(commands), len(commands))
        if error is not None:
            raise error
        return replies

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """A broken connection is dropped and told as ``Busy``; an interrupted exchange drops
        it too (its next reply would be this exchange's)."""
        try:
            yield
        except LINE_ERRORS:
            self._drop()
            raise Busy from None
        except BaseException:
            self._drop()
            raise

    def _send(self, commands: Sequence[Sequence[Any]]) -> Any:
        connection = self._connection
        if connection is None:
            connection = self._connection = self._pool.get_connection()
        if len(commands) == 1:
            connection.send_packed_command(connection.pack_command(*commands[0]))
        else:
            connection.send_packed_command(connection.pack_commands(commands))
        return connection

    @staticmethod
    def _read(connection: Any, count: int) -> tuple[list, Exception | None]:
        """``count`` replies, error replies among them, and the first error (raised by the
        caller once all are read, so the connection stays in step)."""
        replies, error = [], None
        for _ in range(count):
            try:
                replies.append(connection.read_response())
            except redis_errors.ResponseError as exc:
                replies.append(exc)
                error = error or exc
        return replies, error

    def _after_fork(self) -> None:
        """In a forked child, forget the parent's connection and lock (never used here)."""
        if self._pid != os.getpid():
            self._pid, self._connection, self._lock = os.getpid(), None, threading.Lock()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(*LINE_ERRORS, redis_errors.RedisError):
            connection.disconnect()
        with contextlib.suppress(*LINE_ERRORS, redis_errors.RedisError, ValueError, KeyError):
            self._pool.release(connection)

    def close(self) -> None:
        """Close the line's connection (the backend closes)."""
        with self._lock:
            self._drop()


async def _readable(fd: int, timeout_s: float | None) -> None:
    """Wait on the running loop until ``fd`` can be read, at most ``timeout_s`` (the client's
    ``socket_timeout``, as its blocking read has).

    Raises:
        TimeoutError: nothing came in time (a frozen server or a link cut without a reset); an
            ``OSError``, so the line is dropped and the call repeated through the client.
    """
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout_s)
    finally:
        loop.remove_reader(fd)
