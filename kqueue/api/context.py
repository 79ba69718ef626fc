"""``kqueue.current_job()``: what a running job can know about itself, and ask.

The tiers set it around each attempt (inline: a context variable, so each thread and task sees
its own; pool and isolated: in the child process, for the job it runs). ``cancelled`` turns true
when ``JobHandle.cancel()`` reached the worker while the job runs: a sync inline job cannot be
stopped from outside its thread, so it should look at it between steps and return. Jobs in a
process are killed instead, and async inline jobs get ``CancelledError``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
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


@contextlib.contextmanager
def running(job: CurrentJob) -> Iterator[CurrentJob]:
    """Make ``job`` the current job for the block (restored after it)."""
    token = _CURRENT.set(job)
    try:
        yield job
    finally:
        _CURRENT.reset(token)
