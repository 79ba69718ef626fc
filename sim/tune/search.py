"""The tuner: from a trace and targets to the least-memory config that meets them (issue 6).

Scenario: an operator has a trace of their jobs, SLOs per tier (``sim.tune.slo``) and a memory
budget. ``tune(prepared, problem)`` searches the routing thresholds, pool size, concurrency limits
and pool recycling for the config that keeps every tier stable, meets every SLO and fits the budget
in the least peak memory (ties within 1% go to lower waits). The search:

1. Bounds, no simulation (``sim.tune.space``): the offered CPU must fit the host's cores, inline
   CPU must fit one core (the GIL), a split's mean memory must fit the budget. Splits that pass
   are ranked by a rough memory guess; the best few get Erlang-C-sized capacities.
2. Successive halving: every candidate runs on the trace's densest window of ``SCREEN_JOBS``
   jobs, the best third on a larger window, the best on the whole trace.
3. Refinement on the whole trace: step each capacity down (or, while nothing is feasible, up)
   and try recycling pool processes, while the selection rule improves.

If one host cannot do it, ``tune`` splits the arrivals over ``k`` workers (each job to a worker
drawn with the seeded generator; one worker's share is tuned) and finds the least ``k`` that works.
Every final number comes from a simulation of the whole trace (or share) with the returned config.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from kqueue.errors import ConfigError
from kqueue.policy import Config
from sim.model.jobs import TraceJobs
from sim.tune.budget import with_budget
from sim.tune.count import least_count
from sim.tune.evaluate import Evaluation, Evaluator, Problem, select
from sim.tune.hosts import HostCheck, ShareRun, check
from sim.tune.hosts import seeds_of as hosts_seeds
from sim.tune.space import (
    INLINE_SAFE_MAX_S,
    MAX_CPU_UTILISATION,
    Split,
    TraceProfile,
    cpu_stretch,
    make_split,
    memory_floor_mb,
    memory_guess_mb,
    profile,
    servers_for,
    splits,
    wait_target,
)
from sim.tune.split import Splits, share

#: Jobs in the first screening window, and in the second (successive halving).
SCREEN_JOBS = (5_000, 20_000)
#: Splits (threshold pairs) that get simulated, best memory guess first.
SPLITS_SIMULATED = 6
#: Capacity multipliers tried on each split's Erlang-C sizes (pool and isolated).
CAPACITY_FACTORS = (1.0, 1.3)
#: Inline slots are cheap (no process): at least the base config's, or this much above Erlang C.
INLINE_HEADROOM = 1.5
#: Candidates kept to the whole trace, and refinement rounds on it.
FINALISTS = 3
REFINE_ROUNDS = 5
#: Refinement rounds while nothing is feasible (each grows or shrinks a capacity one step; on
#: HPC2N at its own rate, five such rounds on a failing 2-host share took as long as the rest).
REFINE_ROUNDS_INFEASIBLE = 2
#: Largest concurrency the sizing considers.
MAX_SLOTS = 100_000
#: A worker's share smaller than this is not simulated (the host count is then a bound).
MIN_SHARE_JOBS = 50
#: The largest host count searched leaves each host this many times ``MIN_SHARE_JOBS`` on average.
SHARE_ROOM = 1.1
#: Host counts tried when finding the number of hosts (doubling, bisection, the count below).
HOST_SEARCHES = 8
#: Host counts below the answer checked beyond ``HOST_SEARCHES`` (at least the count below).
BELOW_SEARCHES = 2
#: Rounds of growing capacities on a failing share before a host count is given up.
SHARE_FIXES = 2


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
        run = _search(prepared, trace, problem, processes, progress)
        binding = "" if run[0].feasible else describe_miss(run[0], problem)
    hosts, verified, checks, why = 1, True, {}, ""
    if binding:
        hosts, verified, run, checks, why = _hosts(prepared, trace, problem, processes, progress,
                                                   run)  # fmt: skip
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


def one_host_bound(trace: TraceProfile, problem: Problem) -> str:
    """Why no config can work on one host, from bounds alone ("" when the bounds allow one)."""
    host = problem.host
    if host.cores and trace.cpu_load_cores >= host.cores * MAX_CPU_UTILISATION:
        return (
            f"CPU: the trace offers {trace.cpu_load_cores:.1f} cores of CPU work, over "
            f"{MAX_CPU_UTILISATION:.0%} of the host's {host.cores} cores"
        )
    floor = min_memory_floor(trace, problem)
    if floor > problem.memory_budget_mb:
        return (
            f"memory: the mean memory in use is at least {floor:,.0f} MB for any thresholds, "
            f"over the {problem.memory_budget_mb:,.0f} MB budget"
        )
    return ""


def min_memory_floor(trace: TraceProfile, problem: Problem) -> float:
    """The least mean-memory bound over every split (MB)."""
    stretch = cpu_stretch(trace, problem.host)
    if not math.isfinite(stretch):
        stretch = 1.0
    found = splits(trace, problem.host, stretch, inline_cap(problem))
    return min(memory_floor_mb(s, problem.host) for s in found)


def inline_cap(problem: Problem) -> float:
    """Longest class estimate that may go inline: the safe bound, or the base config's."""
    return max(INLINE_SAFE_MAX_S, problem.base.inline_max_duration_s)


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


