"""The jobs waiting on a worker for a slot of a full semaphore: how many, in which order."""

from __future__ import annotations

import math

import pytest

from kqueue.policy.slot_wait import SlotWaiters


@pytest.mark.parametrize(
    ("limit", "offered", "kept"),
    [(1, 3, 1), (2, 3, 2), (3, 2, 2)],
)
def test_one_waiter_per_slot_the_rest_go_back(limit, offered, kept):
    waiters: SlotWaiters[str] = SlotWaiters()
    added = [waiters.add("k", limit, f"j{i}", 0, float(i), 10.0) for i in range(offered)]
    assert sum(added) == kept and len(waiters) == kept


def test_higher_priority_first_then_earlier_due_and_each_key_apart():
    waiters: SlotWaiters[str] = SlotWaiters()
    for item, priority, due_s in (("late", 0, 5.0), ("early", 0, 1.0), ("high", 9, 9.0)):
        assert waiters.add("k", 3, item, priority, due_s, 10.0)
    assert waiters.add("other", 1, "x", 0, 0.0, 10.0)
    order = []
    while (head := waiters.head("k")) is not None:
        order.append(head)
        waiters.remove(head)
    assert order == ["high", "early", "late"]
    assert waiters.head("other") == "x" and not waiters.add("k", 3, "x", 0, 0.0, 1.0)


def test_waiters_go_back_at_their_deadline():
    waiters: SlotWaiters[str] = SlotWaiters()
    waiters.add("k", 2, "a", 0, 0.0, 1.0)
    waiters.add("k", 2, "b", 0, 0.0, 2.0)
    assert waiters.next_deadline_s() == 1.0
    assert waiters.expired(1.5) == ["a"] and waiters.items() == ["b"]
    assert waiters.expired(2.0) == ["b"] and waiters.next_deadline_s() == math.inf


def test_a_job_before_the_last_of_a_full_line_takes_its_place():
    waiters: SlotWaiters[str] = SlotWaiters()
    assert waiters.add("k", 1, "late", 0, 5.0, 10.0)
    assert waiters.make_room("k", 1, 0, 9.0) is None  # a later job does not
    assert waiters.make_room("k", 1, 0, 1.0) == "late" and "late" not in waiters
    assert waiters.add("k", 1, "early", 0, 1.0, 10.0) and waiters.head("k") == "early"
    assert waiters.make_room("k", 1, 5, 99.0) == "early"  # a higher priority does too
    assert waiters.make_room("other", 1, 0, 0.0) is None


def test_equal_rank_waiters_are_in_the_backends_order_by_holder_id():
    # Given two jobs of one priority and one due time (a dispatch_many batch), the later to
    # arrive with the id the backend's wait list ranks first
    waiters = SlotWaiters()
    waiters.add("k", 2, "late", 0, 5.0, math.inf, holder="job-b")
    waiters.add("k", 2, "early", 0, 5.0, math.inf, holder="job-a")
    # Then the head here is the backend's first, so the freed slot is not refused to it
    assert waiters.head("k") == "early"
