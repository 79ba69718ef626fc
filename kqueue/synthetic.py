"""The built-in synthetic job: reproduces one trace row's duration, CPU work and memory for real.

``kqueue replay`` registers it once per job class of a trace, so the live run routes and learns
per class exactly as production would, and the live trace keeps the trace's class names.
"""

from __future__ import annotations

import time

PAGE_BYTES = 4096


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
    """Hold ``memory_mb`` MB, compute for ``cpu_s`` CPU seconds, then wait out ``duration_s``.

    The CPU part runs first, then the job sleeps for whatever remains of ``duration_s`` (its I/O
    wait). On a busy host the CPU part takes longer than ``cpu_s`` of wall time, and the job
    then runs past ``duration_s``: that stretch is what the simulator's processor sharing
    predicts. Returns the wall time the job took, seconds.
    """
    started = time.perf_counter()
    block = touch_memory(memory_mb) if memory_mb > 0 else None
    burn_cpu(min(cpu_s, duration_s) if duration_s > 0 else cpu_s)
    remaining_s = duration_s - (time.perf_counter() - started)
    if remaining_s > 0:
        time.sleep(remaining_s)
    del block
    return time.perf_counter() - started


def register_classes(app, job_classes) -> None:
    """Register ``synthetic`` on ``app`` under each job class name (idempotent)."""
    for name in job_classes:
        if name not in app.jobs:
            app.job(name=str(name))(synthetic)