def candidates(trace: TraceProfile, problem: Problem) -> list[Config]:
    """The first candidates, in a fixed order: the best splits by memory guess, each with
    Erlang-C-sized capacities scaled by ``CAPACITY_FACTORS`` (and the base config's split)."""
    host = problem.host
    stretch = cpu_stretch(trace, host)
    stretch = stretch if math.isfinite(stretch) else 1.0
    found = [s for s in splits(trace, host, stretch, inline_cap(problem))
             if memory_floor_mb(s, host) <= problem.memory_budget_mb]  # fmt: skip
    sized = [(s, *_sizes(s, problem)) for s in found]
    sized.sort(key=lambda item: memory_guess_mb(item[0], host, item[1], item[2]))
    base = problem.base
    chosen = sized[:SPLITS_SIMULATED]
    mine = make_split(trace, host, stretch, base.inline_max_duration_s, base.pooled_max_duration_s)
    if all(s != mine for s, *_ in chosen):
        chosen.append((mine, *_sizes(mine, problem)))
    configs = []
    for split, pool, isolated, inline in chosen:
        for factor in CAPACITY_FACTORS:
            configs.append(_config(split, trace, problem, math.ceil(pool * factor),
                                   math.ceil(isolated * factor), inline))  # fmt: skip
    return list(dict.fromkeys(configs))


def _sizes(split: Split, problem: Problem) -> tuple[int, int, int]:
    """Erlang-C sizes (pool, isolated, inline) for a split's bands and the SLOs."""
    sizes = []
    for tier, band in (("pool", split.pool), ("isolated", split.isolated),
                       ("inline", split.inline)):  # fmt: skip
        target_s, quantile = wait_target(problem.slos, tier, band)
        sizes.append(servers_for(band, target_s, quantile, MAX_SLOTS) if band.rate_per_s else 0)
    inline = math.ceil(sizes[2] * INLINE_HEADROOM)
    sizes[2] = max(inline, problem.base.max_concurrent_inline)
    return sizes[0], sizes[1], sizes[2]


def _config(split: Split, trace: TraceProfile, problem: Problem, pool: int, isolated: int,
            inline: int) -> Config:  # fmt: skip
    """A candidate: the split's thresholds and these capacities on top of the base config.

    An empty pool band gets ``pool_size = 0`` and ``pool_max_size = 1`` (a process only if a
    job of a class with no history lands there); isolated keeps at least one slot for the same
    reason. ``default_estimate_s`` becomes the trace's overall estimate, so a class with no
    history yet is routed like the trace's typical job.
    """
    return problem.base.replace(
        inline_max_duration_s=split.inline_max_duration_s,
        pooled_max_duration_s=split.pooled_max_duration_s,
        default_estimate_s=float(f"{trace.overall_estimate_s:.3g}"),
        pool_size=pool,
        pool_max_size=max(pool, 1),
        max_concurrent_isolated=max(isolated, 1),
        max_concurrent_inline=inline,
    )


