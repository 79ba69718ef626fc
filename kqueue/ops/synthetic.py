"""The built-in synthetic job: reproduces one trace row's duration, CPU work and memory for real.

``kqueue replay`` registers it once per job class of a trace, so the live run routes and learns
per class exactly as production would, and the live trace keeps the trace's class names.
"""

from __future__ import annotations

import time

PAGE_BYTES = 4096
#: The share of the CPU time touching a block took that is kept for freeing it. Freeing costs
#: about 0.12 of it on an idle host (glibc unmapping a block of its own: 9.6 ms against 82 ms for
#: 150 MB, 1.1 against 11.8 ms for 20 MB) and up to 0.25 on a busy 2-core one (the page-table
#: work stretches more than the touching); whatever the free leaves unused is computed after it,
#: so keeping more than it needs costs only an earlier release, never a longer job.
FREE_PER_TOUCH_CPU = 0.5


def burn_cpu(cpu_s: float) -> None:
    """Busy-compute until this thread has used ``cpu_s`` seconds of CPU time."""
    if cpu_s <= 0:
        return
    deadline = time.thread_time() + cpu_s
    while time.thread_time() < deadline:
        sum(i * i for i in range(2000))  # short steps, so the deadline is met closely


def touch_memory(memory_mb: float) -> bytearray:
    """Allocate ``memory_mb`` MB and write to every page, so it is resident, not just reserved."""
    block = bytearray(int(memory_mb * 1024 * 1024))
    for offset in range(0, len(block), PAGE_BYTES):
        block[offset] = 1
    return block


def synthetic(duration_s: float, cpu_s: float = 0.0, memory_mb: float = 0.0) -> float:
    """Hold ``memory_mb`` MB, wait out the off-CPU part of ``duration_s``, then compute ``cpu_s``.

    The job's life matches the simulator's (``sim.model.tiers``): its memory is held from start to
    end, then it spends ``duration_s - cpu_s`` off the CPU (its I/O wait: a fixed time, not
    stretched by a busy host), then ``cpu_s`` seconds of CPU time, of which touching the memory
    is the first part and giving it back the last: the block is freed just before the CPU
    budget runs out, with ``FREE_PER_TOUCH_CPU`` of its touch cost left for it, and whatever the
    free did not use is computed after it. So the job's time includes its memory's release, as
    a real job's does, and still matches its row (freeing 150 MB takes about 10 ms). On an idle
    core it takes ``duration_s``; on a busy host only the CPU part stretches, which is what the
    simulator's processor sharing predicts. ``cpu_s`` above ``duration_s`` is capped at
    ``duration_s``, as in the simulator. Returns the wall time taken, seconds.
    """
    started = time.perf_counter()
    cpu_s = max(0.0, min(cpu_s, duration_s))
    cpu_began = time.thread_time()
    block = touch_memory(memory_mb) if memory_mb > 0 else None
    touch_cpu_s = time.thread_time() - cpu_began
    off_cpu_s = duration_s - cpu_s
    if off_cpu_s > 0:
        time.sleep(off_cpu_s)
    if block is not None:
        free_s = FREE_PER_TOUCH_CPU * touch_cpu_s
        burn_cpu(cpu_s - touch_cpu_s - free_s)
        del block
    burn_cpu(cpu_s - (time.thread_time() - cpu_began))
    return time.perf_counter() - started


def app_source(job_classes) -> str:
    """Python source of an app module whose ``app`` runs ``synthetic`` under each job class.

    ``kqueue replay`` writes it for its ``kqueue run`` worker, which imports it by name as it
    imports any app (``--app module:app``); the names are written as string literals.
    """
    names = sorted({str(name) for name in job_classes})
    return (
        '"""Jobs of a replayed trace: kqueue\'s synthetic job under each job class."""\n\n'
        "from kqueue.job import App\n"
        "from kqueue.ops.synthetic import register_classes\n\n"
        "app = App()\n"
        f"register_classes(app, {names!r})\n"
    )


def register_classes(app, job_classes) -> None:
    """Register ``synthetic`` on ``app`` under each job class name (idempotent)."""
    for name in job_classes:
        if name not in app.jobs:
            app.job(name=str(name))(synthetic)
