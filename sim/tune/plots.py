"""The planner's figures: memory over time, waits against the SLOs, the Pareto front, and the
targets host by host.

Each function returns a ``matplotlib.figure.Figure`` built without pyplot (no backend is chosen
here): ``write_report`` saves them as PNGs, the notebook shows them inline. Every title says
whose jobs it shows: one host on the whole trace, or host ``i`` of ``N``'s share of a seed
(``share_label``). Panels with no jobs say so instead of staying blank. Time axes use the unit
that fits the span (``sim.model.readable``). Rules in ``docs/DECISIONS.md``, "Reports a planner
reads".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    MaxNLocator,
    NullLocator,
)

from kqueue.policy import Config
from sim.model.jobs import TIER_NAMES
from sim.model.readable import DURATION_TICKS_S, format_duration, significant, time_unit
from sim.model.report import SimResult
from sim.tune.evaluate import Evaluation
from sim.tune.slo import LIMITED, METRICS, Slo, group_stats, job_groups

#: Pareto plot: the margin axis is linear within +-this (missed by up to the target itself) and
#: logarithmic beyond, so a front falling to -1,000% keeps its shape; it reaches at least here.
MARGIN_LINEAR = 1.0
#: Memory shown beyond the front's span, as a share of that span or of the chosen run's peak
#: (whichever is larger); runs further out, or below the front's worst margin, are off-scale.
MEMORY_REACH = 0.25
#: A budget line more than this many times the highest curve is noted, not drawn.
BUDGET_OFF_SCALE_FACTOR = 3.0
#: Waits below this are drawn at it (a log axis has no zero).
MIN_WAIT_S = 1e-3
#: The quantile each wait metric's SLO line is drawn at (``None``: a vertical line only).
WAIT_QUANTILES = {"p50_wait": 0.5, "p95_wait": 0.95, "p99_wait": 0.99, "max_wait": 1.0,
                  "mean_wait": None}  # fmt: skip
NO_JOBS = "no jobs in this group"
LABEL_MEMORY = "memory of the worker and its processes (MB), per host"
#: The same, on two lines (a y axis is short).
LABEL_MEMORY_AXIS = LABEL_MEMORY.replace("processes ", "processes\n")


def share_label(hosts: int, seed: int = 0, host: int = 0) -> str:
    """Whose jobs a figure shows: ``"one host, whole trace"`` or ``"host 1 of 29, seed 0"``."""
    if hosts <= 1:
        return "one host, whole trace"
    return f"host {host + 1} of {hosts}'s share, seed {seed}"


def no_jobs(ax, text: str = NO_JOBS) -> None:
    """Mark an empty panel: centred text, no ticks (but a y axis shared with full panels)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    axes = [ax.xaxis]
    if len(ax.get_shared_y_axes().get_siblings(ax)) == 1:
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_locator(NullLocator())
        axis.set_minor_locator(NullLocator())


def memory_figure(runs: Sequence[tuple[str, SimResult]], budget_mb: float, share: str) -> Figure:
    """Total memory over time as steps, one line per labelled run of the same share.

    Args:
        runs: ``(label, result)`` pairs, e.g. ``[("default", d), ("recommended", r)]``.
        budget_mb: the per-host budget (``inf`` = none); drawn when it is on the scale.
        share: ``share_label(...)`` of the runs, for the title.
    """
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    span_s = max((float(r.memory["time_s"].max()) for _, r in runs), default=0.0)
    unit, unit_s = time_unit(span_s)
    for label, result in runs:
        series = result.memory
        ax.step(series["time_s"] / unit_s, series["memory_mb"], where="post", lw=0.9,
                label=f"{label} (peak {result.peak_memory_mb:,.0f} MB)")  # fmt: skip
    highest = max((r.peak_memory_mb for _, r in runs), default=0.0)
    _budget_line(ax, budget_mb, BUDGET_OFF_SCALE_FACTOR * max(highest, 1.0), axis="y")
    ax.set(xlabel=f"time from trace start ({unit})", ylabel=LABEL_MEMORY_AXIS,
           title=f"Memory over time, per host ({share})")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def _budget_line(ax, budget_mb: float, scale_mb: float, axis: str) -> None:
    """Draw the budget line when it is at most ``scale_mb``, else say it is off the scale."""
    if not math.isfinite(budget_mb):
        return
    if budget_mb <= scale_mb:
        line = ax.axhline if axis == "y" else ax.axvline
        line(budget_mb, color="r", ls="--", lw=0.8, label=f"budget {budget_mb:,.0f} MB")
    else:
        ax.plot([], [], " ", label=f"budget {budget_mb:,.0f} MB: off the scale")


