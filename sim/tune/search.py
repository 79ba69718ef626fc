"""The tuner: from a trace and targets to the least-memory config that meets them (issue 6).

Scenario: an operator has a trace of their jobs, SLOs per tier (``sim.tune.slo``) and a memory
budget. ``tune(prepared, problem)`` searches the routing thresholds, pool size, concurrency limits
and pool recycling for the config that keeps every tier stable, meets every SLO and fits the budget
in the least peak memory (ties within 1% go to lower waits). The search:

1. Bounds, no simulation (``sim.tune.bounds``, ``sim.tune.space``): the offered CPU must fit
   the host's cores, inline CPU must fit one core (the GIL), a split's mean memory must fit the
   budget. Splits that pass are ranked by a rough memory guess; the best few get Erlang-C-sized
   capacities (``sim.tune.candidates``).
2. Successive halving (``sim.tune.config_search``): every candidate runs on the trace's densest
   window of ``SCREEN_JOBS`` jobs, the best third on a larger window, the best on the whole trace.
3. Refinement on the whole trace: step each capacity down (or, while nothing is feasible, up)
   and try recycling pool processes, while the selection rule improves.

If one host cannot do it, ``tune`` splits the arrivals over ``k`` workers (the seeded split of
``sim.tune.split``), searches host 1's share and finds the least ``k`` at which every share of
every seed meets the targets (``sim.tune.host_search``). Every final number comes from a
simulation of the whole trace (or share) with the returned config.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from kqueue.errors import ConfigError
from kqueue.policy import Config
from sim.model.jobs import TraceJobs
from sim.tune.bounds import host_bounds, one_host_bound
from sim.tune.config_search import search_trace
from sim.tune.evaluate import Evaluation, Problem
from sim.tune.host_search import least_hosts
from sim.tune.hosts import HostCheck, ShareRun
from sim.tune.space import profile
from sim.tune.split import share

#: ``share`` is re-exported: the notebook and the experiments split a trace over hosts from here.
__all__ = ["TuneResult", "describe_miss", "share", "tune"]


@dataclass(frozen=True)
class TuneResult:
    """The recommendation and its evidence.

    ``config`` is for each of ``hosts`` workers (1 = one host is enough); ``evaluation`` is its run
    on the whole trace (or one worker's share). ``binding`` says what stops one host from meeting
    the targets ("" when one does). ``tried`` holds every whole-trace (share) evaluation, for the
    Pareto front; ``share`` is the trace they ran on.
    """

    config: Config
    evaluation: Evaluation
    hosts: int
    hosts_verified: bool
    binding: str
    tried: tuple[Evaluation, ...]
    share: TraceJobs
    problem: Problem
    candidates: int
    simulations: int
    wall_s: float
    #: Every host count checked on every share of every seed (``sim.tune.hosts``), by count.
    checks: dict = dataclasses.field(default_factory=dict)
    #: Hosts each bound alone asks for (``host_bounds``).
    bounds: dict = dataclasses.field(default_factory=dict)
    #: Why ``hosts`` is a bound and not verified ("" when verified).
    unverified: str = ""

    @property
    def check(self) -> HostCheck | None:
        """The check at the answer's host count."""
        return self.checks.get(self.hosts)

    @property
    def below(self) -> HostCheck | None:
        """The check one host fewer than the answer (None when not run)."""
        return self.checks.get(self.hosts - 1)

    def what_sets_count(self) -> str:
        """What sets the host count: what fails one host fewer, and what the bounds alone ask."""
        bounds = ", ".join(f"{name} alone needs {k}" for name, k in self.bounds.items())
        bounds = f" (bounds: {bounds})" if bounds else ""
        if self.hosts == 1:
            return "one host meets every target" + bounds
        below = self.below
        if below is not None and not below.feasible:
            return f"at {self.hosts - 1} hosts {below.failures()}" + bounds
        lowest = max(self.bounds.values(), default=1)
        if self.hosts - 1 < lowest:
            name = max(self.bounds, key=self.bounds.get)
            return f"{self.hosts - 1} hosts are below the {name} bound{bounds}"
        return f"{self.hosts - 1} hosts were not checked{bounds}"


def tune(
    prepared: TraceJobs,
    problem: Problem,
    *,
    processes: int | None = None,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
) -> TuneResult:
    """Find the least-memory config meeting ``problem`` on ``prepared``; see the module docstring.

    Args:
        prepared: the trace (``sim.model.replay.prepare``), already at the rate to plan for.
        problem: SLOs, memory budget, host, base config (its other settings are kept), seed.
        processes: simulation processes (default: all usable cores; 1 = in this process).
        progress: ``progress(label)`` returns a ``callable(done, total)`` for each stage.

    Raises:
        ConfigError: a budget below the worker's own memory (no number of hosts can meet it).
    """
    began = time.perf_counter()
    host = problem.host
    if problem.memory_budget_mb < host.worker_mb:
        raise ConfigError(
            f"memory budget {problem.memory_budget_mb:g} MB is below the worker process's own "
            f"{host.worker_mb:g} MB (host profile worker_mb); no config can meet it"
        )
    trace = profile(prepared, problem.base)
    binding = one_host_bound(trace, problem)
    run = None
    if not binding:
        run = search_trace(prepared, trace, problem, processes, progress)
        binding = "" if run[0].feasible else describe_miss(run[0], problem)
    hosts, verified, checks, why = 1, True, {}, ""
    if binding:
        hosts, verified, run, checks, why = least_hosts(prepared, trace, problem, processes,
                                                        progress, run)  # fmt: skip
    best, tried, part, counts = run
    if hosts in checks and checks[hosts].feasible:
        best = _on_host_one(checks[hosts], best)
    else:
        checks[hosts] = HostCheck(hosts, best.config, (ShareRun(problem.seed, 0, best),),
                                  problem.memory_budget_mb)  # fmt: skip
    return TuneResult(best.config, best, hosts, verified, binding, tried, part, problem,
                      counts[0], counts[1], time.perf_counter() - began, checks,
                      host_bounds(trace, problem), why)  # fmt: skip


def _on_host_one(checked: HostCheck, best: Evaluation) -> Evaluation:
    """The checked config's evaluation on host 1 of the first seed (what the report shows)."""
    for r in checked.runs:
        if r.host == 0 and r.evaluation.config == checked.config:
            return r.evaluation
    return best


def describe_miss(best: Evaluation, problem: Problem) -> str:
    """Which constraint the closest config misses: stability, an SLO, or the budget."""
    if not best.stable:
        return "stability: a tier's backlog keeps growing with the best config found"
    if best.worst_margin < 0:
        return f"SLO {best.binding_slo}: missed by {-best.worst_margin:.0%} with the best config"
    return (
        f"memory: the best config peaks at {best.peak_memory_mb:,.0f} MB, over the "
        f"{problem.memory_budget_mb:,.0f} MB budget"
    )
