"""The tuner's evidence: a Markdown summary and its figures in a report directory.

``write_report(directory, tuned, recommended, default, source)`` writes ``summary.md``
(recommended vs default side by side, the SLOs and where they came from, the host count and
what binds), ``pareto.png`` (peak memory against the worst SLO margin of every config run on the
whole trace or share, clipped to the interesting range), ``memory.png`` (memory over time, as
steps) and ``waits.png`` (the distribution of waits per SLO group, the SLOs drawn); given every
host's run, ``hosts.png`` too (each host's value of each SLO). Every number and figure says
whose jobs it covers: one host on the whole trace, or one host's share (``sim.tune.plots``).
Rates are the offered rate and the completed throughput over the arrival window
(``sim.model.report``), at a precision that shows them (``sim.model.readable``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kqueue.policy import Config
from sim.model.jobs import ISOLATED, TIER_NAMES
from sim.model.readable import format_rate, rate_unit, significant
from sim.model.report import SimResult
from sim.tune.evaluate import Evaluation
from sim.tune.plots import (
    hosts_figure,
    memory_figure,
    pareto_figure,
    pareto_view,
    share_label,
    waits_figure,
)
from sim.tune.search import TuneResult
from sim.tune.slo import DEFAULT_SLOS, group_stats, job_groups
from sim.tune.slo_rule import DEFAULT_RULE

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
                     source: str, per_host: Sequence[SimResult] = (),
                     spread: Mapping[str, Sequence[float]] | None = None,
                     notes: Sequence[str] = (), budget: Sequence[str] = ()) -> str:  # fmt: skip
    """The Markdown summary; ``per_host``, ``spread``, ``notes``, ``budget`` as in
    ``write_report``."""
    p = tuned.problem
    lines = _header_lines(tuned, recommended, source, notes)
    if recommended.default_cpu_rows or recommended.default_memory_rows:
        lines += [
            f"Note: {recommended.default_cpu_rows:,} rows had no `cpu_s` (assumed half their "
            f"duration) and {recommended.default_memory_rows:,} no `memory_mb` (assumed 50 MB); "
            "the CPU bound and the memory numbers rest on those assumptions.",
            "",
        ]
    lines += ["## Recommended vs default, per host", "", "| | default | recommended |",
              "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {name} | {a} | {b} |" for name, a, b in _rows(p, default, recommended)]
    lines += ["", "## Settings", "", "| setting | default | recommended |", "|---|---:|---:|"]
    lines += [
        f"| `{key}` | {getattr(p.base, key):g} | {getattr(tuned.config, key):g} |"
        for key in TUNED_KEYS
    ]
    if budget:
        lines += ["", "## Memory budget (searched)", "", "```", *budget, "```"]
    lines += _front_lines(tuned) + _hosts_lines(per_host, p) + _spread_lines(spread)
    figures = ["pareto", "memory", "waits"] + (["hosts"] if per_host else [])
    lines += ["", *(f"![{name}]({name}.png)" for name in figures), ""]
    return "\n".join(lines)


def _header_lines(tuned: TuneResult, recommended: SimResult, source: str,
                  notes: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """The title, what was asked (trace, host, SLOs, search) and the answer."""
    p = tuned.problem
    budget = f"{p.memory_budget_mb:,.0f} MB" if math.isfinite(p.memory_budget_mb) else "none"
    slo_origin = " (the defaults: none given)" if p.slos == DEFAULT_SLOS else ""
    limits = (
        "the base config's (--keep-limits): what they kill is counted, not disqualifying"
        if p.keep_limits
        else 'set per class above its own tail (`[jobs."<class>"]` tables); a plan that '
        "kills a job is never feasible"
    )
    return [
        "# kqueue tune report",
        "",
        f"- Trace: `{source}`; every number below is per host, on {_whose(tuned)}: "
        f"{recommended.jobs:,} jobs, {_rates(recommended)}",
        f"- Host: {p.host.cores or 'unlimited'} cores; memory budget per host: {budget}",
        f"- SLOs{slo_origin}: " + "; ".join(s.describe() for s in p.slos),
        "  (a group is the jobs whose class the default config routes to that tier, wherever "
        "the recommended config runs them)",
        f"- SLO rule: {DEFAULT_RULE}; an SLO whose group has no jobs is reported as "
        '"no jobs (not checked)" and never makes a plan feasible',
        f"- Limits (`timeout_s`, `max_memory_mb`): {limits}; this plan kills "
        f"{recommended.killed_timeout} attempts for time and {recommended.killed_memory} for "
        f"memory, {recommended.dead} jobs dead-lettered (host 1)",
        *(f"- Note: {note}" for note in notes),
        f"- Search: {tuned.candidates} first candidates, {tuned.simulations} simulations, "
        f"{tuned.wall_s:.1f} s, seed {p.seed}",
        "",
        "## Answer",
        "",
        _answer(tuned),
        "",
    ]


def _whose(tuned: TuneResult) -> str:
    """``the whole trace (one host)`` or ``host 1 of 29's share, seed 0``."""
    if tuned.hosts <= 1:
        return "the whole trace (one host)"
    return share_label(tuned.hosts, tuned.problem.seed)


