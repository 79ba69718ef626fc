"""The seed's criterion live: the prototype mix, the tuner's searched budget, a live worker.

Used by ``experiments/seed_target.py`` (see its docstring). The mix of
``sim.model.workload.PROTOTYPE_MIX`` at the rate this box can hold now (``holdable_rate_per_min``:
half the CPU share it gives, measured just before; durations times ``time_scale``, arrivals as
much faster, so the CPU load stays the same) is tuned for a host with this process's cores and
that share, default SLOs, no budget given, the budget searched (``sim.tune.guarantee``), replayed
on a live worker with the recommended config, its tree PSS sampled every 100 ms
(``experiments/budget_live.py``'s sampler). Rows: the live run and the twin's run of the same
config on the same trace.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from budget_live import SAMPLE_INTERVAL_S, TOLERANCE, family_pss_mb

import kqueue.ops.replay as replay_module
from kqueue.job import App
from kqueue.ops.calibrate import measure_cpu_share
from kqueue.ops.replay import replay
from kqueue.policy import Config, HostProfile, read_trace
from sim.model.replay import prepare
from sim.model.report import window_throughput_per_min
from sim.model.workload import PROTOTYPE_MIX, synth
from sim.tune.class_limits import with_class_limits
from sim.tune.evaluate import Problem
from sim.tune.guarantee import search_budget
from sim.tune.search import tune
from sim.tune.slo import DEFAULT_SLOS, group_stats

#: The share of the CPU this box gives now that the live mix may use: the rate is what keeps its
#: CPU work at this fraction of ``cores x cpu_share`` (``kqueue.ops.calibrate.measure_cpu_share``,
#: taken just before the run), so other sessions' load does not decide the outcome.
CPU_UTILISATION = 0.5
#: The rate used when the box is idle would be about this (the sim_vs_real prototype workload's).
MAX_RATE_PER_MIN = 30.0
#: Throughput within this fraction of the offered rate counts as "as offered".
THROUGHPUT_TOLERANCE = 0.10
TIERS = ("inline", "pool", "isolated")


def cpu_per_job_s() -> float:
    """Mean CPU seconds of one job of the mix (lognormal durations), s."""
    total = sum(c.share for c in PROTOTYPE_MIX)
    return sum(c.share / total * c.cpu_fraction * c.duration_median_s
               * math.exp(c.duration_sigma**2 / 2) for c in PROTOTYPE_MIX)  # fmt: skip


def holdable_rate_per_min(host: HostProfile) -> float:
    """The rate this box can hold now: ``CPU_UTILISATION`` of the cores' share it gives."""
    rate = 60.0 * CPU_UTILISATION * host.cores * host.cpu_share / cpu_per_job_s()
    return min(MAX_RATE_PER_MIN, float(f"{rate:.2g}"))


def live_trace(minutes: float, time_scale: float, seed: int, rate_per_min: float):
    """The seeded mix at ``rate_per_min`` for ``minutes`` of arrivals (durations scaled)."""
    mix = tuple(dataclasses.replace(c, duration_median_s=c.duration_median_s * time_scale)
                for c in PROTOTYPE_MIX)  # fmt: skip
    rate_per_s = rate_per_min / 60 / time_scale
    jobs = max(10, round(minutes * 60 * rate_per_s))
    return synth(jobs, rate_per_s, mix=mix, seed=seed)


def this_host(path: str | None) -> HostProfile:
    """The host to plan for: ``kqueue calibrate``'s profile at ``path`` (else the default
    profile) with this process's cores and the CPU share they give now (measured)."""
    cores = len(os.sched_getaffinity(0))
    host = HostProfile.load(path) if path is not None else HostProfile()
    return dataclasses.replace(host, cores=cores, cpu_share=measure_cpu_share(cores, 2.0))


def tuned_for_this_host(frame, seed: int, host: HostProfile):
    """(config with the searched budget, the ``BudgetSearch``, the ``TuneResult``)."""
    prepared = prepare(frame)
    problem = Problem(DEFAULT_SLOS, math.inf, host, with_class_limits(prepared, Config()), seed)
    found = tune(prepared, problem)
    if found.hosts > 1:
        raise SystemExit(f"the tuner says one host cannot hold the live rate: {found.binding}")
    searched = search_budget(found, prepared)
    return searched.config, searched, found


