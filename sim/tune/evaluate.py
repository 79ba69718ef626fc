"""Evaluating candidate configs for the tuner: one simulation each, in parallel, in a fixed order.

``Evaluation`` is what the search keeps of a run (small, picklable): stable or not, peak memory,
each SLO's margin. ``Evaluator`` runs candidates on the prepared trace or on a window of it
(the densest stretch of ``n`` consecutive arrivals), on a ``multiprocess`` fork pool sized to the
cores, and returns the evaluations in the order of the candidates, whatever order the processes
finish in, so the search is deterministic. Each (window, config) is simulated once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kqueue.policy import Config, HostProfile
from sim.model.jobs import Jobs, TraceJobs
from sim.model.replay import simulate
from sim.model.report import SimResult
from sim.tune.slo import Slo, job_groups, margins

#: Two runs whose peaks differ by at most this fraction tie on memory; lower waits win.
MEMORY_TIE_FRACTION = 0.01


@dataclass(frozen=True)
class Problem:
    """What the operator asks: SLOs, a memory budget (MB, ``inf`` = none), the host, a base."""

    slos: tuple[Slo, ...]
    memory_budget_mb: float
    host: HostProfile
    base: Config
    seed: int = 0
    #: Seeds of the split over hosts every share of which must meet the targets.
    seeds: int = 3
    #: True when the user asked for the base config's limits (``--keep-limits``): kills are then
    #: counted, not disqualifying.
    keep_limits: bool = False


@dataclass(frozen=True)
class Evaluation:
    """One candidate's run on ``jobs`` jobs: what the selection rule needs."""

    config: Config
    jobs: int
    stable: bool
    peak_memory_mb: float
    throughput_per_min: float
    #: (SLO name, margin) in the problem's SLO order; negative = missed, None = no jobs.
    margins: tuple[tuple[str, float | None], ...]
    feasible: bool
    #: Attempts the runtime's limits killed (timeout, memory) and jobs dead-lettered.
    killed: int = 0
    dead: int = 0

    @property
    def worst_margin(self) -> float:
        """The smallest margin of the SLOs that checked something (the binding SLO's)."""
        return min((m for _, m in self.margins if m is not None), default=1.0)

    @property
    def binding_slo(self) -> str:
        """The name of the checked SLO with the smallest margin."""
        checked = [item for item in self.margins if item[1] is not None]
        return min(checked, key=lambda item: item[1])[0] if checked else ""

    @property
    def checked(self) -> bool:
        """True when some SLO had jobs to check (or there is no SLO at all)."""
        return not self.margins or any(m is not None for _, m in self.margins)

    def rank(self, budget_mb: float) -> tuple:
        """Sort key: feasible first by memory then waits; infeasible by how far off they are."""
        over = max(0.0, self.peak_memory_mb / budget_mb - 1) if math.isfinite(budget_mb) else 0.0
        violation = max(0.0, -self.worst_margin) + over
        return (not self.feasible, not self.stable, violation, self.peak_memory_mb,
                -self.worst_margin)  # fmt: skip


def evaluate(result: SimResult, config: Config, problem: Problem) -> Evaluation:
    """Judge one run against the problem's SLOs, stability and memory budget.

    The SLO groups are where the base config routes each class of the run's own jobs
    (``sim.tune.slo.job_groups``).
    """
    jobs = result.outcome.prepared.jobs
    groups = job_groups(jobs.job_class, jobs.duration_s, problem.base)
    found = margins(result, problem.slos, groups)
    checked = [m for m in found.values() if m is not None]
    # never feasible on SLOs that checked nothing, nor with a job killed by limits the user
    # did not ask for (``Problem.keep_limits``)
    killed = result.killed_timeout + result.killed_memory
    ok = (
        result.stable
        and all(m >= 0 for m in checked)
        and (bool(checked) or not found)
        and (killed == 0 or problem.keep_limits)
    )
    return Evaluation(
        config=config,
        jobs=result.jobs,
        stable=result.stable,
        peak_memory_mb=result.peak_memory_mb,
        throughput_per_min=result.throughput_per_min,
        margins=tuple(found.items()),
        feasible=ok and result.peak_memory_mb <= problem.memory_budget_mb,
        killed=killed,
        dead=result.dead,
    )


def select(evaluations: Sequence[Evaluation], budget_mb: float) -> Evaluation:
    """The selection rule: least peak memory among the feasible, a 1% memory tie going to the
    larger worst SLO margin (lower waits), then to the earlier candidate; with none feasible,
    the one closest to feasible (``Evaluation.rank``)."""
    feasible = [e for e in evaluations if e.feasible]
    if not feasible:
        return min(evaluations, key=lambda e: e.rank(budget_mb))
    least = min(e.peak_memory_mb for e in feasible)
    tied = [e for e in feasible if e.peak_memory_mb <= least * (1 + MEMORY_TIE_FRACTION)]
    return max(tied, key=lambda e: e.worst_margin)  # max keeps the first of equals


