"""Priority within a rate-limited class's reserved turns: a higher priority takes the earliest.

A rate-limited job that finds no whole token reserves a turn (``ratelimit.reserve_turn``:
its token as a debt, a ticket for when the debt is covered). Turns are handed out first
come, first served, so without more a job of the class with a higher priority would wait
behind every turn lower-priority jobs reserved before it came (up to ``max_debt_s``, a
minute). ``take_turn`` keeps the class's reserved turns in priority order instead: a job
that reserves a turn while jobs of a lower priority hold tickets takes the earliest of their
turns, and each of those jobs moves to the next of them, the last one to the new turn at the
end (so the lower jobs keep their order among themselves and the class's rate is unchanged:
one more turn at the end, as before). When the debt is at its cap the last one loses its
ticket instead (it asks again when leased, as any job past the cap does), so a higher
priority is never held back by lower-priority reservations. A job moved back finds its
ticket later than its turn when it is leased at the old one, and goes back for the rest
(``reserve_turn``'s early case): one more round trip per move. Jobs of the same or a higher
priority are never moved.

The backends (Redis in Lua, ``redis_limits.RESERVE_TURN``; SQLite; memory) and the twin's
``sim.model.lease_gate`` all run ``take_turn``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from kqueue.policy.ratelimit import (
    TICKET_EARLY_S,
    Bucket,
    RateLimit,
    reserve_turn,
    ticket_live,
)

H = TypeVar("H", bound=Hashable)


@dataclass(frozen=True)
class Ticket:
    """A reserved turn: when (on the bucket's clock, seconds) and the holder's priority."""

    turn_s: float
    priority: int = 0


@dataclass(frozen=True)
class Reservation:
    """What ``take_turn`` decided, and the class's bucket and live tickets after it."""

    #: 0.0: start now; else go back to the backend for this long, seconds.
    wait_s: float
    bucket: Bucket
    tickets: dict


def take_turn(
    limit: RateLimit,
    bucket: Bucket | None,
    tickets: Mapping[H, Ticket],
    holder: H,
    priority: int,
    now_s: float,
) -> Reservation:
    """``holder`` (of ``priority``) asks for its turn under ``limit`` (pure).

    Args:
        limit: the class's rate limit.
        bucket: the class's bucket (None: new, full).
        tickets: the class's tickets: at least ``holder``'s own and every one of a lower
            priority (the others are never moved; lapsed ones are dropped).
        holder: the job asking.
        priority: its priority (higher first).
        now_s: now, on the clock the bucket and tickets are kept on, seconds.
    """
    live = {h: t for h, t in tickets.items() if ticket_live(limit, t.turn_s, now_s)}
    own = live.pop(holder, None)
    turn = reserve_turn(limit, bucket, None if own is None else own.turn_s, now_s)
    lower = sorted(
        ((t.turn_s, h) for h, t in live.items() if t.priority < priority),
        key=lambda pair: (pair[0], str(pair[1])),
    )
    if own is not None or turn.wait_s == 0.0 or not lower:
        if turn.ticket_s is not None:
            live[holder] = Ticket(turn.ticket_s, priority if own is None else own.priority)
        return Reservation(turn.wait_s, turn.bucket, live)
    # a turn of a lower priority comes first: take the earliest, each of theirs moves on one
    for (_, moved), (later_s, _) in zip(lower, lower[1:], strict=False):
        live[moved] = Ticket(later_s, live[moved].priority)
    last = lower[-1][1]
    if turn.ticket_s is None:  # the debt is at its cap: the last one loses its ticket
        del live[last]
    else:
        live[last] = Ticket(turn.ticket_s, live[last].priority)
    mine_s = lower[0][0]
    if mine_s <= now_s + TICKET_EARLY_S:
        return Reservation(0.0, turn.bucket, live)
    live[holder] = Ticket(mine_s, priority)
    return Reservation(mine_s - now_s, turn.bucket, live)
