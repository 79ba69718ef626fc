"""Processor sharing of the host's CPU cores, exact, with one SimPy event per change that matters.

Scenario: every running job's CPU work competes for ``cores`` cores. A pool or isolated job is one
process, one runnable thread; all inline jobs live in the worker process and share its one core
(the GIL), so the worker counts as one runnable thread while any inline job computes. With ``N``
runnable threads each gets ``min(1, cores / N)`` of a core, and each of ``n`` inline jobs gets a
``1 / n`` share of the worker's. ``cores = 0`` means unlimited cores (the GIL still applies).

Because all jobs of a group progress at the same rate, each group keeps a *virtual clock*: the CPU
seconds one of its jobs has received since the start. A job needing ``w`` CPU seconds that joins
when the clock reads ``v`` is done when the clock reads ``v + w``, so the next completion is the
head of a heap and only one wake-up event is pending at a time. Events happen only when a job
joins or leaves, never on a time step.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import simpy

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
        cores: host cores; 0 = unlimited.
        on_done: called as ``on_done(job)`` when a job's CPU work is complete.
    """

    def __init__(self, env: simpy.Environment, cores: int, on_done: Callable[[int], None]):
        self.env = env
        self.cores = cores
        self.on_done = on_done
        self.proc_clock = self.inline_clock = 0.0
        self.proc_heap: list[tuple[float, int, int]] = []
        self.inline_heap: list[tuple[float, int, int]] = []
        self.proc_count = self.inline_count = 0
        self.proc_rate = self.inline_rate = 1.0
        self._last_s = env.now
        self._seq = 0
        self._wake_at = math.inf
        self._pending: simpy.Event | None = None
        #: Core-seconds of CPU work done, for utilisation.
        self.busy_core_s = 0.0

    def add(self, job: int, work_s: float, inline: bool) -> None:
        """Start ``work_s`` CPU seconds of ``job`` now (in the inline group if ``inline``)."""
        now = self.env.now
        if now != self._last_s:
            self._advance(now)
        self._seq += 1
        if inline:
            heapq.heappush(self.inline_heap, (self.inline_clock + work_s, self._seq, job))
            self.inline_count += 1
        else:
            heapq.heappush(self.proc_heap, (self.proc_clock + work_s, self._seq, job))
            self.proc_count += 1
        if self._set_rates():
            self._reschedule(now)
            return
        done_at = now + work_s / (self.inline_rate if inline else self.proc_rate)
        if done_at < self._wake_at:
            self._wake(done_at - now)

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
        share = 1.0 if self.cores == 0 or threads <= self.cores else self.cores / threads
        inline_rate = share / inline_count if inline_count > 1 else share
        if share == self.proc_rate and inline_rate == self.inline_rate:
            return False
        self.proc_rate, self.inline_rate = share, inline_rate
        return True

    def _reschedule(self, now: float) -> None:
        """Schedule the wake-up for the earliest completion at the current rates."""
        delay = math.inf
        if self.proc_heap:
            delay = (self.proc_heap[0][0] - self.proc_clock) / self.proc_rate
        if self.inline_heap:
            delay = min(delay, (self.inline_heap[0][0] - self.inline_clock) / self.inline_rate)
        if delay == math.inf:
            self._cancel()
            self._wake_at = math.inf
        else:
            self._wake(max(0.0, delay))

    def _cancel(self) -> None:
        """Disarm the pending wake-up (SimPy cannot unschedule; an event without callbacks is
        popped and skipped at almost no cost)."""
        if self._pending is not None:
            self._pending.callbacks.clear()
            self._pending = None

    def _wake(self, delay_s: float) -> None:
        self._cancel()
        self._wake_at = self.env.now + delay_s
        self._pending = self.env.timeout(delay_s)
        self._pending.callbacks.append(self._woken)

    def _woken(self, _event: simpy.Event) -> None:
        self._pending = None
        self._wake_at = math.inf
        now = self.env.now
        self._advance(now)
        done = []
        heap, limit = self.proc_heap, self.proc_clock + EPSILON_S * max(1.0, self.proc_clock)
        while heap and heap[0][0] <= limit:
            done.append(heapq.heappop(heap)[2])
        heap, limit = self.inline_heap, self.inline_clock + EPSILON_S * max(1.0, self.inline_clock)
        while heap and heap[0][0] <= limit:
            done.append(heapq.heappop(heap)[2])
        self.proc_count, self.inline_count = len(self.proc_heap), len(self.inline_heap)
        self._set_rates()
        self._reschedule(now)
        for job in done:
            self.on_done(job)
