"""Priority within a rate-limited class's reserved turns (``kqueue.policy.turn_queue``)."""

from __future__ import annotations

import dataclasses

from kqueue.policy.ratelimit import Bucket, parse_rate_limit
from kqueue.policy.turn_queue import Ticket, take_turn

ONE_PER_S = parse_rate_limit("1/s", "test")  # capacity 1


def _reserve(holders_prios, limit=ONE_PER_S, now_s=0.0):
    """Reserve in order from an empty bucket at ``now_s``; returns the bucket and tickets."""
    bucket, tickets, waits = Bucket(0.0, now_s), {}, []
    for holder, prio in holders_prios:
        made = take_turn(limit, bucket, tickets, holder, prio, now_s)
        bucket, tickets = made.bucket, made.tickets
        waits.append(made.wait_s)
    return bucket, tickets, waits


def _turns(tickets):
    return {h: t.turn_s for h, t in tickets.items()}


def test_equal_priorities_take_turns_first_come_first_served():
    _, tickets, waits = _reserve([("a", 0), ("b", 0), ("c", 0)])
    assert waits == [1.0, 2.0, 3.0]
    assert _turns(tickets) == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_a_higher_priority_takes_the_earliest_lower_turn_and_the_lower_ones_move_on_one():
    # Given three low jobs holding turns 1, 2, 3 and one high job holding none
    _, tickets, waits = _reserve([("a", 0), ("b", 0), ("c", 0), ("h", 5)])
    # Then the high one takes turn 1, and a, b, c keep their order at 2, 3, 4
    assert waits[-1] == 1.0
    assert _turns(tickets) == {"h": 1.0, "a": 2.0, "b": 3.0, "c": 4.0}
    assert tickets["h"] == Ticket(1.0, 5) and tickets["c"].priority == 0


def test_a_middle_priority_goes_after_higher_ones_and_before_lower_ones():
    _, tickets, _ = _reserve([("a", 0), ("b", 0), ("h", 5), ("m", 1), ("h2", 5)])
    order = sorted(tickets, key=lambda h: tickets[h].turn_s)
    assert order == ["h", "h2", "m", "a", "b"]
    assert [tickets[h].turn_s for h in order] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_lower_turn_already_due_lets_the_higher_job_start_now():
    # Given a low job whose turn has come (due in the backend, not leased yet)
    _, tickets, _ = _reserve([("a", 0), ("b", 0)])
    made = take_turn(ONE_PER_S, Bucket(-1.0, 1.0), tickets, "h", 5, 1.0)
    # Then the high one starts on that turn and the low ones move on one
    assert made.wait_s == 0.0 and "h" not in made.tickets
    assert _turns(made.tickets) == {"a": 2.0, "b": 3.0}


def test_at_the_debt_cap_the_last_lower_ticket_is_given_up_not_the_higher_job():
    capped = dataclasses.replace(ONE_PER_S, max_debt_s=2.0)
    _, tickets, waits = _reserve([("a", 0), ("b", 0), ("c", 0)], limit=capped)
    assert waits == [1.0, 2.0, 2.0] and "c" not in tickets  # c found the cap: no ticket
    bucket = Bucket(-2.0, 0.0)
    made = take_turn(capped, bucket, tickets, "h", 5, 0.0)
    assert made.wait_s == 1.0 and made.bucket == bucket  # no more debt taken
    assert _turns(made.tickets) == {"h": 1.0, "a": 2.0}  # b asks again when leased


def test_a_job_leased_before_its_moved_turn_is_told_the_rest_of_its_wait():
    _, tickets, _ = _reserve([("a", 0), ("h", 5)])
    made = take_turn(ONE_PER_S, Bucket(-2.0, 0.0), tickets, "a", 0, 1.0)  # its old turn
    assert made.wait_s == 1.0 and made.tickets["a"] == Ticket(2.0, 0)
