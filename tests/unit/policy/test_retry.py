"""The retry rule (``kqueue.policy.retry``): which failures retry and after how long (tables)."""

from __future__ import annotations

import random

import pytest

from kqueue.errors import Retry
from kqueue.policy.retry import Failure, RetryPolicy, backoff_s, classify, retry_after_s

BASE = RetryPolicy(max_attempts=5, backoff_s=1.0, backoff_max_s=10.0)
ONLY_IO = RetryPolicy(5, 1.0, 10.0, retry_on=(OSError,))
NEVER_VALUE = RetryPolicy(5, 1.0, 10.0, retry_on=(Exception,), no_retry_on=(ValueError,))


@pytest.mark.parametrize(
    ("policy", "exc", "expected"),
    [
        (BASE, ValueError("x"), Failure(True)),
        (ONLY_IO, ConnectionError("x"), Failure(True)),  # a subclass of OSError
        (ONLY_IO, ValueError("x"), Failure(False)),
        (NEVER_VALUE, ValueError("x"), Failure(False)),  # no_retry_on beats retry_on
        (NEVER_VALUE, KeyError("x"), Failure(True)),
        (NEVER_VALUE, Retry(delay_s=7), Failure(True, 7)),  # Retry beats both
        (ONLY_IO, Retry(), Failure(True, None)),
    ],
)
def test_classify_by_precedence(policy, exc, expected):
    assert classify(policy, exc) == expected


@pytest.mark.parametrize(
    ("attempt", "failure", "expected"),
    [
        (1, Failure(), 1.0),
        (2, Failure(), 2.0),
        (4, Failure(), 8.0),
        (5, Failure(), None),  # attempts used up
        (9, Failure(), None),
        (3, Failure(False), None),  # cannot succeed
        (1, Failure(True, 0.25), 0.25),  # Retry(delay_s=...) wins over the backoff
        (5, Failure(True, 0.25), None),  # but not over max_attempts
    ],
)
def test_retry_after(attempt, failure, expected):
    assert retry_after_s(BASE, attempt, failure) == expected


def test_the_backoff_is_capped_and_never_overflows():
    assert backoff_s(BASE, 10_000) == 10.0


def test_jitter_draws_from_the_upper_half_and_needs_a_seeded_random():
    jittered = RetryPolicy(5, 4.0, 100.0, jitter=True)
    rng = random.Random(1)
    delays = [backoff_s(jittered, 1, rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
    with pytest.raises(ValueError, match="random.Random"):
        backoff_s(jittered, 1)
