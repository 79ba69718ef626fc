"""The simulator against queueing theory, sized for CI (the 1M-job study is experiments/).

With every host constant zero and every job routed to a fixed pool of c processes the model
must be the textbook FIFO c-server queue:

- exactly, job by job: its waits equal the Kiefer-Wolfowitz recursion on the same trace;
- statistically: Erlang C (M/M/c) and Pollaczek-Khinchine (M/D/1) within 8%.

The statistical checks use fixed seeds (deterministic, never flaky) and 40,000 jobs, where one
standard error of a mean wait is still a few percent (at rho = 0.9 about 7%, growing as
1 / (1 - rho)**2): at this size they catch gross errors, not small ones. So mean waits are checked
at rho 0.5 and 0.8 and the probability of waiting (a low-noise statistic) at all three; the exact
guard at every load is the sample-path test, and ``experiments/sim_theory.py`` runs every case
with 1,000,000 jobs and prints batch-means confidence intervals.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from kqueue.policy import HostProfile
from sim.model.replay import simulate
from sim.model.theory import (
    erlang_c,
    md1_mean_wait_s,
    mmc_mean_wait_s,
    poisson_trace,
    pool_only_config,
)

JOBS = 40_000
WARM_UP = JOBS // 20
TOLERANCE = 0.08


def _simulated_waits(trace, servers: int) -> np.ndarray:
    outcome = simulate(trace, pool_only_config(servers), HostProfile.ideal()).outcome
    return outcome.started_s - outcome.submitted_s


def _fifo_waits(submitted: np.ndarray, duration: np.ndarray, servers: int) -> np.ndarray:
    """Kiefer-Wolfowitz: each job starts when it arrives or when the earliest server frees."""
    free_at = [0.0] * servers
    waits = np.empty(len(submitted))
    for i, (arrived, service) in enumerate(zip(submitted, duration, strict=True)):
        start = max(arrived, free_at[0])
        waits[i] = start - arrived
        heapq.heapreplace(free_at, start + service)
    return waits


@pytest.mark.parametrize("servers", [1, 2, 5, 10])
def test_every_wait_equals_the_fifo_recursion_at_high_load(servers):
    trace = poisson_trace(20_000, 0.9 * servers, 1.0, seed=servers)
    simulated = _simulated_waits(trace, servers)
    expected = _fifo_waits(
        trace["submitted_at"].to_numpy() - trace["submitted_at"].iloc[0],
        trace["duration_s"].to_numpy(),
        servers,
    )
    assert np.abs(simulated - expected).max() < 1e-6


@pytest.mark.parametrize("servers", [1, 2, 5, 10])
@pytest.mark.parametrize("rho", [0.5, 0.8, 0.9])
def test_mmc_matches_erlang_c(servers, rho):
    rate = rho * servers
    waits = _simulated_waits(
        poisson_trace(JOBS, rate, 1.0, seed=100 * servers + round(10 * rho)), servers
    )
    waits = waits[WARM_UP:]
    assert (waits > 1e-9).mean() == pytest.approx(erlang_c(servers, rate), rel=TOLERANCE)
    if rho < 0.9:
        assert waits.mean() == pytest.approx(mmc_mean_wait_s(servers, rate, 1.0), rel=TOLERANCE)


@pytest.mark.parametrize("rho", [0.5, 0.8, 0.9])
def test_md1_matches_pollaczek_khinchine(rho):
    trace = poisson_trace(JOBS, rho, 1.0, deterministic=True, seed=int(rho * 10))
    waits = _simulated_waits(trace, 1)[WARM_UP:]
    assert (waits > 1e-9).mean() == pytest.approx(rho, rel=TOLERANCE)
    if rho < 0.9:
        assert waits.mean() == pytest.approx(md1_mean_wait_s(rho, 1.0), rel=TOLERANCE)


def test_erlang_c_formula_against_known_values():
    # M/M/1: P(wait) = rho, Wq = rho / (mu - lambda); M/M/2 at a = 1: C = 1/3
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert mmc_mean_wait_s(1, 0.5, 1.0) == pytest.approx(1.0)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert md1_mean_wait_s(0.5, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        erlang_c(2, 2.0)
