"""Re-run a trace for real: dispatch its jobs at their recorded times to a live worker.

Each row becomes a call of the synthetic job (``kqueue.synthetic``) registered under the row's
job class, with the row's ``duration_s``, ``cpu_s`` and ``memory_mb``. A dispatcher thread
enqueues the rows on time while the worker runs on the main thread; a sampler thread records
the memory (PSS) of the worker and all its child processes. The run ends when every job has
finished. The live trace it writes is what ``experiments/sim_vs_real.py`` compares with the
simulator's prediction.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field

from kqueue.job import App, encode_message, new_job_id
from kqueue.policy.config import Config
from kqueue.policy.units import rescale_arrivals
from kqueue.synthetic import register_classes
from kqueue.tiers.procs import family_pss_mb
from kqueue.worker import Worker, WorkerSummary

log = logging.getLogger("kqueue.replay")

MEMORY_SAMPLE_INTERVAL_S = 0.25


@dataclass
class ReplayResult:
    """What one replay did."""

    jobs: int
    elapsed_s: float
    summary: WorkerSummary
    #: ``(seconds since start, PSS of worker + children in MB)`` samples.
    memory: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_memory_mb(self) -> float:
        """The highest sampled total PSS, MB."""
        return max((mb for _, mb in self.memory), default=math.nan)


def _calls(frame, rate_per_s: float | None) -> list[tuple[float, str, tuple]]:
    """``(offset_s, job_class, args)`` per row, in arrival order."""
    frame = frame.sort_values("submitted_at", kind="stable")
    submitted = frame["submitted_at"].tolist()
    if rate_per_s is not None:
        offsets = rescale_arrivals(submitted, rate_per_s)
    else:
        offsets = [t - submitted[0] for t in submitted]
    cpu = frame["cpu_s"].fillna(0.0).tolist()
    memory = frame["memory_mb"].fillna(0.0).tolist()
    return [
        (offset, str(name), (float(duration), float(c), float(m)))
        for offset, name, duration, c, m in zip(
            offsets, frame["job_class"], frame["duration_s"], cpu, memory, strict=True
        )
    ]


def _dispatch(app: App, queue: str, calls, started: float, stop: threading.Event) -> None:
    """Enqueue each call at ``started + offset`` (all calls due together in one batch)."""
    backend, index = app.backend, 0
    while index < len(calls) and not stop.is_set():
        delay_s = started + calls[index][0] - time.monotonic()
        if delay_s > 0:
            stop.wait(min(delay_s, 0.5))
            continue
        now_mono, now = time.monotonic(), time.time()
        batch = []
        while index < len(calls) and started + calls[index][0] <= now_mono:
            _, name, args = calls[index]
            batch.append((new_job_id(), encode_message(name, args, {}, now)))
            index += 1
        backend.enqueue_many(queue, batch)


def _sample(samples: list, started: float, stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append((time.monotonic() - started, family_pss_mb(os.getpid())))
        stop.wait(MEMORY_SAMPLE_INTERVAL_S)


def replay(
    frame,
    app: App,
    config: Config,
    *,
    rate_per_s: float | None = None,
    trace_out: str | None = None,
    force_inline: bool = False,
) -> ReplayResult:
    """Run a trace's jobs for real through one worker; returns when every job has finished.

    Args:
        frame: a trace as read by ``kqueue.policy.trace.read_trace``.
        app: the app whose backend the jobs go to; the synthetic job is registered on it.
        config: the worker's settings.
        rate_per_s: rescale arrivals to this mean rate (jobs/s); ``None`` keeps recorded times.
        trace_out: CSV the live trace rows are appended to.
        force_inline: run every job inline (``--inline``).
    """
    calls = _calls(frame, rate_per_s)
    register_classes(app, {name for _, name, _ in calls})
    worker = Worker(
        app, config, queues=(app.queue,), trace_out=trace_out, force_inline=force_inline
    )
    stop, samples = threading.Event(), []
    started = time.monotonic()
    dispatcher = threading.Thread(
        target=_run_dispatch,
        name="kqueue-replay-dispatch",
        args=(app, calls, started, stop, worker),
        daemon=True,
    )
    sampler = threading.Thread(
        target=_sample, name="kqueue-replay-memory", args=(samples, started, stop), daemon=True
    )
    dispatcher.start()
    sampler.start()
    try:
        summary = asyncio.run(worker.run())
    finally:
        stop.set()
        dispatcher.join(timeout=5)
        sampler.join(timeout=5)
    return ReplayResult(len(calls), time.monotonic() - started, summary, samples)


def _run_dispatch(app, calls, started, stop, worker: Worker) -> None:
    try:
        _dispatch(app, app.queue, calls, started, stop)
    except Exception:
        log.exception("replay dispatcher failed; stopping the worker")
        worker.request_stop()
        return
    worker.drain()