def slo_groups(runs: Sequence[tuple[str, SimResult]], base: Config) -> np.ndarray:
    """Each job's SLO group (tier code) in the runs' share: where ``base`` routes its class."""
    jobs = runs[0][1].outcome.prepared.jobs
    return job_groups(jobs.job_class, jobs.duration_s, base)


def waits_figure(runs: Sequence[tuple[str, SimResult]], base: Config, slos: Sequence[Slo],
                 share: str) -> Figure:  # fmt: skip
    """The distribution of waits per SLO group (plus "all" when an SLO names it), SLO lines drawn.

    Args:
        runs: ``(label, result)`` pairs of one share (the same jobs).
        base: the config whose routing defines the groups (``sim.tune.slo.job_groups``).
        slos: the SLOs; each wait SLO is drawn on its group's panel.
        share: ``share_label(...)`` of the runs.
    """
    groups = slo_groups(runs, base)
    panels = list(TIER_NAMES) + (["all"] if any(s.tier == "all" for s in _waits(slos)) else [])
    fig = Figure(figsize=(4 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, name in zip(axes, panels, strict=True):
        mask = groups != LIMITED if name == "all" else groups == TIER_NAMES.index(name)
        _wait_panel(ax, runs, mask, [s for s in _waits(slos) if s.tier == name])
        ax.set_title(f"{name} group waits" if name != "all" else "all jobs' waits")
    axes[0].set_ylabel("fraction of jobs waiting at most")
    fig.suptitle(f"Waits per SLO group, per host ({share})")
    return fig


def _waits(slos: Sequence[Slo]) -> list[Slo]:
    return [s for s in slos if s.metric in WAIT_QUANTILES]


def _wait_panel(ax, runs, mask: np.ndarray, slos: Sequence[Slo]) -> None:
    """One group's wait CDF per run, its SLO marks, or "no jobs"."""
    if not mask.any():
        no_jobs(ax)
        for slo in slos:
            ax.text(0.5, 0.4, f"{slo.describe()}: not checked", transform=ax.transAxes,
                    ha="center", fontsize=8, color="0.4")  # fmt: skip
        return
    highest = MIN_WAIT_S
    for label, result in runs:
        o = result.outcome
        done = mask & np.isfinite(o.started_s)
        waits = np.sort(np.maximum(o.started_s[done] - o.submitted_s[done], MIN_WAIT_S))
        if len(waits):
            highest = max(highest, float(waits[-1]))
            ax.step(waits, np.arange(1, len(waits) + 1) / len(waits), where="post",
                    label=f"{label} ({len(waits):,} jobs)")  # fmt: skip
    for slo in slos:
        highest = max(highest, slo.target)
        _slo_mark(ax, slo)
    _duration_axis(ax, highest)
    ax.legend(fontsize=7, loc="lower right")


def _slo_mark(ax, slo: Slo) -> None:
    """A vertical line at the SLO's target and, for a quantile, a marker at its level."""
    target = max(slo.target, MIN_WAIT_S)
    label = f"SLO {slo.metric} <= {format_duration(slo.target)}"
    ax.axvline(target, color="r", ls="--", lw=0.9, label=label)
    quantile = WAIT_QUANTILES[slo.metric]
    if quantile is not None:
        ax.axhline(quantile, color="r", ls=":", lw=0.6)
        ax.plot([target], [quantile], "rv", ms=6)


def _duration_axis(ax, highest_s: float) -> None:
    """A log axis of waits ticked at round durations (1 s, 1 min, 1 h, 1 d, ...)."""
    ax.set_xscale("log")
    ax.set_xlim(MIN_WAIT_S / 2, highest_s * 2)
    ticks = [t for t in DURATION_TICKS_S if MIN_WAIT_S <= t <= highest_s * 2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_duration(value)))
    ax.tick_params(axis="x", labelsize=7, labelrotation=45)
    ax.set_xlabel(f"wait (log; under {format_duration(MIN_WAIT_S)} drawn at it)")


@dataclass(frozen=True)
class ParetoView:
    """The part of the Pareto plot worth looking at and how many points fall outside it."""

    memory_mb: tuple[float, float]
    margin: tuple[float, float]
    off_scale: int

    def shows(self, e: Evaluation) -> bool:
        """True when ``e`` falls inside the view."""
        return (self.memory_mb[0] <= e.peak_memory_mb <= self.memory_mb[1]
                and self.margin[0] <= e.worst_margin <= self.margin[1])  # fmt: skip


def pareto_view(tried: Sequence[Evaluation], front: Sequence[Evaluation],
                chosen: Evaluation) -> ParetoView:  # fmt: skip
    """The clipping rule: margins from the front's (or the chosen run's) worst, at least
    ``-MARGIN_LINEAR``, to the +100% cap; memory over the front and the chosen run, widened by
    ``MEMORY_REACH`` of that span or of the chosen peak. Runs outside are counted off-scale."""
    keys = [*front, chosen]
    low = min(-MARGIN_LINEAR, *(e.worst_margin for e in keys))
    lo, hi = min(e.peak_memory_mb for e in keys), max(e.peak_memory_mb for e in keys)
    reach = max(MEMORY_REACH * (hi - lo), MEMORY_REACH * chosen.peak_memory_mb, 1.0)
    view = ParetoView((max(0.0, lo - reach), hi + reach), (low, 1.0), 0)
    return ParetoView(view.memory_mb, view.margin, sum(not view.shows(e) for e in tried))


def _padded(limits: tuple[float, float], fraction: float = 0.05) -> tuple[float, float]:
    pad = fraction * (limits[1] - limits[0])
    return limits[0] - pad, limits[1] + pad


#: How the Pareto plot draws each kind of run: (legend, marker, colour, which runs).
_KINDS = (
    ("feasible", "o", "tab:green", lambda e: e.feasible),
    ("infeasible: misses an SLO or the budget", "x", "tab:orange",
     lambda e: e.stable and not e.feasible),
    ("infeasible: unstable (a backlog grows)", "x", "0.5", lambda e: not e.stable),
)  # fmt: skip


def pareto_figure(tried: Sequence[Evaluation], front: Sequence[Evaluation], chosen: Evaluation,
                  budget_mb: float, share: str) -> Figure:  # fmt: skip
    """Peak memory against the worst SLO margin of every whole-trace (share) run, clipped.

    Feasible runs are green dots; infeasible ones are crosses (orange: stable but missing an SLO
    or the budget; grey: unstable). Off-scale points are counted in the corner.
    """
    view = pareto_view(tried, front, chosen)
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label, marker, colour, keep in _KINDS:
        points = [e for e in tried if keep(e) and view.shows(e)]
        if points:
            ax.scatter([e.peak_memory_mb for e in points], [e.worst_margin for e in points],
                       marker=marker, c=colour, s=22, label=label)  # fmt: skip
    ax.plot([e.peak_memory_mb for e in front], [e.worst_margin for e in front], "b-", lw=1,
            label="Pareto front")  # fmt: skip
    ax.scatter([chosen.peak_memory_mb], [chosen.worst_margin], marker="*", s=200, c="red",
               label="chosen", zorder=3)  # fmt: skip
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlim(*_padded(view.memory_mb))
    ax.set_yscale("symlog", linthresh=MARGIN_LINEAR)
    ax.set_ylim(view.margin[0] * 1.3 if view.margin[0] < -MARGIN_LINEAR else -1.1, 1.1)
    _budget_line(ax, budget_mb, view.memory_mb[1], axis="x")
    if view.off_scale:
        ax.text(0.01, 0.02, f"{view.off_scale} of {len(tried)} points off-scale", fontsize=8,
                transform=ax.transAxes)  # fmt: skip
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{significant(value * 100)}%"))
    ax.set(xlabel="peak memory per host (MB)",
           ylabel="worst SLO margin (>= 0 meets all;\nlog scale beyond -100%)",
           title=f"Peak memory against the worst SLO margin\nper host ({share})")  # fmt: skip
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def hosts_figure(per_host: Sequence[SimResult], base: Config, slos: Sequence[Slo],
                 budget_mb: float, seed: int = 0) -> Figure:  # fmt: skip
    """Each host's value of every SLO and its peak memory, one bar per host, targets drawn.

    Args:
        per_host: the recommended config simulated on every host's share of one seed, in host
            order (host ``i`` at index ``i``), e.g. what ``simulate --hosts N`` runs.
        base: the config whose routing defines the SLO groups.
        slos: the SLOs (waits and latencies in s, throughput in jobs/min).
        budget_mb: the per-host memory budget (``inf`` = none).
        seed: the seed of the split, for the title.
    """
    fig = Figure(figsize=(3.6 * (len(slos) + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, len(slos) + 1)
    hosts = np.arange(1, len(per_host) + 1)
    stats = [group_stats(r, job_groups(r.outcome.prepared.jobs.job_class,
                                       r.outcome.prepared.jobs.duration_s, base))
             for r in per_host]  # fmt: skip
    for ax, slo in zip(axes, slos, strict=False):
        values = [slo.value(s) for s in stats]
        _host_bars(ax, hosts, values, slo.target, slo.upper)
        unit = "s" if METRICS[slo.metric][0].endswith("_s") else "jobs/min"
        ax.set(title=slo.describe(), xlabel="host", ylabel=f"{slo.metric} ({unit})")
    peaks = [r.peak_memory_mb for r in per_host]
    _host_bars(axes[-1], hosts, peaks, budget_mb, upper=True)
    axes[-1].set(title="peak memory", xlabel="host", ylabel="peak memory of the worker\nand "
                 "its processes (MB)")  # fmt: skip
    for ax in (ax for ax in axes if ax.patches):  # not the "no jobs" panels
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    count = f"{len(per_host)} host" + ("s" if len(per_host) > 1 else "")
    fig.suptitle(f"Every host's share, seed {seed}: {count}, the recommended config")
    return fig


def _host_bars(ax, hosts: np.ndarray, values: Sequence[float | None], target: float,
               upper: bool) -> None:  # fmt: skip
    """One bar per host (red where it misses ``target``), the target line; "no jobs" if empty."""
    present = [(h, v) for h, v in zip(hosts, values, strict=True) if v is not None]
    if not present:
        no_jobs(ax, "no jobs on any host")
        return
    misses = [(v > target) if upper else (v < target) for _, v in present]
    ax.bar([h for h, _ in present], [v for _, v in present],
           color=["tab:red" if m else "tab:blue" for m in misses])  # fmt: skip
    if math.isfinite(target):
        ax.axhline(target, color="r", ls="--", lw=0.9)
    if len(present) < len(hosts):
        ax.text(0.5, 0.95, f"{len(hosts) - len(present)} hosts with no jobs", ha="center",
                va="top", transform=ax.transAxes, fontsize=7)  # fmt: skip
