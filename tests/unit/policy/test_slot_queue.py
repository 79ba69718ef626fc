"""The wait list of a full semaphore: freed slots go in priority-then-due order."""

from __future__ import annotations

from kqueue.policy.slot_queue import claim_slot, first_in_line, leave_line, slot_key, wait_order


def test_a_higher_priority_ranks_first_then_the_earlier_due():
    assert wait_order(5, 2e9) < wait_order(0, 1.0) < wait_order(0, 2.0) < wait_order(-1, 0.0)


def test_only_the_first_on_the_wait_list_takes_a_freed_slot():
    # Given a full slot and two jobs held back in order (the older first)
    claim = claim_slot(1, {}, {}, "run", 0.0, 0.0, 10.0)
    assert claim.granted
    slots, waiting = claim.slots, claim.waiting
    for holder, due_s in (("old", 1.0), ("new", 2.0)):
        claim = claim_slot(1, slots, waiting, holder, wait_order(0, due_s), 3.0, 10.0)
        assert not claim.granted
        waiting = claim.waiting
    # When the slot frees, then a newer job (due 9, and "new" asking first) is refused
    slots = {}
    for holder, order in (("newest", 9.0), ("new", 99.0)):
        claim = claim_slot(1, slots, waiting, holder, order, 4.0, 10.0)
        assert not claim.granted  # "new" keeps the rank it joined with, behind "old"
        waiting = claim.waiting
    # Then the oldest gets it, and the next in line only when it frees
    claim = claim_slot(1, slots, waiting, "old", 99.0, 4.0, 10.0)
    assert claim.granted and "old" not in claim.waiting
    assert list(sorted(claim.waiting, key=claim.waiting.get)) == ["new", "newest"]


def test_a_lost_jobs_entry_lapses_after_one_lease():
    claim = claim_slot(1, {"run": 5.0}, {}, "lost", 0.0, 1.0, 3.0)
    assert not claim.granted and claim.waiting == {"lost": (0.0, 4.0)}
    # While its entry lives a later job waits behind it; once it lapses that job runs
    assert not claim_slot(1, {}, claim.waiting, "later", 1.0, 3.9, 3.0).granted
    assert claim_slot(1, {}, claim.waiting, "later", 1.0, 4.0, 3.0).granted


def test_free_slots_go_to_as_many_of_the_first_in_line():
    assert first_in_line(1, 3, 1) and not first_in_line(2, 3, 1)
    waiting = {"a": (1.0, 9.0), "b": (2.0, 9.0), "c": (3.0, 9.0)}
    assert claim_slot(3, {"x": 9.0}, waiting, "b", 2.0, 0.0, 9.0).granted
    assert not claim_slot(3, {"x": 9.0}, waiting, "c", 3.0, 0.0, 9.0).granted


def test_a_job_that_leaves_for_good_lets_the_next_in_line_take_a_freed_slot_at_once():
    # Given two jobs waiting behind a full slot, and the first cancelled
    waiting = {"cancelled": (wait_order(0, 1.0), 99.0), "next": (wait_order(0, 2.0), 99.0)}
    waiting = leave_line(waiting, ["cancelled", "not-there"])
    # When the slot frees, Then the next one gets it now, not when the entry would lapse (99)
    assert claim_slot(1, {}, waiting, "next", wait_order(0, 2.0), 3.0, 10.0).granted
    assert slot_key("tasks.report") == "concurrency:tasks.report"