def densest_window(prepared: TraceJobs, jobs: int) -> TraceJobs:
    """The ``jobs`` consecutive arrivals with the shortest span (the busiest stretch)."""
    n = len(prepared.jobs)
    if jobs >= n:
        return prepared
    submitted = np.asarray(prepared.jobs.submitted_s, float)
    start = int(np.argmin(submitted[jobs - 1 :] - submitted[: n - jobs + 1]))
    return subset(prepared, np.arange(start, start + jobs))


def subset(prepared: TraceJobs, index: np.ndarray) -> TraceJobs:
    """The jobs at ``index`` (sorted positions) as a ``TraceJobs`` starting at time 0."""
    j = prepared.jobs
    submitted = np.asarray(j.submitted_s, float)[index]
    shift = float(submitted[0]) if len(submitted) else 0.0

    def pick(values: list) -> list:
        return [values[i] for i in index.tolist()]

    jobs = Jobs(
        submitted_s=(submitted - shift).tolist(),
        duration_s=pick(j.duration_s),
        cpu_s=pick(j.cpu_s),
        memory_mb=pick(j.memory_mb),
        job_class=pick(j.job_class),
        priority=pick(j.priority) if len(j.priority) else [],
    )
    rows = prepared.rows.iloc[index].reset_index(drop=True)
    share = len(index) / max(1, len(j))
    return TraceJobs(
        jobs,
        prepared.origin_s + shift,
        rows,
        round(prepared.default_cpu_rows * share),
        round(prepared.default_memory_rows * share),
        prepared.fleet_part,
    )


# One process's view of the work, set by ``_init`` in each pool process (inherited on fork).
_STATE: dict[str, object] = {}


def _init(windows: dict[int, TraceJobs], problem: Problem) -> None:
    _STATE["windows"], _STATE["problem"] = windows, problem


def _run(task: tuple[int, Config]) -> Evaluation:
    size, config = task
    problem: Problem = _STATE["problem"]  # type: ignore[assignment]
    window = _STATE["windows"][size]  # type: ignore[index]
    return evaluate(simulate(window, config, problem.host), config, problem)


class Evaluator:
    """Runs candidates on windows of one prepared trace, in parallel, remembering every result.

    Args:
        prepared: the whole trace.
        sizes: the window sizes (jobs) the search will use; the whole trace is always there.
        problem: SLOs, budget, host.
        processes: worker processes (default: the cores this process may use; 1 = no pool).
        progress: ``progress(label) -> callable(done, total)``, or ``None`` for silence.

    Use as a context manager (it owns a process pool).
    """

    def __init__(
        self,
        prepared: TraceJobs,
        sizes: Sequence[int],
        problem: Problem,
        processes: int | None = None,
        progress: Callable[[str], Callable[[int, int], None]] | None = None,
    ):
        n = len(prepared.jobs)
        self.full = n
        self.windows = {size: densest_window(prepared, size) for size in sizes if size < n}
        self.windows[n] = prepared
        self.problem = problem
        self.processes = processes or len(os.sched_getaffinity(0))
        self.progress = progress
        self.seen: dict[tuple[int, Config], Evaluation] = {}
        self._pool = None

    def __enter__(self) -> Evaluator:
        if self.processes > 1:
            import multiprocess

            context = multiprocess.get_context("fork")
            self._pool = context.Pool(self.processes, _init, (self.windows, self.problem))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def run(self, size: int, configs: Sequence[Config], label: str) -> list[Evaluation]:
        """Evaluate ``configs`` on the window of ``size`` jobs; results in the same order."""
        size = min(size, self.full)
        todo = list(dict.fromkeys(c for c in configs if (size, c) not in self.seen))
        report = self.progress(f"{label} ({size:,} jobs)") if self.progress and todo else None
        if self._pool is not None and len(todo) > 1:
            results = self._pool.imap(_run, [(size, c) for c in todo])
        else:
            _init(self.windows, self.problem)
            results = map(_run, [(size, c) for c in todo])
        for done, (config, evaluation) in enumerate(zip(todo, results, strict=True), start=1):
            self.seen[size, config] = evaluation
            if report is not None:
                report(done, len(todo))
        return [self.seen[size, c] for c in configs]

    def on_full_trace(self) -> list[Evaluation]:
        """Every evaluation made on the whole trace, in the order they were made."""
        return [e for (size, _), e in self.seen.items() if size == self.full]
