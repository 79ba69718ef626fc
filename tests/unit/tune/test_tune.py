"""The tuner: a known answer from Erlang C, no drift, determinism, bounds and SLO parsing."""

from __future__ import annotations

import math

import pytest

from kqueue.errors import ConfigError
from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare, simulate
from sim.model.theory import erlang_c, poisson_trace
from sim.tune.bounds import one_host_bound
from sim.tune.evaluate import Evaluation, Problem, evaluate, select
from sim.tune.search import tune
from sim.tune.slo import DEFAULT_SLOS, Slo, job_groups, margins, parse_slo, parse_slos
from sim.tune.space import erlang_c_series, profile, threshold_between

#: A textbook host, except that an isolated process costs far more memory than a pool process,
#: so the least-memory answer for one CPU-bound class is a fixed pool.
KNOWN_HOST = HostProfile.load(
    None,
    **{**HostProfile.ideal().to_dict(), "pool_process_mb": 10, "isolated_process_mb": 500},
)


def _known_answer_trace(jobs: int = 20_000):
    # One class, Poisson arrivals at 1/s, exponential 8 s jobs, all CPU (so the GIL rules out
    # inline; with unlimited cores the pool processes do not share): M/M/c with a = 8 Erlangs.
    trace = poisson_trace(jobs, 1.0, 8.0, seed=11)
    trace["cpu_s"] = trace["duration_s"]
    return prepare(trace)


def _erlang_pool_size(load: float, mean_s: float, target_s: float, quantile: float) -> int:
    c = math.floor(load) + 1
    while erlang_c(c, load) * math.exp(-(c - load) * target_s / mean_s) > 1 - quantile:
        c += 1
    return c


def test_known_answer_pool_size_follows_erlang_c():
    # Given one M/M/c class and the SLO "pool p95 wait <= 10 s"
    prepared = _known_answer_trace()
    slo = Slo("pool", "p95_wait", 10.0)
    problem = Problem((slo,), math.inf, KNOWN_HOST, Config())
    expected = _erlang_pool_size(8.0, 8.0, 10.0, 0.95)
    assert expected == 10  # P(W > 10 s) is 0.19 with 9 processes, 0.034 with 10
    # When the tuner searches
    found = tune(prepared, problem, processes=1)
    # Then it picks the pool (not inline, not isolated) with exactly Erlang C's size
    assert found.hosts == 1 and found.binding == ""
    config = found.config
    assert config.inline_max_duration_s < config.pooled_max_duration_s
    assert config.pool_size == config.pool_max_size == expected
    # And one process fewer misses the SLO in the simulator too (it is the least that works)
    smaller = config.replace(pool_size=expected - 1, pool_max_size=expected - 1)
    assert not evaluate(simulate(prepared, smaller, KNOWN_HOST), smaller, problem).feasible


def test_recommendation_simulated_alone_meets_everything_and_is_deterministic():
    from sim.model.workload import synth

    # Given a prototype-mix trace at 120 jobs/min on an 8-core host, 6 GB budget, default SLOs
    prepared = prepare(synth(4_000, 2.0, seed=5))
    problem = Problem(DEFAULT_SLOS, 6144.0, HostProfile(cores=8), Config(), seed=1)
    first = tune(prepared, problem, processes=2)
    # Then the config, simulated again on its own, gives exactly the numbers the search kept
    assert first.hosts == 1, first.binding
    again = simulate(first.share, first.config, problem.host)
    assert evaluate(again, first.config, problem) == first.evaluation
    assert again.stable and again.peak_memory_mb <= 6144.0
    groups = job_groups(first.share.jobs.job_class, first.share.jobs.duration_s, Config())
    assert all(m >= 0 for m in margins(again, DEFAULT_SLOS, groups).values())
    # And the same inputs give the same answer (serial or parallel)
    second = tune(prepared, problem, processes=1)
    assert second.config == first.config and second.evaluation == first.evaluation
    # And the TOML reads back to the same config
    assert Config.from_mapping(__import__("tomllib").loads(first.config.to_toml())) == first.config


