"""The tier interface: where one job runs, and what came of it.

A tier runner takes an ``Invocation`` (a registered job, its decoded arguments and its resolved
settings) and returns an ``Outcome``; it never raises for a job's own failure. The worker decides
what to fetch, routes each job to a tier, and acks, retries or dead-letters from the outcome.
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kqueue.api.codec import encode_result
from kqueue.api.context import CurrentJob
from kqueue.errors import JobError
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.retry import Failure, RetryPolicy, classify
from kqueue.policy.status import Status

if TYPE_CHECKING:
    from kqueue.job import App, Job


@dataclass(frozen=True)
class Invocation:
    """One attempt of one job, ready to run."""

    job_id: str
    job: Job
    args: list
    kwargs: dict
    settings: JobSettings
    attempt: int
    #: The router's duration estimate, seconds (NaN if unknown); the pool pipelines short jobs.
    estimate_s: float = math.nan
    #: What ``kqueue.current_job()`` returns inside the job (inline tier).
    context: CurrentJob | None = None


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, with what it measured."""

    status: Status
    started_at: float
    finished_at: float
    #: CPU time of the job (its thread, task steps, or process), seconds.
    cpu_s: float = math.nan
    #: Peak memory of the job's process, or the growth it caused inside the worker, MB.
    memory_mb: float = math.nan
    #: The traceback or the reason, for failed attempts.
    error: str = ""
    #: Where it ran (thread name, or pid of the process), for the operator.
    where: str = ""
    #: True when the worker itself stopped the job at shutdown: the attempt does not count.
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: The return value as JSON text (``ok`` attempts), or None.
    result: str | None = None
    #: What the job's retry rule made of the exception (``kqueue.policy.retry.classify``).
    failure: Failure = field(default_factory=Failure)

    @property
    def duration_s(self) -> float:
        """Wall time from start to finish, seconds."""
        return self.finished_at - self.started_at

    @classmethod
    def interrupted_now(cls, error: str = "") -> Outcome:
        """A job the worker stopped (or never started) at shutdown: back to the queue, uncounted."""
        now = time.time()
        return cls(Status.KILLED, now, now, error=error, interrupted=True)


#: Tasks cancelled because their job was cancelled (not because the worker stops).
ABORTED: weakref.WeakSet = weakref.WeakSet()


def task_outcome(task: asyncio.Future) -> Outcome:
    """The outcome of a finished ``run`` task: its result, or why it has none."""
    if task.cancelled():
        if task in ABORTED:
            now = time.time()
            return Outcome(Status.CANCELLED, now, now, error="cancelled while it ran")
        return Outcome.interrupted_now("cancelled")
    if task.exception() is not None:
        now = time.time()
        return Outcome(Status.FAILED, now, now, error=f"runtime error: {task.exception()!r}")
    return task.result()


def settle_return(job: Job, value: Any) -> tuple[Status, str, str | None]:
    """(status, error, result JSON) of an attempt that returned ``value``: a value that is not
    JSON fails the attempt (for good: running it again returns the same kind of value)."""
    try:
        return Status.OK, "", encode_result(job.name, value)
    except JobError as exc:
        return Status.FAILED, f"kqueue.errors.JobError: {exc}", None


def failure_of(job: Job, exc: BaseException) -> Failure:
    """What the job's ``retry_on`` / ``no_retry_on`` and ``kqueue.Retry`` make of ``exc``."""
    return classify(RetryPolicy(1, 0.0, 0.0, False, job.retry_on, job.no_retry_on), exc)


#: A failure that another attempt cannot fix (a return value that is not JSON).
FINAL = Failure(retryable=False)


def format_error(exc: BaseException) -> str:
    """The traceback of an exception as text, for the dead-letter store and logs."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


class TierRunner(abc.ABC):
    """Runs jobs of one tier with at most ``capacity()`` at once."""

    tier: Tier

    def __init__(self, app: App, config: Config):
        self.app = app
        self.config = config

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs this tier may run at once now."""

    @abc.abstractmethod
    def running(self) -> int:
        """How many jobs it runs now."""

    def free(self) -> int:
        """Slots free for new jobs now."""
        return max(0, self.capacity() - self.running())

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start what the tier needs (processes, threads) before the first job."""

    def abort(self, handle: Any, invocation: Invocation) -> None:
        """Stop ``invocation`` (``launch`` returned ``handle``): it was cancelled while it runs.

        Its outcome is ``cancelled`` (never retried). The default cancels the job's task.
        """
        ABORTED.add(handle)
        handle.cancel()

    @abc.abstractmethod
    async def run(self, invocation: Invocation) -> Outcome:
        """Run one job to its end and describe it; never raises for the job's own failure."""

    def launch(self, invocation: Invocation, on_done: Callable[[Outcome], None]) -> Any:
        """Start one job; ``on_done(outcome)`` is called on the event loop when it ends.

        Never calls ``on_done`` before returning. Returns a handle whose ``cancel()`` stops
        waiting for the job (at shutdown). The default runs ``run`` as an asyncio task; a tier
        may override it with something cheaper (the inline tier's threads).
        """
        task = asyncio.ensure_future(self.run(invocation))
        task.add_done_callback(lambda done: on_done(task_outcome(done)))
        return task

    async def stop(self, grace_s: float) -> None:  # noqa: B027 - optional hook
        """Stop: running jobs get ``grace_s`` s, then are stopped (``interrupted`` outcomes)."""

    def status(self) -> dict[str, Any]:
        """What ``kqueue pool`` shows about this tier (JSON-serialisable)."""
        return {"running": self.running(), "capacity": self.capacity()}

    def maintain(self, waiting: int, now_s: float) -> None:  # noqa: B027 - optional hook
        """Called by the worker loop each round with the tier's waiting jobs (pool scaling)."""
