"""The pool tier: a supervised set of long-lived processes, forked from the worker, reused by jobs.

Each process runs ``child.serve``: it reads a request (a job's registered name and its JSON
arguments), runs it, sends back the measured result, and waits for the next. The supervisor:

- starts ``pool_size`` processes in ``start()`` (before the worker runs any inline job, so the
  first forks happen while the worker has no other threads);
- notices a process exit the moment it happens (a pidfd on the event loop), fails its job as
  ``killed`` (the worker retries it, counting the attempt) and forks a replacement at once;
- kills a process whose job passes its ``timeout_s`` (status ``timeout``) and replaces it;
- recycles a process after ``max_jobs_per_worker`` jobs, when its resident memory after a job
  passes ``max_worker_memory_mb``, or after a job hit its memory limit (status ``memory``);
- grows and shrinks the pool with ``kqueue.policy.scaler.target_size_with_backlog`` (bounded
  steps with a cooldown, counting the backend's backlog for the pool, never past what the memory
  budget allows), applied in ``maintain``; recycles a process whose retained memory pushes the
  worker over its budget.

Dispatch never waits for the worker loop: the pool accepts jobs per process beyond those running
(``free()`` counts them: one, or for short jobs as many as fit in ``BACKLOG_MAX_WAIT_S`` of their
estimate, up to ``BACKLOG_MAX_PER_PROCESS``), launched without an asyncio task (the
``_Assignment`` is the handle). Behind a job estimated at most ``PIPELINE_MAX_ESTIMATE_S`` they
are written into the process's pipe ahead of time, so each starts the moment the one before
ends, without waiting for the worker to be scheduled (several ms per job on a busy machine).
While requests are queued in a pipe its results are read on a timer, not as each arrives, and
outcomes reach the worker in batches (``kqueue.tiers.handback``). A queued job that never started
(its process died first) goes back to the front of the pool's queue; results written are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kqueue.policy.config import Tier
from kqueue.policy.fetch import (
    BACKLOG_MAX_WAIT_S,
    BACKLOG_PER_SLOT,
    PIPELINE_MAX_ESTIMATE_S,
    pool_backlog_per_process,
    tier_free,
)
from kqueue.policy.fork import runs_zygote
from kqueue.policy.limits import timeout_left_s
from kqueue.policy.scaler import target_size_with_backlog
from kqueue.policy.status import Status
from kqueue.tiers import child, heap
from kqueue.tiers.base import Invocation, Outcome, TierRunner
from kqueue.tiers.cgroup import CgroupMode, MemoryCgroups, detect_cgroups, note_cgroup_death
from kqueue.tiers.handback import Deliveries, PipeReads
from kqueue.tiers.process import ChildProcess, interrupt_backlog, outcome_from_result
from kqueue.tiers.procs import libc_prctl, rss_mb
from kqueue.tiers.zygote import Zygote, ZygoteGone

log = logging.getLogger("kqueue.pool")

#: How often the memory of busy processes is sampled (for status and killed jobs), seconds.
MEMORY_POLL_S = 1.0
#: How long ``stop`` waits for killed processes to be reaped, seconds.
REAP_TIMEOUT_S = 5.0
#: Jobs the pool holds per process beyond the running ones (``kqueue.policy.fetch``, the rule
#: the twin's intake runs too).
BACKLOG_PER_PROCESS = BACKLOG_PER_SLOT


@dataclass(eq=False)
class _Assignment:
    """A job in the pool, from launch to its outcome; the handle ``launch`` returns."""

    invocation: Invocation
    on_done: Callable[[Outcome], None]
    request: bytes
    sent_at: float = math.nan
    timer: asyncio.TimerHandle | None = None
    outcome: Outcome | None = None
    cancelled: bool = False
    #: Its job was cancelled while its request sat in a process's pipe: kill it when it starts.
    aborted: bool = False

    @property
    def done(self) -> bool:
        """True once it has an outcome or nobody waits for it any more."""
        return self.outcome is not None or self.cancelled

    def cancel(self) -> None:
        """Stop waiting for it (worker shutdown): its outcome, if any, is dropped."""
        self.cancelled = True


@dataclass(eq=False)
class PoolProcess:
    """The supervisor's view of one pool process."""

    child: ChildProcess
    jobs_done: int = 0
    rss_mb: float = math.nan
    retiring: bool = False
    #: The jobs sent to its pipe, oldest first: the first runs, the others wait their turn.
    jobs: deque[_Assignment] = field(default_factory=deque)
    started_at: float = field(default_factory=time.time)

    @property
    def job(self) -> _Assignment | None:
        """The job it runs (as far as the parent has read its results), or None."""
        return self.jobs[0] if self.jobs else None

    @property
    def state(self) -> str:
        """``busy``, ``idle`` or ``retiring``."""
        return "retiring" if self.retiring else "busy" if self.job else "idle"


