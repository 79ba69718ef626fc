"""The Redis backend behind Sentinel: ``redis+sentinel://`` URLs, failover, optional ``WAIT``.

The client asks the sentinels where the master is (redis-py's ``Sentinel.master_for``) each
time it connects. When the master dies its connections fail (``BackendUnavailable``, which
workers back off from and dispatchers may retry: dispatching an id twice adds it once); once the
sentinels have promoted a replica the next connection goes there. A demoted master that answers
``READONLY`` is dropped the same way (redis-py turns that into a connection error).

Redis replicates asynchronously: a write the master acknowledged but had not yet sent to a
replica is lost when that replica is promoted. With ``wait_replicas=N`` every batch that
dispatches or acks ends with ``WAIT N timeout`` on the same connection, and the call fails with
``ReplicationTimeout`` unless N replicas confirmed it; a dispatch that returned is then on a
replica too. Leases, extensions and retries are not waited for: losing one of those makes a job
run again (at least once), never vanish.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from kqueue.backends import redact_url
from kqueue.backends.redis import PASSWORD_ENV, RedisBackend
from kqueue.backends.redis_connect import SentinelURL, parse_sentinel_url
from kqueue.backends.redis_replies import take_prefix
from kqueue.errors import ReplicationTimeout

try:
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel
except ImportError as exc:  # pragma: no cover - redis is a dependency
    raise ImportError(f"the redis backend needs redis-py ({exc}); run pip install redis") from None

#: The scripts whose writes ``wait_replicas`` waits for: dispatches and acks.
WAITED_SCRIPTS = frozenset({"ENQUEUE", "SUBMIT", "ACK"})


class SentinelBackend(RedisBackend):
    """A ``RedisBackend`` whose master is found through Sentinel, optionally waiting for
    replicas on dispatch and ack."""

    schemes = ("redis+sentinel",)

    def __init__(self, client: Any, *, wait_replicas: int = 0, wait_timeout_ms: int = 1000, **kw):
        """Args: client: a ``master_for`` client; wait_replicas: replicas each dispatch and ack
        waits for (0: none); wait_timeout_ms: how long it waits; the rest as ``RedisBackend``."""
        super().__init__(client, **kw)
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms

    @classmethod
    def from_url(cls, url: str, *, socket_timeout_s: float = 10.0) -> SentinelBackend:
        """``redis+sentinel://[:password@]h1:26379,h2:26379/service/db?wait_replicas=1``.

        Raises:
            BackendError: the URL is malformed (names the part; never shows a password).
        """
        url, prefix = take_prefix(url)
        parsed = parse_sentinel_url(url)
        if parsed.password is None and os.environ.get(PASSWORD_ENV):
            parsed = replace(parsed, password=os.environ[PASSWORD_ENV])
        client = _master_client(parsed, socket_timeout_s)
        return cls(
            client,
            wait_replicas=parsed.wait_replicas,
            wait_timeout_ms=parsed.wait_timeout_ms,
            safe_url=redact_url(url),
            prefix=prefix,
        )

    def open_async_client(self) -> Any:
        """The async API's client: this backend's own methods on a thread pool (``aio``).

        They find the master through the sentinels and ``WAIT`` as configured; a redis.asyncio
        client copied from this one would know neither (the master's address is not in the
        pool's settings, it is asked for on each connection).
        """
        from kqueue.backends.aio import ThreadedClient

        return ThreadedClient(self)

    def _run(self, name: str, keys: list, args: list) -> Any:
        if self.wait_replicas and name in WAITED_SCRIPTS:
            return self._batch([(name, keys, args)])[0]  # WAIT needs the same connection
        return super()._run(name, keys, args)

    def _after_calls(self, pipe: Any, calls: list[tuple[str, list, list]]) -> int:
        if not self._after_calls_needed(calls):
            return 0
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        return 1

    def _after_calls_needed(self, calls: list[tuple[str, list, list]]) -> bool:
        return bool(self.wait_replicas) and any(name in WAITED_SCRIPTS for name, _, _ in calls)

    def _check_after(self, replies: list) -> None:
        confirmed = int(replies[-1])
        if confirmed < self.wait_replicas:
            raise ReplicationTimeout(
                f"redis at {self.safe_url}: {confirmed} of {self.wait_replicas} replica(s) "
                f"confirmed the write within {self.wait_timeout_ms} ms; it may be lost on "
                "failover, retry it (a replica is down or lagging?)"
            )


def _master_client(parsed: SentinelURL, socket_timeout_s: float) -> Any:
    """A redis-py client of the service's master, re-resolved through the sentinels."""
    timeouts = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
    sentinel_options = dict(timeouts)
    if parsed.sentinel_password:
        sentinel_options["password"] = parsed.sentinel_password
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        parsed.service,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        socket_keepalive=True,
        health_check_interval=30,
        # as RedisBackend: one quick retry, then BackendUnavailable and the caller backs off
        retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1),
        **timeouts,
    )
