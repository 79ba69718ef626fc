"""Inline jobs' CPU work on the worker's one core, solved a busy period at a time.

While the host's cores fit every process job and the worker (``sim.engine.cpu``'s condition for its
fast path), the inline jobs' CPU phases share exactly one core, the worker's (the GIL), at a rate of
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

from sim.engine.clock import Call

#: Ends closer than this (relative) to an event's time are at that time (float round-off).
ROUND_OFF_S = 1e-12

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
    if len(jobs) == 2 and until_s == math.inf:  # most busy periods: worked out directly
        return _share_two(jobs), {}
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


def _share_two(jobs: list[tuple[float, float, int]]) -> dict[int, float]:
    """``share_one_core``'s ends for two jobs: alone until the second enters, then at half
    speed until the one with less work left ends, then alone."""
    (first_s, first_work_s, first), (second_s, second_work_s, second) = jobs
    left_s = first_work_s - (second_s - first_s)  # the first's work left at the entry
    if left_s <= 0:  # done before the second enters: they never share
        return {first: first_s + first_work_s, second: second_s + second_work_s}
    if left_s <= second_work_s:
        return {first: second_s + 2 * left_s, second: second_s + left_s + second_work_s}
    return {second: second_s + 2 * second_work_s, first: second_s + second_work_s + left_s}


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
        on_done: called as ``on_done(job)`` when a job's CPU work is complete.
    """

    def __init__(self, env: simpy.Environment, on_done: Callable[[int], None]):
        self.env = env
        self.on_done = on_done
        self.periods: list[BusyPeriod] = []  # disjoint, in time order
        #: Unfinished jobs: job -> [its end, its end event, when that event fires]. A job that
        #: joins a busy period only delays the others, so an event that would now fire early is
        #: kept and re-armed when it fires (``done``): one event however often the end moves.
        self.jobs: dict[int, list] = {}

    def add(self, job: int, now: float, enter_s: float, work_s: float) -> bool:
        """Schedule ``job``'s CPU phase (from ``enter_s``, ``work_s`` CPU seconds); False when it
        would join a busy period already at ``MAX_JOBS`` (nothing changed then)."""
        periods = self.periods
        while periods and periods[0].end_s <= now:
            del periods[0]  # over: nothing can share with it any more
        first, count = 0, len(periods)
        while first < count and periods[first].end_s <= enter_s:
            first += 1
        joined = [(enter_s, work_s, job)]
        end_s = enter_s + work_s
        if first == count or periods[first].start_s >= end_s:  # alone: it ends after its work
            periods.insert(first, BusyPeriod(joined, end_s))
            self.jobs[job] = [end_s, Call(self.env, end_s - now, self._end, job), end_s]
            return True
        last = first
        while last < count and periods[last].start_s < end_s:
            joined += periods[last].jobs
            last += 1
            if len(joined) > MAX_JOBS:
                return False
            joined.sort()
            end_s = drained_s(joined)
        env, end, held = self.env, self._end, self.jobs
        ends, _left = share_one_core(joined)
        periods[first:last] = [BusyPeriod(joined, end_s)]
        held[job] = [ends[job], Call(env, ends[job] - now, end, job), ends[job]]
        for _enter, _work, member in joined:
            entry = held.get(member)
            if entry is None or member == job:
                continue  # one that has ended, or the new job
            member_end_s = entry[0] = ends[member]
            if member_end_s < entry[2]:  # earlier than its event (round-off): a new one
                entry[1].callbacks = ()
                entry[2] = max(now, member_end_s)
                entry[1] = Call(env, entry[2] - now, end, member)
        return True

    def _end(self, event: Call) -> None:
        """A job's end event fired: it is done (``on_done``), unless a later job delayed it
        (its event is re-armed for its end)."""
        job, now = event._value, self.env._now
        entry = self.jobs[job]
        if entry[0] > now + ROUND_OFF_S * (now if now > 1.0 else 1.0):
            entry[2] = entry[0]
            entry[1] = Call(self.env, entry[0] - now, self._end, job)
            return
        del self.jobs[job]
        self.on_done(job)

    def computing(self, now: float) -> int:
        """How many of its jobs are in their CPU phase at ``now``."""
        count = 0
        for period in self.periods:
            if period.start_s > now:
                break
            if period.end_s > now:
                for enter_s, _work, job in period.jobs:
                    entry = self.jobs.get(job)
                    count += enter_s <= now and entry is not None and entry[0] > now
        return count

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
                self.jobs.pop(job)[1].callbacks = ()
                handed.append((job, enter_s, left.get(job, work_s)))
        self.periods = keep
        return handed
