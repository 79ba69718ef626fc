"""What a backend keeps for rules shared by every worker: limits, pauses, the schedules' leader.

A backend that can enforce ``rate_limit`` / ``concurrency_limit`` and pauses across processes
also implements ``LimitStore``. The rules are ``kqueue.policy.ratelimit``'s; each backend
applies them atomically (Redis: one Lua script per call, on the server's clock; SQLite: one
``BEGIN IMMEDIATE`` transaction; memory: one lock). Keys are the caller's (the worker uses
``rate:<job class>`` and ``concurrency:<job class>``); pause names are ``queue:<name>`` or
``job:<job class>``. A rate key keeps its bucket and its tickets (job id -> turn) together, so
one call reads and updates both. A semaphore key keeps its slots and its wait list together
(``kqueue.policy.slot_queue``).

``ScheduleStore`` keeps the leader lease of the periodic schedules (``kqueue.policy.leader``:
Redis ``SET NX PX`` and a renew by its holder in one script; SQLite a row) and each schedule's
state as the leader last wrote it (opaque JSON bytes: its last tick, next tick, definition).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from kqueue.policy.ratelimit import RateLimit


class LimitStore(abc.ABC):
    """Shared token buckets, counted semaphores with leases, and paused names."""

    @abc.abstractmethod
    def take_tokens(self, key: str, limit: RateLimit, wanted: int) -> int:
        """Take up to ``wanted`` tokens from ``key``'s bucket now; returns how many were granted."""

    @abc.abstractmethod
    def reserve_turn(self, key: str, limit: RateLimit, holder: str, priority: int = 0) -> float:
        """``holder``'s turn under ``key``'s bucket (``kqueue.policy.turn_queue.take_turn``):
        0.0 when it starts now (on a whole token, or on its own ticket whose turn has come);
        else how long until its turn, seconds: it holds a ticket for that turn (its token is
        taken, as a debt), kept here so any worker that leases it then starts it. A ticket
        lapses ``limit.ticket_grace_s`` after its turn. A holder of a higher ``priority``
        than tickets already held takes the earliest of their turns (they move on one)."""

    @abc.abstractmethod
    def acquire_slots(
        self, key: str, limit: int, holders: Sequence[str], lease_s: float
    ) -> list[str]:
        """Give ``holders`` slots of ``key`` while fewer than ``limit`` are live; returns who
        got one. A holder with a live slot keeps it with its lease renewed to ``lease_s``."""

    @abc.abstractmethod
    def claim_slot(self, key: str, limit: int, holder: str, order: float, lease_s: float) -> bool:
        """``holder`` asks for a slot of ``key`` in its turn (``kqueue.policy.slot_queue.
        claim_slot``): True when it holds one now; else it waits on ``key``'s wait list at
        ``order`` (or the rank it joined with before), its entry kept for ``lease_s``."""

    @abc.abstractmethod
    def release_slots(self, key: str, holders: Sequence[str]) -> None:
        """Give the slots of ``holders`` back."""

    @abc.abstractmethod
    def slot_holders(self, key: str) -> dict[str, float]:
        """The live slots of ``key``: holder -> when its lease expires (epoch seconds)."""

    @abc.abstractmethod
    def set_paused(self, name: str, paused: bool) -> None:
        """Pause (or resume) ``queue:<name>`` or ``job:<class>``; kept until resumed."""

    @abc.abstractmethod
    def paused(self) -> set[str]:
        """The paused names."""


class ScheduleStore(abc.ABC):
    """The schedules' leader lease and their published states."""

    @abc.abstractmethod
    def lead(self, me: str, lease_s: float) -> bool:
        """Take the leader lease if it is free or expired, or renew it if ``me`` holds it.

        Returns whether ``me`` leads for the next ``lease_s`` seconds (``leader.apply_step``).
        """

    @abc.abstractmethod
    def leader(self) -> tuple[str, float] | None:
        """The live lease's holder and when it expires (epoch seconds), or None."""

    @abc.abstractmethod
    def schedule_states(self) -> dict[str, bytes]:
        """Each schedule's state as last saved: name -> JSON bytes."""

    @abc.abstractmethod
    def save_schedule_state(self, name: str, body: bytes) -> None:
        """Keep ``body`` as schedule ``name``'s state."""
