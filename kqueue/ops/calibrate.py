"""Measure this host's constants for the simulator by running the real runtime briefly.

``kqueue calibrate`` measures a ``kqueue.policy.HostProfile`` and writes it as a host file (TOML);
``kqueue simulate --host`` and ``kqueue tune --host`` read it. What is measured:

- ``cores``: the CPUs this process may run on.
- ``cpu_share``: the fraction of those cores the worker's processes get together now (a shared
  host's other sessions take the rest): the CPU rate of one busy process per core.
- ``fetch_s``: one lease round trip to the backend (median).
- ``<tier>_dispatch_s``: what a one-slot tier spends between one job's end and the next job's
  start (median over consecutive no-op jobs through a real worker): the worker's hand-off cost.
  The pool's no-op is declared long, so it is not pipelined (``POOL_HANDOFF_ESTIMATE_S``).
  For the isolated tier the fork is measured apart (``spawn_s``) and taken out.
- ``spawn_s``: starting an isolated process until it reports ready (median): asked of a zygote,
  as the isolated tier does (``kqueue.policy.fork.ISOLATED_FORKS_FROM_ZYGOTE``).
- ``worker_mb``, ``pool_process_mb``, ``isolated_process_mb``, ``zygote_mb``: PSS of the worker,
  of an idle pool process, of an isolated process running a job, and of the pool's zygote (what
  each adds to the tree's total), with the app imported: measured on a ``kqueue run`` process
  of its own, as ``kqueue replay`` and production run one.
- ``retained_job_mb``: the largest block a process keeps after freeing it (the allocator's heap),
  so the simulator knows which jobs leave their memory with their process.
- ``gives_back_memory``: whether a forked process that kept such a block gives it back when it
  trims its heap as an idle pool process does (``kqueue.tiers.heap``; glibc only).
- ``fault_cpu_s_per_mb``: the CPU time a forked process spends making a fresh block resident
  (writing every page) and giving it back, per MB (median of a few blocks).

The profile is one record of the pure policy, written here and read by the simulator, so the
runtime never imports the simulator and the two cannot disagree on the file.
"""

from __future__ import annotations

import asyncio
import csv
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import multiprocess

from kqueue.job import App, encode_message, new_job_id
from kqueue.ops.synthetic import burn_cpu, touch_memory
from kqueue.ops.worker_process import WorkerProcess, write_app_module
from kqueue.policy.config import Config, Tier
from kqueue.policy.fork import ISOLATED_FORKS_FROM_ZYGOTE
from kqueue.policy.host import HostProfile
from kqueue.tiers import heap
from kqueue.tiers.pool import PIPELINE_MAX_ESTIMATE_S
from kqueue.tiers.procs import family_pss_mb, own_memory_mb, workers_children
from kqueue.tiers.zygote import Zygote
from kqueue.worker import Worker
from kqueue.worker.gil import worker_switch_interval

QUEUE = "kqueue-calibrate"
#: The pool's no-op job is declared this long, so the pool hands each one over after the last
#: one's result, as it does every job too long to pipeline (the simulator has no pipelining, and
#: the pool jobs whose waits matter are long: a pipelined hand-off costs ~0.05 ms, this ~0.6 ms).
POOL_HANDOFF_ESTIMATE_S = 2 * PIPELINE_MAX_ESTIMATE_S


def _noop() -> None:
    """A job that does nothing: what is left is the runtime's own cost."""


def _hold(seconds: float) -> None:
    """A job that waits, so its process can be measured while it runs."""
    time.sleep(seconds)


def calibration_app(backend_url: str | None, base: App | None = None) -> App:
    """An app with the calibration jobs (one per tier), on top of the user's app if given.

    ``backend_url`` ``None`` keeps ``base``'s backend (or the default one): the memory worker
    gets its backend on the command line.
    """
    if base is None:
        app = App(backend_url)
    else:
        app = base.with_backend(backend_url) if backend_url is not None else base
    app.queue = QUEUE
    for tier in (Tier.INLINE, Tier.POOL, Tier.ISOLATED):
        estimate_s = POOL_HANDOFF_ESTIMATE_S if tier is Tier.POOL else None
        app.job(
            name=f"kqueue.ops.calibrate.noop_{tier.value}",
            tier=tier,
            queue=QUEUE,
            estimated_duration_s=estimate_s,
        )(_noop)
    app.job(name="kqueue.ops.calibrate.hold", tier=Tier.ISOLATED, queue=QUEUE)(_hold)
    app.job(name="kqueue.ops.calibrate.hold_pool", tier=Tier.POOL, queue=QUEUE)(_hold)
    app.job(name="kqueue.ops.calibrate.burn_inline", tier=Tier.INLINE, queue=QUEUE)(burn_cpu)
    return app


