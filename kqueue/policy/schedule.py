"""Periodic schedules: which ticks are due, which missed ones still run, and each tick's key.

A schedule fires a registered job either on a cron expression (``kqueue.policy.cron``) or every
``every_s`` seconds (ticks at whole multiples of ``every_s`` since the epoch, so every worker
computes the same ticks). The leader (``kqueue.policy.leader``) asks ``plan_ticks`` what to
dispatch since the last tick it recorded; each tick is dispatched with ``tick_key`` as its unique
key, so a tick dispatched twice (a leader that lost its lease mid-step) still runs once.

A tick is *missed* when it is older than ``grace_s`` by the time a leader looks (no worker ran
then). ``catch_up`` says what happens to missed ticks: ``none`` (the default) skips them,
``last`` runs the latest one, ``all`` runs each (at most ``MAX_CATCH_UP``).
"""

from __future__ import annotations

import enum
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kqueue.errors import ConfigError
from kqueue.policy.cron import Cron, next_fire_s, parse_cron, timezone

#: Most missed ticks ``catch_up = "all"`` runs at once.
MAX_CATCH_UP = 1000
#: Default: a tick older than this when the leader looks counts as missed, seconds.
GRACE_S = 60.0


class CatchUp(enum.StrEnum):
    """What happens to ticks missed while no worker ran."""

    #: Skip them: the next tick runs on time.
    NONE = "none"
    #: Run the latest missed tick once.
    LAST = "last"
    #: Run every missed tick (at most ``MAX_CATCH_UP``).
    ALL = "all"


@dataclass(frozen=True)
class Schedule:
    """A job fired periodically: on ``cron`` (in ``timezone``) or every ``every_s`` seconds."""

    name: str
    job_name: str
    cron: Cron | None = None
    every_s: float | None = None
    timezone: str = "UTC"
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    catch_up: CatchUp = CatchUp.NONE
    grace_s: float = GRACE_S

    def next_tick_s(self, after_s: float) -> float | None:
        """The first tick strictly after ``after_s``, epoch seconds (None: never again)."""
        if self.every_s is not None:
            return (math.floor(after_s / self.every_s) + 1) * self.every_s
        return next_fire_s(self.cron, after_s, timezone(self.timezone))


def make_schedule(
    name: str,
    job_name: str,
    *,
    cron: str | None = None,
    every_s: float | None = None,
    timezone_name: str = "UTC",
    args: tuple | list = (),
    kwargs: Mapping[str, Any] | None = None,
    catch_up: str = "none",
    grace_s: float = GRACE_S,
    source: str = "schedule",
) -> Schedule:
    """A checked ``Schedule``; exactly one of ``cron`` and ``every_s``.

    Raises:
        ConfigError: both or neither of ``cron`` and ``every_s``, a malformed cron (names the
            field), an unknown timezone, ``every_s <= 0``, or an unknown ``catch_up``.
    """
    where = f"{source} {name!r}"
    if (cron is None) == (every_s is None):
        raise ConfigError(f"{where}: give exactly one of a cron expression and every_s")
    parsed = None
    if cron is not None:
        try:
            parsed = parse_cron(cron)
        except ConfigError as exc:
            raise type(exc)(f"{where}: {exc}") from None
    if every_s is not None and not (isinstance(every_s, int | float) and every_s > 0):
        raise ConfigError(f"{where}: every_s={every_s!r}; expected seconds > 0")
    try:
        timezone(timezone_name)
        mode = CatchUp(catch_up)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError:
        valid = ", ".join(m.value for m in CatchUp)
        raise ConfigError(f"{where}: catch_up={catch_up!r}; valid: {valid}") from None
    every = float(every_s) if every_s is not None else None
    return Schedule(
        name, job_name, parsed, every, timezone_name, tuple(args), dict(kwargs or {}), mode, grace_s
    )


@dataclass(frozen=True)
class TickPlan:
    """What the leader does now: ticks to dispatch, how many it skipped, what to record."""

    fire_s: tuple[float, ...]
    skipped: int
    #: The last tick considered (dispatched or skipped): the next plan starts after it.
    last_tick_s: float


