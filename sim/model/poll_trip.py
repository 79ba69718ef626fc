"""The sleeping fetcher's poll timer and its round trip as one event (no class rules).

Scenario: the model's fetcher (``sim.model.worker``) sleeps until a poll tick finds the next
arrival, and every job that ends while it sleeps moves the plan (or wakes it, once the arrival
is due). The plain way to run that is a timer event that fires at the planned poll (re-arming
itself when a job's end moved the plan later, doing nothing when a job's end woke the fetcher
first), then a round-trip event ``HostProfile.fetch_s`` later: about 0.37 timer events and 0.06
timer-started round trips per job of the ``sim_speed`` trace.

Here the timer is virtual: its time and the plan it was armed for are two numbers, and what it
would have done when it fired (re-arm, wake, or nothing) is worked out when the next thing that
reads the fetcher happens (a job's end, the next sleep, the real event below) by the same rule
and the same float sums. One real event stands for it: due at the wake the virtual timer leads
to plus the round trip, kept while it is no later than that (it fires, finds the plan moved
later, and goes again), replaced only when a plan is earlier. So a poll that wakes the fetcher
costs one event, not two, and every result is the same as the plain way's (a poll tick and a
job's end at the very same float time are the one order this could change; the fingerprint of
``experiments/sim_fingerprint.py`` shows none in its scenarios).

A mixin of ``sim.model.worker.Model`` for the ungated fetcher on a host that polls and whose
round trip costs time; it uses the model's ``_idle_for_s``, ``_fetch_at_s`` and ``_fetched``.
"""

from __future__ import annotations

import math

import simpy

from sim.engine.clock import Call, CallAt
from sim.model.gated_fetch import TIME_TOLERANCE


class PollTrip:
    """The virtual poll timer and its one real event (see the module docstring)."""

    def _init_poll_trip(self) -> None:
        #: The virtual timer: when it fires (inf: none pending) and the plan it was armed for.
        self._timer_s = math.inf
        self._timer_plan_s = math.inf
        #: When the round trip a virtual timer started comes back (inf: none in flight).
        self._trip_s = math.inf
        #: The real event and its time.
        self._trip_event: Call | None = None
        self._trip_event_s = math.inf

    def _advance_timer(self, now: float) -> None:
        """Fire the virtual timer, as often as the plain timer would have, before ``now``."""
        while self._timer_s < now:
            timer_s = self._timer_s
            if self._idle_for_s != self._idle_for_s:  # NaN: awake, the timer does nothing
                self._timer_s = math.inf
                return
            plan_s = self._fetch_at_s
            if plan_s > timer_s + TIME_TOLERANCE:  # a job's end moved the plan later: re-arm
                self._timer_s, self._timer_plan_s = timer_s + (plan_s - timer_s), plan_s
                continue
            self._timer_s = math.inf  # it wakes the fetcher: the round trip starts then
            self._idle_for_s, self._fetch_at_s = math.nan, math.inf
            self._trip_s = timer_s + self.host.fetch_s
            return

    def _arm_virtual_timer(self) -> None:
        """The plain ``_arm_fetch_timer``: keep a pending timer that fires no later than the
        plan, else arm one for the plan; then make sure the real event comes in time. The
        caller has advanced the timer to now (``_advance_timer``) before it changed the plan."""
        now = self.env.now
        if self._timer_s == math.inf or self._timer_plan_s > self._fetch_at_s:
            plan_s = self._fetch_at_s
            self._timer_s, self._timer_plan_s = now + (plan_s - now), plan_s
        self._ensure_trip_event()

    def _ensure_trip_event(self) -> None:
        """The real event no later than the sleeping fetcher's wake by its timer plus the trip."""
        timer_s, plan_s = self._timer_s, self._fetch_at_s
        wake_s = timer_s if plan_s <= timer_s + TIME_TOLERANCE else timer_s + (plan_s - timer_s)
        self._schedule_trip_event(wake_s + self.host.fetch_s)

    def _schedule_trip_event(self, at_s: float) -> None:
        if self._trip_event is not None:
            if self._trip_event_s <= at_s:
                return  # it fires first and looks again
            self._trip_event.callbacks.clear()  # superseded
        self._trip_event_s = at_s
        self._trip_event = CallAt(self.env, at_s, self._trip_event_due)

    def _trip_event_due(self, _event: simpy.Event) -> None:
        self._trip_event = None
        now = self.env.now
        if self._idle_for_s == self._idle_for_s:  # not NaN: asleep, unless the timer woke it
            self._advance_timer(now)
        if self._trip_s <= now:
            self._trip_s = math.inf
            self._fetched(None)
        elif self._trip_s != math.inf:
            self._schedule_trip_event(self._trip_s)
        elif self._idle_for_s == self._idle_for_s:
            self._ensure_trip_event()
