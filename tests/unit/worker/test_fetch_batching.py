"""Short jobs are leased and acked in batches, and an idle worker still acks at once."""

from __future__ import annotations

import time

from kqueue import App
from kqueue.policy.config import Config
from kqueue.testing import WorkerThread, run_until_empty

JOBS = 400
SLOTS = 16


def _counting(app: App) -> list[int]:
    """Count the worker's lease round trips (each carries the acks that were pending)."""
    sizes: list[int] = []
    real = app.backend.ack_and_lease

    def ack_and_lease(acks, queue, worker_id, limit, *args, **kwargs):
        sizes.append(limit)
        return real(acks, queue, worker_id, limit, *args, **kwargs)

    app.backend.ack_and_lease = ack_and_lease
    return sizes


def test_short_jobs_are_leased_in_batches_not_per_free_slot():
    app = App("memory://")
    noop = app.job(lambda: None, name="noop", tier="inline")
    noop.dispatch_many([((), {})] * JOBS)
    rounds = _counting(app)
    summary = run_until_empty(app, config=Config(max_concurrent_inline=SLOTS))
    assert summary.done == JOBS
    leased = [size for size in rounds if size > 0]
    # a lease per freed slot or two made rounds of 1-3 jobs; a refill waits for a tier's worth
    assert len(leased) <= JOBS / 8, f"{len(leased)} lease rounds for {JOBS} jobs"


def test_an_idle_worker_acks_a_finished_job_at_once(redis_server):
    app = App(redis_server.url + "?prefix=batching")
    double = app.job(lambda x: 2 * x, name="double", tier="inline")
    with WorkerThread(app, config=Config(max_concurrent_inline=SLOTS, poll_interval_s=1.0)):
        double.dispatch(1).result(timeout_s=10)  # the worker is up and has a history
        started = time.monotonic()
        assert double.dispatch(21).result(timeout_s=10) == 42
        # well under one poll interval: the ack did not wait for a lease to ride with
        assert time.monotonic() - started < 0.9
