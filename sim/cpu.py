"""Processor sharing of the host's CPU cores, exact, with at most one SimPy event per completion.

Scenario: every running job's CPU work competes for ``cores`` cores. A pool or isolated job is one
process, one runnable thread; all inline jobs live in the worker process and share its one core
(the GIL), so the worker counts as one runnable thread while any inline job computes. With ``N``
runnable threads each gets ``min(1, cores / N)`` of a core, and each of ``n`` inline jobs gets a
``1 / n`` share of the worker's. ``cores = 0`` means unlimited cores (the GIL still applies).
``cores`` may be fractional: on a shared host, the cores the worker's processes get together.

Because all jobs of a group progress at the same rate, each group keeps a *virtual clock*: the CPU
seconds one of its jobs has received since the start. A job needing ``w`` CPU seconds that joins
when the clock reads ``v`` is done when the clock reads ``v + w``, so the next completion is the
head of a heap. A job's CPU phase starts at a time known when it gets its slot (its off-CPU
time is never stretched), so entries are not events: planned entries wait in a sorted list and
every call first brings the clocks up to now, joining each entry due at its own time. The one
pending wake-up is armed at the next completion, found by playing the planned entries forward.
Nothing happens on a time step.

Fast path, still exact: a job whose CPU phase can be slowed by nobody runs at full speed, so its
end is fixed when it starts: it gets a single timeout and never enters the clocks. That holds
while the process jobs that may compute during its phase (those in the clocks, those planned to
enter before it ends, the fast ones whose phases overlap it) plus the worker's thread fit the
cores, and, for an inline job, while no other inline job's phase overlaps it (``_cores_free``,
``_gil_free``). The moment a new job breaks that bound, the fast jobs it could slow (a process
job: all of them; an inline job: the inline ones) are moved into the clocks (those already
computing with their remaining work, the others as planned entries), so each job moves at most
once and the result is the same as without the fast path.
"""

from __future__ import annotations

