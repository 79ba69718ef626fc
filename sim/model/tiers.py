"""The three tiers of the simulated worker: where a routed job waits and which slot it runs on.

Each tier has the runtime's small interface: ``submit(job)`` when the worker routes a job to it,
``release(job)`` when the job ends. Jobs wait in a per-tier FIFO, so a full tier never blocks the
others. A tier does not know the model: it gets what it reads and writes as arguments (the
environment, ``run(job, overhead_s)`` to start a job on its slot, the per-job lists it shares with
the model, and callbacks for what another part knows, such as the inline tier's memory now). The
inline and isolated tiers are a fixed number of slots; the pool is a set of long-lived processes
sized by ``kqueue.policy.scaler.target_size_with_backlog`` (the runtime's rule: the jobs queued
for the pool, those the memory budget holds back, and those arrived in the backend but not leased
yet whose class routes to the pool, never past what the budget allows), each recycled after
``max_jobs_per_worker`` jobs, when its memory passes ``max_worker_memory_mb``, or when it pushes
the worker over budget.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import simpy

from kqueue.policy import Config, HostProfile, target_size
from kqueue.policy.fork import (
    ISOLATED_FORKS_FROM_ZYGOTE,
    POOL_FORKS_FROM_ZYGOTE,
    inherited_inline_mb,
)
from kqueue.policy.scaler import cooling_down, target_size_with_backlog
from kqueue.policy.threads import BLOCKED_S, EAGER_THREADS, threads_to_add
from kqueue.policy.trim import POOL_IDLE_S, pool_busy_trim_due, pool_trim_due, worker_trim_due
from sim.engine.clock import Call
from sim.engine.memory import MemoryLog

#: ``run(job, overhead_s)``: start ``job`` on the slot it just got, after ``overhead_s``.
Run = Callable[[int, float], None]

#: glibc's first mmap threshold (128 KiB): bigger blocks get a mapping of their own, in MB.
MMAP_THRESHOLD_START_MB = 0.125


def first_mmap_threshold_mb(retained_mb: float) -> float:
    """A new heap's mmap threshold; with no allocator limit (``retained_job_mb`` = inf) every
    job comes from the heap and its memory stays."""
    return MMAP_THRESHOLD_START_MB if math.isfinite(retained_mb) else math.inf


class SlotTier:
    """A tier of ``limit`` identical slots with a FIFO; each job pays ``overhead_s`` first.

    Args:
        env: the environment.
        run: starts a job on its slot (``Model.run``).
        limit: the number of slots.
        overhead_s: what each job pays on its slot before it runs, seconds.
    """

    def __init__(self, env: simpy.Environment, run: Run, limit: int, overhead_s: float):
        self.env, self._run = env, run
        self.free = self.limit = limit
        self.overhead_s = overhead_s
        self.queue: deque[int] = deque()

    def occupied(self) -> int:
        """Jobs handed to this tier and not ended: running, or queued for a slot."""
        return self.limit - self.free + len(self.queue)

    def submit(self, job: int) -> None:
        """Start ``job`` on a free slot, or queue it."""
        if self.free > 0:
            self.free -= 1
            self._start(job)
        else:
            self.queue.append(job)

    def release(self, job: int) -> None:
        """``job`` ended: its slot goes to the next queued job, or becomes free."""
        if self.queue:
            self._start(self.queue.popleft())
        else:
            self.free += 1

    def _start(self, job: int) -> None:
        self._run(job, self.overhead_s)


class InlineTier(SlotTier):
    """Inside the worker process: threads under one GIL, at most ``max_concurrent_inline``.

    Jobs run on threads started by the runtime's rule (``kqueue.policy.threads``): the first
    ``EAGER_THREADS`` on demand, more only while jobs wait, checked every ``BLOCKED_S``, one per
    thread whose job has run that long, and only while no inline job is computing (the worker
    then uses a core: its CPU share is above ``CPU_BOUND_SHARE``) and half the threads look
    blocked. Every inline job is taken to be a sync function (an async job runs on the loop, not
    on a thread; a trace does not say which). A job's hand-over costs ``inline_dispatch_s`` of
    the worker loop's CPU at the rate the worker gets at that moment (``Cpu.worker_rate``: on
    starved cores the loop waits its turn beside the computing processes) plus ``gil_handoff_s``
    for each inline job computing then (the GIL changes hands only every switch interval).

    It also tracks the memory its jobs make the worker hold (``level_mb``), because a process
    forked now shares those pages and ends up with its own copy once the worker reuses them.
    The worker's threads share one malloc heap (``kqueue run`` limits glibc to one arena:
    ``kqueue.worker.allocator``), with the pool processes' rule for which jobs it serves: a job
    bigger than the biggest mapped block given back so far (at first 128 KB) is mapped on its own
    and returned at its end (raising that threshold to its size, up to ``retained_job_mb``); a
    smaller one comes from the heap, which grows to the heap jobs running together and keeps its
    free space until that reaches the trim threshold (twice the mmap threshold), when it shrinks
    to what is in use (glibc's first trim threshold is 128 KB, not twice the first mmap
    threshold; the model ignores that difference), or, on a host whose processes give memory
    back (``HostProfile.gives_back_memory``), when a job ends and the worker's trim is due
    (``kqueue.policy.trim.worker_trim_due``; the runtime trims at its next loop round).
    Memory changes are recorded in ``memory`` as the pool's are, at the job's start, while the
    heap's state changes at its hand-over, its dispatch time earlier: a process forked in
    between inherits the job's memory a few milliseconds early.

    Args:
        env, run: as ``SlotTier``.
        limit: ``max_concurrent_inline``.
        host: the host constants (dispatch, GIL hand-off, retained memory).
        memory_mb: per job, its memory (MB).
        slot_s: per job, when it got its slot (the model fills it in ``run``).
        inline_computing: how many inline jobs are computing now (``Cpu.inline_computing``).
        worker_rate: the CPU rate of the worker's loop now (``Cpu.worker_rate``).
        fresh_mb: per job, the memory it faults in afresh (this tier writes it at the start).
    """

    def __init__(
        self,
        env: simpy.Environment,
        run: Run,
        limit: int,
        host: HostProfile,
        *,
        memory_mb: list[float],
        slot_s: list[float],
        inline_computing: Callable[[], int],
        worker_rate: Callable[[], float],
        fresh_mb: list[float],
    ):
        super().__init__(env, run, 0, host.inline_dispatch_s)  # ``free``: idle threads
        self.limit, self.threads = limit, 0
        self._eager = min(EAGER_THREADS, limit)
        self._running: set[int] = set()
        self._growth_pending = False
        self.gil_handoff_s = host.gil_handoff_s
        self.retained_mb = host.retained_job_mb
        self.mmap_threshold_mb = first_mmap_threshold_mb(self.retained_mb)
        self.gives_back, self._last_trim_s = host.gives_back_memory, env.now
        #: Running jobs' own mappings; running jobs' heap blocks; the heap's size (used + free).
        self.mapped_mb = self.heap_used_mb = self.heap_mb = 0.0
        self._mapped: set[int] = set()
        self.memory = MemoryLog()
        self._memory_mb, self._slot_s, self._fresh_mb = memory_mb, slot_s, fresh_mb
        self._inline_computing, self._worker_rate = inline_computing, worker_rate

    def occupied(self) -> int:
        """Jobs handed to this tier and not ended: running, or queued for a thread."""
        return len(self._running) + len(self.queue)

    def level_mb(self) -> float:
        """The worker's memory from inline jobs now, MB."""
        return self.mapped_mb + self.heap_mb

    def submit(self, job: int) -> None:
        """Run ``job`` on an idle thread, or a new one while there are fewer than the eager
        ones; else queue it and look again in ``BLOCKED_S`` whether to start threads."""
        if self.free > 0:
            self.free -= 1
            self._start(job)
        elif self.threads < self._eager:
            self.threads += 1
            self._start(job)
        else:
            self.queue.append(job)
            if not self._growth_pending and self.threads < self.limit:
                self._growth_pending = True
                Call(self.env, BLOCKED_S, self._grow)

    def _grow(self, _event) -> None:
        self._growth_pending = False
        waiting = len(self.queue)
        if not waiting or self.threads >= self.limit:
            return
        since_s = self.env.now - BLOCKED_S
        slot_s = self._slot_s
        blocked = sum(1 for job in self._running if slot_s[job] <= since_s)
        cpu_share = 1.0 if self._inline_computing() else 0.0
        for _ in range(threads_to_add(self.threads, waiting, blocked, cpu_share, self.limit)):
            self.threads += 1
            self._start(self.queue.popleft())
        if self.queue and self.threads < self.limit:
            self._growth_pending = True
            Call(self.env, BLOCKED_S, self._grow)

    def _start(self, job: int) -> None:
        overhead_s = self.overhead_s
        if overhead_s:  # the loop's CPU work, at the rate the worker gets now
            overhead_s /= self._worker_rate()
        if self.gil_handoff_s:  # the hand-over waits for the GIL behind each computing job
            overhead_s += self.gil_handoff_s * self._inline_computing()
        memory_mb = self._memory_mb[job]
        fresh_mb = 0.0
        if memory_mb > self.mmap_threshold_mb:
            self.mapped_mb += memory_mb
            self._mapped.add(job)
            self.memory.add(self.env.now + overhead_s, memory_mb)
            fresh_mb = memory_mb
        elif memory_mb:
            self.heap_used_mb += memory_mb
            if self.heap_used_mb > self.heap_mb:
                fresh_mb = self.heap_used_mb - self.heap_mb
                self.memory.add(self.env.now + overhead_s, fresh_mb)
                self.heap_mb = self.heap_used_mb
        self._fresh_mb[job] = fresh_mb
        self._running.add(job)
        self._run(job, overhead_s)

    def release(self, job: int) -> None:
        self._running.discard(job)
        memory_mb = self._memory_mb[job]
        if job in self._mapped:
            self._mapped.remove(job)
            self.mapped_mb -= memory_mb
            self.memory.add(self.env.now, -memory_mb)
            if memory_mb <= self.retained_mb:  # giving a mapping back raises the threshold
                self.mmap_threshold_mb = max(self.mmap_threshold_mb, memory_mb)
        elif memory_mb:
            self.heap_used_mb -= memory_mb
            trim = self.gives_back and worker_trim_due(True, self._last_trim_s, self.env.now)
            if trim:
                self._last_trim_s = self.env.now
            if trim or self.heap_mb - self.heap_used_mb >= 2.0 * self.mmap_threshold_mb:
                self.memory.add(self.env.now, self.heap_used_mb - self.heap_mb)
                self.heap_mb = self.heap_used_mb
        super().release(job)


