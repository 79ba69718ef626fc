"""What a simulation found: per-tier and overall metrics, the simulated trace, JSON and a table.

Stability rule (documented in ``docs/DECISIONS.md``): the backlog (jobs submitted but not yet
started) is measured at the middle and at the end of the arrival window; the run is stable when
every job started and, in every tier, the backlog grew between those two instants by at most
``max(STABLE_GROWTH_FRACTION x the tier's arrivals in the second half, STABLE_GROWTH_JOBS)``.
A queue that keeps up fluctuates around a level; one that cannot keeps growing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kqueue.policy import COLUMNS, Config, HostProfile, Status
from sim.engine.memory import Steps, curve, job_steps
from sim.model.worker import INLINE, ISOLATED, POOL, TIER_NAMES, Model

if TYPE_CHECKING:
    from sim.model.replay import TraceJobs

#: Backlog growth allowed in a stable run, as a fraction of the second half's arrivals ...
STABLE_GROWTH_FRACTION = 0.05
#: ... and at least this many jobs (short traces fluctuate).
STABLE_GROWTH_JOBS = 10


@dataclass(frozen=True)
class Outcome:
    """The raw result of one run: per-job arrays (replay order) and the tiers' counters."""

    prepared: TraceJobs
    config: Config
    host: HostProfile
    submitted_s: np.ndarray
    started_s: np.ndarray
    finished_s: np.ndarray
    slot_s: np.ndarray
    tier: np.ndarray
    estimated_s: np.ndarray
    process: np.ndarray
    memory_mb: np.ndarray
    inline_steps: Steps
    pool_steps: Steps
    pool_alive_process_s: float
    pool_spawns: int
    pool_recycles: int
    pool_peak_size: int
    isolated_spawns: int
    #: Per job: the worker's inline memory its isolated process was forked with (0 otherwise).
    isolated_inherited_mb: np.ndarray
    cpu_busy_core_s: float
    wall_s: float

    @classmethod
    def from_model(cls, model: Model, prepared: TraceJobs, config, host, wall_s: float) -> Outcome:
        """Collect the arrays and counters of a finished ``Model`` run."""
        inline, pool = model.tiers[INLINE], model.tiers[POOL]
        return cls(
            prepared=prepared,
            config=config,
            host=host,
            submitted_s=np.asarray(model.jobs.submitted_s, float),
            started_s=np.asarray(model.started_s, float),
            finished_s=np.asarray(model.finished_s, float),
            slot_s=np.asarray(model.slot_s, float),
            tier=np.asarray(model.tier, np.int8),
            estimated_s=np.asarray(model.estimated_s, float),
            process=np.asarray(model.process, np.int64),
            memory_mb=np.asarray(model.jobs.memory_mb, float),
            inline_steps=inline.memory.steps(),
            pool_steps=pool.memory.steps(),
            pool_alive_process_s=pool.alive_process_s,
            pool_spawns=pool.spawns,
            pool_recycles=pool.recycles,
            pool_peak_size=pool.peak_size,
            isolated_spawns=model.tiers[ISOLATED].spawns,
            isolated_inherited_mb=_per_job(model.tiers[ISOLATED].inherited_mb, len(model.tier)),
            cpu_busy_core_s=model.cpu.busy_core_s,
            wall_s=wall_s,
        )


@dataclass(frozen=True)
class TierStats:
    """One tier's (or all tiers') numbers; times in seconds, memory in MB, ``None`` = no jobs."""

    jobs: int
    throughput_per_min: float
    mean_wait_s: float | None
    p50_wait_s: float | None
    p95_wait_s: float | None
    p99_wait_s: float | None
    max_wait_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    p99_latency_s: float | None
    max_latency_s: float | None
    #: Busy slot-seconds over available slot-seconds (pool: over alive process-seconds).
    utilisation: float | None
    #: Memory this tier held at its peak (pool and isolated processes, or inline jobs).
    peak_memory_mb: float
    peak_memory_at_s: float
    spawns: int = 0
    recycles: int = 0


