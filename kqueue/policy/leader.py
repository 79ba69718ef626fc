"""The leader lease: one worker of a fleet fires the schedules, and another takes over if it dies.

The backend keeps one lease record (Redis: a key set with ``SET NX PX``; SQLite: a row), naming
its holder and when it expires. Each worker runs ``leader_step`` every ``renew_every_s``: the
holder renews; anyone else takes the lease only once it has expired. A leader that dies stops
renewing, so another worker holds it within one ``lease_s`` plus one ``renew_every_s``. The
backends apply the decision atomically (compare-and-set on the holder); the simulator applies it
to its own record. A leader that fails to renew in time stops acting as leader at once: acting
on a lease it may have lost could dispatch a tick twice (the tick's unique key still prevents
the second run).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kqueue.errors import ConfigError

#: Default lease length, seconds.
LEASE_S = 10.0
#: Renew this many times per lease (a lost renew or two still keeps it).
RENEWS_PER_LEASE = 3


class LeaderAction(enum.StrEnum):
    """What a worker does with the lease this step."""

    #: The lease is free or expired: take it.
    ACQUIRE = "acquire"
    #: It holds the lease: push its expiry.
    RENEW = "renew"
    #: Another worker holds a live lease: do nothing.
    FOLLOW = "follow"


@dataclass(frozen=True)
class LeaderLease:
    """The lease record as the backend keeps it."""

    holder: str
    expires_at_s: float

    def live(self, now_s: float) -> bool:
        """True while the lease has not expired."""
        return self.expires_at_s > now_s


def check_lease_s(lease_s: float, source: str = "leader lease") -> float:
    """``lease_s`` as float seconds.

    Raises:
        ConfigError: not a positive number.
    """
    if isinstance(lease_s, bool) or not isinstance(lease_s, int | float) or lease_s <= 0:
        raise ConfigError(f"{source}: lease_s={lease_s!r}; expected seconds > 0")
    return float(lease_s)


def renew_every_s(lease_s: float) -> float:
    """How often a worker runs ``leader_step``, seconds."""
    return lease_s / RENEWS_PER_LEASE


def leader_step(current: LeaderLease | None, me: str, now_s: float) -> LeaderAction:
    """What worker ``me`` does now, given the lease record (None: nobody ever held it)."""
    if current is None or not current.live(now_s):
        return LeaderAction.ACQUIRE
    if current.holder == me:
        return LeaderAction.RENEW
    return LeaderAction.FOLLOW


def apply_step(
    current: LeaderLease | None, me: str, now_s: float, lease_s: float
) -> LeaderLease | None:
    """The lease record after ``me``'s step (what the backend's atomic update writes)."""
    if leader_step(current, me, now_s) is LeaderAction.FOLLOW:
        return current
    return LeaderLease(me, now_s + lease_s)


def takeover_bound_s(lease_s: float) -> float:
    """The longest a fleet goes without a leader after the leader dies, seconds."""
    return lease_s + renew_every_s(lease_s)