import bisect
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
        cores: cores the jobs share (may be fractional); 0 = unlimited.
        on_done: called as ``on_done(job)`` when a job's CPU work is complete.
        fast_path: use the fast path (see the module docstring); off only to test that it is exact.
    """

    def __init__(
        self,
        env: simpy.Environment,
        cores: float,
        on_done: Callable[[int], None],
        *,
        fast_path: bool = True,
    ):
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
        #: Jobs off the CPU until a known time, sorted: (entry time, seq, job, work, inline).
        self._entries: list[tuple[float, int, int, float, bool]] = []
        #: Core-seconds of CPU work done, for utilisation.
        self.busy_core_s = 0.0
        # inline jobs holding a slot with CPU work left (fast or not)
        self._inline_held = 0
        # fast jobs per group: job -> (CPU entry time, end time, CPU work, end event)
        self._fast_procs: dict[int, tuple[float, float, float, simpy.Event]] = {}
        self._fast_inline: dict[int, tuple[float, float, float, simpy.Event]] = {}
        self._fast_path = fast_path
        #: The fast process jobs' CPU phases: start times and end times, each sorted.
        self._fast_proc_enters: list[float] = []
        self._fast_proc_ends: list[float] = []
        #: The entry times of the planned process jobs in ``_entries``, sorted.
        self._proc_entries_s: list[float] = []

    def start(self, job: int, now: float, before_s: float, work_s: float, inline: bool) -> None:
        """Run ``job`` from ``now`` (the environment's time): ``before_s`` seconds off the CPU,
        then ``work_s`` CPU seconds, shared.

        Calls ``on_done(job)`` when the CPU work is complete.
        """
        enter_s = now + before_s
        end_s = enter_s + work_s
        if inline:
            self._inline_held += 1
            # A fast process job never slows the worker's thread (it kept a core for it), so
            # an inline job that cannot be fast moves only the fast inline jobs.
            fast = (
                self._fast_path
                and self._gil_free(enter_s, end_s)
                and self._cores_free(enter_s, end_s, new_procs=0)
            )
            if not fast:
                self._leave_fast_path(self._fast_inline, inline=True)
        else:
            fast = self._fast_path and self._cores_free(enter_s, end_s, new_procs=1)
            if not fast:
                self._leave_fast_path(self._fast_procs, inline=False)
                self._leave_fast_path(self._fast_inline, inline=True)
        if fast:
            end = self.env.timeout(before_s + work_s, job)
            if inline:
                end.callbacks.append(self._fast_inline_done)
                self._fast_inline[job] = (enter_s, end_s, work_s, end)
            else:
                end.callbacks.append(self._fast_procs_done)
                self._fast_procs[job] = (enter_s, end_s, work_s, end)
                bisect.insort(self._fast_proc_enters, enter_s)
                bisect.insort(self._fast_proc_ends, end_s)
            self.busy_core_s += work_s
        elif before_s > 0:
            self._plan_entry(enter_s, job, work_s, inline)
        else:
            self.add(job, work_s, inline)

    def _cores_free(self, enter_s: float, end_s: float, new_procs: int) -> bool:
        """Whether, from ``enter_s`` to ``end_s``, the process jobs that may compute then,
        ``new_procs`` more and the worker's thread always fit the cores.

        Counted (an upper bound): every process job computing in the clocks, every one planned
        to enter them before ``end_s``, and every fast one whose CPU phase overlaps. A fast
        process job is let in only if this holds over its CPU phase, and a job that is not
        moves them all into the clocks, so no fast job is ever slowed.
        """
        if self.cores == 0:
            return True
        planned = bisect.bisect_left(self._proc_entries_s, end_s)
        enters, ends = self._fast_proc_enters, self._fast_proc_ends
        fast = bisect.bisect_left(enters, end_s) - bisect.bisect_right(ends, enter_s)
        return self.proc_count + planned + fast + new_procs + 1 <= self.cores

    def _gil_free(self, enter_s: float, end_s: float) -> bool:
        """Whether a new inline job's CPU phase, from ``enter_s`` to ``end_s``, overlaps no
        other inline job's: true when every inline job holding a slot is on the fast path (its
        CPU phase fixed) and the phases are disjoint in time."""
        fast = self._fast_inline
        if self._inline_held - 1 != len(fast):
            return False  # an inline job in the clocks: its end is not fixed
        for other_enter_s, other_end_s, _work, _event in fast.values():
            if other_end_s > enter_s and end_s > other_enter_s:
                return False
        return True

    def _fast_procs_done(self, event: simpy.Event) -> None:
        job = event._value
        enter_s, end_s, _work, _event = self._fast_procs.pop(job)
        enters, ends = self._fast_proc_enters, self._fast_proc_ends
        del enters[bisect.bisect_left(enters, enter_s)]
        del ends[bisect.bisect_left(ends, end_s)]
        self.on_done(job)

    def _fast_inline_done(self, event: simpy.Event) -> None:
        job = event._value
        del self._fast_inline[job]
        self._inline_held -= 1
        self.on_done(job)

    def _plan_entry(self, enter_s: float, job: int, work_s: float, inline: bool) -> None:
        """``job`` starts its ``work_s`` CPU seconds at ``enter_s`` (later than now)."""
        self._queue_entry(enter_s, job, work_s, inline)
        if enter_s < self._wake_at:  # it slows the jobs that would finish first
            self._reschedule()

    def _queue_entry(self, enter_s: float, job: int, work_s: float, inline: bool) -> None:
        self._seq += 1
        bisect.insort(self._entries, (enter_s, self._seq, job, work_s, inline))
        if not inline:
            bisect.insort(self._proc_entries_s, enter_s)

    def _leave_fast_path(self, fast: dict, inline: bool) -> None:
        """Move one group's fast jobs into its virtual clock (or plan their entry)."""
        if not fast:
            return
        now = self.env.now
        self._catch_up(now)
        for job, (enter_s, end_s, work_s, end) in fast.items():
            end.callbacks.clear()
            if enter_s <= now:
                self.busy_core_s -= end_s - now
                self._join(job, end_s - now, inline)
            else:
                self.busy_core_s -= work_s
                self._queue_entry(enter_s, job, work_s, inline)
        fast.clear()
        if not inline:
            self._fast_proc_enters.clear()
            self._fast_proc_ends.clear()
        self._set_rates()
        self._reschedule()

    def add(self, job: int, work_s: float, inline: bool) -> None:
        """Put ``job`` with ``work_s`` CPU seconds left into its group's clock now."""
        self._catch_up(self.env.now)
        self._join(job, work_s, inline)
        self._set_rates()
        self._reschedule()

    def _join(self, job: int, work_s: float, inline: bool) -> None:
        self._seq += 1
        if inline:
            heapq.heappush(self.inline_heap, (self.inline_clock + work_s, self._seq, job))
            self.inline_count += 1
        else:
            heapq.heappush(self.proc_heap, (self.proc_clock + work_s, self._seq, job))
            self.proc_count += 1

    def _catch_up(self, now: float) -> None:
        """Bring the clocks to ``now``, joining each planned entry due by then at its time."""
        entries = self._entries
        while True:
            due = bool(entries) and entries[0][0] <= now
            to_s = entries[0][0] if due else now
            elapsed = to_s - self._last_s
            if elapsed:
                self.proc_clock += elapsed * self.proc_rate
                self.inline_clock += elapsed * self.inline_rate
                self.busy_core_s += elapsed * (
                    self.proc_rate * self.proc_count + self.inline_rate * self.inline_count
                )
                self._last_s = to_s
            if not due:
                return
            _enter_s, _seq, job, work_s, inline = entries.pop(0)
            if not inline:
                self._proc_entries_s.pop(0)
            self._join(job, work_s, inline)
            self._set_rates()

    def _set_rates(self) -> None:
        self.proc_rate, self.inline_rate = rates(self.proc_count, self.inline_count, self.cores)

    def _reschedule(self) -> None:
        """Keep the one wake-up at the next completion (SimPy cannot unschedule: a wake-up that
        is no longer wanted has its callbacks cleared and is skipped when popped)."""
        done_s = self._next_done_s()
        if done_s == self._wake_at:
            return
        if self._pending is not None:
            self._pending.callbacks.clear()
            self._pending = None
        self._wake_at = done_s
        if done_s != math.inf:
            delay_s = done_s - self.env.now
            self._pending = self.env.timeout(delay_s if delay_s > 0.0 else 0.0)
            self._pending.callbacks.append(self._woken)

    def _next_done_s(self) -> float:
        """When the next job finishes at the current rates, the planned entries included.

        Plays the entries forward on copies of the clocks, with the same arithmetic as
        ``_catch_up``, until a completion comes before the next entry.
        """
        now = self._last_s
        proc_clock, inline_clock = self.proc_clock, self.inline_clock
        proc_count, inline_count = self.proc_count, self.inline_count
        proc_rate, inline_rate = self.proc_rate, self.inline_rate
        proc_next = self.proc_heap[0][0] if self.proc_heap else math.inf
        inline_next = self.inline_heap[0][0] if self.inline_heap else math.inf
        proc_done = (proc_next - proc_clock) / proc_rate
        inline_done = (inline_next - inline_clock) / inline_rate
        done_s = now + (proc_done if proc_done < inline_done else inline_done)
        for enter_s, _seq, _job, work_s, inline in self._entries:
            if done_s <= enter_s:
                break
            elapsed = enter_s - now
            if elapsed:
                proc_clock += elapsed * proc_rate
                inline_clock += elapsed * inline_rate
                now = enter_s
            if inline:
                inline_next = min(inline_next, inline_clock + work_s)
                inline_count += 1
            else:
                proc_next = min(proc_next, proc_clock + work_s)
                proc_count += 1
            proc_rate, inline_rate = rates(proc_count, inline_count, self.cores)
            proc_done = (proc_next - proc_clock) / proc_rate
            inline_done = (inline_next - inline_clock) / inline_rate
            done_s = now + (proc_done if proc_done < inline_done else inline_done)
        return done_s

    def _woken(self, _event: simpy.Event) -> None:
        self._pending = None
        self._wake_at = math.inf
        self._catch_up(self.env.now)
        done = []
        heap, clock = self.proc_heap, self.proc_clock
        limit = clock + EPSILON_S * (clock if clock > 1.0 else 1.0)
        while heap and heap[0][0] <= limit:
            done.append(heapq.heappop(heap)[2])
        procs_done = len(done)
        heap, clock = self.inline_heap, self.inline_clock
        limit = clock + EPSILON_S * (clock if clock > 1.0 else 1.0)
        while heap and heap[0][0] <= limit:
            done.append(heapq.heappop(heap)[2])
        self.proc_count, self.inline_count = len(self.proc_heap), len(self.inline_heap)
        self._set_rates()
        self._reschedule()
        self._inline_held -= len(done) - procs_done
        for job in done:
            self.on_done(job)


def rates(proc_count: int, inline_count: int, cores: float) -> tuple[float, float]:
    """CPU seconds per second for one process job and for one inline job (``cores = 0``:
    unlimited). Each runnable thread gets ``min(1, cores / threads)``; the inline jobs share the
    worker's thread."""
    threads = proc_count + (1 if inline_count else 0)
    share = 1.0 if cores == 0 or threads <= cores else cores / threads
    return share, (share / inline_count if inline_count > 1 else share)
