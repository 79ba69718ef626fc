"""``@app.periodic``: fire a registered job on a cron expression or every N seconds.

No beat process: the workers fire the schedules themselves, one of them at a time as leader
(``kqueue.worker.periodic``). The rules (which ticks are due, catch-up, the tick's unique key)
are ``kqueue.policy.schedule``'s, shared with the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kqueue.errors import JobError
from kqueue.policy.schedule import GRACE_S, Schedule, make_schedule


def periodic_decorator(
    app: Any,
    cron: str | None,
    *,
    every_s: float | None,
    args: tuple | list,
    kwargs: Mapping[str, Any] | None,
    timezone: str,
    name: str | None,
    catch_up: str,
    grace_s: float = GRACE_S,
) -> Callable:
    """The decorator ``App.periodic`` returns (see there)."""

    def register(target: Any) -> Any:
        job = target if hasattr(target, "dispatch") else app.job(target)
        schedule_name = name or job.name
        schedule = make_schedule(
            schedule_name,
            job.name,
            cron=cron,
            every_s=every_s,
            timezone_name=timezone,
            args=args,
            kwargs=kwargs,
            catch_up=catch_up,
            grace_s=grace_s,
            source="@app.periodic",
        )
        problem = job.bind_error(list(schedule.args), dict(schedule.kwargs))
        if problem is not None:
            raise JobError(f"@app.periodic {schedule_name!r}: {problem}")
        add_schedule(app.schedules, schedule)
        return job

    return register


def add_schedule(schedules: dict[str, Schedule], schedule: Schedule) -> None:
    """Register ``schedule`` under its name.

    Raises:
        JobError: another schedule has that name.
    """
    if schedule.name in schedules and schedules[schedule.name] != schedule:
        raise JobError(f"schedule {schedule.name!r} is already registered; give name=...")
    schedules[schedule.name] = schedule
