"""The host count: the least N at which every share of every seed meets the targets (issue 14).

``least_hosts`` runs the count rule (``sim.tune.count.least_count``) over an oracle that, for a
count, searches a config on host 1's share (``sim.tune.config_search``), checks it on every share
of every seed with the budget as written (``sim.tune.hosts.check``) and, when a share fails, tries
one capacity step on the worst share (``_fix``). Shares under ``MIN_SHARE_JOBS`` jobs are not
simulated: the answer is then the bounds' count, unverified (``_bound_answer``).
"""

from __future__ import annotations

from kqueue.policy import Config
from sim.tune.bounds import host_bounds
from sim.tune.budget import with_budget
from sim.tune.candidates import neighbours, up_moves
from sim.tune.config_search import search_trace
from sim.tune.count import least_count
from sim.tune.evaluate import Evaluator, Problem, select
from sim.tune.hosts import HostCheck, ShareRun, check
from sim.tune.hosts import seeds_of as hosts_seeds
from sim.tune.space import TraceProfile, profile
from sim.tune.split import Splits, share

#: A worker's share smaller than this is not simulated (the host count is then a bound).
MIN_SHARE_JOBS = 50

#: The largest host count searched leaves each host this many times ``MIN_SHARE_JOBS`` on average.
SHARE_ROOM = 1.1

#: Host counts the doubling tries before one passes (the bisection and the step-down below the
#: answer then run to a failing count: ``sim.tune.count``).
HOST_SEARCHES = 8

#: Rounds of growing capacities on a failing share before a host count is given up.
SHARE_FIXES = 2


def _share_search(splits, hosts, problem, processes, progress):
    """The search on host 1's share of ``problem.seed``'s split at ``hosts`` hosts, or None when
    that share is too small to simulate."""
    part = splits.share(hosts, problem.seed)
    if len(part.jobs) < MIN_SHARE_JOBS:
        return None
    return search_trace(part, profile(part, problem.base), problem, processes,
                   _labelled(progress, f"{hosts} hosts, seed {problem.seed}, host 1"))  # fmt: skip


def _labelled(progress, prefix: str):
    """``progress`` with every stage's label prefixed by the host count and seed being tried."""
    if progress is None:
        return None
    return lambda label: progress(f"[{prefix}] {label}")


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
            moves = [_kept(c, problem, splits) for c in up_moves(checked.config) + down]
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


def least_hosts(prepared, trace, problem, processes, progress, one_host):
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
    counted = least_count(works, k, HOST_SEARCHES, most=most)
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
    run = search_trace(part, profile(part, problem.base), problem, processes,
                       _labelled(progress, label))  # fmt: skip
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