def _search(prepared, trace, problem, processes, progress):
    """Successive halving then refinement on one trace; returns (best, tried, trace, counts)."""
    configs = candidates(trace, problem)
    n = len(prepared.jobs)
    sizes = [size for size in SCREEN_JOBS if size < n] + [n]
    with Evaluator(prepared, sizes, problem, processes, progress) as evaluator:
        alive = configs
        for stage, size in enumerate(sizes, start=1):
            ranked = evaluator.run(size, alive, f"stage {stage}/{len(sizes)}")
            if size == n:
                break
            keep = (
                max(FINALISTS, math.ceil(len(alive) / 3)) if stage < len(sizes) - 1 else FINALISTS
            )
            order = sorted(
                range(len(alive)), key=lambda i: (ranked[i].rank(problem.memory_budget_mb), i)
            )
            alive = [alive[i] for i in order[:keep]]  # fmt: skip
        best = _refine(evaluator, trace, problem)
        tried = tuple(evaluator.on_full_trace())
        counts = (len(configs), len(evaluator.seen))
    return best, tried, prepared, counts


def _refine(evaluator: Evaluator, trace: TraceProfile, problem: Problem) -> Evaluation:
    """Step capacities from the current best while the selection rule picks something new."""
    budget = problem.memory_budget_mb
    best = select(evaluator.on_full_trace(), budget)
    for round_ in range(1, REFINE_ROUNDS + 1):
        if not best.feasible and round_ > REFINE_ROUNDS_INFEASIBLE:
            break  # a count this far off fails whatever a step does; the next count is tried
        moves = neighbours(best.config, best.feasible, trace, problem)
        evaluator.run(evaluator.full, moves, f"refine {round_}/{REFINE_ROUNDS}")
        chosen = select(evaluator.on_full_trace(), budget)
        if chosen == best:
            break
        best = chosen
    return best


