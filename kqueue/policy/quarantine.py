"""Poison and OOM-prone job classes: moved to the isolated tier with a memory limit, and back.

A class whose jobs keep dying for memory (``Status.MEMORY``) or from a signal (``Status.KILLED``:
the OOM killer, a segfault) harms the jobs beside it: in the pool its death takes a process that
others queue for, and its growth counts against everyone's budget. So once
``quarantine_after_failures`` of its last ``quarantine_window`` attempts died that way, its jobs
run isolated, each with a memory limit of its recorded peak times ``quarantine_memory_headroom``
(never above the budget or its own limit). It comes back to its own tier after
``quarantine_release_after`` clean attempts in a row. ``step`` is the pure rule;
``Quarantine`` keeps the state per class for the runtime and the twin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kqueue.policy.config import Config
from kqueue.policy.status import Status

#: The ways of ending that count against a class.
HARMFUL = frozenset({Status.MEMORY, Status.KILLED})


@dataclass(frozen=True)
class ClassHealth:
    """What the rule remembers about one job class."""

    #: Its last attempts, oldest first: True for a harmful end.
    recent: tuple[bool, ...] = ()
    #: Whether its jobs run isolated now.
    quarantined: bool = False
    #: Clean attempts in a row since it was quarantined.
    clean_streak: int = 0


def step(health: ClassHealth, status: Status, config: Config) -> ClassHealth:
    """The class's health after one more attempt ended with ``status`` (pure).

    Cancelled and interrupted attempts should not be passed: they say nothing about the class.
    """
    harmful = Status(status) in HARMFUL
    recent = (*health.recent, harmful)[-config.quarantine_window :]
    if health.quarantined:
        streak = 0 if harmful else health.clean_streak + 1
        if streak >= config.quarantine_release_after:
            return ClassHealth(recent=(), quarantined=False)
        return ClassHealth(recent, True, streak)  # not ``replace``: the twin steps every job
    threshold = config.quarantine_after_failures
    if threshold and sum(recent) >= threshold:
        return ClassHealth(recent=recent, quarantined=True)
    return ClassHealth(recent, False, health.clean_streak)


def limit_mb(peak_mb: float, own_limit_mb: float, config: Config) -> float:
    """The memory limit of a quarantined class's job: its peak times the headroom, capped by its
    own limit and the budget (its own limit while there is no recorded peak)."""
    if math.isnan(peak_mb):
        return min(own_limit_mb, config.memory_budget_mb)
    return min(own_limit_mb, config.memory_budget_mb, peak_mb * config.quarantine_memory_headroom)


class Quarantine:
    """The health of every job class seen (state here, the decisions in ``step``)."""

    def __init__(self, config: Config):
        self.config = config
        self._health: dict[str, ClassHealth] = {}

    def record(self, job_class: str, status: Status) -> bool | None:
        """Note one ended attempt; returns True when the class was just quarantined, False when it
        was just released, None when nothing changed."""
        before = self._health.get(job_class, _HEALTHY)
        after = step(before, status, self.config)
        self._health[job_class] = after
        if after.quarantined == before.quarantined:
            return None
        return after.quarantined

    def is_quarantined(self, job_class: str) -> bool:
        """True while jobs of ``job_class`` must run isolated."""
        health = self._health.get(job_class)
        return health is not None and health.quarantined

    def quarantined(self) -> list[str]:
        """The quarantined classes, sorted (for ``kqueue stats``)."""
        return sorted(name for name, health in self._health.items() if health.quarantined)


_HEALTHY = ClassHealth()
