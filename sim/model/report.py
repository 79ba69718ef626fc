"""What a simulation found: per-tier and overall metrics, JSON and the terminal table.

Stability rule (documented in ``docs/DECISIONS.md``): the backlog (jobs submitted but not yet
started) is measured at the middle and at the end of the arrival window; the run is stable when
every job started and, in every tier, the backlog grew between those two instants by at most
``max(STABLE_GROWTH_FRACTION x the tier's arrivals in the second half, STABLE_GROWTH_JOBS)``.
A queue that keeps up fluctuates around a level; one that cannot keeps growing.

Throughput rule (same entry): the jobs finished by the last arrival, per minute of the arrival
window (first to last submission), so a worker that keeps up shows the offered rate and one
that falls behind shows less; the drain after the last arrival does not dilute it. When every
job arrives at one instant (no window), it is the jobs finished per minute of the makespan.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kqueue.policy.trace import window_throughput_per_min
from sim.engine.memory import Steps, curve, job_steps
from sim.model.jobs import INLINE, ISOLATED, POOL, TIER_NAMES
from sim.model.outcome import Outcome, simulated_trace
from sim.model.readable import format_rate, rate_unit

#: Backlog growth allowed in a stable run, as a fraction of the second half's arrivals ...
STABLE_GROWTH_FRACTION = 0.05
#: ... and at least this many jobs (short traces fluctuate).
STABLE_GROWTH_JOBS = 10


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
    #: Completed throughput (the throughput rule) and offered rate, over the arrival window.
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
    #: Attempts killed by the runtime's limits (``kqueue.policy.limits``), jobs dead-lettered
    #: after them, and both per tier and reason: ``{"pool": {"timeout": 3}}``.
    killed_timeout: int = 0
    killed_memory: int = 0
    dead: int = 0
    kills: dict = dataclasses.field(default_factory=dict)
    dead_by_tier: dict = dataclasses.field(default_factory=dict)

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
        return render(self)


def summarize(outcome: Outcome) -> SimResult:
    """Compute every metric of a run from its ``Outcome``."""
    o = outcome
    done = np.isfinite(o.finished_s)
    span_s = float(np.nanmax(o.finished_s) - o.submitted_s[0]) if done.any() else 0.0
    steps = _memory_steps(o)
    tiers = {
        name: _tier_stats(o, o.tier == code, span_s, curve(steps[name]).peak(), code)
        for code, name in enumerate(TIER_NAMES)
    }
    total = curve(Steps.join(*steps.values()), o.standing_mb)
    peak_mb, peak_at_s = total.peak()
    stable, start, end = _stability(o)
    arrivals_span_s = float(o.submitted_s[-1] - o.submitted_s[0])
    cores = o.host.cores
    return SimResult(
        jobs=len(o.submitted_s),
        finished=int(done.sum()),
        never_started=int((~np.isfinite(o.started_s)).sum()),
        throughput_per_min=throughput_per_min(o, np.ones(len(o.tier), bool)),
        arrival_rate_per_min=(len(o.submitted_s) - 1) * 60.0 / arrivals_span_s
        if arrivals_span_s > 0
        else 0.0,
        makespan_s=span_s,
        overall=_tier_stats(o, np.ones(len(o.tier), bool), span_s, (peak_mb, peak_at_s), None),
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
        killed_timeout=_count(o.kills, "timeout"),
        killed_memory=_count(o.kills, "memory"),
        dead=_count(o.dead, None),
        kills=o.kills,
        dead_by_tier=o.dead,
    )


def _count(by_tier: dict[str, dict[str, int]], status: str | None) -> int:
    return sum(n for tier in by_tier.values() for s, n in tier.items() if status in (None, s))


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
    faulting = dict(zip(TIER_NAMES, o.fault_in_steps, strict=True))
    return {name: Steps.join(steps, faulting[name]) for name, steps in parts.items()}


def throughput_per_min(o: Outcome, mask: np.ndarray) -> float:
    """Jobs of ``mask`` finished by the last arrival, per minute of the arrival window (the
    throughput rule in the module docstring; the makespan when all jobs arrive at once); 0 for
    a run with no jobs (a host's share of a small trace can be empty)."""
    if not len(o.submitted_s):
        return 0.0
    first_s, last_s = float(o.submitted_s[0]), float(o.submitted_s[-1])
    finished = o.finished_s[mask]
    done = np.isfinite(o.finished_s)
    end_s = float(o.finished_s[done].max()) if done.any() else first_s
    by_last, count = int((finished <= last_s).sum()), int(np.isfinite(finished).sum())
    return window_throughput_per_min(first_s, last_s, by_last, count, end_s)


def _tier_stats(o: Outcome, mask, span_s: float, peak, code) -> TierStats:
    """Stats of the jobs in ``mask``; ``peak`` = (MB, at s); ``code`` = tier code or None (all)."""
    done = mask & np.isfinite(o.finished_s)
    wait = o.started_s[done] - o.submitted_s[done]
    latency = o.finished_s[done] - o.submitted_s[done]
    w, lat = _quantiles(wait), _quantiles(latency)
    peak_mb, peak_at_s = peak
    return TierStats(
        jobs=int(mask.sum()),
        throughput_per_min=throughput_per_min(o, mask),
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


# --- the terminal table -----------------------------------------------------------------

_COLUMNS = (
    ("jobs", "jobs", "{:d}"),
    ("throughput", "throughput_per_min", None),  # in the offered rate's unit (``render``)
    ("wait p50", "p50_wait_s", "{:.3f}"),
    ("p95", "p95_wait_s", "{:.3f}"),
    ("p99", "p99_wait_s", "{:.3f}"),
    ("max", "max_wait_s", "{:.3f}"),
    ("latency p95", "p95_latency_s", "{:.3f}"),
    ("util", "utilisation", "{:.0%}"),
    ("peak MB", "peak_memory_mb", "{:.0f}"),
    ("spawns", "spawns", "{:d}"),
    ("recycles", "recycles", "{:d}"),
)


def _cells(stats: TierStats, rate: tuple[str, float]) -> list[str]:
    cells = []
    for _, key, fmt in _COLUMNS:
        value = getattr(stats, key)
        if value is None:
            cells.append("-")
        else:
            cells.append(format_rate(value, rate) if fmt is None else fmt.format(value))
    return cells


def render(result: SimResult) -> str:
    """The result as a table of tiers plus a few summary lines (times in s, memory in MB)."""
    rate = rate_unit(result.arrival_rate_per_min)
    rows = [["tier"] + [title for title, _, _ in _COLUMNS]]
    for name, stats in result.tiers.items():
        rows.append([name] + _cells(stats, rate))
    rows.append(["all"] + _cells(result.overall, rate))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    verdict = "stable" if result.stable else "UNSTABLE"
    lines += [
        "",
        f"jobs {result.jobs}, finished {result.finished}, never started {result.never_started}; "
        f"offered {format_rate(result.arrival_rate_per_min, rate)}, completed "
        f"{format_rate(result.throughput_per_min, rate)} over the arrival window",
        f"{verdict}: backlog {result.backlog_start} at mid-trace, "
        f"{result.backlog_end} at the last arrival",
        f"peak memory {result.peak_memory_mb:.0f} MB at t={result.peak_memory_at_s:.1f} s; "
        f"pool peak {result.pool_peak_processes} processes"
        + (f"; CPU {result.cpu_utilisation:.0%}" if result.cpu_utilisation is not None else ""),
        _kills_line(result),
        f"defaults used: cpu_s on {result.default_cpu_rows} rows, memory_mb on "
        f"{result.default_memory_rows} rows",
        f"simulated in {result.wall_s:.2f} s ({result.jobs_per_wall_s:,.0f} jobs per wall second)",
    ]
    return "\n".join(lines)


def _kills_line(result: SimResult) -> str:
    """What the runtime's limits did: killed attempts and dead letters per tier and reason."""
    if not (result.killed_timeout or result.killed_memory):
        return "limits killed no job (timeout_s, max_memory_mb)"
    parts = [
        f"{tier} {status} {n}"
        for tier, counts in result.kills.items()
        for status, n in counts.items()
    ]
    return (
        f"KILLED by limits: {result.killed_timeout} attempts for time, {result.killed_memory} for "
        f"memory ({', '.join(parts)}); {result.dead} jobs dead-lettered"
    )
