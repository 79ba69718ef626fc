"""Limits shared by every worker on a backend: a token bucket (rate) and a counted semaphore.

``rate_limit="100/min"`` is a token bucket: it holds at most ``capacity`` tokens and refills at
``rate_per_s``; each job start takes one. ``concurrency_limit=5`` is a counted semaphore whose
slots are leases: each running job holds one until it ends or the lease expires, so the slots
of a worker that crashed come back after one lease. The backends keep the state (Redis: a hash
and a sorted set updated by Lua; SQLite: rows in a transaction) and apply these same rules; the
simulator applies them to its own state. A job held back by a limit stays in the backend in its
place, is not counted as an attempt, and is looked at again after ``retry_in_s``.

A job that finds no whole token reserves one (``reserve_turn``, GCRA's virtual scheduling): it
takes the token as a debt (the bucket goes negative, at most ``debt_cap`` tokens), holds a
ticket for the time the debt is covered (its turn), and goes back to the backend due then;
leased again, by any worker, it starts on its ticket without asking the bucket. A job that
arrives later finds the debt and queues behind it, so the class starts first come, first
served. A ticket lapses ``ticket_grace_s`` after its turn (its token is spent; the job asks
again), so a job lost with its ticket (a crash, a cancel) costs one token and no state.
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
#: A class owes at most this many seconds of its rate in reservations (at least one token): a
#: job that would take a turn further ahead comes back when the debt is paid, without a ticket,
#: so a huge backlog is not scheduled an hour ahead (a higher-priority job of the class, or a
#: cancel, would wait behind all of it) and is leased about once a minute meanwhile.
MAX_DEBT_S = 60.0
#: A ticket still starts its job this long after its turn (a busy worker, a late lease), then
#: lapses, seconds. It bounds the burst of tickets that come due together after every worker
#: was down (``rate * TICKET_GRACE_S`` at most) and the life of a lost job's ticket.
TICKET_GRACE_S = 10.0
#: A ticket leased this close before its turn starts (the release's delay and the lease are
#: timed on clocks a few milliseconds apart), seconds.
TICKET_EARLY_S = 0.01
#: A worker that held a job back for its turn wakes this long after the turn, seconds: the
#: job's release is due a round trip after its turn was reserved, and a lease that comes too
#: early finds nothing due.
TURN_WAKE_S = 0.005
#: Default semaphore slot lease, seconds; a running job's worker renews it.
SLOT_LEASE_S = 30.0
#: A worker keeps this many jobs per slot of a full semaphore waiting for one of its own slots
#: of it to free (``waits_for_slot``); more go back to the backend for a poll.
SLOT_WAITERS_PER_SLOT = 1


def rate_key(job_class: str) -> str:
    """The ``LimitStore`` key of ``job_class``'s token bucket and its tickets."""
    return f"rate:{job_class}"


@dataclass(frozen=True)
class RateLimit:
    """A parsed ``rate_limit``: tokens per second, the bucket size, and how its reservations
    are bounded (``MAX_DEBT_S``, ``TICKET_GRACE_S``)."""

    text: str
    rate_per_s: float
    capacity: float
    max_debt_s: float = MAX_DEBT_S
    ticket_grace_s: float = TICKET_GRACE_S


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


def debt_cap(limit: RateLimit) -> float:
    """How many tokens a bucket may owe in reservations (``max_debt_s`` of its rate, at least
    one)."""
    return max(1.0, limit.rate_per_s * limit.max_debt_s)


def ticket_live(limit: RateLimit, turn_s: float, now_s: float) -> bool:
    """Whether a ticket for ``turn_s`` may still start its job at ``now_s`` (not lapsed)."""
    return turn_s + limit.ticket_grace_s > now_s


@dataclass(frozen=True)
class Turn:
    """What ``reserve_turn`` decided for one job."""

    #: 0.0: start now; else go back to the backend for this long, seconds.
    wait_s: float
    #: The turn of the ticket the job holds after the call (its own clock), or None (none:
    #: it started, or the debt is at its cap and it asks again after ``wait_s``).
    ticket_s: float | None
    #: The bucket after the call.
    bucket: Bucket


def reserve_turn(
    limit: RateLimit, bucket: Bucket | None, ticket_s: float | None, now_s: float
) -> Turn:
    """A job's turn under a rate limit: start now on a whole token or on its own live ticket,
    else take its token as a debt and wait for its turn with a ticket (GCRA).

    Args:
        limit: the class's rate limit.
        bucket: the class's bucket (None: new, full).
        ticket_s: the turn of the job's ticket, if it holds one (lapsed ones are ignored).
        now_s: now, on the clock the bucket and tickets are kept on, seconds.
    """
    if ticket_s is not None and ticket_live(limit, ticket_s, now_s):
        if ticket_s <= now_s + TICKET_EARLY_S:
            return Turn(0.0, None, refill(limit, bucket, now_s))  # its token was taken
        return Turn(ticket_s - now_s, ticket_s, refill(limit, bucket, now_s))  # early
    full = refill(limit, bucket, now_s)
    if full.tokens >= 1.0 - 1e-9:
        return Turn(0.0, None, Bucket(full.tokens - 1.0, full.updated_s))
    owed = 1.0 - full.tokens  # what the bucket owes once this job takes its token
    if owed > debt_cap(limit) + 1e-9:
        return Turn(max(0.0, -full.tokens) / limit.rate_per_s, None, full)
    wait_s = owed / limit.rate_per_s
    return Turn(wait_s, now_s + wait_s, Bucket(full.tokens - 1.0, full.updated_s))


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


def held_back_wait_s(rate_wait_s: float, slots_full: bool, poll_s: float) -> float:
    """How long a held-back job stays untouched before a worker looks at it again, seconds.

    A rate limit knows when its next token comes; a full semaphore frees a slot when some job
    ends, which the worker cannot predict, so it looks again after ``poll_s``.
    """
    if slots_full:
        return max(rate_wait_s, poll_s)
    return rate_wait_s


def waits_for_slot(waiting: int, limit: int) -> bool:
    """Whether a job a full semaphore held back waits on the worker that leased it, rather than
    going back to the backend (pure): while fewer than ``SLOT_WAITERS_PER_SLOT`` per slot
    (``waiting`` jobs of its semaphore already wait there).

    A waiting job asks again the moment a job of its semaphore ends on that worker (the first
    by ``policy.ordering.backlog_key`` first), so the class runs back to back instead of one
    poll apart, in priority and due order; it goes back to the backend, due at once, after
    ``held_back_wait_s`` (a slot may free on another worker), which bounds how long it is
    hidden from the others to the poll a job held back in the backend is hidden anyway.
    """
    return waiting < limit * SLOT_WAITERS_PER_SLOT
