"""The code that runs inside a pool or isolated process: look a job up by name, run it, measure it.

The parent forks after it imported the app, so a child finds the job in ``app.jobs`` by its
registered name; nothing is pickled but plain data. Requests and results are JSON over a pipe::

    request: {"name": str, "args": [...], "kwargs": {...}, "max_memory_mb": float}
    request: {..., "job_id": str, "attempt": int}  (for ``kqueue.current_job()``)
    result:  {"status": "ok"|"failed"|"memory", "error": str, "result": JSON text | null,
              "retryable": bool, "retry_delay_s": float | null, "started_at": float,
              "finished_at": float, "cpu_s": float, "memory_mb": float, "rss_mb": float}

``memory_mb`` is the job's memory (``kqueue.policy.memory.job_memory_mb``): the process's peak
resident memory while the job ran (the peak is reset at job start on Linux) less what the process
held when fresh, before its first job (the interpreter the twin counts as the process's own);
``rss_mb`` is what the process holds after the job (for recycling).
The job's memory limit is a soft ``RLIMIT_AS`` of the process's virtual size at job start plus
``max_memory_mb``: going past it raises ``MemoryError`` inside the job, reported as ``memory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import resource
import signal
import time
import traceback
from typing import Any

from kqueue.api.context import CurrentJob, running
from kqueue.policy.memory import job_memory_mb
from kqueue.policy.retry import Failure
from kqueue.policy.status import Status
from kqueue.policy.trim import POOL_IDLE_S
from kqueue.tiers import heap
from kqueue.tiers.base import FINAL, failure_of, settle_return
from kqueue.tiers.cgroup import CgroupEntry
from kqueue.tiers.inherit import release_backend
from kqueue.tiers.procs import die_with_parent, own_memory_mb, peak_rss_mb, reset_peak_rss

#: Sent by the parent to ask a pool process to exit after its current job.
STOP = b"stop"
#: Exit code of a child that hit its memory limit outside the job (e.g. while reporting).
MEMORY_EXIT_CODE = 75
_MB = 1024 * 1024


def encode(document: dict[str, Any]) -> bytes:
    """A request or result as JSON bytes."""
    return json.dumps(document, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    """A request or result from JSON bytes."""
    return json.loads(data)


def request_for(
    name: str,
    args: list,
    kwargs: dict,
    max_memory_mb: float,
    *,
    hard: bool = False,
    job_id: str = "",
    attempt: int = 1,
) -> dict[str, Any]:
    """The request that runs job ``name`` with a memory limit in MB (``hard``: for good)."""
    return {
        "name": name,
        "args": args,
        "kwargs": kwargs,
        "max_memory_mb": max_memory_mb,
        "hard_limit": hard,
        "job_id": job_id,
        "attempt": attempt,
    }


def prepare(app: Any, parent_pid: int) -> None:
    """First steps in a fresh child: die with the parent, own signals, no parent connections.

    SIGINT and SIGTERM are ignored: a Ctrl-C or a service manager signalling the whole process
    group must not cut jobs short; the worker decides (grace period, then SIGKILL). The
    event loop's wakeup fd belongs to the parent. The parent's backend connection must not be
    used across fork, so a backend opened from a URL is dropped and reopens on first use.
    """
    die_with_parent(parent_pid)
    with contextlib.suppress(ValueError):  # only the main thread may do this
        signal.set_wakeup_fd(-1)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if getattr(app, "backend_url", None):
        release_backend(app)  # our copies of its sockets, closed without a word to the server
        app._backend = None
    gc.freeze()  # keep the collector off inherited objects: fewer copy-on-write pages


def serve(conn: Any, app: Any, parent_pid: int) -> None:
    """A pool process: run requests from ``conn`` one by one until ``STOP`` or end of pipe.

    After a job that grew its memory, the process gives the freed part back once it has waited
    ``POOL_IDLE_S`` for the next request, or at once when it has not done so for
    ``POOL_BUSY_TRIM_S`` (``kqueue.policy.trim``): between jobs that come one after another
    at most that often.
    """
    prepare(app, parent_pid)
    base_rss_mb = own_memory_mb()[1]  # fresh: what every job's memory is counted above
    kept = heap.PoolHeap(base_rss_mb)
    while True:
        try:
            if kept.overdue(time.monotonic()) or (kept.due and not conn.poll(POOL_IDLE_S)):
                kept.trim(_resident_mb)
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if data == STOP:
            return
        request = decode(data)
        if request.get("once"):  # an isolated job from a zygote: one job, then exit
            _run_isolated(conn, app, request, CgroupEntry.from_message(request.get("cgroup")))
            return
        result = run_job(app, request, base_rss_mb)
        _reply(conn, result)
        kept.after_job(result["rss_mb"])


def _resident_mb() -> float:
    return own_memory_mb()[1]


def run_once(
    conn: Any,
    app: Any,
    parent_pid: int,
    request: dict[str, Any],
    entry: Any = None,
    max_memory_mb: float | None = None,
) -> None:
    """An isolated process: enter its memory cgroup (``entry``, a ``CgroupEntry``, when the
    worker has cgroups), run one request, report, exit. When it cannot enter its group, its job
    runs under the hard ``RLIMIT_AS`` of ``max_memory_mb`` instead."""
    prepare(app, parent_pid)
    _run_isolated(conn, app, {**request, "fallback_max_memory_mb": max_memory_mb}, entry)


def _run_isolated(conn: Any, app: Any, request: dict[str, Any], entry: Any) -> None:
    """Enter the cgroup (else the hard ``RLIMIT_AS`` of ``fallback_max_memory_mb``), run the
    request, report."""
    if entry is not None and not entry.enter():
        request = {**request, "max_memory_mb": request.get("fallback_max_memory_mb")}
    _reply(conn, run_job(app, request, own_memory_mb()[1]))


def _reply(conn: Any, result: dict[str, Any]) -> None:
    try:
        conn.send_bytes(encode(result))
    except MemoryError:
        os._exit(MEMORY_EXIT_CODE)


def run_job(app: Any, request: dict[str, Any], base_rss_mb: float | None = None) -> dict[str, Any]:
    """Run one request's job in this process and measure it; never raises for the job's failure.

    ``base_rss_mb`` is the process's resident memory when it was fresh (default: now); the job's
    ``memory_mb`` is its peak above that (``kqueue.policy.memory.job_memory_mb``).
    """
    job = app.jobs[request["name"]]
    reset_peak_rss()
    start_rss_mb = own_memory_mb()[1] if base_rss_mb is None else base_rss_mb
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    status, error, value, failure = Status.OK, "", None, Failure()
    context = CurrentJob(request.get("job_id", ""), job.name, request.get("attempt", 1))
    try:
        with (
            running(context),
            memory_limit(request.get("max_memory_mb"), hard=request.get("hard_limit", False)),
        ):
            result = job.fn(*request["args"], **request["kwargs"])
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            status, error, value = settle_return(job, result)
            failure = FINAL if status is Status.FAILED else failure
    except MemoryError:
        status = Status.MEMORY
        error = f"MemoryError past max_memory_mb={request.get('max_memory_mb')}"
    except BaseException as exc:  # noqa: BLE001 - a job's SystemExit is its failure too
        status, error = Status.FAILED, "".join(traceback.format_exception(exc)).rstrip()
        failure = failure_of(job, exc)
    finished = time.time()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {
        "status": status.value,
        "error": error,
        "result": value,
        "retryable": failure.retryable,
        "retry_delay_s": failure.requested_delay_s,
        "started_at": started,
        "finished_at": finished,
        "cpu_s": cpu_s,
        "memory_mb": job_memory_mb(peak_rss_mb(after), start_rss_mb),
        "rss_mb": own_memory_mb()[1],
    }


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


@contextlib.contextmanager
def memory_limit(max_memory_mb: float | None, *, hard: bool = False):
    """Limit this process's address space to its size now plus ``max_memory_mb`` for the block.

    ``RLIMIT_AS`` counts virtual memory, so the limit is relative to the virtual size at entry:
    the job may grow by ``max_memory_mb`` MB of address space. A soft limit (pool processes) is
    restored after the block; ``hard`` (isolated processes, used once) also lowers the hard
    limit, so the job cannot raise it again.
    """
    if not max_memory_mb:
        yield
        return
    soft, hard_limit = resource.getrlimit(resource.RLIMIT_AS)
    vms_mb, _ = own_memory_mb()
    limit = int((vms_mb + max_memory_mb) * _MB)
    if hard_limit != resource.RLIM_INFINITY:
        limit = min(limit, hard_limit)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit if hard else hard_limit))
    try:
        yield
    finally:
        if not hard:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard_limit))