def test_selection_prefers_least_memory_then_lower_waits():
    def ev(peak, margin, feasible=True):
        return Evaluation(Config(), 10, True, peak, 1.0, (("pool.p95_wait", margin),), feasible)

    lean, tied_faster, fat = ev(1000, 0.1), ev(1005, 0.5), ev(900, 0.9, feasible=False)
    assert select([fat, lean, tied_faster], 2000) is tied_faster
    assert select([fat, ev(1100, 0.9)], 2000).peak_memory_mb == 1100
    assert select([fat, ev(950, -0.5, False)], 2000) is fat  # closest to feasible


def test_bounds_name_the_binding_constraint():
    from sim.model.workload import synth

    prepared = prepare(synth(2_000, 1000 / 60, seed=0))
    busy = Problem(DEFAULT_SLOS, 3072.0, HostProfile(cores=2), Config())
    assert one_host_bound(profile(prepared, Config()), busy).startswith("CPU")
    with pytest.raises(ConfigError, match="below the worker process"):
        tune(prepared, Problem(DEFAULT_SLOS, 10.0, HostProfile(cores=2), Config()), processes=1)


def test_thresholds_fall_strictly_between_class_estimates():
    estimates = [0.25, 3.0, 3.0, 40.0]
    assert threshold_between(estimates, 0) == 0.0
    assert 0.25 < threshold_between(estimates, 1) < 3.0
    assert threshold_between(estimates, 2) == 3.0  # equal estimates cannot be separated
    assert 3.0 < threshold_between(estimates, 3) < 40.0
    assert threshold_between(estimates, 4) >= 40.0


def test_erlang_series_matches_theory():
    series = erlang_c_series(8.0, 14)
    for c in range(9, 15):
        assert series[c - 1] == pytest.approx(erlang_c(c, 8.0), rel=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inline.p95_wait=1s", Slo("inline", "p95_wait", 1.0)),
        ("pool.p99_latency=2min", Slo("pool", "p99_latency", 120.0)),
        ("all.throughput=1000/min", Slo("all", "throughput", 1000.0)),
        ("isolated.p50_wait=0", Slo("isolated", "p50_wait", 0.0)),
    ],
)
def test_slo_parsing(text, expected):
    assert parse_slo(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pool.p95_wait", "expected tier.metric=value"),
        ("gpu.p95_wait=1s", "unknown tier 'gpu'; valid tiers: inline, pool, isolated, all"),
        ("pool.p90_wait=1s", "unknown metric 'p90_wait'; valid metrics: mean_wait"),
        ("pool.p95_wait=fast", "not a number with a unit"),
        ("all.throughput=lots", "not of the form N/s"),
    ],
)
def test_slo_errors_say_what_is_valid(text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_slo(text)


def test_no_slos_given_means_the_stated_defaults():
    assert parse_slos(None) == DEFAULT_SLOS
    # a named SLO replaces its default; the last of a repeated name wins; the others still bind
    inline, _, isolated = DEFAULT_SLOS
    assert parse_slos(["pool.p95_wait=5s", "pool.p95_wait=3s"]) == (
        inline,
        Slo("pool", "p95_wait", 3.0),
        isolated,
    )
    assert parse_slos(["pool.p95_wait=3s"], defaults=False) == (Slo("pool", "p95_wait", 3.0),)


def test_long_classes_are_never_routed_inline():
    from sim.tune.candidates import candidates

    # Given hours-long jobs with little CPU (inline would be the least memory, and unsafe)
    trace = poisson_trace(300, 1 / 600, 3600.0, seed=3)
    trace["cpu_s"] = trace["duration_s"] * 0.01
    prepared = prepare(trace)
    problem = Problem(DEFAULT_SLOS, math.inf, HostProfile(cores=4), Config())
    # Then no candidate routes them inline
    for config in candidates(profile(prepared, Config()), problem):
        assert config.inline_max_duration_s < 3600.0
