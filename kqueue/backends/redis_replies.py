"""What the Redis backend shares between its modules: error translation, reply parsing, URLs.

Kept apart from ``redis`` (the queue) and ``redis_handles`` (what handles ask) so both use them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import exceptions as redis_errors

from kqueue.backends import redact_url
from kqueue.backends.base import JobRecord, Lease, waiting_state
from kqueue.errors import BackendError, BackendUnavailable
from kqueue.policy.status import JobState

#: Every key starts with this unless the URL names another (``?prefix=myapp``).
PREFIX = "kqueue"
#: Longest single blocking call (``BLPOP``, ``BLMOVE``), seconds (below the socket timeout).
WAIT_MAX_S = 5.0


def translated(method: Callable) -> Callable:
    """Turn redis-py errors into kqueue's: ``BackendUnavailable`` for connection problems."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise BackendUnavailable(
                f"redis at {self.safe_url} is unreachable ({type(exc).__name__}: {exc}); "
                "retry later"
            ) from None
        except redis_errors.RedisError as exc:
            raise BackendError(f"redis at {self.safe_url}: {type(exc).__name__}: {exc}") from None

    return wrapper


def parse_leases(queue: str, token: str, reply: list) -> list[Lease]:
    """The leases in a LEASE script's reply, oldest first."""
    expires_at = float(reply[0])
    leases = []
    for packed in reply[1:]:  # b"<len(id)>:<id><attempts>:<enqueued_at>:<priority>:<body>"
        colon = packed.index(b":")
        end = colon + 1 + int(packed[:colon])
        attempts, enqueued, priority, body = packed[end:].split(b":", 3)
        job_id = packed[colon + 1 : end].decode()
        lease = Lease(job_id, queue, body, int(attempts), float(enqueued), token, expires_at)
        leases.append(lease if priority == b"0" else replace(lease, priority=int(priority)))
    leases.sort(key=lambda lease: (-lease.priority, lease.enqueued_at))
    return leases


def job_record(job_id: str, queue: str, reply: list, now: float) -> JobRecord:
    """A LOOKUP reply as a ``JobRecord`` (see ``redis_scripts_handles.LOOKUP``)."""
    state, attempts, enqueued, due, at, worker, error, failed, record, body = reply
    state = state.decode()

    def number(raw: bytes) -> float:
        return float(raw) if raw else math.nan

    error_text = error.decode(errors="replace")
    if state == "waiting":
        job_state = waiting_state(
            now, number(at), number(due) if due else number(enqueued), error_text
        )
    elif state == "finished":
        job_state = JobState.DONE  # the record says more (a cancelled job's record says so)
    else:
        job_state = JobState(state)
    return JobRecord(
        job_id,
        job_state,
        queue=queue,
        attempts=int(attempts or 0),
        enqueued_at=number(enqueued),
        due_at=number(due) if due else number(enqueued),
        available_at=number(at),
        worker=worker.decode(errors="replace"),
        error=error_text,
        failed_at=number(failed),
        record=record,
        body=body,
    )


def take_prefix(url: str) -> tuple[str, str]:
    """The URL without its ``prefix`` option, and the prefix (default ``PREFIX``).

    Raises:
        BackendError: the prefix is empty or holds ``{``, ``}`` or whitespace.
    """
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in options if name == "prefix"]
    if not prefixes:
        return url, PREFIX
    prefix = prefixes[-1]
    if not prefix or any(c in prefix for c in "{} \t\n"):
        raise BackendError(
            f"redis URL {redact_url(url)!r}: prefix={prefix!r} is invalid; use letters, digits, "
            "'-', '_', ':' or '.', e.g. ?prefix=myapp"
        )
    rest = urlencode([(name, value) for name, value in options if name != "prefix"], safe="/")
    return urlunsplit(parts._replace(query=rest)), prefix


def flat(pairs: Sequence[tuple]) -> list:
    return [x for pair in pairs for x in pair]
