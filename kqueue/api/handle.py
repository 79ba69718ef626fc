"""``JobHandle``: one dispatched job, by id: its state, its record, its result, its cancellation.

A handle is only an id (and, once known, its queue) plus the app whose backend it asks; it can be
rebuilt from the id in another process (``App.handle``). ``result()`` waits without a tight loop:
on Redis and memory:// the backend wakes it when the job ends; on SQLite it looks again after a
sleep that doubles from ``FIRST_WAIT_S`` to ``MAX_WAIT_S``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kqueue.api.codec import decode_message, decode_record, encode_record
from kqueue.backends import aio
from kqueue.backends.base import JobRecord
from kqueue.errors import JobCancelled, JobFailed, JobNotFound, PayloadError, ResultTimeout
from kqueue.policy.status import JobState

if TYPE_CHECKING:
    from kqueue.backends.base import Backend

R = TypeVar("R")

#: The first and the longest sleep between two looks on a backend that cannot wake a waiter, s.
FIRST_WAIT_S = 0.001
MAX_WAIT_S = 0.05
#: How long a cancelled job's record is kept when the handle does not know the job's setting, s.
CANCEL_RECORD_TTL_S = 3600.0


@dataclass(frozen=True)
class JobInfo:
    """What ``JobHandle.info()`` reports about one job (NaN / "" where unknown)."""

    job_id: str
    state: JobState
    queue: str = ""
    name: str = ""
    attempts: int = 0
    tier: str = ""
    worker: str = ""
    submitted_at: float = math.nan
    due_at: float = math.nan
    started_at: float = math.nan
    finished_at: float = math.nan
    #: The last failed attempt's error (retrying, dead).
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As plain data (NaN as None), for ``kqueue job`` and JSON."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in self.__dict__.items()
        }


class JobHandle(Generic[R]):
    """One dispatched job; ``str(handle)`` and ``handle.id`` are its id.

    Args:
        backend: the backend it was dispatched to.
        job_id: its id.
        queue: its queue, if known (else every queue is searched once).
        cancel_ttl_s: how long its record is kept if it is cancelled, seconds.
        fresh: it was just dispatched to ``queue`` (``result`` can wait before looking).
    """

    def __init__(
        self,
        backend: Backend,
        job_id: str,
        queue: str | None = None,
        *,
        cancel_ttl_s: float = CANCEL_RECORD_TTL_S,
        fresh: bool = False,
    ):
        self.backend, self.id, self.queue = backend, job_id, queue
        self.cancel_ttl_s = cancel_ttl_s
        #: Just dispatched by this process to ``queue``: the backend knows it.
        self._fresh = fresh and queue is not None

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r}, queue={self.queue!r})"

    def __eq__(self, other: object) -> bool:
        """Equal to a handle of the same id, and to the id itself (code that kept ids)."""
        if isinstance(other, str):
            return other == self.id
        return isinstance(other, JobHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _lookup(self) -> tuple[JobRecord, dict[str, Any] | None]:
        return self._decoded(self.backend.lookup(self.id, self.queue))

    def _decoded(self, record: JobRecord) -> tuple[JobRecord, dict[str, Any] | None]:
        if record.queue:
            self.queue = record.queue
        document = None
        if record.record:
            try:
                document = decode_record(record.record)
            except PayloadError:
                document = {"state": JobState.DONE.value, "result": None}
        return record, document

    def status(self) -> JobState:
        """Where the job is now: scheduled, queued, running, retrying, done, dead, cancelled,
        or unknown (never seen, or finished longer ago than its ``result_ttl_s``)."""
        record, document = self._lookup()
        return _state(record, document)

    def info(self) -> JobInfo:
        """Its state, attempts, tier, worker, timestamps and last error."""
        return self._info(*self._lookup())

    def _info(self, record: JobRecord, document: dict[str, Any] | None) -> JobInfo:
        state = _state(record, document)
        document = document or {}
        name = document.get("name", "")
        if record.body:
            try:
                name = decode_message(record.body).name
            except PayloadError:
                name = ""
        return JobInfo(
            self.id,
            state,
            queue=record.queue,
            name=name,
            attempts=record.attempts or int(document.get("attempts") or 0),
            tier=document.get("tier", ""),
            worker=record.worker or document.get("worker", ""),
            submitted_at=_number(document.get("submitted_at", record.enqueued_at)),
            due_at=_number(document.get("due_at", record.due_at)),
            started_at=_number(document.get("started_at")),
            finished_at=_number(document.get("finished_at", record.failed_at)),
            error=record.error or document.get("error", ""),
        )

    def result(self, timeout_s: float | None = None) -> R:
        """Wait for the job to end and return what it returned (decoded from JSON).

        Args:
            timeout_s: longest wait, seconds; None waits as long as it takes.

        Raises:
            JobFailed: the job is dead (``.error`` and ``.traceback`` say why).
            JobCancelled: it was cancelled.
            JobNotFound: the backend does not know the id (never dispatched, or expired).
            ResultTimeout: (a ``TimeoutError``) it did not end within ``timeout_s``.
        """
        steps = self._result_steps(timeout_s, self.backend.wakes_on_finish)
        wait_s = next(steps)
        while True:
            if wait_s is None:
                found = self._lookup()
            else:
                found = self._decoded(self.backend.wait_and_lookup(self.id, self.queue, wait_s))
            try:
                wait_s = steps.send(found)
            except StopIteration as finished:
                return finished.value

    def _result_steps(self, timeout_s: float | None, wakes_on_finish: bool) -> Generator:
        """The wait for a result without its I/O, one rule for ``result`` and ``result_async``.

        Yields how long to wait for the job to end before looking it up (None: look now), is
        sent what the look found (``(record, document)``), and returns the job's result or
        raises what ``result`` raises.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        sleep_s = FIRST_WAIT_S
        if self._fresh and wakes_on_finish:  # it exists: wait at once
            found = yield 5.0 if timeout_s is None else max(0.0, min(timeout_s, 5.0))
        else:
            found = yield None
        self._fresh = False
        while True:
            state = _state(*found)
            if state.finished or state is JobState.UNKNOWN:
                return _outcome(self.id, state, *found)
            left_s = math.inf if deadline is None else deadline - time.monotonic()
            if left_s <= 0:
                raise _timeout(self.id, state, timeout_s)
            wait_s = min(left_s, 5.0) if wakes_on_finish else min(left_s, sleep_s)
            sleep_s = min(MAX_WAIT_S, sleep_s * 2)
            found = yield wait_s

    def cancel(self) -> JobState:
        """Cancel the job; returns its state before.

        Waiting (scheduled, queued, retrying): it never runs and is ``cancelled`` now. Running:
        its worker stops it within about a second (a pool or isolated process is killed, an async
        inline task is cancelled, a sync inline job sees ``current_job().cancelled``) and it is
        not retried. Finished or unknown: nothing changes.
        """
        before = self.backend.cancel(self.id, self.queue, _cancelled(), self.cancel_ttl_s)
        # a backend knows only that a record is there: the record says done or cancelled
        return self.status() if before is JobState.DONE else before

    # --- Celery's AsyncResult names ---------------------------------------------------------

    def get(self, timeout: float | None = None) -> R:
        """Celery's ``AsyncResult.get(timeout=...)``: ``result(timeout_s=timeout)``."""
        return self.result(timeout_s=timeout)

    def ready(self) -> bool:
        """Celery's ``AsyncResult.ready()``: the job has ended (done, dead or cancelled)."""
        return self.status().finished

    # --- the same, awaited (asyncio web apps): nothing here blocks the event loop -----------

    async def status_async(self) -> JobState:
        """``status()``, awaited: on Redis a redis.asyncio call, elsewhere off the loop."""
        return _state(*await self._lookup_async())

    async def info_async(self) -> JobInfo:
        """``info()``, awaited."""
        return self._info(*await self._lookup_async())

    async def result_async(self, timeout_s: float | None = None) -> R:
        """``result()``, awaited: the task waits, the event loop runs on.

        Raises what ``result()`` raises. Cancelling the awaiting task stops the wait (the job
        itself runs on; ``cancel_async()`` cancels it).
        """
        client = aio.client_for(self.backend)
        steps = self._result_steps(timeout_s, client.wakes_on_finish)
        wait_s = next(steps)
        while True:
            if wait_s is None:
                found = await self._lookup_async()
            else:
                waited = await client.wait_and_lookup(self.id, self.queue or "", wait_s)
                found = self._decoded(waited)
            try:
                wait_s = steps.send(found)
            except StopIteration as finished:
                return finished.value

    async def cancel_async(self) -> JobState:
        """``cancel()``, awaited; returns the job's state before."""
        client = aio.client_for(self.backend)
        before = await client.cancel(self.id, self.queue, _cancelled(), self.cancel_ttl_s)
        return await self.status_async() if before is JobState.DONE else before

    async def _lookup_async(self) -> tuple[JobRecord, dict[str, Any] | None]:
        return self._decoded(await aio.client_for(self.backend).lookup(self.id, self.queue))


def _cancelled() -> bytes:
    """The record a cancelled job keeps."""
    return encode_record(JobState.CANCELLED.value, None, finished_at=time.time())


def _timeout(job_id: str, state: JobState, timeout_s: float | None) -> ResultTimeout:
    return ResultTimeout(
        f"job {job_id} is still {state.value} after {timeout_s} s; "
        "call result() again to wait longer"
    )


def _state(record: JobRecord, document: dict[str, Any] | None) -> JobState:
    if document is not None:
        try:
            return JobState(document["state"])
        except ValueError:
            return JobState.DONE
    return record.state


def _outcome(job_id: str, state: JobState, record: JobRecord, document: dict | None) -> Any:
    if state is JobState.DONE:
        return (document or {}).get("result")
    if state is JobState.CANCELLED:
        raise JobCancelled(job_id)
    if state is JobState.DEAD:
        text = record.error
        lines = [line for line in text.splitlines() if line.strip()]
        raise JobFailed(job_id, lines[-1].strip() if lines else text, text)
    raise JobNotFound(
        f"job {job_id} is unknown to this backend: never dispatched here, or it finished longer "
        "ago than its result_ttl_s (0 keeps nothing)"
    )


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


__all__ = ["JobHandle", "JobInfo"]
