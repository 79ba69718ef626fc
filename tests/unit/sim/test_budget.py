"""The twin keeps the memory budget by the runtime's admission rule, and routes by load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import simulate

HOST = HostProfile(
    cores=0, fetch_s=0, polls=False, inline_dispatch_s=0, pool_dispatch_s=0,
    isolated_dispatch_s=0, spawn_s=0, worker_mb=100.0, pool_process_mb=50.0,
    isolated_process_mb=40.0, retained_job_mb=32.0,
)  # fmt: skip


def _burst(jobs: int = 40) -> pd.DataFrame:
    """Heavy pool and isolated jobs arriving together: 300 MB each, 4 s and 20 s."""
    half = jobs // 2
    return pd.DataFrame(
        {
            "submitted_at": np.linspace(0.0, 2.0, jobs),
            "job_class": ["heavy.pool"] * half + ["heavy.iso"] * (jobs - half),
            "duration_s": [4.0] * half + [20.0] * (jobs - half),
            "memory_mb": [300.0] * jobs,
        }
    )


def _config(**settings) -> Config:
    table = {
        "pool_size": 4,
        "pool_max_size": 10,
        "max_concurrent_isolated": 5,
        "max_memory_mb": 400,
        "jobs": {"heavy.pool": {"tier": "pool"}, "heavy.iso": {"tier": "isolated"}},
        **settings,
    }
    return Config.from_mapping(table)


def test_budget_keeps_the_simulated_peak_and_every_job_finishes():
    # Given a burst whose peak without a budget is far above 1500 MB
    trace = _burst()
    free = simulate(trace, _config(), HOST)
    assert free.peak_memory_mb > 3000
    # When the same burst runs under a 1500 MB budget
    kept = simulate(trace, _config(memory_budget_mb=1500), HOST)
    # Then the peak stays within it, every job finishes, and the wait is what it costs
    assert kept.peak_memory_mb <= 1500 * 1.05
    assert np.isfinite(kept.outcome.finished_s).all()
    assert kept.overall.p95_wait_s > free.overall.p95_wait_s


def test_no_budget_changes_nothing():
    trace = _burst(10)
    a = simulate(trace, _config(), HOST)
    b = simulate(trace, _config(memory_budget_mb=float("inf")), HOST)
    skip = {"wall_s", "jobs_per_wall_s"}
    assert {k: v for k, v in a.to_dict().items() if k not in skip} == {
        k: v for k, v in b.to_dict().items() if k not in skip
    }


def test_load_routing_sends_pool_jobs_to_idle_isolated_slots_under_a_long_backlog():
    # Given a pool of 2 fixed processes and 60 jobs of 2 s arriving at once
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0] * 60,
            "job_class": ["resize"] * 60,
            "duration_s": [2.0] * 60,
            "memory_mb": [10.0] * 60,
        }
    )
    settings = {"pool_size": 2, "pool_max_size": 2, "jobs": {}, "default_estimate_s": 2.0}
    off = simulate(trace, _config(**settings), HOST)
    on = simulate(trace, _config(**settings, load_routing=True), HOST)
    # Then some go isolated and the waits fall; off by default, none do
    assert (off.outcome.tier == 2).sum() == 0
    assert (on.outcome.tier == 2).sum() > 0
    assert on.overall.p95_wait_s < off.overall.p95_wait_s


@pytest.mark.parametrize("load_routing", [False, True])
def test_load_routing_does_not_trigger_on_a_light_load(load_routing):
    trace = pd.DataFrame(
        {
            "submitted_at": np.arange(0.0, 60.0, 1.0),
            "job_class": ["resize"] * 60,
            "duration_s": [2.0] * 60,
            "memory_mb": [10.0] * 60,
        }
    )
    result = simulate(trace, _config(jobs={}, load_routing=load_routing), HOST)
    assert (result.outcome.tier == 2).sum() == 0


def test_host_is_frozen():
    assert dataclasses.is_dataclass(HOST)


def test_the_twin_quarantines_a_class_that_keeps_dying_for_memory():
    # Given a pool class whose jobs hold 300 MB against a 100 MB limit, one a second
    trace = pd.DataFrame(
        {
            "submitted_at": np.arange(0.0, 12.0, 1.0),
            "job_class": ["greedy"] * 12,
            "duration_s": [0.5] * 12,
            "memory_mb": [300.0] * 12,
        }
    )
    config = Config.from_mapping(
        {"max_memory_mb": 100, "max_attempts": 1, "jobs": {"greedy": {"tier": "pool"}}}
    )
    result = simulate(trace, config, HOST)
    tiers = list(result.outcome.tier)
    # Then after quarantine_after_failures (3) deaths on the pool the rest run isolated
    assert tiers[:3] == [1, 1, 1] and set(tiers[3:]) == {2}, tiers
