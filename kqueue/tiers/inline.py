"""The inline tier: jobs run inside the worker process.

Async jobs run as tasks on the worker's event loop; sync jobs run on a bounded thread pool. At most
``max_concurrent_inline`` run at once, together. An async job past its ``timeout_s`` is cancelled
(status ``timeout``); a sync job cannot be stopped from outside its thread, so it is left to finish
and its lateness is logged. CPU time is measured per thread (sync) or per task step (async);
memory is the growth of the worker's peak resident memory while the job ran.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kqueue.policy.config import Tier
from kqueue.policy.trace import Status
from kqueue.tiers.base import Invocation, Outcome, TierRunner, format_error

log = logging.getLogger("kqueue.inline")

_RSS_UNIT_MB = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT_MB


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


async def _drive(coro, meter: _CpuMeter) -> Any:
    return await _metered(coro, meter)


class InlineRunner(TierRunner):
    """Runs jobs in the worker process, at most ``max_concurrent_inline`` at once."""

    tier = Tier.INLINE

    def __init__(self, app, config):
        super().__init__(app, config)
        self._running = 0
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_concurrent_inline, thread_name_prefix="kqueue-inline"
        )

    def capacity(self) -> int:
        return self.config.max_concurrent_inline

    def running(self) -> int:
        return self._running

    async def run(self, invocation: Invocation) -> Outcome:
        self._running += 1
        try:
            if invocation.job.is_async:
                return await self._run_async(invocation)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._run_sync, invocation)
        finally:
            self._running -= 1

    async def _run_async(self, invocation: Invocation) -> Outcome:
        meter, started, peak_before = _CpuMeter(), time.time(), peak_rss_mb()
        coro = invocation.job.fn(*invocation.args, **invocation.kwargs)
        status, error = Status.OK, ""
        try:
            await asyncio.wait_for(_drive(coro, meter), invocation.settings.timeout_s)
        except TimeoutError:
            status, error = Status.TIMEOUT, f"timed out after {invocation.settings.timeout_s} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status, error = Status.FAILED, format_error(exc)
        return Outcome(
            status,
            started,
            time.time(),
            meter.cpu_s,
            max(0.0, peak_rss_mb() - peak_before),
            error,
            where="event-loop",
        )

    def _run_sync(self, invocation: Invocation) -> Outcome:
        started, cpu_before, peak_before = time.time(), time.thread_time(), peak_rss_mb()
        status, error = Status.OK, ""
        try:
            invocation.job.fn(*invocation.args, **invocation.kwargs)
        except Exception as exc:
            status, error = Status.FAILED, format_error(exc)
        finished = time.time()
        if finished - started > invocation.settings.timeout_s:
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
            max(0.0, peak_rss_mb() - peak_before),
            error,
            where=threading.current_thread().name,
        )

    async def stop(self, grace_s: float) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        return {
            "running": self._running,
            "capacity": self.capacity(),
            "threads": len(self._executor._threads),
        }