def neighbours(
    config: Config, feasible: bool, trace: TraceProfile, problem: Problem
) -> list[Config]:
    """Configs one step away: smaller capacities and pool recycling (to save memory); while
    ``config`` is not feasible, larger capacities too (an SLO or stability may be what fails)."""
    pool, isolated, inline = (config.pool_max_size, config.max_concurrent_isolated,
                              config.max_concurrent_inline)  # fmt: skip
    has_pool = config.pool_size > 0
    down: list[dict] = []
    if has_pool:
        down += [{"pool_size": pool - s, "pool_max_size": pool - s}
                 for s in sorted({1, max(1, pool // 8)}) if pool - s >= 1]  # fmt: skip
    down += [{"max_concurrent_isolated": isolated - s}
             for s in sorted({1, max(1, isolated // 8)}) if isolated - s >= 1]  # fmt: skip
    down += [{"max_concurrent_inline": max(1, inline // 2)}] if inline > 1 else []
    recycle = _recycle_mb(config, trace, problem)
    down += [{"max_worker_memory_mb": recycle}] if recycle is not None else []
    if feasible:
        return [config.replace(**move) for move in down]
    up: list[dict] = []
    if has_pool:
        grown = pool + max(1, pool // 4)
        up.append({"pool_size": grown, "pool_max_size": grown})
    up.append({"max_concurrent_isolated": isolated + max(1, isolated // 4)})
    up.append({"max_concurrent_inline": inline * 2})
    moves = up + down
    return [config.replace(**move) for move in moves]


def _recycle_mb(config: Config, trace: TraceProfile, problem: Problem) -> float | None:
    """A recycling limit that drops a pool process after an unusually large job, or ``None``.

    Pool processes keep the high-water mark of their jobs; when the pool band's largest jobs
    are much bigger than its average, recycling above twice the average memory frees it.
    """
    host = problem.host
    stretch = cpu_stretch(trace, host)
    split = make_split(trace, host, stretch if math.isfinite(stretch) else 1.0,
                       config.inline_max_duration_s, config.pooled_max_duration_s)  # fmt: skip
    band = split.pool
    if not band.rate_per_s or band.high_memory_mb < 2 * band.mean_memory_mb:
        return None
    limit = float(math.ceil(host.pool_process_mb + 2 * band.mean_memory_mb))
    return limit if limit < config.max_worker_memory_mb else None


def _share_search(splits, hosts, problem, processes, progress):
    """The search on host 1's share of ``problem.seed``'s split at ``hosts`` hosts, or None when
    that share is too small to simulate."""
    part = splits.share(hosts, problem.seed)
    if len(part.jobs) < MIN_SHARE_JOBS:
        return None
    return _search(part, profile(part, problem.base), problem, processes,
                   _labelled(progress, f"{hosts} hosts, seed {problem.seed}, host 1"))  # fmt: skip


def _labelled(progress, prefix: str):
    """``progress`` with every stage's label prefixed by the host count and seed being tried."""
    if progress is None:
        return None
    return lambda label: progress(f"[{prefix}] {label}")


def _up_moves(config: Config) -> list[Config]:
    """Configs with more capacity only: for a share that fails where host 1's passed."""
    pool, isolated, inline = (config.pool_max_size, config.max_concurrent_isolated,
                              config.max_concurrent_inline)  # fmt: skip
    grow = {"max_concurrent_isolated": isolated + max(1, isolated // 4),
            "max_concurrent_inline": inline * 2}  # fmt: skip
    if config.pool_size > 0:
        bigger = pool + max(1, pool // 4)
        grow |= {"pool_size": bigger, "pool_max_size": bigger}
    moves = [config.replace(**{k: v}) for k, v in grow.items() if not k.startswith("pool_")]
    if config.pool_size > 0:
        moves.append(config.replace(pool_size=grow["pool_size"], pool_max_size=grow["pool_size"]))
    moves.append(config.replace(**grow))
    return list(dict.fromkeys(moves))


def _fix(splits, first: HostCheck, problem, processes, progress) -> HostCheck:
    """Host 1's config failed another share: on the worst share, try one step up and one step
    down in each capacity (at most ``SHARE_FIXES`` rounds), keep the selection rule's pick and
    check every share again; returns the last check."""
    checked = first
    for round_ in range(1, SHARE_FIXES + 1):
        worst = checked.worst
        part = splits.share(checked.hosts, worst.seed, worst.host)
        label = f"[{checked.hosts} hosts, seed {worst.seed}, host {worst.host + 1}] fix {round_}"
        with Evaluator(part, [len(part.jobs)], problem, processes, progress) as evaluator:
            # more capacity for a missed SLO, less (and recycling) for a peak over the budget
            down = neighbours(checked.config, True, profile(part, problem.base), problem)
            moves = [_kept(c, problem, splits) for c in _up_moves(checked.config) + down]
            evaluator.run(len(part.jobs), moves, label)
            tried = evaluator.on_full_trace()
        if not any(e.feasible for e in tried):
            return checked
        pick = select(tried, problem.memory_budget_mb)
        checked = _check(splits, pick.config, problem, checked.hosts, processes, progress)
        if checked.feasible:
            return checked
    return checked


def _kept(config: Config, problem: Problem, splits: Splits) -> Config:
    """``config`` as it is written: with the budget the runtime keeps (``sim.tune.budget``)."""
    return with_budget(config, problem.memory_budget_mb, splits.prepared.jobs.memory_mb)


def _check(splits, config, problem, hosts, processes, progress) -> HostCheck:
    """Every share of every seed, with the config as written (the budget's admission on)."""
    config = _kept(config, problem, splits)
    seeds = hosts_seeds(problem)
    report = progress(f"[{hosts} hosts, seeds {seeds[0]}-{seeds[-1]}] every share") \
        if progress else None  # fmt: skip
    return check(splits.prepared, config, problem, hosts, processes=processes, progress=report,
                 fail_fast=True, splits=splits)  # fmt: skip


def _try_hosts(splits, hosts, problem, processes, progress):
    """(HostCheck at ``hosts``, the search run on host 1's share) or None (share too small)."""
    run = _share_search(splits, hosts, problem, processes, progress)
    if run is None:
        return None
    best = run[0]
    if not best.feasible:
        return HostCheck(hosts, best.config, (ShareRun(problem.seed, 0, best),),
                         problem.memory_budget_mb), run  # fmt: skip
    checked = _check(splits, best.config, problem, hosts, processes, progress)
    if not checked.feasible:
        checked = _fix(splits, checked, problem, processes, progress)
    return checked, run


def host_bounds(trace: TraceProfile, problem: Problem) -> dict[str, int]:
    """Hosts each bound alone asks for: ``{"CPU": k, "memory": k}`` (those that bind)."""
    host, budget = problem.host, problem.memory_budget_mb
    found = {}
    if host.cores:
        found["CPU"] = max(1, math.ceil(trace.cpu_load_cores / (host.cores * MAX_CPU_UTILISATION)))
    floor = min_memory_floor(trace, problem)
    if math.isfinite(budget) and budget > host.worker_mb:
        found["memory"] = max(1, math.ceil((floor - host.worker_mb) / (budget - host.worker_mb)))
    return found


def _hosts(prepared, trace, problem, processes, progress, one_host):
    """The least host count at which every share of every seed meets the targets.

    Returns ``(k, verified, search run at k, {k: HostCheck}, why unverified)``. The count rule
    is ``sim.tune.count.least_count`` (doubling from the bounds' count, bisection, then the count
    below the answer, stepping down while it passes): the answer passed every share of every
    seed, and the check at ``k - 1`` says what fails there. When the bounds' count already
    leaves each host fewer than ``MIN_SHARE_JOBS`` jobs, nothing is searched over counts: the
    answer is that bound, unverified (``_bound_answer``).
    """
    k = max(2, *host_bounds(trace, problem).values())
    if len(prepared.jobs) / k < MIN_SHARE_JOBS:
        return _bound_answer(prepared, trace, problem, k, processes, progress)
    splits = Splits(prepared)
    tried: dict[int, tuple] = {}

    too_small: list[int] = []

    def works(hosts: int) -> bool | None:
        if hosts == 1:  # the one-host search already failed (else no count search)
            return False
        found = _try_hosts(splits, hosts, problem, processes, progress)
        if found is None:
            too_small.append(hosts)
            return None
        tried[hosts] = found
        return found[0].feasible

    # the balanced split's shares differ by a few jobs: a tenth of room keeps host 1's at 50
    most = max(k, int(len(prepared.jobs) / (MIN_SHARE_JOBS * SHARE_ROOM)))
    counted = least_count(works, k, HOST_SEARCHES, BELOW_SEARCHES, most)
    checks = {hosts: found[0] for hosts, found in tried.items()}
    if counted.answer is not None:
        return counted.answer, True, tried[counted.answer][1], checks, ""
    why = (f"no count up to {max(tried)} passed within {HOST_SEARCHES} tries" if tried
           else "no count could be tried")  # fmt: skip
    if tried and (max(tried) >= most or too_small):
        why = (f"{max(tried)} hosts fail, and with more each host would get fewer than "
               f"{MIN_SHARE_JOBS} jobs, too few to simulate meaningfully")  # fmt: skip
    last = tried[max(tried)][1] if tried else one_host
    if last is None:
        return _bound_answer(prepared, trace, problem, k, processes, progress)
    return counted.low + 1, False, last, checks, why


def _bound_answer(prepared, trace, problem, k, processes, progress):
    """Shares too small to simulate meaningfully at the bounds' count ``k``: the answer is that
    bound, unverified, with a config searched on host 1's share at ``k`` (a few dozen jobs,
    so quick; the count's other shares are not checked)."""
    n = len(prepared.jobs)
    hosts = min(k, n)
    part = share(prepared, hosts, problem.seed)
    label = f"{k} hosts (bound), seed {problem.seed}, host 1"
    run = _search(part, profile(part, problem.base), problem, processes, _labelled(progress, label))
    bounds = host_bounds(trace, problem)
    name = max(bounds, key=bounds.get)
    why = (f"the {name} bound asks for {k:,} hosts, where each host gets about {n / k:.0f} "
           f"jobs (fewer than {MIN_SHARE_JOBS}): too few to simulate meaningfully, so the count "
           "is the bound, not checked by simulation")  # fmt: skip
    transient = _transient_note(trace)
    return k, False, run, {}, why + (f"; {transient}" if transient else "")


def _transient_note(trace: TraceProfile) -> str:
    """A warning when the arrivals end before a typical job does (no steady state to check)."""
    busy = sum(c.jobs * c.mean_duration_s for c in trace.classes) / max(1, trace.jobs)
    if busy <= trace.span_s:
        return ""
    return (f"the arrivals span {trace.span_s:,.0f} s, less than the mean job's "
            f"{busy:,.0f} s: at this rate the trace never reaches a steady state, and the bound "
            "assumes its arrivals go on")  # fmt: skip
