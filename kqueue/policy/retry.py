"""Whether a failed attempt runs again, and after how long: one rule for the runtime and the twin.

Precedence, first match wins (docs/DECISIONS.md, "Retry policy precedence"):

1. the job raised ``kqueue.Retry(delay_s=...)``: retried after that delay (``max_attempts`` still
   bounds it);
2. the exception is an instance of one of the job's ``no_retry_on``: dead at once;
3. the job names ``retry_on`` and the exception is none of them: dead at once;
4. anything else (any exception, a timeout, a killed process, the memory limit): retried with
   exponential backoff, ``retry_backoff_s * 2 ** (attempt - 1)`` capped at
   ``retry_backoff_max_s``; with ``retry_jitter`` the delay is drawn uniformly from its upper
   half (``[d / 2, d]``), so a burst of failures does not come back as one burst.

A job whose attempts are used up goes to the dead letters whatever the exception.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kqueue.errors import Retry

#: 2.0 ** 1024 overflows a float; every cap is reached long before.
_MAX_EXPONENT = 1023


@dataclass(frozen=True)
class RetryPolicy:
    """How one job retries; built from its settings and its decorator's exception classes."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    jitter: bool = False
    #: Retry only these exceptions (empty: every exception).
    retry_on: tuple[type[BaseException], ...] = ()
    #: Never retry these exceptions (beats ``retry_on``).
    no_retry_on: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class Failure:
    """What the retry rule needs to know of a failed attempt (plain data: it crosses pipes)."""

    #: False when the exception says another attempt cannot succeed.
    retryable: bool = True
    #: The delay a ``kqueue.Retry`` asked for, seconds, or None.
    requested_delay_s: float | None = None


def classify(policy: RetryPolicy, exc: BaseException) -> Failure:
    """Apply rules 1-3 to the exception an attempt raised (where it was raised: the classes live
    there, in a pool process or the worker)."""
    if isinstance(exc, Retry):
        return Failure(True, exc.delay_s)
    if policy.no_retry_on and isinstance(exc, policy.no_retry_on):
        return Failure(False)
    if policy.retry_on and not isinstance(exc, policy.retry_on):
        return Failure(False)
    return Failure(True)


def backoff_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """The delay before the attempt after ``attempt`` (1-based) failed, seconds (rule 4).

    Args:
        policy: the job's retry policy.
        attempt: the attempt that failed.
        rng: draws the jitter (pass a seeded one; required when ``policy.jitter``).
    """
    exponent = min(max(0, attempt - 1), _MAX_EXPONENT)
    delay_s = min(policy.backoff_max_s, policy.backoff_s * 2.0**exponent)
    if policy.jitter:
        if rng is None:
            raise ValueError("retry_jitter needs a random.Random to draw from")
        delay_s = rng.uniform(delay_s / 2, delay_s)
    return delay_s


def retry_after_s(
    policy: RetryPolicy, attempt: int, failure: Failure, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt of a job whose ``attempt`` failed, or None for dead.

    Args:
        policy: the job's retry policy.
        attempt: the attempt that failed (1-based).
        failure: what ``classify`` made of the failure (``Failure()`` for timeouts and kills).
        rng: draws the jitter.
    """
    if not failure.retryable or attempt >= policy.max_attempts:
        return None
    if failure.requested_delay_s is not None:
        return max(0.0, failure.requested_delay_s)
    return backoff_s(policy, attempt, rng)
