"""Run a trace through the model: the one entry point the CLI and the tuner call.

``simulate(trace, config, host)`` takes a trace DataFrame (as ``kqueue.policy.read_trace``
returns it) or a ``TraceJobs`` prepared once with ``prepare`` (the tuner replays one trace under
thousands of configs, so it prepares once), runs one SimPy environment to the end (every job that
can run finishes) and returns a ``SimResult``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import simpy

from kqueue.policy import Config, HostProfile, validate_trace
from sim.engine.clock import run_all
from sim.model.jobs import POOL, Jobs, TraceJobs
from sim.model.outcome import Outcome
from sim.model.report import SimResult, summarize
from sim.model.rules import host_part
from sim.model.worker import Model, Progress

#: CPU seconds assumed for a row without ``cpu_s``: this fraction of its ``duration_s``
#: (half computing, half waiting on I/O: between a pure I/O job and a pure CPU job).
DEFAULT_CPU_FRACTION = 0.5
#: Memory assumed for a row without ``memory_mb``: a modest Python job's working set, MB.
DEFAULT_MEMORY_MB = 50.0


def prepare(trace: pd.DataFrame, source: str = "<trace>") -> TraceJobs:
    """Validate a trace DataFrame and turn it into ``TraceJobs`` (fill defaults, sort, shift).

    Raises:
        TraceError: as ``kqueue.policy.validate_trace`` (names the line and column).
    """
    frame = validate_trace(trace.copy(), source=source)
    # a job is released when it was due (its delay, or when submitted), as the backend does
    submitted, due = frame["submitted_at"].to_numpy(float), frame["due_at"].to_numpy(float)
    frame["due_at"] = np.where(np.isnan(due), submitted, np.maximum(due, submitted))
    frame = frame.sort_values("due_at", kind="stable").reset_index(drop=True)
    duration = frame["duration_s"].to_numpy(float)
    cpu = frame["cpu_s"].to_numpy(float)
    memory = frame["memory_mb"].to_numpy(float)
    no_cpu, no_memory = np.isnan(cpu), np.isnan(memory)
    cpu = np.where(no_cpu, DEFAULT_CPU_FRACTION * duration, cpu)
    memory = np.where(no_memory, DEFAULT_MEMORY_MB, memory)
    submitted = frame["due_at"].to_numpy(float)  # the model's arrivals: when each is due
    origin = float(submitted[0])
    jobs = Jobs(
        submitted_s=(submitted - origin).tolist(),
        duration_s=duration.tolist(),
        cpu_s=cpu.tolist(),
        memory_mb=memory.tolist(),
        job_class=frame["job_class"].tolist(),
        priority=_recorded_priority(frame),
    )
    return TraceJobs(jobs, origin, frame, int(no_cpu.sum()), int(no_memory.sum()))


def _recorded_priority(frame: pd.DataFrame) -> list[float]:
    """Each row's recorded priority (NaN where it has none), or [] when no row has one."""
    priority = frame["priority"].to_numpy(float)
    return priority.tolist() if np.isfinite(priority).any() else []


def simulate(
    trace: pd.DataFrame | TraceJobs,
    config: Config | None = None,
    host: HostProfile | None = None,
    *,
    force_inline: bool = False,
    progress: Progress | None = None,
) -> SimResult:
    """Replay ``trace`` on one simulated worker and return what happened.

    Args:
        trace: a trace DataFrame (needs ``submitted_at``, ``job_class``, ``duration_s``) or
            ``TraceJobs`` from ``prepare``.
        config: the worker's settings (default ``Config()``).
        host: the host constants (default ``HostProfile()``; ``HostProfile.ideal()`` for a
            textbook queue).
        force_inline: model the worker's ``--inline`` (every job inline).
        progress: called as ``progress(jobs_fetched, jobs_total)`` about every 1% of the jobs.

    Raises:
        TraceError: a bad trace (only when given a DataFrame).
    """
    prepared = trace if isinstance(trace, TraceJobs) else prepare(trace)
    config = config if config is not None else Config()
    host = host if host is not None else HostProfile()
    config = host_part(config, prepared.fleet_part)  # one host's part of the shared limits
    began, began_cpu = time.perf_counter(), time.process_time()
    env = simpy.Environment()
    model = Model(env, prepared.jobs, config, host, force_inline=force_inline, progress=progress)
    run_all(env)
    model.tiers[POOL].finish()
    wall_s, cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
    outcome = Outcome.from_model(model, prepared, config, host, wall_s=wall_s, cpu_s=cpu_s)
    return summarize(outcome)
