"""The token bucket and the counted semaphore with leases (tables)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kqueue.errors import ConfigError
from kqueue.policy.ratelimit import (
    TICKET_EARLY_S,
    TICKET_GRACE_S,
    Bucket,
    acquire_slots,
    check_concurrency_limit,
    debt_cap,
    parse_rate_limit,
    release_slots,
    reserve_turn,
    take_tokens,
    token_wait_s,
)

TEN_PER_S = parse_rate_limit("10/s", "test")


def test_parse_rate_limit():
    limit = parse_rate_limit("100/min", "x")
    assert limit.rate_per_s == pytest.approx(100 / 60) and limit.capacity == 1.0
    assert TEN_PER_S.capacity == 5.0


@pytest.mark.parametrize("bad", ["10/fortnight", "-3/s", "", 10])
def test_bad_rate_limits_are_refused(bad):
    with pytest.raises(ConfigError, match="@app.job for 'x': rate_limit"):
        parse_rate_limit(bad, "@app.job for 'x'")


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_bad_concurrency_limits_are_refused(bad):
    with pytest.raises(ConfigError, match="concurrency_limit="):
        check_concurrency_limit(bad, "x")


@pytest.mark.parametrize(
    ("bucket", "now", "wanted", "granted", "left"),
    [
        (None, 0.0, 7, 5, 0.0),  # a new bucket starts full (5 tokens)
        (Bucket(0.0, 0.0), 0.05, 1, 0, 0.5),  # half a token: nothing yet
        (Bucket(0.0, 0.0), 0.1, 3, 1, 0.0),
        (Bucket(0.0, 0.0), 10.0, 9, 5, 0.0),  # never more than the capacity
        (Bucket(1.5, 5.0), 4.0, 1, 1, 0.5),  # a clock behind the state does not refill
    ],
)
def test_take_tokens_table(bucket, now, wanted, granted, left):
    got, after = take_tokens(TEN_PER_S, bucket, now, wanted)
    assert got == granted and after.tokens == pytest.approx(left)


def test_the_bucket_holds_its_rate_over_time():
    bucket, started = None, 0
    for step in range(1000):  # 100 s of looking every 0.1 s
        got, bucket = take_tokens(TEN_PER_S, bucket, step * 0.1, 100)
        started += got
    assert 990 <= started <= 1005
    assert token_wait_s(TEN_PER_S, Bucket(0.25, 0.0), 0.0) == pytest.approx(0.075)


@pytest.mark.parametrize(
    ("bucket", "ticket", "now", "wait", "ticket_after", "tokens_after"),
    [
        (None, None, 0.0, 0.0, None, 4.0),  # a new bucket is full: start on a whole token
        (Bucket(0.0, 0.0), None, 0.0, 0.1, 0.1, -1.0),  # no token: a debt, a ticket for 0.1 s
        (Bucket(-1.0, 0.0), None, 0.0, 0.2, 0.2, -2.0),  # behind the debt: the next turn
        (Bucket(-1.0, 0.0), None, 0.05, 0.15, 0.2, -1.5),  # the turn is fixed, not the wait
        (Bucket(-2.0, 0.0), 0.2, 0.2, 0.0, None, 0.0),  # its turn: start on the ticket
        (Bucket(-2.0, 0.0), 0.2, 0.2 - TICKET_EARLY_S, 0.0, None, -0.1),  # a hair early
        (Bucket(-2.0, 0.0), 0.2, 0.1, 0.1, 0.2, -1.0),  # leased early: back for the rest
        (Bucket(-2.0, 0.0), 0.2, 5.0, 0.0, None, 5.0),  # late, not lapsed: still its ticket
        # lapsed: its token was spent; it asks the bucket like a newcomer (499 owed then)
        (Bucket(-600.0, 0.0), 0.2, 0.2 + TICKET_GRACE_S, 49.9, 60.1, -499.0),
        (Bucket(-599.0, 0.0), None, 0.0, 60.0, 60.0, -600.0),  # the cap: 60 s owed at 10/s
        (Bucket(-599.5, 0.0), None, 0.0, 59.95, None, -599.5),  # over it: back when repaid
    ],
)
def test_reserve_turn_table(bucket, ticket, now, wait, ticket_after, tokens_after):
    turn = reserve_turn(TEN_PER_S, bucket, ticket, now)
    assert turn.wait_s == pytest.approx(wait)
    assert turn.ticket_s == (None if ticket_after is None else pytest.approx(ticket_after))
    assert turn.bucket.tokens == pytest.approx(tokens_after)


def test_the_debt_cap_is_a_minute_of_the_rate_and_at_least_one_token():
    assert debt_cap(TEN_PER_S) == 600.0
    hourly = parse_rate_limit("1/h", "test")
    assert debt_cap(hourly) == 1.0
    turn = reserve_turn(hourly, Bucket(0.0, 0.0), None, 0.0)
    assert (turn.wait_s, turn.ticket_s) == (3600.0, 3600.0)  # one turn may always be reserved
    assert reserve_turn(hourly, turn.bucket, None, 0.0).ticket_s is None


def test_reservations_start_jobs_first_come_first_served():
    # Given Poisson arrivals at 60% of a 100/min limit (a bucket of one token)
    limit = parse_rate_limit("100/min", "test")
    arrivals = np.cumsum(np.random.default_rng(2).exponential(1.0, 300))
    # When each job reserves its turn on arrival (and starts on its ticket then)
    bucket, starts = None, []
    for arrival in arrivals:
        turn = reserve_turn(limit, bucket, None, float(arrival))
        bucket = turn.bucket
        starts.append(arrival + turn.wait_s)
    # Then each starts at max(arrival, the previous start + 1 / rate): a FCFS bucket
    previous, expected = -np.inf, []
    for arrival in arrivals:
        previous = max(arrival, previous + 1 / limit.rate_per_s)
        expected.append(previous)
    assert np.allclose(starts, expected)


def test_a_short_grace_lapses_a_ticket_sooner():
    limit = dataclasses.replace(TEN_PER_S, ticket_grace_s=0.5)
    assert reserve_turn(TEN_PER_S, Bucket(-10.0, 0.0), 0.2, 0.8).wait_s == 0.0  # its ticket
    turn = reserve_turn(limit, Bucket(-10.0, 0.0), 0.2, 0.8)  # lapsed: asks the bucket
    assert turn.ticket_s == pytest.approx(1.1) and turn.wait_s == pytest.approx(0.3)


def test_semaphore_grants_up_to_the_limit_and_expired_slots_come_back():
    granted, slots = acquire_slots(3, {}, ["a", "b", "c", "d"], 0.0, 30.0)
    assert granted == ["a", "b", "c"]
    granted, slots = acquire_slots(3, slots, ["d", "a"], 1.0, 30.0)
    assert granted == ["a"]  # a renews its own slot; d waits
    slots = release_slots(slots, ["b"])
    granted, slots = acquire_slots(3, slots, ["d"], 2.0, 30.0)
    assert granted == ["d"]
    # When the holders crash (nobody renews), their slots return after the lease
    granted, _ = acquire_slots(3, slots, ["e", "f", "g"], 32.0, 30.0)
    assert granted == ["e", "f", "g"]
