"""The priority contract, on every backend: higher first, equal priorities in due order."""

from __future__ import annotations

import time

from kqueue.backends.base import State

Q = "default"
VT = 30.0


def _ids(leases):
    return [x.job_id for x in leases]


def test_higher_priority_is_leased_first_and_equal_keeps_dispatch_order(backend):
    # Given low jobs, then high ones, then default ones
    for i in range(3):
        backend.submit(Q, f"low{i}", b"l", priority=-5)
        time.sleep(0.002)
    for i in range(3):
        backend.submit(Q, f"high{i}", b"h", priority=7)
        time.sleep(0.002)
    backend.enqueue_many(Q, [(f"mid{i}", b"m") for i in range(2)])
    # When leased one at a time (one free slot)
    order = [_ids(backend.lease(Q, "w", 1, VT))[0] for _ in range(8)]
    # Then high, then the default priority, then low, each in dispatch order
    assert order == ["high0", "high1", "high2", "mid0", "mid1", "low0", "low1", "low2"]
    assert backend.lease(Q, "w", 1, VT) == []


def test_a_batch_comes_highest_priority_first_and_carries_its_priority(backend):
    backend.enqueue_many(Q, [("a", b""), ("b", b"")])
    backend.enqueue_many(Q, [("c", b"")], priority=3)
    backend.enqueue(Q, "d", b"", priority=-1)
    leases = backend.lease(Q, "w", 10, VT)
    assert _ids(leases) == ["c", "a", "b", "d"]
    assert [x.priority for x in leases] == [3, 0, 0, -1]


def test_a_delayed_high_job_waits_for_its_due_time_then_goes_first(backend):
    # Given a high job due later, and low ones ready now
    backend.submit(Q, "later-high", b"", delay_s=0.5, priority=9)
    backend.submit(Q, "now-low", b"")
    # Then before it is due only the ready one is leased
    assert _ids(backend.lease(Q, "w", 1, VT)) == ["now-low"]
    backend.submit(Q, "now-low-2", b"")
    time.sleep(0.6)
    # And once due it beats the default-priority job that was there first
    assert _ids(backend.lease(Q, "w", 1, VT)) == ["later-high"]


def test_a_retried_or_released_job_keeps_its_priority(backend):
    backend.submit(Q, "high", b"", priority=4)
    backend.submit(Q, "plain", b"")
    [lease] = backend.lease(Q, "w", 1, VT)
    assert lease.job_id == "high"
    assert backend.retry(lease, 0.0, "boom")
    [again] = backend.lease(Q, "w", 1, VT)
    assert again.job_id == "high" and again.priority == 4
    assert backend.release([again]) == 1
    assert _ids(backend.lease(Q, "w", 1, VT)) == ["high"]


def test_counts_lookup_and_cancel_see_every_priority(backend):
    backend.submit(Q, "p", b"", priority=2)
    backend.submit(Q, "later", b"", delay_s=60, priority=-2)
    backend.submit(Q, "z", b"")
    counts = backend.counts()[Q]
    assert counts[State.READY.value] == 2 and counts[State.SCHEDULED.value] == 1
    assert backend.lookup("later", Q).state.value == "scheduled"
    assert backend.lookup("p", Q).state.value == "queued"
    backend.cancel("later", Q, b'{"state": "cancelled"}', 60.0)
    assert backend.counts()[Q][State.SCHEDULED.value] == 0


def test_an_expired_lease_comes_back_at_its_priority(backend):
    backend.submit(Q, "high", b"", priority=5)
    [lease] = backend.lease(Q, "w1", 1, 0.2)
    backend.submit(Q, "plain", b"")
    time.sleep(0.3)
    [again] = backend.lease(Q, "w2", 1, VT)
    assert again.job_id == "high" and again.attempt == 2 and again.priority == 5
    assert lease.job_id == "high"


def test_dead_letters_requeue_at_their_priority(backend):
    backend.submit(Q, "high", b"", priority=6)
    [lease] = backend.lease(Q, "w", 1, VT)
    assert backend.dead(lease, "gone")
    backend.submit(Q, "plain", b"")
    assert backend.requeue_dead(["high"], Q) == 1
    assert _ids(backend.lease(Q, "w", 1, VT)) == ["high"]