@dataclass(frozen=True)
class SimResult:
    """What one simulation found: ``to_dict`` / ``to_json`` for tools, ``table`` for people."""

    #: Jobs replayed, finished, and never started (a tier with no capacity).
    jobs: int
    finished: int
    never_started: int
    throughput_per_min: float
    arrival_rate_per_min: float
    #: First submission to last finish, seconds.
    makespan_s: float
    overall: TierStats
    tiers: dict[str, TierStats]
    #: Peak of total memory (worker + pool + isolated + inline jobs) and when, s from trace start.
    peak_memory_mb: float
    peak_memory_at_s: float
    #: CPU core-seconds used over core-seconds available (``None`` with unlimited cores).
    cpu_utilisation: float | None
    pool_peak_processes: int
    stable: bool
    backlog_start: int
    backlog_end: int
    #: Rows whose ``cpu_s`` / ``memory_mb`` were missing and got the documented defaults.
    default_cpu_rows: int
    default_memory_rows: int
    wall_s: float
    jobs_per_wall_s: float
    #: Total memory over time: columns ``time_s`` (from trace start), ``memory_mb``.
    memory: pd.DataFrame = dataclasses.field(repr=False, compare=False)
    outcome: Outcome = dataclasses.field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The numbers as plain JSON-ready values (no trace, no memory series)."""
        skip = {"memory", "outcome", "overall", "tiers"}
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip
        }
        data["overall"] = dataclasses.asdict(self.overall)
        data["tiers"] = {name: dataclasses.asdict(stats) for name, stats in self.tiers.items()}
        return _clean(data)

    def to_json(self, **extra: Any) -> str:
        """``to_dict`` (plus ``extra`` top-level keys) as indented JSON."""
        return json.dumps({**self.to_dict(), **extra}, indent=2, sort_keys=False)

    def trace(self) -> pd.DataFrame:
        """The simulated trace rows, the runtime's columns (``kqueue.policy.COLUMNS``)."""
        return simulated_trace(self.outcome)

    def table(self) -> str:
        """A short human-readable report."""
        from sim.model.text import render

        return render(self)


def summarize(outcome: Outcome) -> SimResult:
    """Compute every metric of a run from its ``Outcome``."""
    o = outcome
    done = np.isfinite(o.finished_s)
    span_s = float(np.nanmax(o.finished_s) - o.submitted_s[0]) if done.any() else 0.0
    per_min = 60.0 / span_s if span_s > 0 else 0.0
    steps = _memory_steps(o)
    tiers = {
        name: _tier_stats(o, o.tier == code, per_min, span_s, curve(steps[name]).peak(), code)
        for code, name in enumerate(TIER_NAMES)
    }
    total = curve(Steps.join(*steps.values()), o.host.worker_mb)
    peak_mb, peak_at_s = total.peak()
    stable, start, end = _stability(o)
    arrivals_span_s = float(o.submitted_s[-1] - o.submitted_s[0])
    cores = o.host.cores
    return SimResult(
        jobs=len(o.submitted_s),
        finished=int(done.sum()),
        never_started=int((~np.isfinite(o.started_s)).sum()),
        throughput_per_min=float(done.sum() * per_min),
        arrival_rate_per_min=(len(o.submitted_s) - 1) * 60.0 / arrivals_span_s
        if arrivals_span_s > 0
        else 0.0,
        makespan_s=span_s,
        overall=_tier_stats(
            o, np.ones(len(o.tier), bool), per_min, span_s, (peak_mb, peak_at_s), None
        ),
        tiers=tiers,
        peak_memory_mb=peak_mb,
        peak_memory_at_s=peak_at_s,
        cpu_utilisation=o.cpu_busy_core_s / (cores * span_s) if cores and span_s > 0 else None,
        pool_peak_processes=o.pool_peak_size,
        stable=stable,
        backlog_start=start,
        backlog_end=end,
        default_cpu_rows=o.prepared.default_cpu_rows,
        default_memory_rows=o.prepared.default_memory_rows,
        wall_s=o.wall_s,
        jobs_per_wall_s=len(o.submitted_s) / o.wall_s if o.wall_s > 0 else math.inf,
        memory=total.series(),
        outcome=o,
    )


def _per_job(values: dict[int, float], jobs: int) -> np.ndarray:
    array = np.zeros(jobs)
    if values:
        array[list(values)] = list(values.values())
    return array


def _memory_steps(o: Outcome) -> dict[str, Steps]:
    ran = np.isfinite(o.started_s)
    isolated = ran & (o.tier == ISOLATED)
    parts = {
        "inline": o.inline_steps,
        "pool": o.pool_steps,
        "isolated": Steps.join(
            job_steps(
                o.slot_s[isolated],
                o.finished_s[isolated],
                o.host.isolated_process_mb + o.isolated_inherited_mb[isolated],
            ),
            job_steps(o.started_s[isolated], o.finished_s[isolated], o.memory_mb[isolated]),
        ),
    }
    return parts