def measure_fetch_s(app: App, rounds: int = 30) -> float:
    """Median time of one ``lease`` round trip that returns a job."""
    backend, timings = app.backend, []
    body = encode_message("kqueue.ops.calibrate.noop_inline", (), {}, time.time())
    for _ in range(rounds):
        backend.enqueue(QUEUE, new_job_id(), body)
        began = time.perf_counter()
        leases = backend.lease(QUEUE, "calibrate", 1, 30.0)
        timings.append(time.perf_counter() - began)
        backend.ack(leases)
    return statistics.median(timings)


def measure_spawn_s(rounds: int = 10) -> float:
    """Median time to start an isolated process until it reports that it runs: asked of a
    zygote, as the isolated tier forks them (``ISOLATED_FORKS_FROM_ZYGOTE``), else forked from
    here."""
    if not ISOLATED_FORKS_FROM_ZYGOTE:
        return _median_fork_s(rounds)
    zygote, timings = Zygote(None, _zygote_child_ready), []
    try:
        for _ in range(rounds):
            began = time.perf_counter()
            pid, conn, pidfd = zygote.spawn()
            conn.recv_bytes()
            timings.append(time.perf_counter() - began)
            conn.close()
            if pidfd is not None:
                os.close(pidfd)
            zygote.exit_code(pid, timeout_s=5.0)
    finally:
        zygote.close()
    return statistics.median(timings)


def _median_fork_s(rounds: int) -> float:
    """Median time to fork a process from here until it reports that it runs."""
    context, timings = multiprocess.get_context("fork"), []
    for _ in range(rounds):
        receiver, sender = context.Pipe(duplex=False)
        began = time.perf_counter()
        process = context.Process(target=_report_ready, args=(sender,))
        process.start()
        receiver.recv()
        timings.append(time.perf_counter() - began)
        process.join()
        receiver.close()
        sender.close()
    return statistics.median(timings)


def _report_ready(sender) -> None:
    sender.send(True)


def _zygote_child_ready(conn, app, zygote_pid) -> None:
    conn.send_bytes(b"ready")


#: How long each busy process runs in ``measure_cpu_share``, seconds.
CPU_PROBE_S = 1.0


def measure_cpu_share(cores: int, probe_s: float = CPU_PROBE_S) -> float:
    """The fraction of ``cores`` that this process's children get together now (1 when idle).

    Runs one busy process per core for ``probe_s`` and adds up the CPU time they got per second
    of wall time. On a host shared with other sessions the scheduler divides the CPU between
    sessions (autogroup, cgroups), so this is what the worker's jobs can use between them,
    however many they are.
    """
    context = multiprocess.get_context("fork")
    pipes = [context.Pipe(duplex=False) for _ in range(cores)]
    processes = [context.Process(target=_busy_rate, args=(sender, probe_s)) for _, sender in pipes]
    for process in processes:
        process.start()
    rates = [receiver.recv() for receiver, _ in pipes]
    for process in processes:
        process.join()
    for receiver, sender in pipes:
        receiver.close()
        sender.close()
    return min(1.0, max(0.01, sum(rates) / cores))


def _busy_rate(sender, probe_s: float) -> None:
    began, cpu_began = time.perf_counter(), time.process_time()
    while time.perf_counter() - began < probe_s:
        sum(i * i for i in range(2000))
    sender.send((time.process_time() - cpu_began) / (time.perf_counter() - began))


#: Job sizes tried by ``measure_retained_mb``, MB.
RETAINED_SIZES_MB = (1, 2, 4, 8, 16, 24, 31, 40, 64)


