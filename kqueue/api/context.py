"""``kqueue.current_job()``: what a running job can know about itself, and ask.

The tiers set it around each attempt (inline: a context variable, so each thread and task sees
its own; pool and isolated: in the child process, for the job it runs). ``cancelled`` turns true
when ``JobHandle.cancel()`` reached the worker while the job runs: a sync inline job cannot be
stopped from outside its thread, so it should look at it between steps and return. Jobs in a
process are killed instead, and async inline jobs get ``CancelledError``.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass
class CurrentJob:
    """The job this code runs in: its id, name and attempt, and whether it was cancelled."""

    id: str
    name: str
    attempt: int
    #: A plain flag, not a ``threading.Event``: nobody waits on it, one attribute write is
    #: seen by every thread, and an Event (a lock and a condition) per leased job cost the
    #: worker's loop about 2 us of each no-op job.
    _cancelled: bool = field(default=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once the job's cancellation was asked while it runs; stop soon and return."""
        return self._cancelled

    def mark_cancelled(self) -> None:
        """Note that the job was cancelled (the worker calls this)."""
        self._cancelled = True


_CURRENT: contextvars.ContextVar[CurrentJob | None] = contextvars.ContextVar(
    "kqueue_current_job", default=None
)


def current_job() -> CurrentJob:
    """The job the calling code runs in.

    Raises:
        LookupError: called outside a job run by a kqueue worker.
    """
    job = _CURRENT.get()
    if job is None:
        raise LookupError("kqueue.current_job() is only available inside a job a worker runs")
    return job


def running(job: CurrentJob) -> _Running:
    """Make ``job`` the current job for the block (restored after it): ``with running(job):``."""
    return _Running(job)


class _Running:
    """``running``'s block: a class, not ``contextlib.contextmanager``, because every inline
    job enters one and the generator and its wrapper cost about 1 us more each time."""

    __slots__ = ("_job", "_token")

    def __init__(self, job: CurrentJob):
        self._job = job

    def __enter__(self) -> CurrentJob:
        self._token = _CURRENT.set(self._job)
        return self._job

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT.reset(self._token)
