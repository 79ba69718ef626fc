"""The inline tier: jobs run inside the worker process.

Async jobs run as tasks on the worker's event loop; sync jobs run on long-lived threads that take
them from one queue (``_SyncThreads``) and hand outcomes back to the loop in batches. At most
``max_concurrent_inline`` run at once, together. An async job past its ``timeout_s`` is cancelled
(status ``timeout``); a sync job cannot be stopped from outside its thread, so it is left to finish
and its lateness is logged. CPU time is measured per thread (sync) or per task step (async);
memory is the growth of the worker's peak resident memory while the job ran.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from kqueue.api.context import CurrentJob, running
from kqueue.policy.config import Tier
from kqueue.policy.limits import over_timeout
from kqueue.policy.memory import job_memory_mb
from kqueue.policy.retry import Failure
from kqueue.policy.status import Status
from kqueue.policy.threads import BLOCKED_S, EAGER_THREADS, threads_to_add
from kqueue.tiers import heap
from kqueue.tiers.base import (
    FINAL,
    Invocation,
    Outcome,
    TierRunner,
    failure_of,
    format_error,
    settle_return,
)
from kqueue.tiers.procs import peak_rss_mb

#: How old a peak-memory reading may be to serve as an inline job's starting peak, seconds.
PEAK_MAX_AGE_S = 0.001

#: What a ``_SyncThreads`` job reports its outcome to.
OnDone = Callable[[Outcome], None]

log = logging.getLogger("kqueue.inline")


class _CpuMeter:
    """Adds up the thread CPU time spent inside one coroutine's steps."""

    def __init__(self) -> None:
        self.cpu_s = 0.0


@types.coroutine
def _metered(coro, meter: _CpuMeter):
    """Drive ``coro`` step by step, adding each step's thread CPU time to ``meter``."""
    step = coro.__await__()
    send_value: Any = None
    throw: BaseException | None = None
    while True:
        began = time.thread_time()
        try:
            yielded = step.throw(throw) if throw is not None else step.send(send_value)
        except StopIteration as stop:
            meter.cpu_s += time.thread_time() - began
            return stop.value
        meter.cpu_s += time.thread_time() - began
        try:
            send_value, throw = (yield yielded), None
        except BaseException as exc:  # cancellation and friends go into the coroutine
            send_value, throw = None, exc


class _PeakWatch:
    """The worker's peak resident memory for inline jobs, read once per ``max_age_s`` at most
    for a job's start and afresh at its end.

    The peak only grows, so a reading taken up to ``max_age_s`` before a job starts is at most
    its peak then: the job's memory (``job_memory_mb``) is never under its own growth, and can
    only gain what another job grew in that window, which overlapping inline jobs already share.
    At a few thousand jobs a second nearly every start reuses the end reading of a job that just
    finished: one ``getrusage`` (about 3.6 us on this VM) a job instead of two.
    """

    def __init__(self, max_age_s: float = PEAK_MAX_AGE_S):
        self._max_age_s = max_age_s
        #: ``(time.monotonic() s, peak MB)`` of the last reading, one tuple so threads see a pair.
        self._last = (-math.inf, 0.0)

    def fresh(self) -> float:
        """The peak now, MB (a ``getrusage``), kept for the starts that follow."""
        peak_mb = peak_rss_mb()
        self._last = (time.monotonic(), peak_mb)
        return peak_mb

    def recent(self) -> float:
        """The peak as of at most ``max_age_s`` ago, MB."""
        at_s, peak_mb = self._last
        return peak_mb if time.monotonic() - at_s <= self._max_age_s else self.fresh()


class _ThreadJob:
    """A sync job handed to the threads; ``cancel()`` drops its outcome when it comes."""

    __slots__ = ("cancelled", "invocation", "on_done")

    def __init__(self, invocation: Invocation, on_done: OnDone):
        self.invocation, self.on_done, self.cancelled = invocation, on_done, False

    def cancel(self) -> None:
        """Stop waiting for it (a running thread cannot be stopped; its result is ignored)."""
        self.cancelled = True


