"""A job ends while the backend is down: the job waiting for its slot waits on, nothing breaks.

A real worker's intake on an in-process backend whose ``claim_slot`` can be made to fail as a
Redis primary that is gone does (``BackendUnavailable``).
"""

from __future__ import annotations

from kqueue.backends.memory import MemoryBackend
from kqueue.errors import BackendUnavailable
from kqueue.job import App
from kqueue.policy.config import Config
from kqueue.worker.loop import Worker

CONFIG = Config(max_concurrent_inline=4, pool_size=0, pool_max_size=0, poll_interval_s=5.0)


class Flaky(MemoryBackend):
    """A memory backend whose semaphore calls fail while ``down``."""

    down = False

    def claim_slot(self, *args, **kwargs):
        if self.down:
            raise BackendUnavailable("the primary is gone")
        return super().claim_slot(*args, **kwargs)

    def release_slots(self, *args, **kwargs):
        if self.down:
            raise BackendUnavailable("the primary is gone")
        return super().release_slots(*args, **kwargs)


def test_a_freed_slots_waiter_waits_on_to_its_deadline_when_the_backend_is_down():
    # Given a class limited to one running job, one of its jobs admitted and the next one
    # waiting on the worker for that slot
    backend = Flaky()
    app = App(backend)
    app.job(lambda: None, name="export", tier="inline", concurrency_limit=1)
    app.jobs["export"].dispatch_many([((), {}), ((), {})])
    intake = Worker(app, CONFIG, force_inline=True).intake
    first, second = backend.lease("default", "w", 2, 30.0)
    assert intake.accept(first) and intake.accept(second)
    assert len(intake.slot_waiters) == 1
    # When the first ends while the backend is down (its slot cannot be given back, nor the
    # waiter's claim made)
    backend.down = True
    intake.job_ended(first.job_id)
    # Then nothing escapes into the settle loop, and the waiter keeps waiting for its deadline
    # (a poll), when it goes back to the backend
    assert len(intake.slot_waiters) == 1
    assert 0.0 < intake.slot_wait_in_s() <= CONFIG.poll_interval_s
