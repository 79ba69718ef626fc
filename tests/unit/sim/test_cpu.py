"""Processor sharing: CPU work slows when more of it runs than there are cores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import simpy

from kqueue.policy import Config, HostProfile
from sim.engine.gil import drained_s, share_one_core
from sim.model.replay import prepare, simulate
from sim.model.worker import Model
from sim.model.workload import JobClass, synth


def _cpu_host(cores: int) -> HostProfile:
    return HostProfile.load(None, **{**HostProfile.ideal().to_dict(), "cores": cores})


def _pool(size: int) -> Config:
    return Config(
        inline_max_duration_s=0.0, pooled_max_duration_s=1e9, pool_size=size, pool_max_size=size
    )


def _trace(starts: list[float], cpu_s: list[float], duration_s: list[float] | None = None):
    return pd.DataFrame(
        {
            "submitted_at": starts,
            "job_class": "cpu",
            "duration_s": duration_s if duration_s is not None else cpu_s,
            "cpu_s": cpu_s,
            "memory_mb": 0.0,
        }
    )


@pytest.mark.parametrize(("jobs", "cores"), [(2, 1), (3, 2), (4, 2), (10, 3), (7, 4), (5, 5)])
def test_n_cpu_bound_jobs_on_k_cores_all_finish_at_n_over_k(jobs, cores):
    # Given n CPU-bound jobs of 1 CPU second, all started at t=0 on separate pool processes
    trace = _trace([0.0] * jobs, [1.0] * jobs)
    # When they share k cores
    result = simulate(trace, _pool(jobs), _cpu_host(cores))
    # Then every one finishes at max(1, n / k)
    finished = result.trace()["finished_at"]
    assert finished.to_numpy() == pytest.approx([max(1.0, jobs / cores)] * jobs, rel=1e-9)


def test_a_job_joining_later_slows_the_others_only_while_it_overlaps():
    # Given 2 cores, jobs A and B (1 CPU s) at t=0 and C (1 CPU s) at t=0.5
    trace = _trace([0.0, 0.0, 0.5], [1.0, 1.0, 1.0])
    result = simulate(trace, _pool(3), _cpu_host(2))
    # Then: 0-0.5 A and B run at full speed (0.5 s left each); from 0.5 three jobs share two
    # cores at 2/3 each, so A and B need 0.75 s more and end at 1.25; C has then 0.5 s done
    # and runs alone at full speed: it ends at 1.75.
    finished = result.trace().sort_values("submitted_at")["finished_at"].to_numpy()
    assert finished == pytest.approx([1.25, 1.25, 1.75], rel=1e-9)


def test_off_cpu_time_is_not_stretched():
    # Given 1 core and two jobs of 2 s wall each, of which 1 s is CPU work (the rest I/O wait)
    trace = _trace([0.0, 0.0], [1.0, 1.0], duration_s=[2.0, 2.0])
    result = simulate(trace, _pool(2), _cpu_host(1))
    # Then the I/O second overlaps freely and only the CPU seconds share the core: 1 + 2 = 3 s
    assert result.trace()["finished_at"].to_numpy() == pytest.approx([3.0, 3.0])


def test_inline_jobs_share_one_core_even_on_a_big_host():
    # Given 4 CPU-bound inline jobs (the GIL) on a host with 16 cores
    trace = _trace([0.0] * 4, [0.5] * 4)
    config = Config(inline_max_duration_s=10.0, pooled_max_duration_s=20.0, default_estimate_s=1)
    result = simulate(trace, config, _cpu_host(16))
    # Then they run one core's worth at a time: all four finish at 4 x 0.5 = 2 s
    rows = result.trace()
    assert set(rows["tier"]) == {"inline"}
    assert rows["finished_at"].to_numpy() == pytest.approx([2.0] * 4)


def test_unlimited_cores_means_no_sharing_between_processes():
    trace = _trace([0.0] * 8, [1.0] * 8)
    result = simulate(trace, _pool(8), _cpu_host(0))
    assert result.trace()["finished_at"].to_numpy() == pytest.approx([1.0] * 8)
    assert result.cpu_utilisation is None


@pytest.mark.parametrize("cores", [2, 8, 24, 48])
def test_the_fast_path_gives_exactly_the_same_run(cores):
    # Given a busy prototype-mix workload where cores are sometimes oversubscribed
    prepared = prepare(synth(4000, 8.0, seed=cores))
    config = Config(pool_max_size=30, max_concurrent_isolated=30)
    fast, clocks, _tiers = _with_and_without_fast_path(prepared, config, HostProfile(cores=cores))
    # Then every job ends at the same time with and without the fast path
    assert np.allclose(fast, clocks, rtol=1e-9, atol=1e-9)


def _with_and_without_fast_path(prepared, config: Config, host: HostProfile):
    """(finish times with the fast path, without it, tier codes) of one trace."""
    finished = {}
    for fast in (True, False):
        env = simpy.Environment()
        model = Model(env, prepared.jobs, config, host, cpu_fast_path=fast)
        env.run()
        finished[fast] = np.array(model.finished_s)
    return finished[True], finished[False], np.array(model.tier)


def test_one_core_shared_by_a_busy_period_worked_by_hand():
    # Given A (1 CPU s) entering at 0 and B (1 CPU s) at 0.5 on one core
    jobs = [(0.0, 1.0, 0), (0.5, 1.0, 1)]
    # Then A runs alone to 0.5 (0.5 s left), both run at half speed until A ends at 1.5,
    # and B, with 0.5 s done by then, runs alone to 2.0
    ends, left = share_one_core(jobs)
    assert ends == pytest.approx({0: 1.5, 1: 2.0}) and left == {}
    # And at 1.0 A has 0.25 s left and B 0.75 s; a job entering after that is not there yet
    ends, left = share_one_core([*jobs, (1.2, 1.0, 2)], until_s=1.0)
    assert ends == {} and left == pytest.approx({0: 0.25, 1: 0.75})
    # And the core is done with all of them at the sum of their work, whatever the order
    assert drained_s([*jobs, (1.2, 1.0, 2)]) == pytest.approx(3.0)


@pytest.mark.parametrize("cpu_share", [0.2, 0.35, 0.75])
def test_the_fast_path_is_exact_on_a_shared_host_with_less_than_a_core_per_process(cpu_share):
    # Given inline and pool jobs on a 2-core host whose other sessions leave the worker less
    # than one core, or one and a half (the share ``sim_vs_real`` measures on a loaded box)
    mix = (
        JobClass("chatty", 0.8, duration_median_s=0.08, duration_sigma=0.4, cpu_fraction=0.2),
        JobClass("report", 0.2, duration_median_s=1.0, cpu_fraction=0.3),
    )
    prepared = prepare(synth(2000, 6.0, mix=mix, seed=5))
    config = Config.from_mapping(
        {"jobs": {"chatty": {"tier": "inline"}, "report": {"tier": "pool"}}, "pool_size": 4}
    )
    host = HostProfile(cores=2, cpu_share=cpu_share)
    fast, clocks, tiers = _with_and_without_fast_path(prepared, config, host)
    assert (tiers == 0).sum() > 1000  # mostly inline
    # Then every job ends at the same time with and without the fast path: an inline job alone
    # gets the worker's share, not a whole core
    assert np.allclose(fast, clocks, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("rate_per_s", "cores"), [(1.5, 64), (3.0, 64), (3.0, 2)])
def test_busy_periods_give_exactly_the_clocks_run_on_a_crowded_gil(rate_per_s, cores):
    # Given inline jobs that overlap often on the GIL (GIL load 0.65 and 1.3: busy periods past
    # sim.engine.gil.MAX_JOBS go to the clocks and later ones come back), with or without room on
    # the cores for the isolated jobs
    mix = (
        JobClass("chatty", 0.8, duration_median_s=0.12, duration_sigma=0.6, cpu_fraction=0.7),
        JobClass("report", 0.2, duration_median_s=3.0, cpu_fraction=0.6),
    )
    prepared = prepare(synth(3000, rate_per_s, mix=mix, seed=int(rate_per_s)))
    config = Config(inline_max_duration_s=50.0, pooled_max_duration_s=60.0)
    fast, clocks, tiers = _with_and_without_fast_path(prepared, config, HostProfile(cores=cores))
    assert (tiers == 0).sum() > 2500  # mostly inline
    # Then every job ends at the same time with and without the fast path
    assert np.allclose(fast, clocks, rtol=1e-9, atol=1e-9)


def test_an_inline_hand_over_waits_for_the_gil_behind_each_computing_inline_job():
    # Given an inline job computing from 0 to 1 s, then inline jobs handed over at 0.5 s (one
    # computing beside it) and at 2 s (none)
    trace = _trace([0.0, 0.5, 2.0], [1.0, 0.1, 0.1])
    config = Config(inline_max_duration_s=10.0, pooled_max_duration_s=20.0, default_estimate_s=1)
    host = HostProfile.load(None, **{**_cpu_host(2).to_dict(), "gil_handoff_s": 0.015})
    rows = simulate(trace, config, host).trace().sort_values("submitted_at")
    # Then the one handed over while the first computes starts 15 ms late, the last at once
    assert rows["started_at"].to_numpy() == pytest.approx([0.0, 0.515, 2.0])


def test_two_jobs_worked_out_directly_end_as_the_general_solution_says():
    from sim.engine import gil

    rng = np.random.default_rng(5)
    for _ in range(2000):
        first_s, second_s = np.sort(rng.exponential(1.0, 2))
        jobs = [(first_s, rng.exponential(1.0), 0), (second_s, rng.exponential(1.0), 1)]
        ends = gil._share_two(jobs)
        general, _left = share_one_core(jobs, until_s=1e300)  # a finite end: the general loop
        assert ends == pytest.approx(general, rel=1e-12, abs=1e-12)


def _inline_config() -> Config:
    return Config(inline_max_duration_s=10.0, pooled_max_duration_s=20.0, default_estimate_s=1)


def test_cpu_bound_inline_jobs_beyond_the_eager_threads_wait_for_one():
    # Given 6 CPU-bound inline jobs of 0.5 s at t=0 (the runtime starts 4 threads at once, and
    # more only while the process is not computing)
    rows = simulate(_trace([0.0] * 6, [0.5] * 6), _inline_config(), _cpu_host(16)).trace()
    # Then 4 start at once and share the GIL (all end at 2 s); the other 2 start on their
    # threads then and end 1 s later
    started = np.sort(rows["started_at"].to_numpy())
    finished = np.sort(rows["finished_at"].to_numpy())
    assert started == pytest.approx([0.0] * 4 + [2.0] * 2)
    assert finished == pytest.approx([2.0] * 4 + [3.0] * 2)


def test_blocked_inline_jobs_make_room_for_more_threads():
    # Given 10 inline jobs at t=0 that sleep 1 s (no CPU)
    rows = simulate(_trace([0.0] * 10, [0.0] * 10, [1.0] * 10), _inline_config(), _cpu_host(2))
    started = np.sort(rows.trace()["started_at"].to_numpy())
    # Then 4 start at once; at the first check (10 ms) the 4 look blocked: 4 more threads; at
    # the next (20 ms) 8 are blocked, and the 2 still waiting get threads
    assert started == pytest.approx([0.0] * 4 + [0.01] * 4 + [0.02] * 2)


@pytest.mark.parametrize(("bonus", "procs_end_s"), [(0.0, 3.0), (1.3, 3.65)])
def test_the_workers_gil_bound_threads_win_more_than_one_threads_share(bonus, procs_end_s):
    # Given one core, two process jobs and two inline jobs of 1 CPU second each, all from t=0
    from sim.engine.cpu import Cpu

    env = simpy.Environment()
    ends = {}
    cpu = Cpu(env, 1.0, lambda job: ends.setdefault(job, env.now), gil_threads_bonus=bonus)
    for job, inline in enumerate((False, False, True, True)):
        cpu.start(job, 0.0, 1.0, inline)
    env.run()
    # Then the worker weighs 1 + bonus x (1 - 1/2) threads against each process: each process
    # gets 1 / (2 + weight) of the core and ends at 2 + weight seconds (3.65 with the measured
    # bonus, 3 with exact sharing); the inline jobs have the core after and end at 4 s either
    # way (the same 4 CPU seconds in all)
    assert [ends[0], ends[1]] == pytest.approx([procs_end_s] * 2, rel=1e-9)
    assert [ends[2], ends[3]] == pytest.approx([4.0, 4.0], rel=1e-9)
    assert HostProfile.ideal().gil_threads_bonus == 0.0