def run_live(frame, config: Config) -> tuple[dict, object]:
    """Replay ``frame`` under ``config`` on a fresh SQLite backend; (figures, live trace)."""
    replay_module.MEMORY_SAMPLE_INTERVAL_S = SAMPLE_INTERVAL_S
    replay_module.MEMORY_SAMPLER_CPU_SHARE = 0.5
    replay_module.family_pss_mb = family_pss_mb
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        app = App(f"sqlite:///{folder / 'live.db'}")
        try:
            result = replay(frame, app, config, trace_out=str(folder / "live.csv"))
        finally:
            app.close()
        trace = read_trace(folder / "live.csv")
    times = np.array([t for t, _ in result.memory])
    interval = float(np.median(np.diff(times))) if len(times) > 1 else math.nan
    return {"peak_mb": result.peak_memory_mb, "sample_interval_s": interval}, trace


def live_figures(trace, jobs: int, peak_mb: float) -> dict:
    """Completed, offered rate, throughput (the twin's rule) and p95 waits of a live trace."""
    ok = trace[trace.status == "ok"]
    submitted = np.sort(ok.submitted_at.to_numpy(float))
    finished = ok.finished_at.to_numpy(float)
    first_s, last_s = float(submitted[0]), float(submitted[-1])
    by_last = int((finished <= last_s).sum())
    figures = {
        "completed": int(ok.job_id.str.split("-").str[0].nunique()),
        "offered/min": 60.0 * (len(submitted) - 1) / (last_s - first_s),
        "jobs/min": window_throughput_per_min(
            first_s, last_s, by_last, len(ok), float(finished.max())
        ),  # fmt: skip
        "peak MB": peak_mb,
    }
    for tier in TIERS:
        waits = ok[ok.tier == tier].wait_s
        figures[f"{tier} p95 s"] = float(waits.quantile(0.95)) if len(waits) else None
    figures["jobs"] = jobs
    return figures


def twin_figures(searched) -> dict:
    """The same figures of the twin's run of the budgeted config (host 1 = the whole trace)."""
    run = searched.budgeted_run
    stats = group_stats(run, run.outcome.tier)
    figures = {
        "completed": int(np.isfinite(run.outcome.finished_s).sum()),
        "offered/min": run.arrival_rate_per_min,
        "jobs/min": run.throughput_per_min,
        "peak MB": run.peak_memory_mb,
    }
    for code, tier in enumerate(TIERS):
        figures[f"{tier} p95 s"] = (stats[tier]["p95_wait_s"] if (run.outcome.tier == code).any()
                                    else None)  # fmt: skip
    figures["jobs"] = run.jobs
    return figures


def live_rows(minutes: float, time_scale: float, seed: int, host_path: str | None) -> list[dict]:
    """Tune, replay live, and return the table's rows (live, then the twin)."""
    host = this_host(host_path)
    rate = holdable_rate_per_min(host)
    frame = live_trace(minutes, time_scale, seed, rate)
    config, searched, found = tuned_for_this_host(frame, seed, host)
    load = os.getloadavg()
    print(f"live: {len(frame)} jobs at {rate:g}/min (durations x{time_scale:g}) for {minutes:g} "
          f"min on {host.cores} cores giving a share of {host.cpu_share:.2f} (load average "
          f"{load[0]:.1f}); tuned in {found.wall_s:.1f} s")  # fmt: skip
    print("\n".join(searched.lines()))
    measured, trace = run_live(frame, config)
    load = os.getloadavg()
    print(f"live run done: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; PSS sampled "
          f"every {measured['sample_interval_s']:.2f} s (median)")  # fmt: skip
    budget = config.memory_budget_mb
    rows = []
    for label, figures in (("live, this box", live_figures(trace, len(frame), measured["peak_mb"])),
                           ("twin, same config", twin_figures(searched))):  # fmt: skip
        row = {"run": label, "budget MB": round(budget)}
        row |= {k: _fmt(v) for k, v in figures.items()}
        row["<= budget+5%"] = figures["peak MB"] <= budget * (1 + TOLERANCE)
        rows.append(row)
    return rows


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return value


def criterion(rows: list[dict]) -> str:
    """PASS, or what the live row misses (every job completed, peak, throughput)."""
    live = rows[0]
    misses = []
    if live["completed"] != live["jobs"]:
        misses.append(f"{live['completed']} of {live['jobs']} jobs completed")
    if not live["<= budget+5%"]:
        misses.append(f"peak {live['peak MB']} MB over budget {live['budget MB']} MB + 5%")
    offered, done = float(live["offered/min"]), float(live["jobs/min"])
    if done < offered * (1 - THROUGHPUT_TOLERANCE):
        misses.append(f"throughput {done:.1f}/min below the offered {offered:.1f}/min")
    return "PASS" if not misses else "MISS: " + "; ".join(misses)
