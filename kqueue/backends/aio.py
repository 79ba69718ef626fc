"""What the async job API awaits of a backend: submit, lookup, wait, cancel, off the event loop.

``Job.dispatch_async`` and ``JobHandle.*_async`` (``kqueue.api.handle``) await an
``AsyncClient``. Redis gives a real asyncio client (``redis_async``, on redis.asyncio); every
other backend gets ``ThreadedClient``: its own blocking methods run on a small thread pool of its
own, so a slow disk or a lock never stalls the caller's loop, and a wait for a result is an
``asyncio.sleep`` between two looks (no thread sits blocked in a wait). A backend offers its own
client with an ``open_async_client()`` method. ``client_for`` keeps one client per backend and
event loop (a redis.asyncio connection belongs to the loop that made it).
"""

from __future__ import annotations

import abc
import asyncio
import functools
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kqueue.backends.base import Backend, JobRecord
from kqueue.policy.status import JobState

#: Threads of a ``ThreadedClient`` (each SQLite thread has its own connection).
THREADS = 4


class AsyncClient(abc.ABC):
    """The async half of a backend (the same meaning as ``Backend``'s methods of those names)."""

    #: True when ``wait_and_lookup`` returns as soon as the job ends (else the caller sleeps a
    #: little longer each time and looks again).
    wakes_on_finish: bool = False

    @abc.abstractmethod
    async def submit(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
        unique_for_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> str:
        """``Backend.submit``: add one message (guarded by a unique key); the id that runs."""

    @abc.abstractmethod
    async def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        """``Backend.lookup``: what the backend knows of ``job_id``."""

    @abc.abstractmethod
    async def wait_and_lookup(self, job_id: str, queue: str, timeout_s: float) -> JobRecord:
        """Wait until the job may have ended (at most ``timeout_s``), then look it up."""

    @abc.abstractmethod
    async def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        """``Backend.cancel``: cancel a job; returns its state before."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the client holds (connections); it is not used again."""


class ThreadedClient(AsyncClient):
    """A blocking backend's methods on a thread pool of its own (SQLite, memory://).

    Args:
        backend: the backend whose methods run on the pool.
        threads: how many run at once.
    """

    def __init__(self, backend: Backend, threads: int = THREADS):
        self.backend = backend
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="kqueue-async")

    async def _call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(method, *args, **kwargs))

    async def submit(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
        unique_for_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> str:
        return await self._call(
            self.backend.submit,
            queue,
            job_id,
            body,
            delay_s=delay_s,
            unique_key=unique_key,
            unique_for_s=unique_for_s,
            priority=priority,
            job_class=job_class,
        )

    async def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        return await self._call(self.backend.lookup, job_id, queue)

    async def wait_and_lookup(self, job_id: str, queue: str, timeout_s: float) -> JobRecord:
        """Sleep on the loop (no thread is held), then look the job up on the pool."""
        await asyncio.sleep(max(0.0, timeout_s))
        return await self.lookup(job_id, queue)

    async def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        return await self._call(self.backend.cancel, job_id, queue, record, ttl_s)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False)


#: Each backend's clients, one per event loop (both weakly held: a closed loop's client goes).
_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def client_for(backend: Backend) -> AsyncClient:
    """The async client of ``backend`` for the running event loop (made on first use).

    Raises:
        RuntimeError: no event loop is running (call it from a coroutine).
    """
    loop = asyncio.get_running_loop()
    per_loop = _CLIENTS.setdefault(backend, weakref.WeakKeyDictionary())
    client = per_loop.get(loop)
    if client is None:
        opener = getattr(backend, "open_async_client", None)  # Redis: a real asyncio client
        client = per_loop[loop] = opener() if opener is not None else ThreadedClient(backend)
    return client


async def close_clients(backend: Backend) -> None:
    """Close ``backend``'s async client of the running loop, if it made one."""
    client = _CLIENTS.get(backend, {}).pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


__all__ = ["AsyncClient", "ThreadedClient", "client_for", "close_clients"]
