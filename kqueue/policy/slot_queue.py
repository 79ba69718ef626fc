"""The order in which jobs behind a full semaphore take its freed slots: a wait list per class.

A job of a class with a ``concurrency_limit`` that finds every slot taken joins its class's
wait list in the backend, ranked by ``wait_order`` (priority, then its due time) and kept there
with that rank while it is held back and leased again. A slot goes only to a job among the
first ``limit - used`` of the list (any job when the list is empty), so a held-back job keeps
its place: newer arrivals of its level wait behind it, on every worker. An entry lapses one
lease after its job last asked (a crashed worker's job comes back within one lease anyway), so
a lost job blocks its class for one lease at most. A job that leaves for good (cancelled,
dead-lettered, or ending with its slot given back) leaves the list in the same atomic step
(``leave_line``), so the next in line moves up at once. Ties rank by holder id (as a Redis sorted
set ranks equal scores). The backends (Redis in Lua, SQLite, memory) and the twin's
``sim.model.lease_gate`` all run ``claim_slot``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kqueue.policy.ratelimit import Slots, live_slots

#: A priority level's span on the wait list's one score, seconds: wider than any spread of
#: due times (epoch seconds are ~1.8e9), so a higher priority always ranks first.
PRIORITY_SPAN_S = 1e10

#: A wait list: holder -> (its ``wait_order``, when its entry lapses).
Waiting = Mapping[str, tuple[float, float]]


def slot_key(job_class: str) -> str:
    """The ``LimitStore`` key of ``job_class``'s semaphore and wait list: the worker claims
    slots under it, and a backend that ends a job for good drops it from that wait list."""
    return f"concurrency:{job_class}"


def wait_order(priority: int, due_s: float) -> float:
    """A job's rank on its class's wait list, lower first: priority, then due (one float, a
    Redis sorted set's score; ``policy.ordering.backlog_key``'s order)."""
    return -priority * PRIORITY_SPAN_S + due_s


@dataclass(frozen=True)
class Claim:
    """What ``claim_slot`` decided, and the semaphore's and wait list's states after it."""

    granted: bool
    slots: dict[str, float]
    waiting: dict[str, tuple[float, float]]


def first_in_line(rank: int, limit: int, used: int) -> bool:
    """Whether the job ``rank`` (0-based) on the wait list may take a slot now (pure)."""
    return rank < limit - used


def claim_slot(
    limit: int,
    slots: Slots,
    waiting: Waiting,
    holder: str,
    order: float,
    now_s: float,
    lease_s: float,
) -> Claim:
    """``holder`` asks for a slot: granted when it holds one (renewed) or is among the first
    ``limit - used`` on the wait list (joining it at ``order`` if it is not on it); else it
    stays on (or joins) the list at the rank it first joined with, its entry renewed."""
    live = live_slots(slots, now_s)
    line = {h: entry for h, entry in waiting.items() if entry[1] > now_s and h not in live}
    if holder in live:
        live[holder] = now_s + lease_s
        line.pop(holder, None)
        return Claim(True, live, line)
    mine = (line[holder][0] if holder in line else order, holder)
    rank = sum(1 for h, (o, _) in line.items() if (o, h) < mine)
    if first_in_line(rank, limit, len(live)):
        live[holder] = now_s + lease_s
        line.pop(holder, None)
        return Claim(True, live, line)
    line[holder] = (mine[0], now_s + lease_s)
    return Claim(False, live, line)


def leave_line(waiting: Waiting, holders: Iterable[str]) -> dict[str, tuple[float, float]]:
    """The wait list after ``holders`` left it for good (cancelled, dead-lettered, or giving
    their slot back): the jobs behind them move up now, not when their entries lapse."""
    gone = set(holders)
    return {holder: entry for holder, entry in waiting.items() if holder not in gone}