def _tier_stats(o: Outcome, mask, per_min: float, span_s: float, peak, code) -> TierStats:
    """Stats of the jobs in ``mask``; ``peak`` = (MB, at s); ``code`` = tier code or None (all)."""
    done = mask & np.isfinite(o.finished_s)
    wait = o.started_s[done] - o.submitted_s[done]
    latency = o.finished_s[done] - o.submitted_s[done]
    w, lat = _quantiles(wait), _quantiles(latency)
    peak_mb, peak_at_s = peak
    return TierStats(
        jobs=int(mask.sum()),
        throughput_per_min=float(done.sum() * per_min),
        mean_wait_s=float(wait.mean()) if len(wait) else None,
        p50_wait_s=w[0],
        p95_wait_s=w[1],
        p99_wait_s=w[2],
        max_wait_s=w[3],
        p50_latency_s=lat[0],
        p95_latency_s=lat[1],
        p99_latency_s=lat[2],
        max_latency_s=lat[3],
        utilisation=_utilisation(o, done, span_s, code),
        peak_memory_mb=peak_mb,
        peak_memory_at_s=peak_at_s,
        spawns={POOL: o.pool_spawns, ISOLATED: o.isolated_spawns}.get(code, 0)
        if code is not None
        else o.pool_spawns + o.isolated_spawns,
        recycles=o.pool_recycles if code in (POOL, None) else 0,
    )


def _quantiles(values: np.ndarray) -> list[float | None]:
    if len(values) == 0:
        return [None] * 4
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return [float(p50), float(p95), float(p99), float(values.max())]


def _utilisation(o: Outcome, done, span_s: float, code) -> float | None:
    busy_s = float((o.finished_s[done] - o.slot_s[done]).sum())
    if code == POOL:
        available_s = o.pool_alive_process_s
    elif code == INLINE:
        available_s = o.config.max_concurrent_inline * span_s
    elif code == ISOLATED:
        available_s = o.config.max_concurrent_isolated * span_s
    else:
        return None
    return busy_s / available_s if available_s > 0 else None


def _stability(o: Outcome) -> tuple[bool, int, int]:
    """(stable, backlog at mid arrival window, backlog at its end); see the module docstring.

    The growth rule is applied per tier too, so one overloaded tier is not hidden by the others.
    """
    mid_s, end_s = o.submitted_s[-1] / 2, o.submitted_s[-1]
    stable, start, end = True, 0, 0
    for code in range(len(TIER_NAMES)):
        mask = o.tier == code
        submitted = o.submitted_s[mask]
        if len(submitted) == 0:
            continue
        started = np.sort(np.where(np.isfinite(o.started_s[mask]), o.started_s[mask], np.inf))
        at_mid, at_end = (
            int(np.searchsorted(submitted, t, "right") - np.searchsorted(started, t, "right"))
            for t in (mid_s, end_s)
        )
        second_half = len(submitted) - int(np.searchsorted(submitted, mid_s, "right"))
        allowed = max(STABLE_GROWTH_FRACTION * second_half, STABLE_GROWTH_JOBS)
        stable = stable and at_end - at_mid <= allowed
        start, end = start + at_mid, end + at_end
    return stable and bool(np.isfinite(o.started_s).all()), start, end


def simulated_trace(o: Outcome) -> pd.DataFrame:
    """The runtime's trace columns for every finished job (times on the input trace's clock)."""
    rows, origin = o.prepared.rows, o.prepared.origin_s
    tier = pd.Series(np.array(TIER_NAMES + ("none",), dtype=object)[o.tier])
    worker = "sim:" + tier
    labelled = (o.tier != INLINE) & (o.process >= 0)
    worker[labelled] = worker[labelled] + "-" + pd.Series(o.process).astype(str)[labelled]
    frame = pd.DataFrame(
        {
            "job_id": rows["job_id"].where(rows["job_id"].notna(), rows.index.astype(str)),
            "queue": rows["queue"].where(rows["queue"].notna(), "default"),
            "job_class": rows["job_class"],
            "tier": tier,
            "submitted_at": o.submitted_s + origin,
            "started_at": o.started_s + origin,
            "finished_at": o.finished_s + origin,
            "wait_s": o.started_s - o.submitted_s,
            "duration_s": o.finished_s - o.started_s,
            "cpu_s": np.asarray(o.prepared.jobs.cpu_s, float),
            "memory_mb": o.memory_mb,
            "status": rows["status"].where(rows["status"].notna(), Status.OK.value),
            "attempt": rows["attempt"].fillna(1).astype(int),
            "worker": worker,
            "estimated_s": o.estimated_s,
        }
    )
    return frame.loc[np.isfinite(o.finished_s), list(COLUMNS)].reset_index(drop=True)


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: numpy scalars to Python, NaN/inf to ``None``."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
