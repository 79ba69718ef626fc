"""The tuner's evidence: a Markdown summary and three PNGs in a report directory.

``write_report(directory, tuned, recommended, default, source)`` writes ``summary.md``
(recommended vs default side by side, the SLOs and where they came from, the host count and
what binds), ``pareto.png`` (peak memory against the worst SLO margin of every config run on the
whole trace, the non-dominated ones joined), ``memory.png`` (total memory over time) and
``waits.png`` (the distribution of waits per SLO group: the jobs the base config routes to
each tier). Matplotlib uses the Agg backend: no display.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kqueue.policy import Config
from sim.model.jobs import ISOLATED, TIER_NAMES
from sim.model.report import SimResult
from sim.tune.evaluate import Evaluation
from sim.tune.search import TuneResult
from sim.tune.slo import DEFAULT_SLOS, group_stats, job_groups

#: Settings the tuner searches, shown side by side in the summary.
TUNED_KEYS = (
    "inline_max_duration_s",
    "pooled_max_duration_s",
    "default_estimate_s",
    "pool_size",
    "pool_max_size",
    "max_concurrent_inline",
    "max_concurrent_isolated",
    "max_worker_memory_mb",
)


def pareto_front(evaluations: list[Evaluation]) -> list[Evaluation]:
    """The runs no other run beats on both peak memory (lower) and worst margin (higher)."""
    front, best_margin = [], -math.inf
    for e in sorted(evaluations, key=lambda e: (e.peak_memory_mb, -e.worst_margin)):
        if e.stable and e.worst_margin > best_margin:
            front.append(e)
            best_margin = e.worst_margin
    return front


def peak_isolated(result: SimResult) -> int:
    """Most isolated processes alive at once in a run."""
    o = result.outcome
    ran = (o.tier == ISOLATED) & np.isfinite(o.started_s)
    if not ran.any():
        return 0
    times = np.concatenate([o.slot_s[ran], o.finished_s[ran]])
    steps = np.concatenate([np.ones(ran.sum()), -np.ones(ran.sum())])
    order = np.lexsort((steps, times))  # ends before starts at the same instant
    return int(np.cumsum(steps[order]).max())


def summary_markdown(tuned: TuneResult, recommended: SimResult, default: SimResult,
                     source: str) -> str:  # fmt: skip
    """The Markdown summary (see the module docstring)."""
    p = tuned.problem
    budget = f"{p.memory_budget_mb:,.0f} MB" if math.isfinite(p.memory_budget_mb) else "none"
    slo_origin = " (the defaults: none given)" if p.slos == DEFAULT_SLOS else ""
    lines = [
        "# kqueue tune report",
        "",
        f"- Trace: `{source}`: {recommended.jobs:,} jobs"
        + (f" (one worker's share of {tuned.hosts})" if tuned.hosts > 1 else "")
        + f", arrivals {recommended.arrival_rate_per_min:,.2f}/min",
        f"- Host: {p.host.cores or 'unlimited'} cores; memory budget per host: {budget}",
        f"- SLOs{slo_origin}: " + "; ".join(s.describe() for s in p.slos),
        "  (a group is the jobs whose class the default config routes to that tier, wherever "
        "the recommended config runs them)",
        f"- Search: {tuned.candidates} first candidates, {tuned.simulations} simulations, "
        f"{tuned.wall_s:.1f} s, seed {p.seed}",
        "",
        "## Answer",
        "",
        _answer(tuned),
        "",
    ]
    if recommended.default_cpu_rows or recommended.default_memory_rows:
        lines += [
            f"Note: {recommended.default_cpu_rows:,} rows had no `cpu_s` (assumed half their "
            f"duration) and {recommended.default_memory_rows:,} no `memory_mb` (assumed 50 MB); "
            "the CPU bound and the memory numbers rest on those assumptions.",
            "",
        ]
    lines += ["## Recommended vs default", "", "| | default | recommended |", "|---|---:|---:|"]
    lines += [f"| {name} | {a} | {b} |" for name, a, b in _rows(p, default, recommended)]
    lines += ["", "## Settings", "", "| setting | default | recommended |", "|---|---:|---:|"]
    lines += [
        f"| `{key}` | {getattr(p.base, key):g} | {getattr(tuned.config, key):g} |"
        for key in TUNED_KEYS
    ]
    front = pareto_front(list(tuned.tried))
    header = "| peak memory MB | worst SLO margin | pool | isolated | inline max s | pooled max s |"
    lines += ["", "## Pareto front (whole-trace runs)", "", header, "|" + "---:|" * 6]
    lines += [
        f"| {e.peak_memory_mb:,.0f} | {e.worst_margin:+.2f} | {e.config.pool_max_size} | "
        f"{e.config.max_concurrent_isolated} | {e.config.inline_max_duration_s:g} | "
        f"{e.config.pooled_max_duration_s:g} |"
        for e in front
    ]
    lines += ["", "![pareto](pareto.png)", "![memory](memory.png)", "![waits](waits.png)", ""]
    return "\n".join(lines)


def _answer(tuned: TuneResult) -> str:
    e = tuned.evaluation
    if tuned.hosts == 1:
        return (
            f"One host meets every SLO and the budget: peak {e.peak_memory_mb:,.0f} MB, "
            f"worst SLO margin {e.worst_margin:+.0%} ({e.binding_slo} binds first)."
        )
    verdict = (
        f"{tuned.hosts} workers (hosts) against one Redis meet the targets, each with the "
        "recommended config"
        if tuned.hosts_verified and e.feasible
        else f"no tried host count met the targets; at least {tuned.hosts} workers are needed "
        "(bound, or the simulations of smaller counts failed)"
    )
    return f"One host cannot: {tuned.binding}. {verdict}."


def _rows(problem, default: SimResult, recommended: SimResult) -> list[tuple[str, str, str]]:
    def fmt(value, unit=""):
        return "-" if value is None else f"{value:,.2f}{unit}"

    rows = [
        ("throughput (jobs/min)", *(fmt(r.throughput_per_min) for r in (default, recommended))),
        ("stable", *(str(r.stable) for r in (default, recommended))),
        ("peak memory (MB)", *(fmt(r.peak_memory_mb) for r in (default, recommended))),
        ("pool processes (peak)", *(str(r.pool_peak_processes) for r in (default, recommended))),
        ("isolated processes (peak)", *(str(peak_isolated(r)) for r in (default, recommended))),
        ("processes spawned", *(str(r.overall.spawns) for r in (default, recommended))),
    ]
    jobs = default.outcome.prepared.jobs
    groups = job_groups(jobs.job_class, jobs.duration_s, problem.base)
    stats = [group_stats(r, groups) for r in (default, recommended)]
    for tier in TIER_NAMES:
        rows.append(
            (f"jobs run {tier}", *(str(r.tiers[tier].jobs) for r in (default, recommended)))
        )
    for tier in TIER_NAMES:
        rows.append((f"p95 wait of the {tier} group (s)",
                     *(fmt(s[tier]["p95_wait_s"]) for s in stats)))  # fmt: skip
    for slo in problem.slos:
        rows.append(
            (f"margin {slo.describe()}", *(f"{slo.margin(slo.value(s)):+.0%}" for s in stats))
        )
    return rows


def write_report(directory: str | Path, tuned: TuneResult, recommended: SimResult,
                 default: SimResult, source: str) -> Path:  # fmt: skip
    """Write ``summary.md`` and the PNGs into ``directory`` (created); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary_markdown(tuned, recommended, default, source))
    _plot_pareto(out / "pareto.png", tuned)
    _plot_memory(out / "memory.png", tuned, recommended, default)
    _plot_waits(out / "waits.png", recommended, default, tuned.problem.base)
    return out