class _SyncThreads:
    """Long-lived threads running sync jobs from one queue, at most ``limit`` of them.

    Up to ``EAGER_THREADS`` start as soon as a job finds no idle thread (as with
    ``ThreadPoolExecutor``). Beyond that the pool grows only while jobs wait, by the rule in
    ``kqueue.policy.threads`` (which the simulator uses too): threads blocked in sleep or I/O
    make room for more, while short jobs keep few threads, because a hundred threads contending
    for the GIL run short jobs at half the speed of four (and slow the loop's round trips). Threads
    live until ``stop``. Outcomes collect in a list and the loop is woken once per batch: a short
    job costs the loop one queue put and one callback, where an executor future per job also
    costs a future chain and a self-pipe write.
    """

    def __init__(self, limit: int, run: Callable[[Invocation], Outcome]):
        self._limit, self._run = limit, run
        self._jobs: queue.SimpleQueue[_ThreadJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: When each thread's current job started (monotonic s), None while it waits for one.
        self._busy_since: list[float | None] = []
        #: One token per thread that finished a job and has not been given one since: a C
        #: queue, where a ``threading.Semaphore`` took a Python-level lock and condition on both
        #: sides of every job.
        self._idle: queue.SimpleQueue[None] = queue.SimpleQueue()
        #: Jobs submitted since the loop last ran other callbacks, put on ``_jobs`` together.
        self._handing: list[_ThreadJob] = []
        self._lock = threading.Lock()
        self._outcomes: list[tuple[_ThreadJob, Outcome]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grow_timer: asyncio.TimerHandle | None = None
        #: Process CPU time and monotonic time when the last growth check was scheduled.
        self._marks = (0.0, 0.0)
        self._stopped = False

    def __len__(self) -> int:
        return len(self._threads)

    def submit(self, invocation: Invocation, on_done: OnDone) -> _ThreadJob:
        """Queue one job; ``on_done(outcome)`` runs on the current event loop when it ends."""
        self._loop = asyncio.get_running_loop()
        job = _ThreadJob(invocation, on_done)
        if self._idle.qsize():  # only the loop takes tokens, so one seen here stays for it
            self._idle.get_nowait()
        else:
            if len(self._threads) < min(EAGER_THREADS, self._limit):
                self._start_thread()
            elif self._grow_timer is None and len(self._threads) < self._limit:
                self._schedule_growth()
        if not self._handing:
            self._loop.call_soon(self._hand_over)
        self._handing.append(job)
        return job

    def _hand_over(self) -> None:
        """Wake the threads for the jobs of a round once the loop's own work for it is done:
        a woken thread that preempts the loop on this 2-core box holds it up while it holds
        the GIL, so the wakes come when the loop is about to wait anyway."""
        jobs, self._handing = self._handing, []
        for job in jobs:
            self._jobs.put(job)

    def _start_thread(self) -> None:
        index = len(self._threads)
        self._busy_since.append(None)
        thread = threading.Thread(
            target=self._work, args=(index,), name=f"kqueue-inline_{index}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _schedule_growth(self) -> None:
        self._marks = (time.process_time(), time.monotonic())
        self._grow_timer = self._loop.call_later(BLOCKED_S, self._grow)

    def _grow(self) -> None:
        """Add a thread per blocked one while jobs wait (doubling at most), up to the limit."""
        self._grow_timer = None
        waiting = self._jobs.qsize()
        if self._stopped or not waiting or len(self._threads) >= self._limit:
            return
        now = time.monotonic()
        cpu_share = (time.process_time() - self._marks[0]) / max(1e-6, now - self._marks[1])
        blocked = sum(
            1 for since in self._busy_since if since is not None and now - since >= BLOCKED_S
        )
        for _ in range(
            threads_to_add(len(self._threads), waiting, blocked, cpu_share, self._limit)
        ):
            self._start_thread()
        if len(self._threads) < self._limit:
            self._schedule_growth()

    def _work(self, index: int) -> None:
        while (job := self._jobs.get()) is not None:
            self._busy_since[index] = time.monotonic()
            outcome = self._run(job.invocation)
            self._busy_since[index] = None
            self._report(job, outcome)
            self._idle.put(None)

    def _report(self, job: _ThreadJob, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append((job, outcome))
            first = len(self._outcomes) == 1
        if first:  # later ones ride along with the delivery already scheduled
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits for these
                with self._lock:
                    self._outcomes.clear()

    def _deliver(self) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        for job, outcome in outcomes:
            job.on_done(outcome)

    def stop(self) -> None:
        """Interrupt queued jobs (``interrupted`` outcomes) and let idle threads exit."""
        self._stopped = True
        if self._grow_timer is not None:
            self._grow_timer.cancel()
        handing, self._handing = self._handing, []
        for job in handing:
            self._report(job, Outcome.interrupted_now("cancelled"))
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._report(job, Outcome.interrupted_now("cancelled"))
        for _ in self._threads:
            self._jobs.put(None)


def _context(invocation: Invocation) -> CurrentJob:
    """The ``current_job()`` of an invocation (made here for callers that built none)."""
    if invocation.context is not None:
        return invocation.context
    return CurrentJob(invocation.job_id, invocation.job.name, invocation.attempt)


class InlineRunner(TierRunner):
    """Runs jobs in the worker process, at most ``max_concurrent_inline`` at once."""

    tier = Tier.INLINE

    def __init__(self, app, config):
        super().__init__(app, config)
        self._running = 0
        self._threads = _SyncThreads(config.max_concurrent_inline, self._run_sync)
        self._peak = _PeakWatch()
        #: Gives the heap's free memory back every few seconds after inline jobs ran.
        self.heap = heap.PeriodicTrim()

    def capacity(self) -> int:
        return self.config.max_concurrent_inline

    def running(self) -> int:
        return self._running

    async def run(self, invocation: Invocation) -> Outcome:
        if not invocation.job.is_async:
            done = asyncio.get_running_loop().create_future()
            self.launch(invocation, lambda outcome: done.done() or done.set_result(outcome))
            return await done
        self._running += 1
        try:
            return await self._run_async(invocation)
        finally:
            self._running -= 1
            self.heap.note_job()

    def launch(self, invocation: Invocation, on_done: OnDone) -> Any:
        """Async jobs become tasks on the loop; sync jobs go to the threads' queue."""
        if invocation.job.is_async:
            return super().launch(invocation, on_done)
        self._running += 1

        def finished(outcome: Outcome) -> None:
            self._running -= 1
            self.heap.note_job()
            on_done(outcome)

        return self._threads.submit(invocation, finished)

    def abort(self, handle: Any, invocation: Invocation) -> None:
        """Async: cancel its task. Sync: a thread cannot be stopped, so mark it cancelled
        (``kqueue.current_job().cancelled``) and let the job return; it ends ``cancelled``."""
        if invocation.job.is_async:
            super().abort(handle, invocation)
        elif invocation.context is not None:
            invocation.context.mark_cancelled()

    async def _run_async(self, invocation: Invocation) -> Outcome:
        meter, started, peak_before = _CpuMeter(), time.time(), self._peak.recent()
        status, error, value, failure = Status.OK, "", None, Failure()
        with running(_context(invocation)):
            coro = invocation.job.fn(*invocation.args, **invocation.kwargs)
            try:  # one timer, no second task per job (``wait_for`` on 3.11 makes both)
                async with asyncio.timeout(invocation.settings.timeout_s):
                    returned = await _metered(coro, meter)
                status, error, value = settle_return(invocation.job, returned)
                failure = FINAL if status is Status.FAILED else failure
            except TimeoutError:
                status, error = Status.TIMEOUT, f"timed out after {invocation.settings.timeout_s} s"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                status, error = Status.FAILED, format_error(exc)
                failure = failure_of(invocation.job, exc)
        return Outcome(
            status,
            started,
            time.time(),
            meter.cpu_s,
            job_memory_mb(self._peak.fresh(), peak_before),
            error,
            where="event-loop",
            result=value,
            failure=failure,
        )

    def _run_sync(self, invocation: Invocation) -> Outcome:
        started, cpu_before, peak_before = time.time(), time.thread_time(), self._peak.recent()
        status, error, value, failure = Status.OK, "", None, Failure()
        context = _context(invocation)
        with running(context):
            try:
                returned = invocation.job.fn(*invocation.args, **invocation.kwargs)
                status, error, value = settle_return(invocation.job, returned)
                failure = FINAL if status is Status.FAILED else failure
            except Exception as exc:
                status, error = Status.FAILED, format_error(exc)
                failure = failure_of(invocation.job, exc)
        if context.cancelled:  # it saw current_job().cancelled (or ended anyway): not retried
            status, error, value = Status.CANCELLED, "cancelled while it ran", None
        finished = time.time()
        if over_timeout(finished - started, invocation.settings.timeout_s):
            log.warning(
                "inline job %s (%s) ran %.1f s, past its timeout_s %.1f s; inline sync "
                "jobs cannot be stopped, route it to the pool to enforce timeouts",
                invocation.job_id,
                invocation.job.name,
                finished - started,
                invocation.settings.timeout_s,
            )
        return Outcome(
            status,
            started,
            finished,
            time.thread_time() - cpu_before,
            job_memory_mb(self._peak.fresh(), peak_before),
            error,
            where=threading.current_thread().name,
            result=value,
            failure=failure,
        )

    def maintain(self, waiting: int, now_s: float) -> None:
        """Give freed memory back (``kqueue.tiers.heap``), at most every few seconds."""
        self.heap.maybe(now_s)

    async def stop(self, grace_s: float) -> None:
        self._threads.stop()

    def status(self) -> dict[str, Any]:
        return {
            "running": self._running,
            "capacity": self.capacity(),
            "threads": len(self._threads),
        }