def due_ticks(schedule: Schedule, since_s: float, now_s: float, limit: int) -> list[float]:
    """The ticks in ``(since_s, now_s]``, oldest first, at most ``limit`` (the newest kept)."""
    ticks: list[float] = []
    tick = schedule.next_tick_s(since_s)
    while tick is not None and tick <= now_s:
        ticks.append(tick)
        if len(ticks) > limit:
            del ticks[0]
        tick = schedule.next_tick_s(tick)
    return ticks


def plan_ticks(schedule: Schedule, last_tick_s: float | None, now_s: float) -> TickPlan:
    """Which ticks to dispatch now, given the last tick recorded (None: the schedule is new).

    A new schedule starts now (nothing from before it existed runs). A tick within ``grace_s``
    of ``now_s`` is on time and runs; older ones are missed and follow ``catch_up``.
    """
    if last_tick_s is None:
        return TickPlan((), 0, now_s)
    if schedule.every_s is not None:
        # skip the whole missed stretch at once: an every_s=1 schedule down for a day
        # would otherwise list 86,400 ticks to throw away
        floor_s = now_s - schedule.grace_s - MAX_CATCH_UP * schedule.every_s
        since_s = max(last_tick_s, floor_s)
    else:
        since_s = last_tick_s
    ticks = due_ticks(schedule, since_s, now_s, MAX_CATCH_UP + 1440)
    on_time = [t for t in ticks if now_s - t <= schedule.grace_s]
    missed = [t for t in ticks if now_s - t > schedule.grace_s]
    counted_missed = len(missed) + _skipped_before(schedule, last_tick_s, since_s)
    if schedule.catch_up is CatchUp.LAST:
        kept = missed[-1:]
    elif schedule.catch_up is CatchUp.ALL:
        kept = missed[-MAX_CATCH_UP:]
    else:
        kept = []
    last = ticks[-1] if ticks else last_tick_s
    return TickPlan(tuple(kept + on_time), counted_missed - len(kept), max(last, last_tick_s))


def _skipped_before(schedule: Schedule, last_tick_s: float, since_s: float) -> int:
    if schedule.every_s is None or since_s <= last_tick_s:
        return 0
    return int(since_s // schedule.every_s - last_tick_s // schedule.every_s)


def tick_key(schedule_name: str, tick_s: float) -> str:
    """The unique key of one tick: the same on every worker, so a tick runs once."""
    return f"schedule:{schedule_name}:{tick_s:.3f}"


#: The keys of one ``[schedules.<name>]`` table.
SCHEDULE_KEYS = ("job", "cron", "every_s", "timezone", "args", "kwargs", "catch_up", "grace_s")


def parse_schedules(tables: object, source: str) -> dict[str, Schedule]:
    """The ``[schedules.<name>]`` tables of a ``kqueue.toml`` as checked ``Schedule``s.

    Raises:
        ConfigError: not tables, an unknown key (lists the valid ones), no ``job``, or a bad
            value (``make_schedule``); the message names the file and the table.
    """
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{source}: [schedules] must hold [schedules.<name>] tables")
    parsed = {}
    for name, table in tables.items():
        where = f"{source}: [schedules.{name}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table, got {table!r}")
        unknown = sorted(set(table) - set(SCHEDULE_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(SCHEDULE_KEYS)}"
            )
        if not isinstance(table.get("job"), str):
            raise ConfigError(f"{where}: job = the registered job's name is required")
        parsed[name] = make_schedule(
            name,
            table["job"],
            cron=table.get("cron"),
            every_s=table.get("every_s"),
            timezone_name=table.get("timezone", "UTC"),
            args=table.get("args", ()),
            kwargs=table.get("kwargs"),
            catch_up=table.get("catch_up", "none"),
            grace_s=table.get("grace_s", GRACE_S),
            source=f"{source}: schedule",
        )
    return parsed


def load_schedules(path: str | Path | None) -> dict[str, Schedule]:
    """The schedules of a ``kqueue.toml`` (none without a file)."""
    if path is None:
        return {}
    with open(path, "rb") as file:
        return parse_schedules(tomllib.load(file).get("schedules", {}), str(path))
