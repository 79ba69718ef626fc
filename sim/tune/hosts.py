"""Many hosts, checked: a config run on every share of every seed's split (issue 14).

``check(prepared, config, problem, hosts)`` simulates ``config`` on all ``hosts`` shares of each
of ``problem.seeds`` seeds (``problem.seed``, ``seed + 1``, ...: the split of ``sim.tune.split``),
in parallel, and returns a ``HostCheck``: every share's ``Evaluation``, whether all of them meet
every target (stable, every checked SLO, the budget, no job killed), the worst share, and what
fails (which target, on which share, by how much). ``simulate --hosts`` and the tuner both use
it, so the numbers ``simulate --hosts N --seed S`` prints are the tuner's for that seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kqueue.policy import Config
from sim.model.jobs import TraceJobs
from sim.model.replay import simulate
from sim.model.report import SimResult
from sim.tune.evaluate import Evaluation, Problem, evaluate
from sim.tune.split import Splits, shares


@dataclass(frozen=True)
class ShareRun:
    """One share's run: which split (seed), which host (0-based), its evaluation."""

    seed: int
    host: int
    evaluation: Evaluation


@dataclass(frozen=True)
class HostCheck:
    """A config checked on every share of every seed at one host count."""

    hosts: int
    config: Config
    runs: tuple[ShareRun, ...]
    budget_mb: float

    @property
    def feasible(self) -> bool:
        """True when every share of every seed meets every target."""
        return all(r.evaluation.feasible for r in self.runs)

    @property
    def worst(self) -> ShareRun:
        """The share furthest from its targets (infeasible first, then the least SLO margin,
        then the highest peak memory)."""
        return max(self.runs, key=lambda r: badness(r.evaluation, self.budget_mb))

    def worst_of_seed(self, seed: int) -> ShareRun:
        """The worst share of one seed's split."""
        runs = [r for r in self.runs if r.seed == seed]
        return HostCheck(self.hosts, self.config, tuple(runs), self.budget_mb).worst

    def failures(self) -> str:
        """What fails, on the worst share: which target, by how much ("" when nothing does)."""
        if self.feasible:
            return ""
        run = self.worst
        return f"{miss(run.evaluation, self.budget_mb)} on host {run.host + 1}, seed {run.seed}"

    def spread(self, name: str, value: Callable[[Evaluation], float | None]) -> list[float]:
        """``value`` of every share's evaluation (those that have one)."""
        found = [value(r.evaluation) for r in self.runs]
        return [v for v in found if v is not None]


def miss(e: Evaluation, budget_mb: float) -> str:
    """Which target an evaluation misses, by how much (the first of: kills, stability, SLO,
    budget, nothing checked)."""
    if e.killed:
        return f"limits kill {e.killed} attempts ({e.dead} jobs dead-lettered)"
    if not e.stable:
        return "unstable (a tier's backlog keeps growing)"
    if e.worst_margin < 0:
        return f"{e.binding_slo} missed by {-e.worst_margin:.0%}"
    if e.peak_memory_mb > budget_mb:
        return (f"peak memory {e.peak_memory_mb:,.0f} MB over the {budget_mb:,.0f} MB budget "
                f"by {e.peak_memory_mb / budget_mb - 1:.1%}")  # fmt: skip
    if not e.checked:
        return "no SLO had jobs to check"
    return ""


def seeds_of(problem: Problem) -> list[int]:
    """The seeds a host count is checked on: ``seed .. seed + seeds - 1``."""
    return [problem.seed + k for k in range(max(1, problem.seeds))]


# One process's view of the work (set before the pool forks, inherited).
_STATE: dict[str, object] = {}


def _init(parts: dict[int, list[TraceJobs]], problem: Problem) -> None:
    _STATE["parts"], _STATE["problem"] = parts, problem


def _run(task: tuple[int, int, Config]) -> ShareRun:
    seed, host, config = task
    problem: Problem = _STATE["problem"]  # type: ignore[assignment]
    part = _STATE["parts"][seed][host]  # type: ignore[index]
    return ShareRun(seed, host, evaluate(simulate(part, config, problem.host), config, problem))


def check(
    prepared: TraceJobs,
    config: Config,
    problem: Problem,
    hosts: int,
    *,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    fail_fast: bool = False,
    splits: Splits | None = None,
    first: tuple[int, int] | None = None,
) -> HostCheck:
    """Simulate ``config`` on every share of every seed at ``hosts`` hosts (see the module).

    With ``fail_fast`` it stops at the first share that fails (the count fails whatever the
    others do): the check then holds the shares run so far, and the shares go to the
    processes one at a time, so a failure ends the check after the simulations running then
    (chunks of several let a failing check run a whole chunk first: at a budget far too low,
    where admission makes each simulation slow, that cost 15 s instead of 3). ``first`` (seed,
    host) is run first: a share that failed a similar check. ``splits`` remembers the splits of
    ``prepared`` across calls (``sim.tune.split.Splits``).
    """
    splits = splits if splits is not None else Splits(prepared)
    parts = {seed: splits.shares(hosts, seed) for seed in seeds_of(problem)}
    tasks = [(seed, host, config) for seed in parts for host in range(hosts)]
    at = next((i for i, task in enumerate(tasks) if task[:2] == first), None)
    if at is not None:
        tasks.insert(0, tasks.pop(at))
    processes = min(processes or len(os.sched_getaffinity(0)), len(tasks))
    _init(parts, problem)
    runs: list[ShareRun] = []
    if processes > 1:
        import multiprocess

        context = multiprocess.get_context("fork")
        chunk = 1 if fail_fast else max(1, len(tasks) // (4 * processes))
        with context.Pool(processes) as pool:  # forked after ``_init``: the shares are there
            results = pool.imap(_run, tasks, chunksize=chunk)
            for done, run in enumerate(results, start=1):
                runs.append(run)
                if progress is not None:
                    progress(done, len(tasks))
                if fail_fast and not run.evaluation.feasible:
                    break  # leaving the pool's block terminates the rest
    else:
        for done, task in enumerate(tasks, start=1):
            runs.append(_run(task))
            if progress is not None:
                progress(done, len(tasks))
            if fail_fast and not runs[-1].evaluation.feasible:
                break
    _STATE.clear()
    return HostCheck(hosts, config, tuple(runs), problem.memory_budget_mb)


def simulate_hosts(
    prepared: TraceJobs, config: Config, problem: Problem, hosts: int
) -> list[SimResult]:
    """Every share of ``problem.seed``'s split at ``hosts`` hosts, simulated (in this process):
    what ``simulate --hosts`` reports."""
    return [simulate(part, config, problem.host) for part in shares(prepared, hosts, problem.seed)]


def judge(results: Sequence[SimResult], config: Config, problem: Problem) -> list[Evaluation]:
    """Each host's run judged against the problem (as the tuner judges a share)."""
    return [evaluate(r, config, problem) for r in results]


def worst_index(evaluations: Sequence[Evaluation], budget_mb: float) -> int:
    """The position of the worst host (as ``HostCheck.worst``)."""
    return max(range(len(evaluations)), key=lambda i: badness(evaluations[i], budget_mb))


def badness(e: Evaluation, budget_mb: float) -> tuple:
    """Sort key, larger = worse: infeasible, unstable, further off, less SLO room, more memory."""
    infeasible, unstable, violation = e.rank(budget_mb)[:3]
    return (infeasible, unstable, violation, -e.worst_margin, e.peak_memory_mb)


def meets(evaluations: Sequence[Evaluation]) -> bool:
    """True when every host meets every target and no job is killed."""
    return bool(evaluations) and all(e.feasible and not e.killed for e in evaluations)


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
