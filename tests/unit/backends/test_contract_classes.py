"""The per-class pending counts (``pending_by_class``) on every backend, through each change.

Pending is what a lease would take now: ready, scheduled or retrying and due, or leased with an
expired lease. Each test checks the counts after every step of one job's life.
"""

from __future__ import annotations

import time

import kqueue
from kqueue.policy.status import JobState

Q = "default"
VT = 30.0


def pending(backend, queue=Q):
    return backend.pending_by_class(queue)


def test_dispatch_and_dispatch_many_count_under_the_job_class(backend):
    # Given jobs of two classes dispatched one by one and in a batch, on two queues
    backend.submit(Q, "a1", b"", job_class="resize")
    backend.enqueue(Q, "a2", b"", job_class="resize")
    backend.enqueue_many(Q, [("m1", b""), ("m2", b""), ("m3", b"")], job_class="mail")
    backend.enqueue_many("other", [("o1", b"")], job_class="resize")
    backend.enqueue(Q, "plain", b"")
    # Then each queue counts its own, a message without a class under ""
    assert pending(backend) == {"resize": 2, "mail": 3, "": 1}
    assert pending(backend, "other") == {"resize": 1}
    assert pending(backend, "nothing-here") == {}


def test_the_job_api_gives_its_name_as_the_class(backend):
    app = kqueue.App(backend)

    @app.job(name="reports.build")
    def build(n: int) -> int:
        return n

    build.dispatch(1)
    build.dispatch_many([((2,), {}), ((3,), {})])
    build.options(priority=5).dispatch(4)
    build.options(delay_s=60).dispatch(5)
    assert pending(backend) == {"reports.build": 4}


def test_a_scheduled_job_is_pending_only_once_due(backend):
    backend.submit(Q, "later", b"", delay_s=0.4, job_class="c")
    backend.submit(Q, "much-later", b"", delay_s=600, job_class="c")
    assert pending(backend) == {}
    time.sleep(0.5)
    assert pending(backend) == {"c": 1}


def test_lease_ack_retry_release_move_the_counts(backend):
    backend.enqueue_many(Q, [("j1", b""), ("j2", b""), ("j3", b"")], job_class="c")
    # When two are leased, they are no longer pending
    first, second = backend.lease(Q, "w", 2, VT)
    assert pending(backend) == {"c": 1}
    # An ack removes one for good; a retry with back-off is pending only once due
    assert backend.ack([first]) == 1
    assert backend.retry(second, 0.4, "boom")
    assert pending(backend) == {"c": 1}
    time.sleep(0.5)
    assert pending(backend) == {"c": 2}
    # A release (no delay) makes it pending at once; a retry without delay too
    a, b = backend.lease(Q, "w", 2, VT)
    assert pending(backend) == {}
    assert backend.release([a]) == 1
    assert backend.retry(b, 0.0, "again")
    assert pending(backend) == {"c": 2}
    # And a lost lease's retry changes nothing
    assert not backend.retry(b, 0.0, "stale")
    assert pending(backend) == {"c": 2}


def test_an_expired_lease_is_pending_again_and_an_extended_one_is_not(backend):
    backend.enqueue_many(Q, [("gone", b""), ("kept", b"")], job_class="c")
    leases = {x.job_id: x for x in backend.lease(Q, "w", 2, 0.4)}
    assert backend.extend([leases["kept"]], VT)
    assert pending(backend) == {}
    # Then once the visibility timeout passed, only the dead worker's job is pending
    time.sleep(0.55)
    assert pending(backend) == {"c": 1}
    # And leasing it again takes it off
    [again] = backend.lease(Q, "w2", 5, VT)
    assert again.job_id == "gone"
    assert pending(backend) == {}


def test_dead_letters_leave_the_counts_and_a_requeue_brings_them_back(backend):
    backend.enqueue_many(Q, [("d1", b""), ("d2", b"")], job_class="c")
    for lease in backend.lease(Q, "w", 2, VT):
        assert backend.dead(lease, "failed for good")
    assert pending(backend) == {}
    assert backend.requeue_dead(["d1"]) == 1
    assert pending(backend) == {"c": 1}
    assert backend.delete_dead(["d2"]) == 1
    assert backend.requeue_dead() == 0
    assert pending(backend) == {"c": 1}


def test_cancel_removes_a_waiting_job_and_a_cancelled_running_one_never_returns(backend):
    backend.enqueue_many(Q, [("w1", b""), ("r1", b"")], job_class="c")
    backend.enqueue(Q, "s1", b"", delay_s=0.3, job_class="c")
    # Given one job leased (running) for a short lease
    [running] = backend.lease(Q, "w", 1, 0.3)
    # When the waiting, the scheduled and the running jobs are cancelled
    assert backend.cancel("s1", Q, b'{"state":"cancelled"}', 60) is JobState.SCHEDULED
    other = "r1" if running.job_id == "w1" else "w1"
    assert backend.cancel(other, Q, b'{"state":"cancelled"}', 60) is JobState.QUEUED
    assert backend.cancel(running.job_id, Q, b'{"state":"cancelled"}', 60) is JobState.RUNNING
    assert pending(backend) == {}
    # Then once its worker is gone and the lease expired, a lease ends it instead of running it
    time.sleep(0.45)
    assert backend.lease(Q, "w2", 5, VT) == []
    assert pending(backend) == {}


def test_priorities_count_together_per_class(backend):
    backend.submit(Q, "hi", b"", priority=9, job_class="c")
    backend.submit(Q, "lo", b"", priority=-3, job_class="c")
    backend.enqueue_many(Q, [("mid", b"")], job_class="c")
    backend.enqueue_many(Q, [("x", b"")], priority=2, job_class="d")
    assert pending(backend) == {"c": 3, "d": 1}
    [top] = backend.lease(Q, "w", 1, VT)
    assert top.job_id == "hi"
    assert pending(backend) == {"c": 2, "d": 1}
    assert backend.retry(top, 0.0, "boom")
    assert pending(backend) == {"c": 3, "d": 1}


def test_a_deduplicated_submit_or_a_known_id_adds_nothing(backend):
    assert backend.submit(Q, "u1", b"", unique_key="k", unique_for_s=60, job_class="c") == "u1"
    assert backend.submit(Q, "u2", b"", unique_key="k", unique_for_s=60, job_class="c") == "u1"
    backend.enqueue(Q, "u1", b"", job_class="c")
    backend.enqueue_many(Q, [("u1", b""), ("new", b"")], job_class="c")
    assert pending(backend) == {"c": 2}


def test_counts_agree_with_ready_counts_after_a_mixed_history(backend):
    # Given a mix of every change over three classes
    for i in range(30):
        backend.enqueue(Q, f"j{i}", b"", job_class=("a", "b", "c")[i % 3])
    leases = backend.lease(Q, "w", 12, VT)
    backend.ack(leases[:4])
    for lease in leases[4:7]:
        backend.retry(lease, 0.0, "boom")
    for lease in leases[7:9]:
        backend.dead(lease, "bad")
    backend.release(leases[9:11])
    backend.cancel("j29", Q, b"{}", 60)
    # Then the per-class counts add up to the queue's ready count
    counts = pending(backend)
    assert sum(counts.values()) == backend.counts(Q)[Q]["ready"]
    assert set(counts) <= {"a", "b", "c"}
