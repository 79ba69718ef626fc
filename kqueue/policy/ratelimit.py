"""Limits shared by every worker on a backend: a token bucket (rate) and a counted semaphore.

``rate_limit="100/min"`` is a token bucket: it holds at most ``capacity`` tokens and refills at
``rate_per_s``; each job start takes one. ``concurrency_limit=5`` is a counted semaphore whose
slots are leases: each running job holds one until it ends or the lease expires, so the slots
of a worker that crashed come back after one lease. The backends keep the state (Redis: a hash
and a sorted set updated by Lua; SQLite: rows in a transaction) and apply these same rules; the
simulator applies them to its own state. A job held back by a limit stays in the backend in its
place, is not counted as an attempt, and is looked at again after ``retry_in_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kqueue.errors import ConfigError
from kqueue.policy.units import parse_rate

#: A bucket holds this many seconds' worth of tokens (at least one): small, so a burst after a
#: quiet spell stays small, yet longer than a worker's poll (0.2 s and its round trip), so
#: tokens that come while no held-back job is due yet are not lost (0.2 s lost about 10%).
BURST_S = 0.5
#: Default semaphore slot lease, seconds; a running job's worker renews it.
SLOT_LEASE_S = 30.0


@dataclass(frozen=True)
class RateLimit:
    """A parsed ``rate_limit``: tokens per second and the bucket size."""

    text: str
    rate_per_s: float
    capacity: float


def parse_rate_limit(text: object, source: str) -> RateLimit:
    """``"100/min"``, ``"10/s"``, ``"5000/h"`` as a ``RateLimit``.

    Raises:
        ConfigError: not a rate of that form (names ``source``).
    """
    if not isinstance(text, str):
        raise ConfigError(f"{source}: rate_limit={text!r}; expected a string such as '100/min'")
    try:
        rate = parse_rate(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: rate_limit: {exc}") from None
    return RateLimit(text, rate, max(1.0, rate * BURST_S))


def check_concurrency_limit(value: object, source: str) -> int:
    """``value`` as a concurrency limit.

    Raises:
        ConfigError: not an integer >= 1.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: concurrency_limit={value!r}; expected an integer >= 1")
    return value


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: tokens at ``updated_s``."""

    tokens: float
    updated_s: float


def refill(limit: RateLimit, bucket: Bucket | None, now_s: float) -> Bucket:
    """The bucket at ``now_s`` (a new bucket starts full)."""
    if bucket is None:
        return Bucket(limit.capacity, now_s)
    elapsed_s = max(0.0, now_s - bucket.updated_s)
    tokens = min(limit.capacity, bucket.tokens + elapsed_s * limit.rate_per_s)
    return Bucket(tokens, max(now_s, bucket.updated_s))


def take_tokens(
    limit: RateLimit, bucket: Bucket | None, now_s: float, wanted: int
) -> tuple[int, Bucket]:
    """Take up to ``wanted`` whole tokens now; returns how many were granted and the new state."""
    full = refill(limit, bucket, now_s)
    granted = max(0, min(wanted, math.floor(full.tokens + 1e-9)))
    return granted, Bucket(full.tokens - granted, full.updated_s)


def token_wait_s(limit: RateLimit, bucket: Bucket | None, now_s: float) -> float:
    """How long until the bucket holds one whole token, seconds (0 if it does now)."""
    full = refill(limit, bucket, now_s)
    return max(0.0, (1.0 - full.tokens) / limit.rate_per_s)


#: A semaphore's state: holder (a job id) -> when its slot lease expires.
Slots = Mapping[str, float]


def live_slots(slots: Slots, now_s: float) -> dict[str, float]:
    """The slots whose leases have not expired."""
    return {holder: until for holder, until in slots.items() if until > now_s}


def acquire_slots(
    limit: int, slots: Slots, holders: list[str], now_s: float, lease_s: float
) -> tuple[list[str], dict[str, float]]:
    """Give slots to ``holders`` in order while any are free; returns who got one, and the state.

    A holder that already has a slot keeps it (its lease renewed) and counts as granted.
    """
    live = live_slots(slots, now_s)
    granted = []
    for holder in holders:
        if holder in live or len(live) < limit:
            live[holder] = now_s + lease_s
            granted.append(holder)
    return granted, live


def release_slots(slots: Slots, holders: list[str]) -> dict[str, float]:
    """The state after ``holders`` give their slots back."""
    gone = set(holders)
    return {holder: until for holder, until in slots.items() if holder not in gone}


def held_turn_s(limit: RateLimit, last_turn_s: float | None, now_s: float) -> float:
    """When a job a rate limit held back is next looked at: one token after the turn of the
    last job held back before it (or after ``now_s``), so a backlog of N waits about
    N / rate instead of coming back every round. Seconds on the caller's clock."""
    start_s = now_s if last_turn_s is None else max(now_s, last_turn_s)
    return start_s + 1.0 / limit.rate_per_s


def held_back_wait_s(rate_wait_s: float, slots_full: bool, poll_s: float) -> float:
    """How long a held-back job stays untouched before a worker looks at it again, seconds.

    A rate limit knows when its next token comes; a full semaphore frees a slot when some job
    ends, which the worker cannot predict, so it looks again after ``poll_s``.
    """
    if slots_full:
        return max(rate_wait_s, poll_s)
    return rate_wait_s
