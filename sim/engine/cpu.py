"""Processor sharing of the host's CPU cores, exact, with one SimPy event per change that matters.

Scenario: every running job's CPU work competes for ``cores`` cores. A pool or isolated job is one
process, one runnable thread; all inline jobs live in the worker process and share its one core
(the GIL), so the worker counts as one runnable thread while any inline job computes. With ``N``
runnable threads each gets ``min(1, cores / N)`` of a core, and each of ``n`` inline jobs gets a
``1 / n`` share of the worker's. Except that with ``n > 1`` inline jobs computing on
oversubscribed cores the worker weighs ``1 + gil_threads_bonus * (1 - 1/n)`` threads (at most
one core): its threads sleep on the GIL and the OS scheduler favours a thread that slept, so a
process of several GIL-bound threads wins more than one thread's share (measured: 1.6x with two
threads against busy processes, 2.2x with eight). ``cores = 0`` means unlimited cores (the GIL
still applies).
``cores`` may be fractional: on a shared host, the cores the worker's processes get together.

Because all jobs of a group progress at the same rate, each group keeps a *virtual clock*: the CPU
seconds one of its jobs has received since the start. A job needing ``w`` CPU seconds that joins
when the clock reads ``v`` is done when the clock reads ``v + w``, so the next completion is the
head of a heap and only one wake-up event is pending at a time. Events happen only when a job
joins or leaves, never on a time step.

Fast path, still exact: a process job whose CPU phase (fixed when it starts) has a core of its own
all along, one left for the worker, counting every process job in the clocks and every fast one
whose phase meets its own, gets a single timeout and never enters the clocks; admitted that way,
the fast jobs never oversubscribe the cores at any instant. The inline jobs then share exactly the
worker's one core, and ``sim.engine.gil`` works out their ends a busy period
of that core at a time (one event per job, moved only when a later job joins its busy period),
as long as the inline work in the clocks (computing, or entering later) is done before the new
job's CPU phase starts; that is a known time on one core, whatever the order. The moment a new
job breaks these bounds, the fast jobs it could meet are moved into the clocks (those already
computing with their remaining work, the others get an entry event), so each job moves at most
once and the result is the same as without the fast path.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable

import simpy

from sim.engine.clock import Call
from sim.engine.gil import Gil

#: Jobs whose remaining work is below this many CPU seconds count as done (float round-off).
EPSILON_S = 1e-9


class Cpu:
    """The host's cores, shared by process jobs and by the worker's inline jobs.

    Two groups: ``procs`` (pool and isolated jobs, one thread each) and ``inline`` (inline jobs,
    sharing the worker's one thread). Per group: a virtual clock (CPU seconds each of its jobs has
    received), a heap of (clock reading when done, seq, job), a job count and a rate (cores per
    job). The attributes are flat, not per-group objects: this is the simulator's hottest code.

    Args:
        env: the simulation environment.
        cores: cores the jobs share (may be fractional); 0 = unlimited.
        on_done: called as ``on_done(job)`` when a job's CPU work is complete.
        fast_path: use the fast path (see the module docstring); off only to test that it is exact.
        gil_threads_bonus: what the worker's threads win beyond one thread's share while the
            cores are oversubscribed (``HostProfile.gil_threads_bonus``); 0: exact sharing.
    """

    def __init__(
        self,
        env: simpy.Environment,
        cores: float,
        on_done: Callable[[int], None],
        *,
        fast_path: bool = True,
        gil_threads_bonus: float = 0.0,
    ):
        self.env = env
        self.cores = cores
        self.gil_threads_bonus = gil_threads_bonus
        self.on_done = on_done
        self.proc_clock = self.inline_clock = 0.0
        self.proc_heap: list[tuple[float, int, int]] = []
        self.inline_heap: list[tuple[float, int, int]] = []
        #: The sum of the inline heap's clock readings (0 whenever it is empty, so round-off
        #: never builds up): the inline work left is this minus count x clock.
        self._inline_heap_sum = 0.0
        self.proc_count = self.inline_count = 0
        self.proc_rate = self.inline_rate = 1.0
        self._last_s = env.now
        self._seq = 0
        self._wake_at = math.inf
        self._pending: simpy.Event | None = None
        #: Core-seconds of CPU work done, for utilisation.
        self.busy_core_s = 0.0
        # process jobs holding a slot with CPU work left (fast or not)
        self._procs_held = 0
        # fast process jobs: job -> (CPU entry time, end time, CPU work, end event)
        self._fast_procs: dict[int, tuple[float, float, float, simpy.Event]] = {}
        # the fast process jobs' CPU entry and end times, each sorted
        self._fast_enters: list[float] = []
        self._fast_ends: list[float] = []
        # fast inline jobs: solved a busy period of the worker's core at a time
        self._gil = Gil(env, on_done)  # ``_release`` of an inline job is ``on_done``
        # inline jobs in the clocks still off the CPU: job -> (CPU entry time, CPU work)
        self._inline_entering: dict[int, tuple[float, float]] = {}
        # the fast path gives the worker a core of its own: with less than one core in all
        # (a shared host's share), every job goes through the clocks, where it gets its share
        self._fast_path = fast_path and (cores == 0 or cores >= 1)

    def start(self, job: int, before_s: float, work_s: float, inline: bool) -> None:
        """Run ``job``: ``before_s`` seconds off the CPU, then ``work_s`` CPU seconds, shared.

        Calls ``on_done(job)`` when the CPU work is complete.
        """
        cores, env = self.cores, self.env
        now = env._now
        if inline:
            # every fast process job left the worker a core; process jobs in the clocks may not
            procs_fit = (
                cores == 0
                or self._procs_held == len(self._fast_procs)
                or self._procs_held + 1 <= cores
            )
            enter_s = now + before_s
            fast = (
                self._fast_path
                and procs_fit
                # the inline work in the clocks is done by its entry (the cores fitting
                # every process and the worker), so its CPU phase can take the fast path
                and (
                    not (self.inline_heap or self._inline_entering)
                    or enter_s >= self._inline_drained_s(now)
                )
                and self._gil.add(job, now, enter_s, work_s)
            )
            if not fast:
                if procs_fit:  # only the inline jobs computing from its entry on can meet it
                    self._leave_fast_inline(now, after_s=enter_s)
                else:
                    self._leave_fast_inline(now)
                    self._leave_fast_procs(now)
        else:
            self._procs_held += 1
            enter_s, end_s = now + before_s, now + before_s + work_s
            fast = self._fast_path and (cores == 0 or self._room_for_process(enter_s, end_s))
            if not fast:
                self._leave_fast_procs(now)
                self._leave_fast_inline(now)
            else:
                end = Call(env, before_s + work_s, self._fast_procs_done, job)
                self._fast_procs[job] = (enter_s, end_s, work_s, end)
                insort(self._fast_enters, enter_s)
                insort(self._fast_ends, end_s)
        if fast:
            self.busy_core_s += work_s
        else:
            self._join_clock(job, now, now + before_s, work_s, inline)

    def inline_computing(self) -> int:
        """How many inline jobs are in their CPU phase now."""
        gil = self._gil
        return self.inline_count + (gil.computing(self.env._now) if gil.periods else 0)

    def worker_rate(self) -> float:
        """The CPU rate the worker's loop thread gets now, cores: the worker's share while
        inline jobs compute in the clocks (the loop runs under the same GIL), else one more
        runnable thread's beside the process jobs in the clocks (a fast job has a core of its
        own and leaves one for the worker)."""
        if self.cores == 0:
            return 1.0
        if self.inline_count:
            return self.inline_rate * self.inline_count
        return min(1.0, self.cores / (self.proc_count + 1))

    def _inline_drained_s(self, now: float) -> float:
        """When the inline jobs in the clocks will all be done, with the worker's core to
        themselves: the work left now, then each later entry's work from its entry on (the
        order the GIL serves them in does not change when the last one ends)."""
        clock = self.inline_clock + (now - self._last_s) * self.inline_rate
        drained_s = now + self._inline_heap_sum - len(self.inline_heap) * clock
        entering = self._inline_entering.values()
        for enter_s, work_s in sorted(entering) if len(entering) > 1 else entering:
            drained_s = max(drained_s, enter_s) + work_s
        return drained_s

    def _room_for_process(self, enter_s: float, end_s: float) -> bool:
        """Whether a new process job computing from ``enter_s`` to ``end_s`` has a core of its
        own all along, with one left for the worker: counting every process job in the clocks
        (its times are not fixed) and every fast one whose CPU phase meets that span. If every
        fast job was let in by this rule, no instant ever has more threads than cores: of the
        fast jobs computing at any instant, the last one let in counted all the others."""
        enters, ends = self._fast_enters, self._fast_ends
        meeting = (
            len(ends) - bisect_right(ends, enter_s) - (len(enters) - bisect_left(enters, end_s))
        )
        in_clocks = self._procs_held - 1 - len(self._fast_procs)
        return in_clocks + meeting + 2 <= self.cores

    def _fast_procs_done(self, event: Call) -> None:
        job = event._value
        enter_s, end_s, _work_s, _end = self._fast_procs.pop(job)
        del self._fast_enters[bisect_left(self._fast_enters, enter_s)]
        del self._fast_ends[bisect_left(self._fast_ends, end_s)]
        self._procs_held -= 1  # ``_release`` of a process job, inlined: once per job
        self.on_done(job)

    def _release(self, job: int, inline: bool) -> None:
        if not inline:
            self._procs_held -= 1
        self.on_done(job)

    def _enter(self, event: simpy.Event) -> None:
        job, work_s, inline = event._value
        if inline:
            del self._inline_entering[job]
        self.add(job, work_s, inline)

    def _leave_fast_procs(self, now: float) -> None:
        """Move the fast process jobs into their virtual clock (or give them an entry event)."""
        for job, (enter_s, end_s, work_s, end) in self._fast_procs.items():
            end.callbacks = ()
            self._move_to_clock(job, now, enter_s, end_s - now if enter_s <= now else work_s, False)
        self._fast_procs.clear()
        self._fast_enters.clear()
        self._fast_ends.clear()

    def _leave_fast_inline(self, now: float, after_s: float = -math.inf) -> None:
        """Move the fast inline jobs of the busy periods still running after ``after_s`` into
        the inline clock (or give them an entry event)."""
        if self._gil.jobs:
            for job, enter_s, work_s in self._gil.leave(now, after_s):
                self._move_to_clock(job, now, enter_s, work_s, True)

    def _move_to_clock(
        self, job: int, now: float, enter_s: float, work_s: float, inline: bool
    ) -> None:
        """A fast job with ``work_s`` CPU seconds left joins its clock (now or at its entry)."""
        self.busy_core_s -= work_s
        self._join_clock(job, now, enter_s, work_s, inline)

    def _join_clock(
        self, job: int, now: float, enter_s: float, work_s: float, inline: bool
    ) -> None:
        """``job`` joins its group's clock with ``work_s`` CPU seconds: now, or at ``enter_s``."""
        if enter_s <= now:
            self.add(job, work_s, inline)
        else:
            if inline:
                self._inline_entering[job] = (enter_s, work_s)
            Call(self.env, enter_s - now, self._enter, (job, work_s, inline))

    def add(self, job: int, work_s: float, inline: bool) -> None:
        """Put ``job`` with ``work_s`` CPU seconds left into its group's clock now."""
        now = self.env._now
        if now != self._last_s:
            self._advance(now)
        self._seq += 1
        if inline:
            done_at = self.inline_clock + work_s
            heapq.heappush(self.inline_heap, (done_at, self._seq, job))
            self._inline_heap_sum += done_at
            self.inline_count += 1
        else:
            heapq.heappush(self.proc_heap, (self.proc_clock + work_s, self._seq, job))
            self.proc_count += 1
        if self._set_rates():
            self._reschedule(now)
            return
        done_at = now + work_s / (self.inline_rate if inline else self.proc_rate)
        if done_at < self._wake_at:
            self._wake(now, done_at - now)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last_s
        self.proc_clock += elapsed * self.proc_rate
        self.inline_clock += elapsed * self.inline_rate
        self.busy_core_s += elapsed * (
            self.proc_rate * self.proc_count + self.inline_rate * self.inline_count
        )
        self._last_s = now

    def _set_rates(self) -> bool:
        """Recompute both groups' rates; return True if either changed."""
        inline_count = self.inline_count
        threads = self.proc_count + (1 if inline_count else 0)
        if self.cores == 0 or threads <= self.cores:
            share = worker = 1.0
        elif inline_count > 1 and self.gil_threads_bonus:
            share, worker = self._oversubscribed_shares(inline_count)
        else:
            share = worker = self.cores / threads
        inline_rate = worker / inline_count if inline_count > 1 else worker
        if share == self.proc_rate and inline_rate == self.inline_rate:
            return False
        self.proc_rate, self.inline_rate = share, inline_rate
        return True

    def _oversubscribed_shares(self, inline_count: int) -> tuple[float, float]:
        """(each process job's share, the worker's) of too few cores, the worker weighing
        ``1 + gil_threads_bonus * (1 - 1/inline_count)`` threads, and at most one core."""
        weight = 1.0 + self.gil_threads_bonus * (1.0 - 1.0 / inline_count)
        worker = min(1.0, self.cores * weight / (self.proc_count + weight))
        if not self.proc_count:
            return 1.0, worker
        return min(1.0, (self.cores - worker) / self.proc_count), worker

    def _reschedule(self, now: float) -> None:
        """Schedule the wake-up for the earliest completion at the current rates."""
        delay = math.inf
        if self.proc_heap:
            delay = (self.proc_heap[0][0] - self.proc_clock) / self.proc_rate
        if self.inline_heap:
            delay = min(delay, (self.inline_heap[0][0] - self.inline_clock) / self.inline_rate)
        if delay == math.inf:
            if self._pending is not None:
                self._pending.callbacks = ()
                self._pending = None
            self._wake_at = math.inf
        else:
            self._wake(now, max(0.0, delay))

    def _wake(self, now: float, delay_s: float) -> None:
        """Arm the wake-up ``delay_s`` from ``now``, disarming the pending one (SimPy cannot
        unschedule; an event without callbacks is popped and skipped at almost no cost)."""
        if self._pending is not None:
            self._pending.callbacks = ()
        self._wake_at = now + delay_s
        self._pending = Call(self.env, delay_s, self._woken)

    def _woken(self, _event: simpy.Event) -> None:
        self._pending = None
        self._wake_at = math.inf
        now = self.env._now
        self._advance(now)
        done = []
        heap, limit = self.proc_heap, self.proc_clock + EPSILON_S * max(1.0, self.proc_clock)
        while heap and heap[0][0] <= limit:
            done.append((heapq.heappop(heap)[2], False))
        heap, limit = self.inline_heap, self.inline_clock + EPSILON_S * max(1.0, self.inline_clock)
        while heap and heap[0][0] <= limit:
            done_at, _seq, job = heapq.heappop(heap)
            self._inline_heap_sum -= done_at
            done.append((job, True))
        if not heap:
            self._inline_heap_sum = 0.0
        self.proc_count, self.inline_count = len(self.proc_heap), len(self.inline_heap)
        self._set_rates()
        self._reschedule(now)
        for job, inline in done:
            self._release(job, inline)
