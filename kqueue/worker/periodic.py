"""The workers fire the periodic schedules themselves: whoever holds the leader lease does.

Every ``renew_every_s`` each worker with schedules takes or renews the lease
(``ScheduleStore.lead``, the rule in ``kqueue.policy.leader``). The leader asks
``kqueue.policy.schedule.plan_ticks`` what is due since each schedule's last recorded tick,
dispatches each due tick with the tick's unique key (and an id made from it), then records the
tick. A leader that dies between a dispatch and its record leaves the tick to its successor,
whose dispatch of it finds the key taken: the tick still runs once. A fleet without a leader
(it died) gets one within ``takeover_bound_s``; ticks missed meanwhile are younger than the
schedule's ``grace_s``, so they run late rather than not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from kqueue.api.options import DispatchOptions
from kqueue.backends.limits import ScheduleStore
from kqueue.errors import ConfigError
from kqueue.policy.leader import renew_every_s, takeover_bound_s
from kqueue.policy.schedule import Schedule, TickPlan, plan_ticks, tick_key

log = logging.getLogger("kqueue.worker")


def tick_job_id(schedule_name: str, tick_s: float) -> str:
    """The job id of one tick's run: the same on every worker."""
    return "tick-" + hashlib.sha1(tick_key(schedule_name, tick_s).encode()).hexdigest()[:24]


def state_body(
    schedule: Schedule, plan: TickPlan, worker_id: str, last_fired_s: float | None = None
) -> bytes:
    """What ``kqueue schedules`` shows of a schedule (and where the next plan starts).

    ``last_tick_s`` is where the next plan starts (a new schedule's start, or a skipped tick);
    ``last_fired_s`` is the last tick dispatched: ``plan``'s newest, else ``last_fired_s``
    (the one recorded before), None until the schedule first fires.
    """
    if plan.fire_s:
        last_fired_s = max(plan.fire_s)
    spec = schedule.cron.text if schedule.cron is not None else f"every {schedule.every_s:g} s"
    return json.dumps(
        {
            "job": schedule.job_name,
            "spec": spec,
            "timezone": schedule.timezone,
            "catch_up": schedule.catch_up.value,
            "last_tick_s": plan.last_tick_s,
            "last_fired_s": last_fired_s,
            "next_tick_s": schedule.next_tick_s(plan.last_tick_s),
            "fired": len(plan.fire_s),
            "skipped": plan.skipped,
            "leader": worker_id,
        }
    ).encode()


class Periodic:
    """One worker's part in firing the schedules.

    Args:
        app: the ``kqueue.App`` whose jobs the schedules name, and its backend.
        schedules: the schedules by name (the app's and the config file's).
        worker_id: this worker's id (the lease's holder).
        lease_s: the leader lease, seconds.

    Raises:
        ConfigError: a schedule names a job the app does not register.
    """

    def __init__(self, app, schedules: Mapping[str, Schedule], worker_id: str, lease_s: float):
        backend = app.backend
        self.app, self.worker_id, self.lease_s = app, worker_id, lease_s
        self.store = backend if isinstance(backend, ScheduleStore) and schedules else None
        self.schedules = dict(schedules)
        for schedule in self.schedules.values():
            if schedule.job_name not in app.jobs:
                raise ConfigError(
                    f"schedule {schedule.name!r} fires job {schedule.job_name!r}, which the app "
                    "does not register"
                )
        self.leading = False
        #: Ticks this worker dispatched as leader.
        self.fired = 0
        self._next_step_s = 0.0

    def due(self, now_s: float) -> bool:
        """True when this worker should take part again (has schedules, its interval passed)."""
        return self.store is not None and now_s >= self._next_step_s

    def step(self, now_s: float) -> None:
        """Take or renew the lease; as leader, dispatch what is due and record it."""
        self._next_step_s = now_s + renew_every_s(self.lease_s)
        leading = self.store.lead(self.worker_id, self.lease_s)
        if leading != self.leading:
            log.info("worker %s %s the schedules' leader", self.worker_id,
                     "is now" if leading else "is no longer")  # fmt: skip
        self.leading = leading
        if not leading:
            return
        states = self.store.schedule_states()
        for schedule in self.schedules.values():
            state = json.loads(states[schedule.name]) if schedule.name in states else {}
            last = state.get("last_tick_s")
            plan = plan_ticks(schedule, last, now_s)
            for tick_s in plan.fire_s:
                self._fire(schedule, tick_s)
            if plan.fire_s or last is None or plan.last_tick_s != last:
                body = state_body(schedule, plan, self.worker_id, state.get("last_fired_s"))
                self.store.save_schedule_state(schedule.name, body)

    def _fire(self, schedule: Schedule, tick_s: float) -> None:
        job = self.app.jobs[schedule.job_name]
        options = DispatchOptions(
            job_id=tick_job_id(schedule.name, tick_s),
            unique_key=tick_key(schedule.name, tick_s),
            unique_for_s=schedule.grace_s + 2 * takeover_bound_s(self.lease_s),
        )
        job.submit(options, schedule.args, dict(schedule.kwargs))
        self.fired += 1
