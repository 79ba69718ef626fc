"""SLO rules of issue 14: named SLOs keep the defaults, empty groups check nothing."""

from __future__ import annotations

import math

import numpy as np

from kqueue.policy import Config, HostProfile
from sim.model.jobs import INLINE, POOL
from sim.model.replay import prepare, simulate
from sim.model.theory import poisson_trace
from sim.tune.evaluate import Problem, evaluate
from sim.tune.slo import DEFAULT_SLOS, Slo, empty_groups, job_groups, parse_slos


def _fast_trace():
    # every job well under a second: the default config routes the one class inline
    trace = poisson_trace(300, 5.0, 0.01, seed=2)
    return prepare(trace)


def test_a_named_slo_on_an_empty_group_keeps_the_defaults_and_checks_nothing():
    prepared = _fast_trace()
    jobs = prepared.jobs
    groups = job_groups(jobs.job_class, jobs.duration_s, Config())
    assert set(np.unique(groups)) == {INLINE}
    slos = parse_slos(["pool.p95_wait=10s"])
    assert Slo("inline", "p95_wait", 1.0) in slos  # the defaults still bind
    assert empty_groups(slos, groups) == ["isolated", "pool"]
    result = simulate(prepared, Config(), HostProfile(cores=4))
    e = evaluate(result, Config(), Problem(slos, math.inf, HostProfile(cores=4), Config()))
    margins = dict(e.margins)
    assert margins["pool.p95_wait"] is None and margins["isolated.p95_wait"] is None
    assert margins["inline.p95_wait"] is not None
    assert e.binding_slo == "inline.p95_wait"
    assert e.feasible


def test_slos_that_checked_nothing_never_make_a_plan_feasible():
    prepared = _fast_trace()
    slos = parse_slos(["pool.p95_wait=10s"], defaults=False)
    result = simulate(prepared, Config(), HostProfile(cores=4))
    e = evaluate(result, Config(), Problem(slos, math.inf, HostProfile(cores=4), Config()))
    assert e.margins == (("pool.p95_wait", None),)
    assert not e.checked and not e.feasible


def test_a_run_that_kills_jobs_is_not_feasible_unless_the_limits_were_asked_for():
    prepared = prepare(poisson_trace(200, 1.0, 20.0, seed=1))
    config = Config(timeout_s=15.0, pool_size=40, pool_max_size=40)
    host = HostProfile(cores=8)
    result = simulate(prepared, config, host)
    assert result.killed_timeout > 0
    assert not evaluate(result, config, Problem(DEFAULT_SLOS, math.inf, host, config)).feasible
    kept = Problem(DEFAULT_SLOS, math.inf, host, config, keep_limits=True)
    assert evaluate(result, config, kept).killed == result.killed_timeout
    assert POOL in set(result.outcome.tier.tolist())
