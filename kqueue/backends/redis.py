"""The Redis backend: the production broker, shared by many workers on many hosts.

Messages are leased, never popped: each queue keeps a ``pending`` sorted set (scored by when a
message may be leased), a ``leased`` sorted set (scored by lease expiry), a ``dead`` sorted set
and one hash per message; every state change is one Lua script (``redis_scripts``), so a crash or
a lost connection between two commands cannot lose or duplicate a message. Leasing reclaims
expired leases in the same script, so a dead worker's messages come back after the visibility
timeout without a janitor. Times are the Redis server's clock. Why sorted sets rather than
Streams or lists: see ``docs/DECISIONS.md``.

Connection problems (refused, reset, timeout, server loading) surface as ``BackendUnavailable``
so callers can back off and retry without knowing redis-py; the client reconnects on next use.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from kqueue.backends import redact_url, redis_scripts, redis_scripts_handles, redis_scripts_ops
from kqueue.backends.base import (
    Backend,
    Lease,
    Records,
    State,
)
from kqueue.backends.redis_classes import RedisClasses
from kqueue.backends.redis_dead import RedisDeadLetters
from kqueue.backends.redis_direct import Busy, DirectLine
from kqueue.backends.redis_fleet import RedisFleet
from kqueue.backends.redis_handles import RedisHandles
from kqueue.backends.redis_limits import RedisLimits
from kqueue.backends.redis_replies import (
    PREFIX,
    WAIT_MAX_S,
    flat,
    parse_leases,
    take_prefix,
    translated,
)
from kqueue.backends.redis_trace import RedisTrace
from kqueue.backends.redis_wait import LoopWait
from kqueue.errors import BackendError

try:
    import redis
    from redis import exceptions as redis_errors
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - redis is a dependency
    raise ImportError(f"the redis backend needs redis-py ({exc}); run pip install redis") from None

#: Most messages per script call (bounds the time one script blocks Redis).
CHUNK = 500
#: Environment variable with the password when the URL has none (never logged).
PASSWORD_ENV = "KQUEUE_REDIS_PASSWORD"


#: Every script the backend runs, by name (the message lifecycle, the handles', the operators').
SCRIPTS = {
    name: getattr(module, name)
    for module, names in (
        (redis_scripts, ("ENQUEUE", "SUBMIT", "LEASE", "ACK", "EXTEND", "REQUEUE", "DEAD")),
        (redis_scripts_handles, ("LOOKUP", "CANCEL", "CANCEL_REQUESTED")),
        (redis_scripts_ops, ("REQUEUE_DEAD", "DEAD_LETTERS", "COUNTS", "PUBLISH", "STATUSES")),
    )
    for name in names
}


def close_pool_sockets(pool: Any) -> None:
    """Close this process's copies of the sockets of a redis-py pool's connections.

    Without the pool's lock and without ``disconnect`` (which would reset the pool under its
    lock in a forked child, leaving the sockets open): each connection's socket object is closed,
    so nothing closes its descriptor number again. A plain pool keeps idle and in-use lists, a
    blocking (Sentinel) pool one ``_connections`` list.
    """
    connections = [
        *getattr(pool, "_available_connections", ()),
        *getattr(pool, "_in_use_connections", ()),
        *getattr(pool, "_connections", ()),
    ]
    for connection in connections:
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class RedisBackend(
    RedisTrace, RedisLimits, RedisHandles, RedisClasses, RedisFleet, RedisDeadLetters, Backend
):
    """A backend in one Redis database; safe for many processes and hosts at once."""

    schemes = ("redis", "rediss")
    wakes_on_enqueue = True  # idle workers BLPOP the queues' notify lists
    wakes_on_finish = True

    def __init__(self, client: redis.Redis, *, safe_url: str = "redis://", prefix: str = PREFIX):
        """Args: client: a redis-py client (bytes replies); safe_url: its URL without secrets;
        prefix: what every key starts with (several apps on one Redis each use their own)."""
        self.client = client
        self.safe_url = safe_url
        self.prefix = prefix
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}
        #: Queues this client added to the ``queues`` set already (each is added once).
        self._listed: set[str] = set()
        #: The blocking wait of ``wait_for_work`` (its own connection, watched by the loop); a
        #: wait outlives a cancelled caller and serves the next call.
        self._waits = LoopWait(self.client.connection_pool)
        #: The scripts' own connection (``redis_direct``): dispatches and leases skip the client.
        self._line = DirectLine(self.client.connection_pool)
        #: The URL (no prefix) and client options ``open_async_client`` connects with.
        self.async_source: tuple[str, dict[str, Any]] | None = None

    @classmethod
    def from_url(cls, url: str, *, socket_timeout_s: float = 10.0) -> RedisBackend:
        """``redis://[:password@]host:port/db`` or ``rediss://`` (TLS, redis-py's query options).

        Without a password in the URL, ``$KQUEUE_REDIS_PASSWORD`` is used when set.

        Raises:
            BackendError: the URL is malformed (the message never shows the password).
        """
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": socket_timeout_s,
            "socket_keepalive": True,
            "health_check_interval": 30,
            # one quick retry hides a dropped idle connection; longer outages surface as
            # BackendUnavailable so the worker backs off without blocking its event loop
            "retry": Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), 1),
        }
        password = os.environ.get(PASSWORD_ENV)
        if password and "@" not in url:
            options["password"] = password
        url, prefix = take_prefix(url)
        try:
            client = redis.Redis.from_url(url, **options)
        except (ValueError, TypeError) as exc:
            raise BackendError(f"redis URL {redact_url(url)!r} is malformed: {exc}") from None
        made = cls(client, safe_url=redact_url(url), prefix=prefix)
        made.async_source = (url, {k: v for k, v in options.items() if k != "retry"})
        return made

    # --- keys -------------------------------------------------------------------------------

    def _prefix(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:"

    def _keys(self, queue: str, *states: str) -> list[str]:
        prefix = self._prefix(queue)
        return [prefix + state for state in states]

    def _queues(self) -> list[str]:
        return sorted(q.decode() for q in self.client.smembers(f"{self.prefix}:queues"))

    def _run(self, name: str, keys: list[str], args: list) -> Any:
        script = self._scripts[name]
        try:
            return self._line.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except (Busy, redis_errors.NoScriptError):  # the client's way: it loads the script
            return script(keys=keys, args=args)

    def _batch(self, calls: list[tuple[str, list, list]], prelude: Callable | None = None) -> list:
        """Run several scripts in one pipelined round trip; returns their replies in order.

        redis-py's pipeline would ask ``SCRIPT EXISTS`` on every execute (an extra round trip),
        so this sends ``EVALSHA`` and loads the scripts only after a ``NOSCRIPT`` reply (a
        restarted or failed-over server). Re-running is safe: every script is idempotent or
        guarded by lease tokens.
        """
        if prelude is None and not self._after_calls_needed(calls):
            with contextlib.suppress(Busy, redis_errors.NoScriptError):
                return self._line.pipeline(self._evalsha_commands(calls))
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            if prelude is not None:
                prelude(pipe)
            for name, keys, args in calls:
                pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
            extra = self._after_calls(pipe, calls)
            try:
                replies = pipe.execute()
            except redis_errors.NoScriptError:
                if attempt == 2:
                    raise
                for script in self._scripts.values():
                    self.client.script_load(script.script)
                continue
            if extra:
                self._check_after(replies[-extra:])
                replies = replies[:-extra]
            return replies[1:] if prelude is not None else replies
        raise AssertionError("unreachable")

    def _evalsha_commands(self, calls: list[tuple[str, list, list]]) -> list[tuple]:
        """The ``EVALSHA`` commands of ``calls``, for the direct line."""
        return [("EVALSHA", self._scripts[n].sha, len(k), *k, *a) for n, k, a in calls]

    def _after_calls(self, pipe: Any, calls: list[tuple[str, list, list]]) -> int:
        """Commands a subclass sends after a batch's scripts (``WAIT``); returns how many.

        Their replies go to ``_check_after`` and are not returned. The plain backend adds none.
        """
        return 0

    def _after_calls_needed(self, calls: list[tuple[str, list, list]]) -> bool:
        """Whether ``_after_calls`` would add commands to these calls (then they go through
        redis-py's pipeline, which the subclass's commands are written for)."""
        return False

    def _check_after(self, replies: list) -> None:
        """Check the replies of the commands ``_after_calls`` added (raise to fail the call)."""

    # --- messages ---------------------------------------------------------------------------

    @translated
    def enqueue(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        self._enqueue(queue, [(job_id, body)], delay_s, priority, job_class)

    @translated
    def enqueue_many(
        self,
        queue: str,
        messages: Sequence[tuple[str, bytes]],
        *,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        self._enqueue(queue, messages, 0.0, priority, job_class)

    def _enqueue(
        self,
        queue: str,
        messages: Sequence[tuple[str, bytes]],
        delay_s: float,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        keys, prefix = self._keys(queue, "pending", "notify"), self._prefix(queue)
        head = [prefix, repr(float(delay_s)), str(int(priority)), job_class]
        calls = [
            ("ENQUEUE", keys, [*head, *flat(messages[i : i + CHUNK])])
            for i in range(0, len(messages), CHUNK)
        ]
        if queue in self._listed and len(calls) == 1:
            self._run(*calls[0])  # one command, no pipeline: the common single dispatch
            return
        if queue in self._listed:  # listed by this client already: the scripts alone
            self._batch(calls)
            return
        self._batch(calls, lambda pipe: pipe.sadd(f"{self.prefix}:queues", queue))
        self._listed.add(queue)

    @translated
    def lease(
        self, queue: str, worker_id: str, limit: int, visibility_timeout_s: float
    ) -> list[Lease]:
        if limit <= 0:
            return []
        call, token = self._lease_call(queue, worker_id, limit, visibility_timeout_s)
        return parse_leases(queue, token, self._run(*call))

    @translated
    def ack_and_lease(
        self,
        acks: Sequence[Lease],
        queue: str,
        worker_id: str,
        limit: int,
        visibility_timeout_s: float,
        records: Records | None = None,
    ) -> tuple[int, list[Lease]]:
        """One pipelined round trip: the ACK scripts of ``acks``, then the LEASE script."""
        calls = self._ack_calls(acks, records)
        if limit <= 0:
            return (sum(int(n) for n in self._batch(calls)) if calls else 0), []
        call, token = self._lease_call(queue, worker_id, limit, visibility_timeout_s)
        replies = self._batch([*calls, call])
        return sum(int(n) for n in replies[:-1]), parse_leases(queue, token, replies[-1])

    async def ack_and_lease_async(
        self,
        acks: Sequence[Lease],
        queue: str,
        worker_id: str,
        limit: int,
        visibility_timeout_s: float,
        records: Records | None = None,
    ) -> tuple[int, list[Lease]]:
        """``ack_and_lease`` on the direct line, its reply awaited on the loop; a busy line, a
        broken connection or an unknown script takes the blocking way (the client's)."""
        if limit <= 0:  # acks alone: the blocking way
            return self.ack_and_lease(acks, queue, worker_id, limit, visibility_timeout_s, records)
        call, token = self._lease_call(queue, worker_id, limit, visibility_timeout_s)
        calls = [*self._ack_calls(acks, records), call]
        if not self._after_calls_needed(calls):
            try:
                replies = await self._line.pipeline_async(self._evalsha_commands(calls))
            except (Busy, redis_errors.NoScriptError):
                pass
            except redis_errors.RedisError as exc:
                raise BackendError(
                    f"redis at {self.safe_url}: {type(exc).__name__}: {exc}"
                ) from None
            else:
                return sum(int(n) for n in replies[:-1]), parse_leases(queue, token, replies[-1])
        return self.ack_and_lease(acks, queue, worker_id, limit, visibility_timeout_s, records)

    def _lease_call(
        self, queue: str, worker_id: str, limit: int, visibility_timeout_s: float
    ) -> tuple[tuple[str, list, list], str]:
        token = uuid.uuid4().hex
        keys = self._keys(queue, "pending", "leased", "notify")
        args = [self._prefix(queue), limit, repr(float(visibility_timeout_s)), token, worker_id]
        return ("LEASE", keys, args), token

    @translated
    def ack(self, leases: Sequence[Lease], records: Records | None = None) -> int:
        calls = self._ack_calls(leases, records)
        return sum(int(n) for n in self._batch(calls)) if calls else 0

    def _ack_calls(
        self, leases: Sequence[Lease], records: Records | None
    ) -> list[tuple[str, list, list]]:
        """ACK calls per queue and chunk: ``id, token, ttl_ms, record`` per lease."""
        by_queue: dict[str, list] = defaultdict(list)
        for lease in leases:
            record, ttl_s = (records or {}).get(lease.job_id, (b"", 0.0))
            ttl_ms = max(0, math.ceil(ttl_s * 1000)) if record else 0
            by_queue[lease.queue].append((lease.job_id, lease.token, ttl_ms, record))
        return [
            ("ACK", self._keys(queue, "leased"), [self._prefix(queue), *flat(held[i : i + CHUNK])])
            for queue, held in by_queue.items()
            for i in range(0, len(held), CHUNK)
        ]

    @translated
    def extend(self, leases: Sequence[Lease], visibility_timeout_s: float) -> list[Lease]:
        replies = self._per_queue(
            "EXTEND", ("leased",), [repr(float(visibility_timeout_s))], leases
        )
        held: dict[str, float] = {}
        for reply in replies:
            expires_at = float(reply[0])
            held.update((job_id.decode(), expires_at) for job_id in reply[1:])
        return [lease.with_expiry(held[lease.job_id]) for lease in leases if lease.job_id in held]

    @translated
    def retry(self, lease: Lease, delay_s: float, error: str) -> bool:
        args = [repr(float(delay_s)), error or " ", "1"]
        states = ("pending", "leased", "notify")
        return sum(self._per_queue("REQUEUE", states, args, [lease])) == 1

    @translated
    def release(self, leases: Sequence[Lease], delay_s: float = 0.0) -> int:
        args = [repr(float(delay_s)), "", "0"]
        states = ("pending", "leased", "notify")
        return sum(int(n) for n in self._per_queue("REQUEUE", states, args, leases))

    def _per_queue(
        self, script: str, states: tuple[str, ...], args: list, leases: Sequence[Lease]
    ) -> list:
        """Run ``script`` once per queue (and chunk) of ``leases`` in one pipelined round trip."""
        calls = self._per_queue_calls(script, states, args, leases)
        return self._batch(calls) if calls else []

    def _per_queue_calls(
        self, script: str, states: tuple[str, ...], args: list, leases: Sequence[Lease]
    ) -> list[tuple[str, list, list]]:
        by_queue: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for lease in leases:
            by_queue[lease.queue].append((lease.job_id, lease.token))
        calls = [
            (
                script,
                self._keys(queue, *states),
                [self._prefix(queue), *args, *flat(held[i : i + CHUNK])],
            )
            for queue, held in by_queue.items()
            for i in range(0, len(held), CHUNK)
        ]
        return calls

    @translated
    def dead(self, lease: Lease, reason: str) -> bool:
        keys = self._keys(lease.queue, "leased", "dead")
        args = [self._prefix(lease.queue), lease.job_id, lease.token, reason]
        return int(self._run("DEAD", keys, args)) == 1

    @translated
    def counts(self, queue: str | None = None) -> dict[str, dict[str, int]]:
        names = [queue] if queue else self._queues()
        calls = [
            ("COUNTS", self._keys(name, "pending", "leased", "dead"), [self._prefix(name)])
            for name in names
        ]
        result: dict[str, dict[str, int]] = {}
        order = (State.READY, State.SCHEDULED, State.LEASED, State.DEAD)
        for name, reply in zip(names, self._batch(calls) if names else [], strict=True):
            if any(reply):
                result[name] = {state.value: int(n) for state, n in zip(order, reply, strict=True)}
        return result

    # --- waking idle workers ---------------------------------------------------------------

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> None:
        """``BLPOP`` the queues' wake-up tokens for up to ``timeout_s`` (at most ``WAIT_MAX_S``).

        The ``BLPOP`` goes out on a connection of its own and the event loop watches its socket
        (``redis_wait``); when the caller is cancelled (woken by something else) the wait
        carries on, and the next call awaits it rather than sending another. A connection error
        is waited out for ``timeout_s`` so a broken server never turns waiting into busy
        polling; the caller's next lease reports it.
        """
        keys = [self._prefix(queue) + "notify" for queue in queues]
        timeout_s = min(WAIT_MAX_S, max(0.001, timeout_s))
        waiter = self._waits.start(asyncio.get_running_loop(), keys, timeout_s)
        if not await asyncio.shield(waiter):
            await asyncio.sleep(timeout_s)

    def work_waiter(self, queues: Sequence[str], timeout_s: float) -> asyncio.Future:
        """The outstanding ``BLPOP``'s own future (no task); when it cannot be sent, the
        default's task, which waits the outage out for ``timeout_s``."""
        keys = [self._prefix(queue) + "notify" for queue in queues]
        wait_s = min(WAIT_MAX_S, max(0.001, timeout_s))
        waiter = self._waits.start(asyncio.get_running_loop(), keys, wait_s)
        if waiter.done() and not waiter.result():
            return super().work_waiter(queues, timeout_s)
        return waiter

    def open_async_client(self) -> Any:
        """A redis.asyncio client on the same server and prefix (``redis_async``), or this
        backend's methods on a thread pool when its connections are not a plain pool."""
        from kqueue.backends.aio import ThreadedClient
        from kqueue.backends.redis_async import RedisAsyncClient

        made = RedisAsyncClient.for_backend(self)
        return made if made is not None else ThreadedClient(self)

    def close(self) -> None:
        self._waits.close()
        self._line.close()
        self.client.close()

    def release_after_fork(self) -> None:
        close_pool_sockets(self.client.connection_pool)
