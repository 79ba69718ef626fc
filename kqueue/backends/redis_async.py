"""The async client of the Redis backend, on redis.asyncio: what ``*_async`` handle calls await.

The same keys, prefix and Lua scripts as ``RedisBackend`` (``SUBMIT``, ``ENQUEUE``, ``LOOKUP``,
``CANCEL``), sent by a real asyncio connection pool, so a web app's event loop never blocks on
Redis and a wait for a result is a ``BLMOVE`` that parks only the awaiting task. Replies are
parsed by ``redis_replies`` as on the blocking side; errors become ``BackendUnavailable`` and
``BackendError`` as there.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from kqueue.backends.aio import AsyncClient
from kqueue.backends.base import JobRecord, unknown
from kqueue.backends.redis_replies import WAIT_MAX_S, job_record
from kqueue.errors import BackendError, BackendUnavailable
from kqueue.policy.status import JobState

#: A ``RedisBackend`` (not imported: it imports this module to open its client).
RedisBackend = Any

#: Connection settings copied from a blocking client built without a URL.
_COPIED = ("host", "port", "db", "username", "password", "socket_timeout", "path")


def _translated(method: Callable) -> Callable:
    """redis-py's errors as kqueue's, as ``redis_replies.translated`` for coroutines."""

    @functools.wraps(method)
    async def wrapper(self: RedisAsyncClient, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise BackendUnavailable(
                f"redis at {self.backend.safe_url} is unreachable ({type(exc).__name__}: {exc}); "
                "retry later"
            ) from None
        except redis_errors.RedisError as exc:
            raise BackendError(
                f"redis at {self.backend.safe_url}: {type(exc).__name__}: {exc}"
            ) from None

    return wrapper


class RedisAsyncClient(AsyncClient):
    """A redis.asyncio client for one ``RedisBackend`` and one event loop.

    Args:
        backend: the blocking backend (its keys, prefix and scripts).
        client: a redis.asyncio client on the same server and database.
    """

    wakes_on_finish = True  # BLMOVE on the job's done list

    def __init__(self, backend: RedisBackend, client: aioredis.Redis):
        self.backend, self.client = backend, client

    @classmethod
    def for_backend(cls, backend: RedisBackend) -> RedisAsyncClient | None:
        """A client connecting as ``backend`` does (its URL and options, or its pool's); None
        when its pool is not a plain one (e.g. Sentinel's) that can be copied."""
        retry = Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1)
        if backend.async_source is not None:
            url, options = backend.async_source
            return cls(backend, aioredis.Redis.from_url(url, retry=retry, **options))
        pool = backend.client.connection_pool
        if type(pool) is not redis.ConnectionPool:
            return None
        settings = pool.connection_kwargs
        copied = {k: settings[k] for k in _COPIED if settings.get(k) is not None}
        if "path" in copied:
            copied["unix_socket_path"] = copied.pop("path")
        return cls(backend, aioredis.Redis(retry=retry, **copied))

    async def _batch(self, calls: list[tuple[str, list, list]], prelude: Callable | None = None):
        """Several scripts in one pipelined trip, as ``RedisBackend._batch`` does."""
        scripts = self.backend._scripts
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            if prelude is not None:
                prelude(pipe)
            for name, keys, args in calls:
                pipe.evalsha(scripts[name].sha, len(keys), *keys, *args)
            try:
                replies = await pipe.execute()
            except redis_errors.NoScriptError:
                if attempt == 2:
                    raise
                for script in scripts.values():
                    await self.client.script_load(script.script)
                continue
            return replies[1:] if prelude is not None else replies
        raise AssertionError("unreachable")

    def _listed(self, queue: str) -> Callable:
        return lambda pipe: pipe.sadd(f"{self.backend.prefix}:queues", queue)

    @_translated
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
        keys, prefix = self.backend._keys, self.backend._prefix(queue)
        if unique_key is None:
            head = [prefix, repr(float(delay_s)), str(int(priority)), job_class]
            call = ("ENQUEUE", keys(queue, "pending", "notify"), head)
            await self._batch([(*call[:2], [*call[2], job_id, body])], self._listed(queue))
            return job_id
        args = [prefix, repr(float(delay_s)), job_id, body, unique_key]
        args += [repr(float(unique_for_s)), str(int(priority)), job_class]
        call = ("SUBMIT", keys(queue, "pending", "notify", "dead"), args)
        [holder] = await self._batch([call], self._listed(queue))
        return holder.decode()

    def _lookup_call(self, job_id: str, queue: str) -> tuple[str, list, list]:
        keys = self.backend._keys(queue, "pending", "leased", "dead")
        return ("LOOKUP", keys, [self.backend._prefix(queue), job_id])

    async def _queues(self, queue: str | None) -> list[str]:
        if queue:
            return [queue]
        names = await self.client.smembers(f"{self.backend.prefix}:queues")
        return sorted(name.decode() for name in names)

    @_translated
    async def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        names = await self._queues(queue)
        replies = await self._batch([self._lookup_call(job_id, n) for n in names]) if names else []
        now = time.time()
        for name, reply in zip(names, replies, strict=True):
            record = job_record(job_id, name, reply, now)
            if record.state is not JobState.UNKNOWN:
                return record
        return unknown(job_id)

    @_translated
    async def wait_and_lookup(self, job_id: str, queue: str, timeout_s: float) -> JobRecord:
        """``BLMOVE`` the job's done list onto itself and LOOKUP, pipelined: one trip."""
        key = self.backend._prefix(queue) + f"done:{job_id}"
        wait_s = min(WAIT_MAX_S, max(0.001, timeout_s))
        replies = await self._batch(
            [self._lookup_call(job_id, queue)],
            lambda pipe: pipe.blmove(key, key, wait_s, "LEFT", "LEFT"),
        )
        return job_record(job_id, queue, replies[0], time.time())

    @_translated
    async def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        for name in await self._queues(queue):
            keys = self.backend._keys(name, "pending", "leased", "dead")
            args = [self.backend._prefix(name), job_id, record, max(1, math.ceil(ttl_s * 1000))]
            [before] = await self._batch([("CANCEL", keys, args)])
            before = before.decode()
            if before == "finished":
                return (await self.lookup(job_id, name)).state
            if before != "unknown":
                return JobState(before)
        return JobState.UNKNOWN

    async def aclose(self) -> None:
        await self.client.aclose()
