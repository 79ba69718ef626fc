"""The least memory budget the tuner can guarantee, and the waits it costs (issue 18, item 6).

Scenario: ``sim.tune.search.tune`` found a config (and a host count) that meets every SLO; its
simulated peak, without admission, is what the host would use. A ``memory_budget_mb`` below that
peak makes the runtime hold pool and isolated jobs back while the memory it expects does not fit
(``kqueue.policy.admission``), so the budget becomes a guarantee paid for in waits. This module
searches that budget: from the user's ``--memory-budget`` (the host count was checked there),
or without one from the unbudgeted peak over every share (the host-count search's own check),
down towards the least it could be, the larger of the mean memory in use (Little's law,
``sim.tune.space.memory_floor_mb``) and the largest job plus the worker and one process. Each
budget tried is written into the config as the runtime would read it (``config_with_budget``)
and simulated, admission on, on every share of every seed the host-count check uses
(``sim.tune.hosts.check``); the answer is the least budget whose runs all meet every SLO, stay
stable, kill nothing and peak within it. The search is a bisection to ``BUDGET_RESOLUTION``
(about six checks), deterministic because each check is. Both the budgeted and the unbudgeted
config are simulated once more on host 1's share so the report can show the p95 waits per tier
the budget costs; ``kqueue simulate --config`` on the written file reproduces those numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from kqueue.policy import Config
from sim.model.replay import simulate
from sim.model.report import SimResult
from sim.tune.budget import with_budget
from sim.tune.evaluate import Problem
from sim.tune.hosts import HostCheck, check
from sim.tune.impossible import process_overhead_mb
from sim.tune.search import TuneResult
from sim.tune.slo import group_stats, job_groups
from sim.tune.space import cpu_stretch, make_split, memory_floor_mb, profile
from sim.tune.split import Splits

#: The bisection stops when the passing and failing budgets are this close: the larger of a
#: fixed step and a fraction of the passing one (MB, fraction).
BUDGET_RESOLUTION = (16.0, 0.02)
#: Admission holds jobs on predicted memory (a class's high quantile), so at the unbudgeted peak
#: it may already cost an SLO: the ceiling then grows by this factor, at most this many times
#: (never past the user's ``--memory-budget``).
CEILING_GROWTH = (1.25, 3)
#: Tiers whose p95 waits the report puts side by side.
TIERS = ("inline", "pool", "isolated")


@dataclass(frozen=True)
class BudgetSearch:
    """The searched budget and its evidence.

    ``config`` is the recommended config with ``memory_budget_mb = budget_mb`` as it is written;
    ``unbudgeted`` the same config without a budget. ``passed`` is the check at the budget,
    ``failed`` the check at the highest budget tried that missed; ``ceiling_mb`` the unbudgeted
    config's highest simulated peak over those shares (``inf`` when the user gave a budget:
    the search then starts from that budget, not from a peak). ``budgeted_run`` and
    ``unbudgeted_run`` are host 1's share of the first seed, simulated (what ``simulate
    --config`` prints).
    """

    config: Config
    budget_mb: float
    unbudgeted: Config
    floor_mb: float
    least_mb: float
    ceiling_mb: float
    passed: HostCheck | None
    failed: HostCheck | None
    tried: tuple[tuple[float, bool], ...]
    budgeted_run: SimResult
    unbudgeted_run: SimResult
    groups: np.ndarray

    @property
    def binding(self) -> str:
        """Why the budget is not lower: what fails just below it, or the bound it sits on."""
        if self.passed is None:
            failed = self.failed
            return (
                f"admission misses a target even at {failed.budget_mb:,.0f} MB "
                f"({self._ceiling()}): {failed.failures()}"
            )
        if self.failed is not None:
            return f"at {self.failed.budget_mb:,.0f} MB {self.failed.failures()}"
        if self.least_mb > self.floor_mb:
            return (f"the largest job plus the worker and one process needs "
                    f"{self.least_mb:,.0f} MB")  # fmt: skip
        return f"the mean memory in use (Little's law) is {self.floor_mb:,.0f} MB"

    def _ceiling(self) -> str:
        """Where the search started: the unbudgeted peak, or the budget the user gave."""
        if math.isfinite(self.ceiling_mb):
            return f"unbudgeted peak {self.ceiling_mb:,.0f} MB"
        return "searched down from the budget given"

    def p95_waits(self) -> dict[str, tuple[float | None, float | None]]:
        """``{tier: (unbudgeted p95 wait s, budgeted p95 wait s)}`` on host 1's share."""
        free = group_stats(self.unbudgeted_run, self.groups)
        kept = group_stats(self.budgeted_run, self.groups)
        return {t: (free[t]["p95_wait_s"], kept[t]["p95_wait_s"]) for t in TIERS}

    def lines(self) -> list[str]:
        """The report's lines: the budget, what binds it, the waits beside the unbudgeted run."""
        head = (f"memory budget: {self.budget_mb:,.0f} MB guaranteed (least possible "
                f"{self.least_mb:,.0f} MB, {self._ceiling()}; "
                f"{len(self.tried)} checks); binding: {self.binding}")  # fmt: skip
        if self.passed is None:
            head = f"memory budget: none guaranteed; binding: {self.binding}"
        free, kept = self.unbudgeted_run, self.budgeted_run
        rows = [head, f"  {'':<22}{'no budget':>12}{'budget':>12}",
                f"  {'peak memory MB':<22}{free.peak_memory_mb:>12,.0f}"
                f"{kept.peak_memory_mb:>12,.0f}"]  # fmt: skip
        for tier, (a, b) in self.p95_waits().items():
            rows.append(f"  {tier + ' p95 wait s':<22}{_seconds(a):>12}{_seconds(b):>12}")
        return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def search_budget(
    found: TuneResult,
    prepared,
    *,
    processes: int | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> BudgetSearch:
    """The least budget at which ``found``'s config still meets every target (see the module).

    Args:
        found: the tuner's answer (``tune``), its config with or without a budget.
        prepared: the whole prepared trace ``tune`` ran on (the host-count check splits it).
        processes: simulation processes (default: all usable cores).
        progress: as ``tune``'s.
    """
    problem = found.problem
    # one host: every seed's "split" is the whole trace, so one seed checks it
    problem = problem if found.hosts > 1 else dataclasses.replace(problem, seeds=1)
    free = found.config.replace(memory_budget_mb=math.inf)
    splits = Splits(prepared)
    trial = _Trial(free, problem, found.hosts, splits, processes, progress)
    peak = _unbudgeted_peak_mb(found, free, problem, prepared, splits, processes, progress)
    ceiling = min(peak, problem.memory_budget_mb)
    floor = _floor_mb(found)
    least = max(floor, _largest_job_mb(prepared) + process_overhead_mb(problem.host))
    least = float(math.ceil(min(least, ceiling)))
    passed, failed = _bisect(trial, least, float(ceiling), problem.memory_budget_mb)
    budget = passed.budget_mb if passed is not None else problem.memory_budget_mb
    config = trial.config(budget) if passed is not None else with_budget(
        found.config, budget, prepared.jobs.memory_mb)  # fmt: skip
    share = found.share
    groups = job_groups(share.jobs.job_class, share.jobs.duration_s, problem.base)
    return BudgetSearch(config, budget, free, floor, least, peak, passed, failed,
                        tuple(trial.tried), simulate(share, config, problem.host),
                        simulate(share, free, problem.host), groups)  # fmt: skip


def _unbudgeted_peak_mb(found, free, problem, prepared, splits, processes, progress) -> float:
    """The highest peak of ``free`` (the answer without a budget) over every share of every
    seed, MB; ``inf`` when the user gave a budget (the search then starts from it).

    With a user budget the ceiling is that budget: the host-count search checked the answer
    there, admission on, so an unbudgeted check of every share (one more run per share, about a
    sixth of a 100,000-job tune) would only lower the bisection's first step. Without one, the
    host-count search's check at the answer is that check (the same config, shares and seeds,
    every share run), so it is reused; it is run only when that check is missing or partial.
    """
    if math.isfinite(problem.memory_budget_mb):
        return math.inf
    held = found.check
    runs = found.hosts * max(1, problem.seeds)
    if found.hosts == 1 or held is None or held.config != free or len(held.runs) != runs:
        report = progress("unbudgeted peak") if progress else None
        held = check(prepared, free, problem, found.hosts, processes=processes, splits=splits,
                     progress=report)  # fmt: skip
    return float(math.ceil(max(r.evaluation.peak_memory_mb for r in held.runs)))


def _bisect(trial: _Trial, least: float, ceiling: float, most: float):
    """(check at the least passing budget or None, check at the highest failing one or None);
    the ceiling grows (``CEILING_GROWTH``, up to ``most``) while it fails."""
    high, low = trial.run(ceiling), None
    factor, steps = CEILING_GROWTH
    for _ in range(steps):
        if high.feasible or ceiling >= most:
            break
        least, low = ceiling, high
        ceiling = float(min(most, math.ceil(ceiling * factor)))
        high = trial.run(ceiling)
    if not high.feasible:
        return None, high
    if low is None:
        low = trial.run(least) if least < ceiling else high
        if low.feasible:
            return low, None
    while ceiling - least > max(BUDGET_RESOLUTION[0], BUDGET_RESOLUTION[1] * ceiling):
        middle = float(math.ceil((least + ceiling) / 2))
        checked = trial.run(middle)
        if checked.feasible:
            ceiling, high = middle, checked
        else:
            least, low = middle, checked
    return high, low


class _Trial:
    """Checks a budget: the config as written with it, on every share of every seed."""

    def __init__(self, free: Config, problem: Problem, hosts: int, splits: Splits,
                 processes: int | None, progress) -> None:  # fmt: skip
        self.free, self.problem, self.hosts, self.splits = free, problem, hosts, splits
        self.processes, self.progress = processes, progress
        self.tried: list[tuple[float, bool]] = []
        #: (seed, host) of the share that failed the last failing budget: run first next time
        #: (a budget passes only if every share does, so the order changes no verdict).
        self.failed_at: tuple[int, int] | None = None

    def config(self, budget_mb: float) -> Config:
        """The unbudgeted config with ``budget_mb`` kept (``config_with_budget``)."""
        return config_with_budget(self.free, budget_mb, self.splits.prepared, self.problem)

    def run(self, budget_mb: float) -> HostCheck:
        problem = dataclasses.replace(self.problem, memory_budget_mb=budget_mb)
        report = self.progress(f"budget {budget_mb:,.0f} MB") if self.progress else None
        checked = check(self.splits.prepared, self.config(budget_mb), problem, self.hosts,
                        processes=self.processes, progress=report, fail_fast=True,
                        splits=self.splits, first=self.failed_at)  # fmt: skip
        self.tried.append((budget_mb, checked.feasible))
        if not checked.feasible:
            self.failed_at = (checked.worst.seed, checked.worst.host)
        return checked


#: The least memory limit written for a class (when the budget leaves no room for a process,
#: its jobs run inline, where the limit does not apply; a limit must still be above 0).
MIN_LIMIT_MB = 1.0


def config_with_budget(config: Config, budget_mb: float, prepared, problem: Problem) -> Config:
    """``config`` as written with ``budget_mb``: each class's memory limit capped at the budget
    less the worker and one process (never below the class's largest traced job, as
    ``sim.tune.class_limits`` caps them for a given budget), then ``sim.tune.budget.with_budget``,
    with the prediction before history (``default_job_memory_mb``) the trace's largest job.
    """
    cap_mb = budget_mb - process_overhead_mb(problem.host)
    largest = _largest_by_class(prepared)
    tables = {}
    for name, options in config.jobs.items():
        limit = options.max_memory_mb
        if limit is not None and limit > cap_mb:
            # a limit is > 0 (the config refuses 0): 1 MB where no process fits the budget
            limit = min(budget_mb, max(cap_mb, largest.get(name, 0.0), MIN_LIMIT_MB))
            options = dataclasses.replace(options, max_memory_mb=limit)
        tables[name] = options
    capped = dataclasses.replace(config, jobs=MappingProxyType(tables))
    kept = with_budget(capped, budget_mb, prepared.jobs.memory_mb)
    # a guarantee holds from the first job: before a class has history it is predicted at the
    # trace's largest job (never above its own limit, ``kqueue.policy.memory.cold_start_mb``)
    cold_mb = max(kept.default_job_memory_mb, float(math.ceil(max(largest.values(), default=1))))
    return kept.replace(default_job_memory_mb=min(cold_mb, budget_mb))


def _largest_by_class(prepared) -> dict[str, float]:
    jobs = prepared.jobs
    names = np.asarray(jobs.job_class, dtype=object)
    memory = np.asarray(jobs.memory_mb, float)
    return {name: float(memory[names == name].max()) for name in set(jobs.job_class)}


def _largest_job_mb(prepared) -> float:
    memory = np.asarray(prepared.jobs.memory_mb, float)
    memory = memory[np.isfinite(memory)]
    return float(memory.max()) if len(memory) else 0.0


def _floor_mb(found: TuneResult) -> float:
    """The mean memory in use of the config's split on host 1's share (Little's law), MB."""
    problem, config = found.problem, found.config
    trace = profile(found.share, problem.base)
    stretch = cpu_stretch(trace, problem.host)
    split = make_split(trace, problem.host, stretch if math.isfinite(stretch) else 1.0,
                       config.inline_max_duration_s, config.pooled_max_duration_s)  # fmt: skip
    return memory_floor_mb(split, problem.host, config, config.pool_size)


def adopt(found: TuneResult, searched: BudgetSearch) -> TuneResult:
    """``found`` with the searched budget's config, its run on host 1 and the budget as the
    problem's (what the summary, the report and ``simulate --config`` then describe)."""
    if searched.passed is None:
        return dataclasses.replace(found, config=searched.config)
    first = [r.evaluation for r in searched.passed.runs
             if r.host == 0 and r.seed == found.problem.seed]  # fmt: skip
    problem = dataclasses.replace(found.problem, memory_budget_mb=searched.budget_mb)
    return dataclasses.replace(found, config=searched.config, problem=problem,
                               evaluation=first[0] if first else found.evaluation)  # fmt: skip
