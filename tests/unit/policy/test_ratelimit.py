"""The token bucket and the counted semaphore with leases (tables)."""

from __future__ import annotations

import pytest

from kqueue.errors import ConfigError
from kqueue.policy.ratelimit import (
    Bucket,
    acquire_slots,
    check_concurrency_limit,
    parse_rate_limit,
    release_slots,
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