def measure_retained_mb(sizes_mb=RETAINED_SIZES_MB) -> float:
    """The largest job memory a process forked from here keeps after the job frees it, MB.

    For each size a fresh child allocates and touches a block twice, freeing it each time (the
    first free teaches glibc's dynamic mmap threshold the size), then reports how much its
    resident memory grew. A block the allocator keeps raises it by about the block; one given
    back to the OS (above the mmap threshold's cap, 32 MB on 64-bit glibc) does not. Returns
    the largest size kept, 0 if none.
    """
    kept = 0.0
    for size_mb in sizes_mb:
        if forked_result(_allocate_twice, size_mb) >= size_mb / 2:
            kept = float(size_mb)
    return kept


def forked_result(target, *args):
    """What ``target(sender, *args)``, run in a process forked from here, sends (once)."""
    context = multiprocess.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(sender, *args))
    process.start()
    try:
        return receiver.recv()
    finally:
        process.join()
        receiver.close()
        sender.close()


def _allocate_twice(sender, size_mb: float, then_trim: bool = False) -> None:
    """Send how much this process grew by keeping two freed blocks; or, ``then_trim``, how much
    of that a trim gave back, MB."""
    before_mb = own_memory_mb()[1]
    for _ in range(2):
        block = touch_memory(size_mb)
        del block
    kept_mb = own_memory_mb()[1]
    if not then_trim:
        sender.send(kept_mb - before_mb)
        return
    heap.trim()
    sender.send(kept_mb - own_memory_mb()[1])


def measure_gives_back(size_mb: float = 16.0) -> bool:
    """True when a process forked from here gives a kept block of ``size_mb`` back on a trim.

    A fresh child allocates and frees the block twice (so the allocator keeps it, as in
    ``measure_retained_mb``), trims as an idle pool process does, and reports how much of its
    growth went away. False off glibc, where ``kqueue.tiers.heap.trim`` does nothing.
    """
    return forked_result(_allocate_twice, size_mb, True) >= size_mb / 2


#: Size of each fresh block ``measure_fault_cpu_s_per_mb`` touches (above glibc's 32 MB mmap
#: threshold cap, so every one is a new mapping), MB, and how many.
FAULT_BLOCK_MB, FAULT_BLOCKS = 64.0, 5


def measure_fault_cpu_s_per_mb(size_mb: float = FAULT_BLOCK_MB, blocks: int = FAULT_BLOCKS):
    """CPU seconds per MB a process forked from here spends to touch a fresh block of
    ``size_mb`` and free it (the median over ``blocks`` blocks): what a job pays for memory its
    process does not already hold, whatever CPU work it does besides."""
    return forked_result(_fault_cpu_s_per_mb, size_mb, blocks)


def _fault_cpu_s_per_mb(sender, size_mb: float, blocks: int) -> None:
    per_mb = []
    for _ in range(blocks):
        began = time.thread_time()
        block = touch_memory(size_mb)
        del block
        per_mb.append((time.thread_time() - began) / size_mb)
    sender.send(statistics.median(per_mb))


def measure_handoff_s(app: App, tier: Tier, jobs: int, workdir: Path) -> float:
    """Median gap between consecutive no-op jobs on a one-slot ``tier`` of a real worker."""
    noop = encode_message(f"kqueue.ops.calibrate.noop_{tier.value}", (), {}, time.time())
    config = Config(
        pool_size=1,
        pool_max_size=1,
        max_concurrent_inline=1,
        max_concurrent_isolated=1,
        poll_interval_s=0.05,
    )
    rows = _burst(app, [noop] * jobs, config, workdir / f"{tier.value}.csv")
    gap_s = _median_gap_s(rows)
    return max(0.0, gap_s) if gap_s is not None else 0.0


def _burst(app: App, messages: list[bytes], config: Config, trace: Path) -> list[dict[str, str]]:
    """Enqueue ``messages`` (each under a new job id), run a burst worker with ``config`` over
    them in this process, and return the rows of its trace."""
    app.backend.enqueue_many(QUEUE, [(new_job_id(), message) for message in messages])
    asyncio.run(Worker(app, config, queues=(QUEUE,), burst=True, trace_out=str(trace)).run())
    with trace.open() as handle:
        return list(csv.DictReader(handle))


def _median_gap_s(rows: list[dict[str, str]]) -> float | None:
    """The median time from one job's end to the next one's start (``None`` under two jobs)."""
    spans = sorted((float(row["started_at"]), float(row["finished_at"])) for row in rows)
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
    return statistics.median(gaps) if gaps else None