class IsolatedTier(SlotTier):
    """One fresh process per job, ``max_concurrent_isolated`` at once, each paying a spawn.

    Args:
        env, run: as ``SlotTier``.
        limit: ``max_concurrent_isolated``.
        host: the host constants (spawn, dispatch).
        process: per job, its process number (this tier writes its spawn number).
        inline_level_mb: the worker's inline memory now (``InlineTier.level_mb``).
        memory_mb: per job, its memory (MB).
        fresh_mb: per job, the memory it faults in afresh (this tier writes it at the start).
    """

    def __init__(
        self,
        env: simpy.Environment,
        run: Run,
        limit: int,
        host: HostProfile,
        *,
        process: list[int],
        inline_level_mb: Callable[[], float],
        memory_mb: list[float],
        fresh_mb: list[float],
    ):
        super().__init__(env, run, limit, host.spawn_s + host.isolated_dispatch_s)
        self._process, self._inline_level_mb = process, inline_level_mb
        self._memory_mb, self._fresh_mb = memory_mb, fresh_mb
        #: Processes started so far (one per job).
        self.spawns = 0
        #: Per job: the worker's inline memory its process was forked with (see ``InlineTier``).
        self.inherited_mb: dict[int, float] = {}

    def _start(self, job: int) -> None:
        self._process[job] = self.spawns
        self.spawns += 1
        self._fresh_mb[job] = self._memory_mb[job]  # a new process: all of it is fresh
        self.inherited_mb[job] = inherited_inline_mb(
            ISOLATED_FORKS_FROM_ZYGOTE, self._inline_level_mb()
        )
        super()._start(job)


