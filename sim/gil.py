"""Inline jobs' CPU work on the worker's one core, solved a busy period at a time.

While the host's cores fit every process job and the worker (``sim.cpu``'s condition for its fast
path), the inline jobs' CPU phases share exactly one core, the worker's (the GIL), at a rate of
1 / n each. A *busy period* of that core runs from one CPU phase's start until no inline CPU work
is left. Its jobs' ends depend on nothing but its own jobs' entries and CPU work, so they are worked
out when a job joins (``share_one_core``) and each job gets one timed event at its end; a busy
period never needs an event for a job's entry, and a job that starts after the others are done
opens a busy period of its own. A job whose CPU phase would start inside a busy period joins it,
which is solved again (only the ends after the new job's entry move; their events are replaced).

``Cpu`` falls back to its virtual clocks (one event per entry and per completion) for a busy period
that grows past ``MAX_JOBS`` (a saturated GIL), and whenever the cores stop fitting; ``leave``
hands it each unfinished job's CPU work left at that moment, so the switch is exact.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import simpy

from sim.clock import Call

#: Jobs a busy period may hold before it is handed to the clocks: solving it again costs its
#: size, and on a saturated GIL a busy period never ends.
MAX_JOBS = 8


def share_one_core(
    jobs: list[tuple[float, float, int]], until_s: float = math.inf
) -> tuple[dict[int, float], dict[int, float]]:
    """Processor sharing of one core among ``jobs`` (CPU entry time, CPU work, job), sorted by
    entry.

    Returns ``(ends, left)``: when each job that is done by ``until_s`` ends, and the CPU work
    left at ``until_s`` of each job computing then (a job that has not entered is in neither).
    """
    ends: dict[int, float] = {}
    computing: list[tuple[float, int]] = []  # (clock reading when done, job)
    clock = 0.0  # CPU seconds each computing job has had
    now = jobs[0][0]
    entry, count = 0, len(jobs)
    while True:
        enter_s = jobs[entry][0] if entry < count else math.inf
        end_s = now + (computing[0][0] - clock) * len(computing) if computing else math.inf
        if end_s <= enter_s:  # an end first (at a tie, before the entry)
            if end_s > until_s or end_s == math.inf:
                break
            clock, job = heapq.heappop(computing)
            now = ends[job] = end_s
        else:
            if enter_s > until_s:
                break
            if computing:
                clock += (enter_s - now) / len(computing)
            now = enter_s
            _enter, work_s, job = jobs[entry]
            heapq.heappush(computing, (clock + work_s, job))
            entry += 1
    left: dict[int, float] = {}
    if computing and until_s != math.inf:
        clock += (until_s - now) / len(computing)
        left = {job: done_at - clock for done_at, job in computing}
    return ends, left


def drained_s(jobs: list[tuple[float, float, int]]) -> float:
    """When one core is done with ``jobs`` (sorted by entry), in whatever order it serves them."""
    done_s = -math.inf
    for enter_s, work_s, _job in jobs:
        done_s = max(done_s, enter_s) + work_s
    return done_s


class BusyPeriod:
    """The inline jobs that share the core from ``start_s`` until ``end_s``, sorted by entry."""

    __slots__ = ("jobs", "start_s", "end_s")

    def __init__(self, jobs: list[tuple[float, float, int]], end_s: float):
        self.jobs, self.start_s, self.end_s = jobs, jobs[0][0], end_s


class Gil:
    """The busy periods ahead, and each unfinished job's end and end event.

    Args:
        env: the simulation environment.
        on_done: the end events' callback (its event's value is the job).
    """

    def __init__(self, env: simpy.Environment, on_done: Callable[[simpy.Event], None]):
        self.env = env
        self.on_done = on_done
        self.periods: list[BusyPeriod] = []  # disjoint, in time order
        #: Unfinished jobs: job -> (its busy period, its end, its end event).
        self.jobs: dict[int, tuple[BusyPeriod, float, Call]] = {}

    def add(self, job: int, now: float, enter_s: float, work_s: float) -> bool:
        """Schedule ``job``'s CPU phase (from ``enter_s``, ``work_s`` CPU seconds); False when it
        would join a busy period already at ``MAX_JOBS`` (nothing changed then)."""
        periods = self.periods
        while periods and periods[0].end_s <= now:
            del periods[0]  # over: nothing can share with it any more
        first = 0
        while first < len(periods) and periods[first].end_s <= enter_s:
            first += 1
        joined = [(enter_s, work_s, job)]
        end_s = enter_s + work_s
        last = first
        while last < len(periods) and periods[last].start_s < end_s:
            joined += periods[last].jobs
            last += 1
            if len(joined) > MAX_JOBS:
                return False
            joined.sort()
            end_s = drained_s(joined)
        if last == first:  # alone on the core: it ends after its own work
            period = BusyPeriod(joined, end_s)
            periods.insert(first, period)
            self.jobs[job] = (period, end_s, Call(self.env, end_s - now, self.on_done, job))
            return True
        ends, _left = share_one_core(joined)
        period = BusyPeriod(joined, end_s)
        periods[first:last] = [period]
        env, on_done, held = self.env, self.on_done, self.jobs
        held[job] = (period, ends[job], Call(env, ends[job] - now, on_done, job))
        for _enter, _work, member in joined:
            if member == job or member not in held:
                continue  # the new job, or one that has ended
            _old, old_end_s, event = held[member]
            member_end_s = ends[member]
            if member_end_s != old_end_s:  # the new job slows it down: a new end event
                event.callbacks.clear()
                event = Call(env, max(0.0, member_end_s - now), on_done, member)
            held[member] = (period, member_end_s, event)
        return True

    def done(self, job: int) -> None:
        """``job``'s end event fired."""
        del self.jobs[job]

    def leave(self, now: float, after_s: float = -math.inf) -> list[tuple[int, float, float]]:
        """Hand over the busy periods still running after ``after_s``: their end events are
        disarmed, and each unfinished job comes back as (job, CPU entry time, CPU work left
        now, or all of it if it has not entered)."""
        handed: list[tuple[int, float, float]] = []
        keep: list[BusyPeriod] = []
        for period in self.periods:
            if period.end_s <= after_s or period.end_s <= now:
                keep.append(period)
                continue
            ends, left = share_one_core(period.jobs, until_s=now)
            for enter_s, work_s, job in period.jobs:
                if job in ends or job not in self.jobs:
                    continue  # done (its end event, due now, still fires)
                self.jobs.pop(job)[2].callbacks.clear()
                handed.append((job, enter_s, left.get(job, work_s)))
        self.periods = keep
        return handed