def _plot_pareto(path: Path, tuned: TuneResult) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    tried = list(tuned.tried)
    ax.scatter([e.peak_memory_mb for e in tried], [e.worst_margin for e in tried],
               c=["tab:green" if e.feasible else "tab:gray" for e in tried], s=18,
               label="config run on the whole trace (green: feasible)")  # fmt: skip
    front = pareto_front(tried)
    ax.plot([e.peak_memory_mb for e in front], [e.worst_margin for e in front], "b-", lw=1,
            label="Pareto front")  # fmt: skip
    e = tuned.evaluation
    ax.scatter([e.peak_memory_mb], [e.worst_margin], marker="*", s=200, c="red", label="chosen")
    ax.axhline(0, color="k", lw=0.5)
    if math.isfinite(tuned.problem.memory_budget_mb):
        ax.axvline(tuned.problem.memory_budget_mb, color="r", ls="--", lw=0.8, label="budget")
    ax.set(xlabel="peak memory (MB)", ylabel="worst SLO margin (>= 0 meets all)",
           title="Peak memory against the worst SLO margin")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_memory(path: Path, tuned: TuneResult, recommended: SimResult, default: SimResult):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, result in (("default", default), ("recommended", recommended)):
        ax.plot(result.memory["time_s"], result.memory["memory_mb"], lw=0.8, label=name)
    if math.isfinite(tuned.problem.memory_budget_mb):
        ax.axhline(tuned.problem.memory_budget_mb, color="r", ls="--", lw=0.8, label="budget")
    ax.set(xlabel="time from trace start (s)", ylabel="worker family memory (MB)",
           title="Memory over time")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_waits(path: Path, recommended: SimResult, default: SimResult, base: Config) -> None:
    """Wait distributions per SLO group (the jobs the base config routes to each tier)."""
    import matplotlib.pyplot as plt

    jobs = default.outcome.prepared.jobs
    groups = job_groups(jobs.job_class, jobs.duration_s, base)
    fig, axes = plt.subplots(1, len(TIER_NAMES), figsize=(12, 3.8), sharey=True)
    for ax, (code, tier) in zip(axes, enumerate(TIER_NAMES), strict=True):
        for name, result in (("default", default), ("recommended", recommended)):
            o = result.outcome
            done = (groups == code) & np.isfinite(o.started_s)
            waits = np.sort(o.started_s[done] - o.submitted_s[done])
            if len(waits):
                ax.step(np.maximum(waits, 1e-3), np.arange(1, len(waits) + 1) / len(waits),
                        where="post", label=f"{name} ({len(waits):,} jobs)")  # fmt: skip
        ax.set(xscale="log", title=f"{tier} group waits", xlabel="wait (s, log)")
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("fraction of jobs waiting at most")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def config_changes(base: Config, tuned: Config) -> dict[str, tuple]:
    """The tuned settings that differ from the base config: ``{key: (base, tuned)}``."""
    return {
        key: (getattr(base, key), getattr(tuned, key))
        for key in TUNED_KEYS
        if getattr(base, key) != getattr(tuned, key)
    }
