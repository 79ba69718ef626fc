"""The isolated tier: one fresh process per job, at most ``max_concurrent_isolated`` at once.

Each job forks a child from the worker (the app is already imported: nothing to load) that runs
``child.run_once`` under a memory cgroup of its own with the job's ``max_memory_mb`` (which the
child enters before its job runs), or where the host has none a hard address-space limit of its
size at start plus ``max_memory_mb`` (``RLIMIT_AS``), reports its measurements and exits. Past
``timeout_s`` the child and whatever it started are killed (status ``timeout``). A child that dies
without a report is ``killed`` (retried by the worker), or ``memory`` when its exit looks like a
failed allocation. The exit status and the fork time are kept in ``Outcome.extra``; the peak memory
of the child is the trace's ``memory_mb``.

Like the pool, the tier holds up to ``BACKLOG_PER_SLOT`` queued jobs per slot (``free()``
counts them) and forks the next one inside the callback that reaped a finished child, so a slot
never waits for a round of the worker loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from kqueue.policy.config import Tier
from kqueue.policy.fetch import BACKLOG_PER_SLOT, tier_free
from kqueue.policy.fork import ISOLATED_FORKS_FROM_ZYGOTE
from kqueue.policy.status import Status
from kqueue.tiers import child
from kqueue.tiers.base import Invocation, Outcome, TierRunner
from kqueue.tiers.cgroup import (
    CgroupEntry,
    CgroupMode,
    MemoryCgroups,
    detect_cgroups,
    note_cgroup_death,
)
from kqueue.tiers.process import ChildProcess, interrupt_backlog, outcome_from_result
from kqueue.tiers.procs import describe_exit, libc_prctl, rss_mb
from kqueue.tiers.zygote import Zygote, ZygoteGone

log = logging.getLogger("kqueue.isolated")

MEMORY_POLL_S = 1.0
REAP_TIMEOUT_S = 5.0
#: Room in an isolated process's cgroup beyond its job's limit, for the interpreter's own pages
#: that the child copies from the worker as it runs (MB).
CHILD_SLACK_MB = 32.0
#: Fork isolated processes from a zygote forked at start (``kqueue.tiers.zygote``): the fork's
#: cost (copying the worker's page tables) leaves the worker's loop, and every process starts
#: from the worker's image at start, not its warm heap.
FORK_FROM_ZYGOTE = ISOLATED_FORKS_FROM_ZYGOTE


@dataclass(eq=False)
class _IsolatedJob:
    """One job and the process running it."""

    invocation: Invocation
    future: asyncio.Future
    started_at: float
    result: dict[str, Any] | None = None
    rss_mb: float = math.nan
    timer: asyncio.TimerHandle | None = None
    #: When its process was asked of the zygote (``time.perf_counter``).
    requested_s: float = 0.0


class IsolatedRunner(TierRunner):
    """Runs each job in a fresh process of its own (see the module docstring)."""

    tier = Tier.ISOLATED

    def __init__(self, app, config):
        super().__init__(app, config)
        self._jobs: dict[int, tuple[ChildProcess, _IsolatedJob]] = {}
        self._backlog: deque[_IsolatedJob] = deque()
        #: Jobs whose process the zygote was asked for, oldest first (``_adopt``).
        self._requested: deque[_IsolatedJob] = deque()
        self._stopping = False
        self._last_poll_s = 0.0
        self._exited: asyncio.Event | None = None
        #: Per-process memory cgroups (``kqueue.tiers.cgroup``), found in ``start``.
        self.cgroups = MemoryCgroups(CgroupMode.NONE, None)
        self._reserved = 0
        #: Forks the isolated processes (``kqueue.tiers.zygote``), started in ``start``; None:
        #: the worker forks them itself (turned off, or the zygote is gone).
        self.zygote: Zygote | None = None

    def capacity(self) -> int:
        return self.config.max_concurrent_isolated

    def running(self) -> int:
        return self._reserved - len(self._backlog)

    def free(self) -> int:
        """Slots free now, counting ``BACKLOG_PER_SLOT`` queued jobs per slot."""
        return tier_free(self.capacity(), BACKLOG_PER_SLOT, self._reserved)

    def pids(self) -> list[int]:
        """Pids of the isolated processes running now."""
        return list(self._jobs)

    def standing_pids(self) -> list[int]:
        """Pids of the tier's processes that run no job but count in the worker's tree: its
        zygote's, while it has one."""
        return [self.zygote.pid] if self.zygote is not None else []

    def job_pids(self) -> dict[str, int]:
        """The pid running each running job, by job id."""
        return {job.invocation.job_id: pid for pid, (_, job) in self._jobs.items()}

    async def start(self) -> None:
        self._exited = asyncio.Event()
        libc_prctl()  # resolved here once, inherited by every child
        self.cgroups = detect_cgroups(self.config, "isolated")
        self._callbacks = {"on_result": self._on_result, "on_exit": self._on_exit}
        if FORK_FROM_ZYGOTE and self.zygote is None and self.capacity() > 0:
            try:
                # before any job or thread; the start does not wait for it to serve
                self.zygote = Zygote(self.app, child.serve, wait_ready=False)
            except ZygoteGone as exc:
                log.warning("%s: isolated processes are forked from the worker", exc)
            else:
                asyncio.get_running_loop().add_reader(self.zygote.fileno(), self._zygote_readable)

    def run(self, invocation: Invocation) -> Awaitable[Outcome]:
        """Reserve a slot now (so ``free()`` is right before the task starts), then run."""
        self._reserved += 1
        return self._run(invocation)

    async def _run(self, invocation: Invocation) -> Outcome:
        try:
            return await self._run_in_child(invocation)
        finally:
            self._reserved -= 1

    async def _run_in_child(self, invocation: Invocation) -> Outcome:
        loop = asyncio.get_running_loop()
        job = _IsolatedJob(invocation, loop.create_future(), time.time())
        if self._stopping:
            return Outcome(Status.KILLED, job.started_at, time.time(), interrupted=True)
        self._backlog.append(job)
        self._feed()
        try:
            return await job.future
        finally:
            if job.timer is not None:
                job.timer.cancel()

    def _feed(self) -> None:
        """Fork queued jobs while slots are free, oldest first."""
        while (
            self._backlog
            and len(self._jobs) + len(self._requested) < self.capacity()
            and not self._stopping
        ):
            job = self._backlog.popleft()
            if not job.future.done():  # else its task was cancelled while it waited
                self._start(job)

    def _start(self, job: _IsolatedJob) -> None:
        """Ask the zygote for a process for ``job`` (``_adopt`` sends it the job when it
        comes), else fork one from the worker now."""
        job.started_at = time.time()
        if self.zygote is not None:
            try:
                self.zygote.request()
            except ZygoteGone as exc:
                self._lose_zygote(exc)
            else:
                job.requested_s = time.perf_counter()
                self._requested.append(job)
                return
        request, entry = self._request(job.invocation)
        args = (self.app, os.getpid(), request, entry, job.invocation.settings.max_memory_mb)
        process = ChildProcess(child.run_once, args, **self._callbacks, name="kqueue-isolated")
        self._begin(job, process)

    def _request(self, invocation: Invocation) -> tuple[dict, CgroupEntry | None]:
        """The child's request, and the cgroup it enters before the job (None: no cgroups)."""
        request = child.request_for(
            invocation.job.name,
            invocation.args,
            invocation.kwargs,
            None if self.cgroups.active else invocation.settings.max_memory_mb,
            hard=True,
            job_id=invocation.job_id,
            attempt=invocation.attempt,
        )
        entry = None
        if self.cgroups.active:  # the child enters its group before the job runs
            entry = CgroupEntry(self.cgroups, CHILD_SLACK_MB + invocation.settings.max_memory_mb)
        return request, entry

    def _begin(self, job: _IsolatedJob, process: ChildProcess) -> None:
        """``process`` runs ``job`` from now: watch it, and kill it past the job's timeout."""
        self._jobs[process.pid] = (process, job)
        self.cgroups.expect(process.pid)
        loop = asyncio.get_running_loop()
        job.timer = loop.call_later(job.invocation.settings.timeout_s, process.kill, Status.TIMEOUT)

    def _zygote_readable(self) -> None:
        """The zygote answered: adopt the processes it forked; if it is gone, fork the jobs
        that waited for it from the worker."""
        alive = self.zygote.pump()
        self._adopt()
        if not alive:
            self._lose_zygote(ZygoteGone(f"zygote {self.zygote.pid} exited"))

    def _adopt(self) -> None:
        """Give each process the zygote forked its job, in the order they were asked for; a
        job that ended meanwhile (cancelled, or the worker stops) lets its process exit."""
        spawned, failures = self.zygote.take_spawned()
        for code in failures:  # as a fork that failed in the worker
            job = self._requested.popleft()
            if not job.future.done():
                job.future.set_exception(OSError(code, f"fork failed: {os.strerror(code)}"))
        for forked in spawned:
            job = self._requested.popleft()
            process = ChildProcess(
                child.serve, (), **self._callbacks, name="", zygote=self.zygote, spawned=forked
            )
            process.spawn_s = time.perf_counter() - job.requested_s
            if job.future.done() or self._stopping:
                self._jobs[process.pid] = (process, job)  # its exit is noticed as any other
                process.send(child.STOP)
                continue
            request, entry = self._request(job.invocation)
            cgroup = entry.message() if entry is not None else None
            limit_mb = job.invocation.settings.max_memory_mb
            once = {"once": True, "cgroup": cgroup, "fallback_max_memory_mb": limit_mb}
            self._begin(job, process)
            process.send(child.encode({**request, **once}))
        self._feed()

    def _lose_zygote(self, exc: Exception) -> None:
        """The zygote is gone: fork from the worker from now on, first the jobs it owed."""
        log.warning("%s: isolated processes are forked from the worker from now on", exc)
        asyncio.get_running_loop().remove_reader(self.zygote.fileno())
        self.zygote.close(timeout_s=0.5)
        self.zygote = None
        owed, self._requested = self._requested, deque()
        for job in owed:
            if not job.future.done() and not self._stopping:
                self._start(job)

    def abort(self, handle: Any, invocation: Invocation) -> None:
        """Cancelled: a queued job ends now; a running one's process is killed."""
        for process, job in self._jobs.values():
            if job.invocation is invocation:
                process.kill(Status.CANCELLED)
                return
        for job in (*self._backlog, *self._requested):
            if job.invocation is invocation and not job.future.done():
                now = time.time()
                job.future.set_result(Outcome(Status.CANCELLED, now, now, error="cancelled"))

    def _on_result(self, process: ChildProcess, result: dict[str, Any]) -> None:
        entry = self._jobs.get(process.pid)
        if entry is not None and process.kill_reason is None:
            entry[1].result = result

    def _on_exit(self, process: ChildProcess) -> None:
        _, job = self._jobs.pop(process.pid)
        note_cgroup_death(self.cgroups, process)
        extra = {"exitcode": process.exitcode, "spawn_s": process.spawn_s}
        if job.result is not None:
            outcome = outcome_from_result(job.result, f"pid {process.pid}", **extra)
        else:
            outcome = process.death_outcome(job.started_at, memory_mb=job.rss_mb)
        if log.isEnabledFor(logging.DEBUG):  # its arguments cost a few us per job otherwise
            log.debug(
                "isolated job %s ran in pid %d: %s, %s, peak %.1f MB",
                job.invocation.job_id,
                process.pid,
                outcome.status.value,
                describe_exit(process.exitcode),
                outcome.memory_mb,
            )
        if not job.future.done():
            job.future.set_result(outcome)
        if self.zygote is not None:
            self._adopt()  # answers read while waiting for the exit code above
        self._feed()
        self._exited.set()

    def maintain(self, waiting: int, now_s: float) -> None:
        if now_s - self._last_poll_s < MEMORY_POLL_S:
            return
        self._last_poll_s = now_s
        for pid, (_, job) in self._jobs.items():
            job.rss_mb = max(rss_mb(pid), job.rss_mb) if not math.isnan(job.rss_mb) else rss_mb(pid)

    async def stop(self, grace_s: float) -> None:
        """Kill the running children (their jobs end ``interrupted``) and wait until reaped."""
        self._stopping = True
        interrupt_backlog(self._backlog)
        deadline = time.monotonic() + grace_s
        while (self._jobs or self._requested) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for process, _ in list(self._jobs.values()):
            process.kill(Status.KILLED)
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while (self._jobs or self._requested) and time.monotonic() < deadline:
            self._exited.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), 0.05)
        interrupt_backlog(self._requested)  # the zygote never answered for them
        if self.zygote is not None:
            asyncio.get_running_loop().remove_reader(self.zygote.fileno())
            self.zygote.close()
            self.zygote = None
        self.cgroups.close()

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {
            "running": self.running(),
            "capacity": self.capacity(),
            "queued": len(self._backlog),
            "processes": [
                {
                    "pid": pid,
                    "state": "busy",
                    "job": job.invocation.job.name,
                    "running_s": round(now - job.started_at, 1),
                    "memory_mb": None if math.isnan(m := rss_mb(pid)) else round(m, 1),
                }
                for pid, (_, job) in sorted(self._jobs.items())
            ],
        }