class PoolRunner(TierRunner):
    """Runs jobs on a supervised pool of reused processes (see the module docstring)."""

    tier = Tier.POOL

    def __init__(self, app, config):
        super().__init__(app, config)
        self._procs: dict[int, PoolProcess] = {}
        self._backlog: deque[_Assignment] = deque()
        self._changed: asyncio.Event | None = None
        self._stopping = False
        self._last_scaled_at: float | None = None
        self._last_poll_s = 0.0
        self._reserved = 0
        self._deliveries = Deliveries()
        #: Reads the pipes of processes with queued jobs on a timer, not per result.
        self.reads = PipeReads(self._queued_work_s)
        #: The estimate of the job launched last, seconds: how deep the backlog may be.
        self._recent_estimate_s = math.nan
        #: Processes replaced after they died, and recycled after limits.
        self.replaced = self.recycled = 0
        #: Forks the pool's processes (``kqueue.tiers.zygote``), started in ``start``; None: the
        #: worker forks them itself (the zygote was turned off or is gone).
        self.zygote: Zygote | None = None
        #: Per-process memory cgroups (``kqueue.tiers.cgroup``), found in ``start``.
        self.cgroups = MemoryCgroups(CgroupMode.NONE, None)
        #: Set by the worker's memory budget (``kqueue.worker.budget``): processes the budget
        #: allows beyond the current size (None: no budget), jobs waiting in the backend that
        #: route to the pool, and whether a process (pid, resident MB) should be recycled.
        self.room: Callable[[], int | None] = lambda: None
        self.backlog: Callable[[], int] = lambda: 0
        self.over_budget: Callable[[int, float], bool] = lambda pid, rss_mb: False

    def capacity(self) -> int:
        return sum(1 for p in self._procs.values() if not p.retiring)

    def running(self) -> int:
        return self._reserved - len(self._backlog) - self._pipelined()

    def _pipelined(self) -> int:
        return sum(max(0, len(p.jobs) - 1) for p in self._procs.values())

    def free(self) -> int:
        """Slots free now, counting the jobs the pool may queue per process."""
        return tier_free(self.capacity(), self._backlog_per_process(), self._reserved)

    def _backlog_per_process(self) -> int:
        """One job per process, or for short jobs as many as ``BACKLOG_MAX_WAIT_S`` holds."""
        return pool_backlog_per_process(self._recent_estimate_s)

    def _queued_work_s(self) -> float:
        """Half the least estimated work queued behind a running job: how long results may wait."""
        queued_s = [_estimated_s(list(p.jobs)[1:]) for p in self._procs.values() if len(p.jobs) > 1]
        return 0.5 * min(queued_s, default=math.inf)

    def pids(self) -> list[int]:
        """Pids of the pool's live processes that take jobs."""
        return [pid for pid, p in self._procs.items() if not p.retiring]

    def standing_pids(self) -> list[int]:
        """Pids of the pool's processes that run no job but count in the worker's tree: its
        zygote's, while it has one."""
        return [self.zygote.pid] if self.zygote is not None else []

    def job_pids(self) -> dict[str, int]:
        """The pid running each running job, by job id."""
        return {p.job.invocation.job_id: pid for pid, p in self._procs.items() if p.job}

    async def start(self) -> None:
        self._changed = asyncio.Event()
        libc_prctl()  # resolved here once, inherited by every child
        heap.available()  # so is malloc_trim
        self.cgroups = detect_cgroups(self.config, "pool")
        # a zygote forked at start forks every pool process, so every generation has the first
        # one's memory and descriptors (``kqueue.policy.fork``: the twin counts it by this rule)
        if self.zygote is None and runs_zygote(self.config):
            try:
                self.zygote = Zygote(self.app, child.serve)  # before any pool process or thread
            except ZygoteGone as exc:
                log.warning("%s: pool processes are forked from the worker", exc)
        for _ in range(self.config.pool_size):
            self._spawn()

    def _spawn(self) -> PoolProcess:
        callbacks = {"on_result": self._on_result, "on_exit": self._on_exit, "name": "kqueue-pool"}
        try:
            process = ChildProcess(
                child.serve, (self.app, os.getpid()), **callbacks, zygote=self.zygote
            )
        except ZygoteGone as exc:
            log.warning("%s: pool processes are forked from the worker from now on", exc)
            self.zygote.close(timeout_s=0.5)  # its socket, and its exit status if it died
            self.zygote = None
            process = ChildProcess(child.serve, (self.app, os.getpid()), **callbacks)
        proc = self._procs[process.pid] = PoolProcess(process)
        self.cgroups.attach(process.pid, None)  # its limit is set as each job starts
        self._changed.set()
        self._feed()
        return proc

    # --- running a job ----------------------------------------------------------------------

    def launch(self, invocation: Invocation, on_done: Callable[[Outcome], None]) -> _Assignment:
        """Queue the job for a process (no task); ``on_done`` gets its outcome on the loop."""
        if self._stopping:
            interrupted = Outcome.interrupted_now()
            asyncio.get_running_loop().call_soon(on_done, interrupted)
            return _Assignment(invocation, on_done, b"", outcome=interrupted)
        request = child.request_for(
            invocation.job.name,
            invocation.args,
            invocation.kwargs,
            None if self.cgroups.active else invocation.settings.max_memory_mb,
            job_id=invocation.job_id,
            attempt=invocation.attempt,
        )
        job = _Assignment(invocation, on_done, child.encode(request))
        self._reserved += 1
        self._recent_estimate_s = invocation.estimate_s
        self._backlog.append(job)
        self._feed()
        return job

    async def run(self, invocation: Invocation) -> Outcome:
        """Run one job to its end (``launch`` for callers that await)."""
        future = asyncio.get_running_loop().create_future()
        job = self.launch(invocation, lambda outcome: future.done() or future.set_result(outcome))
        try:
            return await future
        except asyncio.CancelledError:
            job.cancel()
            raise

    def abort(self, handle: _Assignment, invocation: Invocation) -> None:
        """Cancelled: a queued job ends now; a running one's process is killed (and replaced)."""
        for proc in self._procs.values():
            if handle in proc.jobs:
                if proc.job is handle:
                    proc.child.kill(Status.CANCELLED)
                else:
                    handle.aborted = True  # in the pipe behind another job: killed as it starts
                return
        if handle in self._backlog:
            self._backlog.remove(handle)
            now = time.time()
            self._end(handle, Outcome(Status.CANCELLED, now, now, error="cancelled"))

    def _end(self, job: _Assignment, outcome: Outcome) -> None:
        """``job`` is over: free its slot; the worker hears of it with the next delivery."""
        if job.outcome is not None:
            return
        job.outcome = outcome
        self._reserved -= 1
        if job.timer is not None:
            job.timer.cancel()
        self._deliveries.add(job, now=self._stopping or self._short_of_jobs())

    def _short_of_jobs(self) -> bool:
        """True when a process could start (or queue) a job the pool does not have."""
        if any(not job.done for job in self._backlog):
            return False
        return self._idle_process() is not None or self._pipelinable_process() is not None

    def _feed(self) -> None:
        """Send queued jobs to idle processes, else queue them behind short jobs; oldest first."""
        while self._backlog:
            proc = self._idle_process() or self._pipelinable_process()
            if proc is None:
                return
            job = self._backlog.popleft()
            if job.done:  # nobody waits for it: free its slot
                self._end(job, Outcome.interrupted_now("cancelled"))
                continue
            if not proc.jobs:
                self._begin(proc, job, time.time())
            proc.jobs.append(job)
            proc.child.send(job.request)
            self.reads.watch(proc.child, each_result=len(proc.jobs) == 1)

    def _idle_process(self) -> PoolProcess | None:
        for proc in self._procs.values():
            if proc.job is None and not proc.retiring and proc.child.alive:
                return proc
        return None

    def _pipelinable_process(self) -> PoolProcess | None:
        """The busy process with the fewest queued requests that may take one more.

        One request may wait behind a job estimated at most ``PIPELINE_MAX_ESTIMATE_S``; more
        only while the jobs in the pipe add up to at most ``BACKLOG_MAX_WAIT_S`` of estimate.
        """
        depth = 1 + self._backlog_per_process()
        fits = [
            proc
            for proc in self._procs.values()
            if proc.jobs
            and len(proc.jobs) < depth
            and not proc.retiring
            and proc.jobs[-1].invocation.estimate_s <= PIPELINE_MAX_ESTIMATE_S
            and (len(proc.jobs) == 1 or _estimated_s(proc.jobs) <= BACKLOG_MAX_WAIT_S)
            and proc.jobs_done + len(proc.jobs) + 1 <= self.config.max_jobs_per_worker
        ]
        return min(fits, key=lambda proc: len(proc.jobs), default=None)

    def _begin(self, proc: PoolProcess, job: _Assignment, started_at: float) -> None:
        """``job`` runs on ``proc`` since ``started_at`` (epoch s): its timeout runs from then."""
        job.sent_at = started_at
        if self.cgroups.active:  # what the process holds now plus the job's limit
            held_mb = self.cgroups.usage_mb(proc.child.pid)
            limit_mb = job.invocation.settings.max_memory_mb
            self.cgroups.set_limit(
                proc.child.pid, (0.0 if held_mb != held_mb else held_mb) + limit_mb
            )
        if job.aborted:
            proc.child.kill(Status.CANCELLED)
        delay_s = timeout_left_s(started_at, job.invocation.settings.timeout_s, time.time())
        job.timer = asyncio.get_running_loop().call_later(delay_s, self._on_timeout, proc, job)

    def _on_result(self, process: ChildProcess, result: dict[str, Any]) -> None:
        proc = self._procs.get(process.pid)
        if proc is None or not proc.jobs or process.kill_reason is not None:
            return  # a late result from a process being killed: its exit decides
        job, proc.rss_mb = proc.jobs.popleft(), result["rss_mb"]
        proc.jobs_done += 1
        if proc.jobs:  # the child read the next request as soon as it reported: it runs since
            self._begin(proc, proc.jobs[0], result["finished_at"])
        outcome = outcome_from_result(result, f"pid {process.pid}", jobs_done=proc.jobs_done)
        if not proc.retiring and self._should_recycle(proc, outcome):
            self._retire(proc, replace=True)
            self.recycled += 1
        self._feed()
        self.reads.watch(process, each_result=len(proc.jobs) <= 1)
        self._end(job, outcome)  # after the feed: the pool may be short of jobs now
        self._changed.set()

    def _should_recycle(self, proc: PoolProcess, outcome: Outcome) -> bool:
        return (
            proc.jobs_done >= self.config.max_jobs_per_worker
            or proc.rss_mb > self.config.max_worker_memory_mb
            or outcome.status is Status.MEMORY
            or self.over_budget(proc.child.pid, proc.rss_mb)
        )

    def _retire(self, proc: PoolProcess, *, replace: bool) -> None:
        proc.retiring = True
        proc.child.send(child.STOP)
        if replace and not self._stopping:
            self._spawn()

    def _on_timeout(self, proc: PoolProcess, job: _Assignment) -> None:
        proc.child.drain()  # a result waiting unread in the pipe: the job ended in time
        if proc.job is job:
            log.warning(
                "pool job %s (%s) passed its timeout_s %.1f s: killing process %d",
                job.invocation.job_id,
                job.invocation.job.name,
                job.invocation.settings.timeout_s,
                proc.child.pid,
            )
            proc.child.kill(Status.TIMEOUT)

    def _on_exit(self, process: ChildProcess) -> None:
        proc = self._procs.pop(process.pid)
        note_cgroup_death(self.cgroups, process)
        self.reads.forget(process)
        job = proc.jobs.popleft() if proc.jobs else None
        self._requeue_pipelined(proc)
        if not proc.retiring and not self._stopping:
            if process.kill_reason is None:
                log.warning("pool process %d exited (%s)", process.pid, process.exitcode)
            self._spawn()
            self.replaced += 1
        self._feed()
        if job is not None:
            self._end(job, process.death_outcome(job.sent_at, memory_mb=proc.rss_mb))
        self._changed.set()

    def _requeue_pipelined(self, proc: PoolProcess) -> None:
        """Requests left in a dead process's pipe never started: they go first in the queue."""
        while proc.jobs:
            queued = proc.jobs.pop()  # newest first, so the oldest ends up at the front
            if queued.outcome is not None:
                continue
            if self._stopping or queued.cancelled:
                self._end(queued, Outcome.interrupted_now())
            else:
                self._backlog.appendleft(queued)

    # --- supervision steps ------------------------------------------------------------------

    def maintain(self, waiting: int, now_s: float) -> None:
        if self._stopping or self._changed is None:
            return
        self._scale(waiting + len(self._backlog) + self._pipelined(), now_s)
        self._poll_memory(now_s)

    def _scale(self, waiting: int, now_s: float) -> None:
        size = self.capacity()
        busy = sum(1 for p in self._procs.values() if p.job is not None)
        backlog = self.backlog()
        target = target_size_with_backlog(
            size,
            busy,
            waiting,
            backlog,
            now_s,
            self._last_scaled_at,
            self.config,
            room=self.room(),
        )
        if target > size:
            for _ in range(target - size):
                self._spawn()
        elif target < size:
            idle = [p for p in self._procs.values() if p.job is None and not p.retiring]
            for proc in idle[: size - target]:
                self._retire(proc, replace=False)
        if target != size and size >= self.config.pool_size:
            self._last_scaled_at = now_s
            log.info(
                "pool scaled from %d to %d processes (%d waiting, %d more in the backend)",
                size,
                target,
                waiting,
                backlog,
            )

    def _poll_memory(self, now_s: float) -> None:
        if now_s - self._last_poll_s < MEMORY_POLL_S:
            return
        self._last_poll_s = now_s
        for pid, proc in self._procs.items():
            if proc.job is not None and proc.child.pid_is_its_own():  # not a reused pid's
                proc.rss_mb = rss_mb(pid)

    async def stop(self, grace_s: float) -> None:
        """Stop every process: running jobs end ``interrupted``; waits until all are reaped."""
        self._stopping = True
        if self._changed is None:
            return
        self.reads.close()
        interrupt_backlog(self._backlog, self._end)
        self._deliveries.flush()
        deadline = time.monotonic() + grace_s
        while self.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in list(self._procs.values()):
            proc.child.drain()  # results already written count: only unfinished jobs go back
            proc.child.kill(Status.KILLED)
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while self._procs and time.monotonic() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), REAP_TIMEOUT_S)
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
        self.cgroups.close()

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {
            "running": self.running(),
            "capacity": self.capacity(),
            "queued": len(self._backlog),
            "replaced": self.replaced,
            "recycled": self.recycled,
            "zygote": self.zygote.pid if self.zygote is not None else None,
            "processes": [
                {
                    "pid": pid,
                    "state": proc.state,
                    "jobs_done": proc.jobs_done,
                    "memory_mb": _rounded(rss_mb(pid)),
                    "job": proc.job.invocation.job.name if proc.job else None,
                    "running_s": round(now - proc.job.sent_at, 1) if proc.job else None,
                }
                for pid, proc in sorted(self._procs.items())
            ],
        }


def _estimated_s(jobs) -> float:
    return sum(job.invocation.estimate_s for job in jobs)


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)