#: CPU seconds the inline job computes while the GIL hand-off is timed; no-op jobs timed then.
GIL_BURN_S = 1.0
GIL_NOOPS = 40


def measure_gil_handoff_s(app: App, workdir: Path, handoff_s: float) -> float:
    """What one inline job computing adds to another inline job's hand-over: the median gap
    between consecutive no-op inline jobs while a CPU-bound inline job runs beside them (two
    inline slots), less ``handoff_s``, the gap with the GIL free."""
    now = time.time()
    burn = encode_message("kqueue.ops.calibrate.burn_inline", (GIL_BURN_S,), {}, now)
    noop = encode_message("kqueue.ops.calibrate.noop_inline", (), {}, now)
    config = Config(max_concurrent_inline=2, poll_interval_s=0.05)
    with worker_switch_interval():  # as ``kqueue run`` sets it
        rows = _burst(app, [burn] + [noop] * GIL_NOOPS, config, workdir / "gil.csv")
    burning = [r for r in rows if r["job_class"].endswith("burn_inline")]
    if not burning:
        return 0.0
    began, ended = float(burning[0]["started_at"]), float(burning[0]["finished_at"])
    beside = [
        r
        for r in rows
        if r["job_class"].endswith("noop_inline") and began < float(r["started_at"]) < ended
    ]
    gap_s = _median_gap_s(beside)
    return max(0.0, gap_s - handoff_s) if gap_s is not None else 0.0


#: How long a started worker settles before its memory is read, seconds.
SETTLE_S = 1.0


def memory_app_source(app_spec: str | None) -> str:
    """Source of the app module the memory worker imports: calibration jobs on the user's app."""
    lines = ['"""The app kqueue calibrate measures: calibration jobs on the user\'s app."""', ""]
    lines.append("from kqueue.ops.calibrate import calibration_app")
    base = "None"
    if app_spec is not None:
        module, _, attribute = app_spec.partition(":")
        lines.append(f"from {module} import {attribute} as base")
        base = "base"
    lines += ["", f"app = calibration_app(None, {base})", ""]
    return "\n".join(lines)


def _family_mb(
    app: App, spec: str, folder: Path, pool_size: int, *, with_isolated: bool
) -> tuple[float, float]:
    """Total PSS of a ``kqueue run`` worker and its children at rest, and with one isolated job
    (``pool_size`` 0: no pool tier, so no zygote)."""
    config = Config(pool_size=pool_size, pool_max_size=pool_size, poll_interval_s=0.05)
    with WorkerProcess(spec, app.backend_url, config, folder, queues=(QUEUE,)) as worker:
        worker.start(app.backend)
        _warm_pool(app, pool_size)
        time.sleep(SETTLE_S)
        at_rest_mb, busy_mb = family_pss_mb(worker.pid), math.nan
        if with_isolated:
            app.jobs["kqueue.ops.calibrate.hold"].dispatch(2.0)
            deadline = time.monotonic() + 10
            while _children(worker.pid) <= pool_size and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            busy_mb = family_pss_mb(worker.pid)
    return at_rest_mb, busy_mb


#: Jobs each pool process runs before it is measured; how long each holds its process, seconds.
WARM_JOBS_PER_PROCESS = 2
WARM_HOLD_S = 0.3