def _rates(result: SimResult) -> str:
    """Offered and completed over the arrival window, in one unit that shows both."""
    unit = rate_unit(result.arrival_rate_per_min)
    return (
        f"offered {format_rate(result.arrival_rate_per_min, unit)}, completed "
        f"{format_rate(result.throughput_per_min, unit)} over the arrival window"
    )


def _answer(tuned: TuneResult) -> str:
    e = tuned.evaluation
    if tuned.hosts == 1:
        return (
            f"One host meets every SLO and the budget: peak {e.peak_memory_mb:,.0f} MB, "
            f"worst SLO margin {e.worst_margin:+.0%} ({e.binding_slo} binds first)."
        )
    seeds = tuned.problem.seeds
    verdict = (
        f"{tuned.hosts} workers (hosts) against one Redis meet the targets, each with the "
        f"recommended config (checked on every host's share of {seeds} seed"
        f"{'s' if seeds > 1 else ''} of the split). What sets the count: "
        f"{tuned.what_sets_count()}"
        if tuned.hosts_verified and e.feasible
        else f"at least {tuned.hosts} workers are needed, not verified: "
        f"{tuned.unverified or 'no tried host count met the targets'}"
    )
    return f"One host cannot: {tuned.binding}. {verdict}."


def _rows(problem, default: SimResult, recommended: SimResult) -> list[tuple[str, str, str]]:
    runs = (default, recommended)
    unit = rate_unit(recommended.arrival_rate_per_min)

    def fmt(value, unit=""):
        return "-" if value is None else f"{value:,.2f}{unit}"

    rows = [
        ("offered rate", *(format_rate(r.arrival_rate_per_min, unit) for r in runs)),
        ("completed over the arrival window",
         *(format_rate(r.throughput_per_min, unit) for r in runs)),
        ("stable", *(str(r.stable) for r in runs)),
        ("peak memory (MB)", *(fmt(r.peak_memory_mb) for r in runs)),
        ("pool processes (peak)", *(str(r.pool_peak_processes) for r in runs)),
        ("isolated processes (peak)", *(str(peak_isolated(r)) for r in runs)),
        ("processes spawned", *(str(r.overall.spawns) for r in runs)),
    ]  # fmt: skip
    jobs = default.outcome.prepared.jobs
    groups = job_groups(jobs.job_class, jobs.duration_s, problem.base)
    stats = [group_stats(r, groups) for r in runs]
    rows += [(f"jobs run {tier}", *(str(r.tiers[tier].jobs) for r in runs)) for tier in TIER_NAMES]
    rows += [(f"p95 wait of the {tier} group (s)", *(fmt(s[tier]["p95_wait_s"]) for s in stats))
             for tier in TIER_NAMES]  # fmt: skip
    for slo in problem.slos:
        rows.append((f"margin {slo.describe()}", *(_margin(slo, s) for s in stats)))
    return rows


def _margin(slo, stats) -> str:
    """The SLO's margin, or "no jobs (not checked)" when its group ran nothing."""
    value = slo.value(stats)
    return "no jobs (not checked)" if value is None else f"{slo.margin(value):+.0%}"


def _front_lines(tuned: TuneResult) -> list[str]:
    """The Pareto front as a table, and how many runs the figure leaves off-scale."""
    tried = list(tuned.tried)
    front = pareto_front(tried)
    view = pareto_view(tried, front, tuned.evaluation)
    header = "| peak memory MB | worst SLO margin | pool | isolated | inline max s | pooled max s |"
    lines = ["", f"## Pareto front, {_whose(tuned)}", "", header, "|" + "---:|" * 6]
    lines += [
        f"| {e.peak_memory_mb:,.0f} | {e.worst_margin:+.2f} | {e.config.pool_max_size} | "
        f"{e.config.max_concurrent_isolated} | {e.config.inline_max_duration_s:g} | "
        f"{e.config.pooled_max_duration_s:g} |"
        for e in front
    ]
    if view.off_scale:
        lines += ["", f"The figure shows {len(tried) - view.off_scale} of {len(tried)} runs; "
                  f"{view.off_scale} points off-scale (margins below the front's worst, "
                  f"{view.margin[0]:+.0%}, or memory outside "
                  f"{view.memory_mb[0]:,.0f}-{view.memory_mb[1]:,.0f} MB)."]  # fmt: skip
    return lines