class PoolTier:
    """Long-lived processes reused across jobs, grown and shrunk by the runtime's sizing rule.

    A process holds ``HostProfile.pool_process_mb`` plus the high-water mark of the memory its
    past jobs left behind, until it exits (recycled or retired). Which jobs leave memory behind
    follows glibc's dynamic mmap threshold: a job bigger than the biggest block the process has
    given back so far (at first 128 KB) gets a mapping of its own, on top of what the process
    keeps, and returns it at its end, which raises the threshold to its size (up to
    ``HostProfile.retained_job_mb``); a job within the threshold comes from the heap, reuses
    what the process keeps and leaves its own size behind. On a host whose processes give
    memory back (``HostProfile.gives_back_memory``) a process that kept at least
    ``kqueue.policy.trim.TRIM_AFTER_GROWTH_MB`` gives it all back once it has been idle for
    ``POOL_IDLE_S`` (its mmap threshold stays where it rose to), or at the end of a job when it
    has not given back for ``POOL_BUSY_TRIM_S``, as the runtime's trim does. A new process,
    first or replacement, inherits none of the worker's inline memory: the runtime forks it
    from its zygote (``kqueue.policy.fork``), unlike an isolated process.
    Memory changes are recorded as ``(time_s, delta_mb)`` steps in ``memory``.

    Args:
        env, run: as ``SlotTier``.
        config: the worker's settings (pool sizing, recycling).
        host: the host constants (dispatch, spawn, process memory, retained memory).
        memory_mb: per job, its memory (MB).
        process: per job, its process number (this tier writes the pool process's).
        inline_level_mb: the worker's inline memory now (``InlineTier.level_mb``; what a process
            forked from the worker would inherit).
        fresh_mb: per job, the memory it faults in afresh (this tier writes it at the start:
            a mapped job's all, a heap job's growth past what its process keeps).
    """

    def __init__(
        self,
        env: simpy.Environment,
        run: Run,
        config: Config,
        host: HostProfile,
        *,
        memory_mb: list[float],
        process: list[int],
        inline_level_mb: Callable[[], float],
        held_waiting: Callable[[], int] = lambda: 0,
        room: Callable[[], int | None] = lambda: None,
        over_budget: Callable[[int], bool] = lambda pid: False,
        backlog: Callable[[], int] = lambda: 0,
        fresh_mb: list[float],
    ):
        self.config, self.env, self._run = config, env, run
        self._fresh_mb = fresh_mb
        #: Jobs arrived in the backend, not leased yet, whose class routes to the pool
        #: (``sim.model.backlog``): what the runtime's scaler reads from its backend.
        self._backlog = backlog
        #: The memory budget's part (``sim.model.budget``): pool jobs it holds back, processes
        #: it allows beyond the size (None: no budget), whether a process should be recycled.
        self._held_waiting, self._room, self._over_budget = held_waiting, room, over_budget
        self._memory_mb, self._process, self._inline_level_mb = memory_mb, process, inline_level_mb
        self.dispatch_s, self.spawn_s, self.base_mb = (
            host.pool_dispatch_s,
            host.spawn_s,
            host.pool_process_mb,
        )
        self.queue: deque[int] = deque()
        self.idle: deque[int] = deque()  # ready processes, longest idle first
        self.retained_mb, self.gives_back = host.retained_job_mb, host.gives_back_memory
        #: Per process: the job memory it keeps between jobs, and its running job's extra.
        self.high_water_mb: dict[int, float] = {}
        self._mmap_threshold_mb: dict[int, float] = {}
        self._job_extra_mb: dict[int, float] = {}
        self.inherited_mb: dict[int, float] = {}
        self.jobs_run: dict[int, int] = {}
        #: Per process: when it last gave its job memory back (or started), seconds.
        self._last_trim_s: dict[int, float] = {}
        #: Jobs whose attempt a limit is ending (the model adds them before ``release``).
        self.killed: set[int] = set()
        self.size = self.busy = self.spawns = self.recycles = self.peak_size = 0
        self.alive_process_s = 0.0
        self.memory = MemoryLog()
        self._size_since_s = self.env.now
        self._last_scaled_s: float | None = None
        self._recheck_pending = False
        # The rule keeps the size between pool_size and pool_max_size: equal bounds, nothing to do.
        self._fixed = config.pool_size == config.pool_max_size
        for _ in range(config.pool_size):
            self._spawn(warm=True)  # the worker started its pool before the trace begins

    def occupied(self) -> int:
        """Jobs handed to the pool and not ended: running, or queued for a process."""
        return self.busy + len(self.queue)

    def submit(self, job: int) -> None:
        """Run ``job`` on an idle process, or queue it; then let the pool resize."""
        if self.idle:
            self._start(job, self.idle.popleft())
        else:
            self.queue.append(job)
        self._scale()

    def release(self, job: int) -> None:
        """``job`` ended: recycle its process if it is due, else give it the next job."""
        pid = self._process[job]
        self.busy -= 1
        self.jobs_run[pid] += 1
        job_mb = self._memory_mb[job]
        if job_mb > self._mmap_threshold_mb[pid]:  # mapped: given back, and the threshold rises
            kept_mb = self.high_water_mb[pid]
            if job_mb <= self.retained_mb:
                self._mmap_threshold_mb[pid] = job_mb
        else:
            kept_mb = max(self.high_water_mb[pid], job_mb)
        extra_mb = self._job_extra_mb.pop(pid)
        self.memory.add(self.env.now, kept_mb - self.high_water_mb[pid] - extra_mb)
        self.high_water_mb[pid] = kept_mb
        killed = job in self.killed  # a limit killed it: the runtime replaces the process
        if killed:
            self.killed.discard(job)
        if (
            killed
            or self.jobs_run[pid] >= self.config.max_jobs_per_worker
            or self.base_mb + self.high_water_mb[pid] > self.config.max_worker_memory_mb
            or self._over_budget(pid)
        ):
            self.recycles += 1
            self._exit(pid)
            self._spawn()
        else:
            self._trim_if_overdue(pid)
            self._ready(pid)
            self._trim_when_idle(pid)
        self._scale()

    def _give_back(self, pid: int) -> None:
        self.memory.add(self.env.now, -self.high_water_mb[pid])
        self.high_water_mb[pid] = 0.0
        self._last_trim_s[pid] = self.env.now

    def _trim_if_overdue(self, pid: int) -> None:
        """A process busy ``POOL_BUSY_TRIM_S`` since its last trim gives back between two jobs."""
        if (
            self.gives_back
            and pool_trim_due(0.0, self.high_water_mb[pid])
            and pool_busy_trim_due(self._last_trim_s[pid], self.env.now)
        ):
            self._give_back(pid)

    def _trim_when_idle(self, pid: int) -> None:
        """If ``pid`` went idle holding job memory, it gives it back after ``POOL_IDLE_S``."""
        if not self.gives_back or pid not in self.idle:
            return
        if not pool_trim_due(0.0, self.high_water_mb[pid]):
            return
        jobs_run = self.jobs_run[pid]

        def trim(_event) -> None:
            if pid in self.idle and self.jobs_run.get(pid) == jobs_run:  # idle all along
                self._give_back(pid)

        Call(self.env, POOL_IDLE_S, trim)

    def finish(self) -> None:
        """Close the books at the end of the run (alive process-seconds)."""
        self._resize(0)

    # --- processes ------------------------------------------------------------------------

    def _start(self, job: int, pid: int) -> None:
        self.busy += 1
        self._process[job] = pid
        job_mb = self._memory_mb[job]
        mapped = job_mb > self._mmap_threshold_mb[pid]
        extra_mb = job_mb if mapped else max(0.0, job_mb - self.high_water_mb[pid])
        self.memory.add(self.env.now + self.dispatch_s, extra_mb)  # the job's own, while it runs
        self._job_extra_mb[pid] = self._fresh_mb[job] = extra_mb
        self._run(job, self.dispatch_s)

    def _ready(self, pid: int) -> None:
        if self.queue:
            self._start(self.queue.popleft(), pid)
        else:
            self.idle.append(pid)

    def _spawn(self, warm: bool = False) -> None:
        pid = self.spawns
        self.spawns += 1
        self.high_water_mb[pid] = 0.0
        self._last_trim_s[pid] = self.env.now
        self._mmap_threshold_mb[pid] = first_mmap_threshold_mb(self.retained_mb)
        self.jobs_run[pid] = 0
        self._resize(+1)
        # forked by the zygote: none of the worker's inline memory (``kqueue.policy.fork``)
        from_zygote = warm or POOL_FORKS_FROM_ZYGOTE
        self.inherited_mb[pid] = inherited_inline_mb(from_zygote, self._inline_level_mb())
        self.memory.add(self.env.now, self.base_mb + self.inherited_mb[pid])
        if warm or self.spawn_s == 0:
            self._ready(pid)
            return

        def started(_event, pid=pid):
            self._ready(pid)
            self._scale()

        Call(self.env, self.spawn_s, started)

    def _exit(self, pid: int) -> None:
        self._resize(-1)
        held_mb = self.base_mb + self.high_water_mb.pop(pid) + self.inherited_mb.pop(pid)
        del self._mmap_threshold_mb[pid], self._last_trim_s[pid]
        self.memory.add(self.env.now, -held_mb)
        del self.jobs_run[pid]

    def _resize(self, delta: int) -> None:
        now = self.env.now
        self.alive_process_s += self.size * (now - self._size_since_s)
        self._size_since_s = now
        self.size += delta
        self.peak_size = max(self.peak_size, self.size)

    # --- sizing ---------------------------------------------------------------------------

    def _scale(self) -> None:
        """Apply ``target_pool_size``; if a cooldown holds back a change, look again after it."""
        if self._fixed:
            return
        now = self.env.now
        if (
            self._recheck_pending
            and self.size >= self.config.pool_size
            and cooling_down(now, self._last_scaled_s, self.config)
        ):
            return  # the rule keeps the size while it cools, and the look after it is booked
        waiting = len(self.queue) + self._held_waiting()
        target = target_size_with_backlog(
            self.size,
            self.busy,
            waiting,
            self._backlog(),
            now,
            self._last_scaled_s,
            self.config,
            room=self._room(),
        )
        if target > self.size:
            for _ in range(target - self.size):
                self._spawn()
            self._last_scaled_s = now
        elif target < self.size and self.idle:
            for _ in range(min(self.size - target, len(self.idle))):
                self._exit(self.idle.popleft())
            self._last_scaled_s = now
        elif self._last_scaled_s is not None and not self._recheck_pending:
            self._recheck_after_cooldown(now)

    def _recheck_after_cooldown(self, now: float) -> None:
        cooldown_s = self.config.pool_scale_cooldown_s
        ends_s = self._last_scaled_s + cooldown_s
        while ends_s - self._last_scaled_s < cooldown_s:  # round-off: the rule would still cool
            ends_s = math.nextafter(ends_s, math.inf)
        if ends_s <= now:
            return
        later = target_size(
            self.size,
            self.busy,
            len(self.queue) + self._held_waiting() + self._backlog(),
            ends_s,
            self._last_scaled_s,
            self.config,
        )
        if later == self.size:
            return
        self._recheck_pending = True
        Call(self.env, ends_s - now, self._recheck)

    def _recheck(self, _event) -> None:
        self._recheck_pending = False
        self._scale()