def _warm_pool(app: App, pool_size: int) -> None:
    """Have every pool process run jobs (all at once, so each gets some), then wait for the end.

    A pool process that has run a job owns private copies of the worker's pages it touched
    (reference counts, caches); the one that has run nothing yet shares them all.
    """
    hold = app.jobs["kqueue.ops.calibrate.hold_pool"]
    hold.dispatch_many([((WARM_HOLD_S,), {}) for _ in range(pool_size * WARM_JOBS_PER_PROCESS)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = app.backend.counts().get(QUEUE, {})
        if not counts.get("ready") and not counts.get("leased"):
            break
        time.sleep(0.05)


def _children(pid: int) -> int:
    return len(workers_children(pid))  # the pool's processes are the zygote's children


@dataclass(frozen=True)
class ProcessMemory:
    """What each kind of process adds to a worker's tree, MB, as the simulator adds them up."""

    #: The worker process alone (no pool tier, so no zygote).
    worker_mb: float
    #: One more idle pool process that has run a few jobs.
    pool_process_mb: float
    #: One running isolated process.
    isolated_process_mb: float
    #: The pool's zygote, which stands while the worker has a pool tier.
    zygote_mb: float


def measure_memory_mb(app: App, workdir: Path, app_spec: str | None = None) -> ProcessMemory:
    """Each kind of process's memory (``ProcessMemory``) as the simulator adds them up.

    Measured on ``kqueue run`` processes started as an operator starts them (with the app
    ``app_spec`` imported, on ``app``'s backend), not on this process: a worker hosted in a
    bigger process (an experiment with pandas loaded) has a bigger base, and its forked
    children end up owning copies of its pages. PSS splits pages shared after fork between the
    sharers, so no single process's PSS is "its" cost. The simulator's total is
    ``worker_mb + zygote_mb + n * pool_process_mb`` (+ isolated ones) with a pool tier,
    ``worker_mb`` without one, so the constants are fitted to that: the whole family's PSS is
    measured with no pool tier (the worker), and with 1 and 3 pool processes (the slope is one
    more process, the intercept less the worker is the zygote), each process having run a few
    jobs that allocate nothing (one that has run nothing yet still shares pages it will own
    after its first job), and the isolated process is what one running isolated job adds.
    """
    spec = write_app_module(workdir, "kqueue_calibrate_jobs", memory_app_source(app_spec))
    alone, _ = _family_mb(app, spec, workdir, 0, with_isolated=False)
    one, _ = _family_mb(app, spec, workdir, 1, with_isolated=False)
    three, busy = _family_mb(app, spec, workdir, 3, with_isolated=True)
    pool_mb = max(0.0, (three - one) / 2)
    return ProcessMemory(
        worker_mb=alone,
        pool_process_mb=pool_mb,
        isolated_process_mb=max(0.0, busy - three),
        zygote_mb=max(0.0, one - pool_mb - alone),
    )


def calibrate(
    backend_url: str | None = None, app_spec: str | None = None, jobs_per_tier: int = 200
) -> HostProfile:
    """Measure every host constant; takes well under a minute.

    Args:
        backend_url: the backend to measure against (default: a temporary SQLite file).
        app_spec: the user's app (``module:attribute``, importable from the working directory),
            imported first so memory figures include it.
        jobs_per_tier: no-op jobs per tier for the hand-off medians (isolated uses a quarter).

    Raises:
        KQueueError: the app does not import, or a measuring worker failed to start.
    """
    with tempfile.TemporaryDirectory(prefix="kqueue-calibrate-") as folder:
        workdir = Path(folder)
        base = App.from_spec(app_spec) if app_spec is not None else None
        app = calibration_app(backend_url or f"sqlite:///{workdir / 'calibrate.db'}", base)
        spawn_s = measure_spawn_s()
        fetch_s = measure_fetch_s(app)
        inline_s = measure_handoff_s(app, Tier.INLINE, jobs_per_tier, workdir)
        gil_s = measure_gil_handoff_s(app, workdir, inline_s)
        pool_s = measure_handoff_s(app, Tier.POOL, jobs_per_tier, workdir)
        isolated_s = measure_handoff_s(app, Tier.ISOLATED, max(10, jobs_per_tier // 4), workdir)
        memory = measure_memory_mb(app, workdir, app_spec)
        retained_mb = measure_retained_mb()
        gives_back = measure_gives_back()
        fault_s_per_mb = measure_fault_cpu_s_per_mb()
        polls = not app.backend.wakes_on_enqueue
        app.close()
    cores = len(os.sched_getaffinity(0))
    return HostProfile(
        cores=cores,
        cpu_share=measure_cpu_share(cores),
        fetch_s=fetch_s,
        polls=polls,
        inline_dispatch_s=inline_s,
        gil_handoff_s=gil_s,
        pool_dispatch_s=pool_s,
        isolated_dispatch_s=max(0.0, isolated_s - spawn_s),
        spawn_s=spawn_s,
        worker_mb=memory.worker_mb,
        pool_process_mb=memory.pool_process_mb,
        isolated_process_mb=memory.isolated_process_mb,
        zygote_mb=memory.zygote_mb,
        retained_job_mb=retained_mb,
        gives_back_memory=gives_back,
        fault_cpu_s_per_mb=fault_s_per_mb,
    )