def _hosts_lines(per_host: Sequence[SimResult], problem) -> list[str]:
    """One row per host's share: jobs, each SLO's value, peak memory."""
    if not per_host:
        return []
    header = "| host | jobs | " + " | ".join(s.describe() for s in problem.slos) + " | peak MB |"
    lines = ["", f"## Every host's share, seed {problem.seed}", "", header,
             "|" + "---:|" * (len(problem.slos) + 3)]  # fmt: skip
    for host, result in enumerate(per_host, start=1):
        jobs = result.outcome.prepared.jobs
        stats = group_stats(result, job_groups(jobs.job_class, jobs.duration_s, problem.base))
        values = [_host_value(slo, slo.value(stats)) for slo in problem.slos]
        lines.append(f"| {host} | {result.jobs:,} | " + " | ".join(values)
                     + f" | {result.peak_memory_mb:,.0f} |")  # fmt: skip
    return lines


def _host_value(slo, value: float | None) -> str:
    """One host's value of an SLO: the number, "(missed)" after it when it misses."""
    if value is None:
        return "no jobs"
    return significant(value) + (" (missed)" if slo.margin(value) < 0 else "")


def _spread_lines(spread: Mapping[str, Sequence[float]] | None) -> list[str]:
    """Each spread metric's least, median and largest value over seeds and shares."""
    if not spread:
        return []
    lines = ["", "## Spread over seeds and shares", "", "| | least | median | largest | runs |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, values in spread.items():
        v = np.asarray(values, float)
        if not len(v):
            lines.append(f"| {name} | no jobs (not checked) | | | 0 |")
            continue
        lines.append(f"| {name} | {significant(v.min())} | {significant(float(np.median(v)))} | "
                     f"{significant(v.max())} | {len(v)} |")  # fmt: skip
    return lines


def write_report(directory: str | Path, tuned: TuneResult, recommended: SimResult,
                 default: SimResult, source: str, *, per_host: Sequence[SimResult] = (),
                 spread: Mapping[str, Sequence[float]] | None = None,
                 notes: Sequence[str] = (), budget: Sequence[str] = ()) -> Path:  # fmt: skip
    """Write ``summary.md`` and the PNGs into ``directory`` (created); returns its path.

    Args:
        tuned: the tuner's answer.
        recommended, default: the recommended and the base config simulated on the share the
            tuner judged (``tuned.share``: the whole trace for one host).
        source: the trace's path, as shown.
        per_host: optional, the recommended config simulated on every host's share of the
            tuner's seed, host ``i`` at index ``i``; adds a table and ``hosts.png``.
        spread: optional, ``{metric: values over seeds and shares}`` (e.g. ``{"hosts needed":
            [27, 29, 29], "worst p95 wait of the pool group (s)": [...]}``); adds a table.
        notes: lines to state under the header (jobs dropped, empty SLO groups).
        budget: the searched budget's lines (``sim.tune.guarantee.BudgetSearch.lines``).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    text = summary_markdown(tuned, recommended, default, source, per_host, spread, notes, budget)
    (out / "summary.md").write_text(text)
    for name, figure in figures(tuned, recommended, default, per_host).items():
        figure.savefig(out / f"{name}.png", dpi=100)
    return out


def figures(tuned: TuneResult, recommended: SimResult, default: SimResult,
            per_host: Sequence[SimResult] = ()) -> dict[str, object]:  # fmt: skip
    """The report's figures by name (``matplotlib.figure.Figure``), for saving or showing."""
    p = tuned.problem
    share = share_label(tuned.hosts, p.seed)
    runs = [("default", default), ("recommended", recommended)]
    tried = list(tuned.tried)
    made = {
        "pareto": pareto_figure(tried, pareto_front(tried), tuned.evaluation,
                                p.memory_budget_mb, share),
        "memory": memory_figure(runs, p.memory_budget_mb, share),
        "waits": waits_figure(runs, p.base, p.slos, share),
    }  # fmt: skip
    if per_host:
        made["hosts"] = hosts_figure(per_host, p.base, p.slos, p.memory_budget_mb, p.seed)
    return made


def config_changes(base: Config, tuned: Config) -> dict[str, tuple]:
    """The tuned settings that differ from the base config: ``{key: (base, tuned)}``."""
    return {
        key: (getattr(base, key), getattr(tuned, key))
        for key in TUNED_KEYS
        if getattr(base, key) != getattr(tuned, key)
    }
