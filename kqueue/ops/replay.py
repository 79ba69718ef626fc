"""Re-run a trace for real: dispatch its jobs at their recorded times to a live worker.

Each row becomes a call of the synthetic job (``kqueue.ops.synthetic``) registered under the row's
job class, with the row's ``duration_s``, ``cpu_s`` and ``memory_mb``. The worker is a separate
``kqueue run`` process, started as an operator would start one (``kqueue.ops.worker_process``), so
what is measured is a worker and not this process: this process dispatches the rows on time
while a sampler thread records the memory (PSS) of the worker and all its child processes. The
run ends when every job has finished. The live trace it writes is what
``experiments/sim_vs_real.py`` compares with the simulator's prediction.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kqueue.errors import KQueueError
from kqueue.job import App, encode_message, new_job_id
from kqueue.ops.synthetic import app_source
from kqueue.ops.worker_process import WorkerExit, WorkerProcess, write_app_module
from kqueue.policy.config import Config
from kqueue.policy.units import rescale_arrivals
from kqueue.tiers.procs import family_pss_mb
from kqueue.worker.held import WorkerSummary

log = logging.getLogger("kqueue.ops.replay")

MEMORY_SAMPLE_INTERVAL_S = 0.25
#: The most of one core the memory sampler may use: reading a process's PSS walks its page
#: tables (about 20 ms of CPU for 740 MB), so a big family is sampled less often than every
#: ``MEMORY_SAMPLE_INTERVAL_S`` instead of taking CPU from the jobs it measures.
MEMORY_SAMPLER_CPU_SHARE = 0.1
#: The module the worker imports its jobs from (written into a temporary folder).
APP_MODULE = "kqueue_replay_jobs"


@dataclass
class ReplayResult:
    """What one replay did."""

    jobs: int
    elapsed_s: float
    summary: WorkerSummary
    #: ``(seconds since start, PSS of worker + children in MB)`` samples.
    memory: list[tuple[float, float]] = field(default_factory=list)
    #: CPU time the memory sampler used (it competes with the jobs on the host), seconds.
    sampler_cpu_s: float = 0.0

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


def replay_job_id(position: int) -> str:
    """A fresh job id that starts with ``r<position>-``: the row's place in arrival order.

    The live trace's ``job_id`` then says which row each live job replayed, so the two traces
    can be compared job by job (the simulator names its jobs ``j<position>``).
    """
    return f"r{position}-{new_job_id()}"


def _dispatch(app: App, calls, started: float, running, priority=None) -> None:
    """Enqueue each call at ``started + offset`` (all calls due together in one batch, one
    per priority: ``priority`` maps a job class to its ``[jobs]`` table's priority).

    Raises:
        KQueueError: the worker exited (``running()`` turned false) before the last call.
    """
    index = 0
    while index < len(calls):
        if not running():
            raise KQueueError(f"the worker exited with {len(calls) - index} job(s) not dispatched")
        delay_s = started + calls[index][0] - time.monotonic()
        if delay_s > 0:
            time.sleep(min(delay_s, 0.5))
            continue
        now_mono, now = time.monotonic(), time.time()
        batches: dict[tuple[int, str], list] = {}
        while index < len(calls) and started + calls[index][0] <= now_mono:
            _, name, args = calls[index]
            level = (priority or {}).get(name, 0)
            batches.setdefault((level, name), []).append(
                (replay_job_id(index), encode_message(name, args, {}, now))
            )
            index += 1
        for (level, name), batch in batches.items():
            app.backend.enqueue_many(app.queue, batch, priority=level, job_class=name)


class MemorySampler:
    """A thread that samples the PSS of ``pid`` and its descendants until stopped.

    Samples every ``MEMORY_SAMPLE_INTERVAL_S``, or less often when sampling that often would
    use more than ``cpu_share`` of a core; ``cpu_s`` is the CPU time it used.

    Args:
        pid: the top process of the family.
        started: ``time.monotonic()`` the samples' times count from.
        cpu_share: the most of one core it may use (``MEMORY_SAMPLER_CPU_SHARE``).
    """

    def __init__(self, pid: int, started: float, cpu_share: float = MEMORY_SAMPLER_CPU_SHARE):
        self.pid, self.started, self.cpu_share = pid, started, cpu_share
        self.samples: list[tuple[float, float]] = []
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kqueue-replay-memory", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (at most 5 s)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.thread_time()
            self.samples.append((time.monotonic() - self.started, family_pss_mb(self.pid)))
            cost_s = time.thread_time() - began
            self.cpu_s += cost_s
            self._stop.wait(max(MEMORY_SAMPLE_INTERVAL_S, cost_s / self.cpu_share))


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

    The worker is a ``kqueue run`` process of its own (``kqueue.ops.worker_process``) serving
    ``app``'s backend and queue, with the synthetic job registered under each job class in an
    app module written for it. This process waits until it is ready, dispatches the rows at
    their times, then asks it to drain and waits for it to exit. Memory is the PSS of the
    worker and its children (``MemorySampler``).

    Args:
        frame: a trace as read by ``kqueue.policy.read_trace``.
        app: the app whose backend (given by URL) and queue the jobs go to.
        config: the worker's settings.
        rate_per_s: rescale arrivals to this mean rate (jobs/s); ``None`` keeps recorded times.
        trace_out: CSV the live trace rows are appended to.
        force_inline: run every job inline (``--inline``).

    Raises:
        KQueueError: ``app``'s backend has no URL, or the worker failed to start or exited early.
    """
    if app.backend_url is None:
        raise KQueueError("replay needs a backend URL: the worker runs in its own process")
    calls = _calls(frame, rate_per_s)
    with tempfile.TemporaryDirectory(prefix="kqueue-replay-") as folder:
        spec = write_app_module(Path(folder), APP_MODULE, app_source(c for _, c, _ in calls))
        with WorkerProcess(
            spec,
            app.backend_url,
            config,
            Path(folder),
            queues=(app.queue,),
            trace_out=trace_out,
            force_inline=force_inline,
        ) as worker:
            worker.start(app.backend)
            started = time.monotonic()
            sampler = MemorySampler(worker.pid, started)
            sampler.start()
            try:
                priority = {name: t.priority for name, t in config.jobs.items() if t.priority}
                _dispatch(app, calls, started, worker.running, priority)
                worker.drain()
                finished = worker.wait()
            finally:
                sampler.stop()
    if finished.returncode != 0:
        raise KQueueError(f"the replay's worker exited with code {finished.returncode}")
    elapsed_s = time.monotonic() - started
    return ReplayResult(len(calls), elapsed_s, _summary(finished), sampler.samples, sampler.cpu_s)


def _summary(finished: WorkerExit) -> WorkerSummary:
    report = finished.summary
    return WorkerSummary(
        str(report.get("worker", "")),
        done=int(report.get("done", 0)),
        by_status=dict(report.get("by_status", {})),
        dead_lettered=int(report.get("dead_lettered", 0)),
    )
