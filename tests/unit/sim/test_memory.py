"""The memory model against a scenario worked out by hand."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from kqueue.policy.fork import ISOLATED_FORKS_FROM_ZYGOTE, runs_zygote
from sim.model.replay import simulate

WORKER_MB, POOL_PROCESS_MB, ISOLATED_PROCESS_MB, ZYGOTE_MB = 100.0, 50.0, 40.0, 5.0
#: The tree before any job: the worker and the pool's zygote (every config here has a pool tier
#: but the zygote's own test).
TREE_MB = WORKER_MB + ZYGOTE_MB


def _host() -> HostProfile:
    return HostProfile(
        cores=0, fetch_s=0, polls=False, inline_dispatch_s=0, pool_dispatch_s=0,
        isolated_dispatch_s=0, spawn_s=0, worker_mb=WORKER_MB, pool_process_mb=POOL_PROCESS_MB,
        isolated_process_mb=ISOLATED_PROCESS_MB, zygote_mb=ZYGOTE_MB,
    )  # fmt: skip


def _config() -> Config:
    return Config.from_mapping(
        {
            "pool_size": 2,
            "pool_max_size": 2,
            "max_jobs_per_worker": 2,
            "jobs": {"p": {"tier": "pool"}, "iso": {"tier": "isolated"}},
        }
    )


def _level_at(result, t_s: float) -> float:
    series = result.memory
    return float(series.loc[series["time_s"] <= t_s, "memory_mb"].iloc[-1])


def test_hand_worked_peak_with_pool_high_water_marks_recycling_and_an_isolated_job():
    # Given a pool of 2 processes recycled after 2 jobs each, and one isolated job:
    #   t=0   p1 (pool, 10 s, 100 MB) -> process 0;  p2 (pool, 10 s, 300 MB) -> process 1
    #   t=1   iso (isolated, 5 s, 200 MB)
    #   t=12  p3 (pool, 10 s, 80 MB) -> process 0;   p4 (pool, 10 s, 50 MB) -> process 1
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.0, 1.0, 12.0, 12.0],
            "job_class": ["p", "p", "iso", "p", "p"],
            "duration_s": [10.0, 10.0, 5.0, 10.0, 10.0],
            "memory_mb": [100.0, 300.0, 200.0, 80.0, 50.0],
            "cpu_s": 0.0,
        }
    )
    result = simulate(trace, _config(), _host())
    # Then by hand:
    #   t=0..1:  worker 100 + zygote 5 + process 0 (50 + 100) + process 1 (50 + 300) = 605
    #   t=1..6:  + the isolated process (40 + 200)                                = 845  <- peak
    #   t=6..22: the pool processes keep their high-water marks (100 and 300)     = 605
    #            (p3 = 80 MB and p4 = 50 MB stay below them)
    #   t=22:    both processes ran 2 jobs: recycled into fresh 50 MB processes   = 205
    assert result.peak_memory_mb == pytest.approx(845.0)
    assert result.peak_memory_at_s == pytest.approx(1.0)
    assert _level_at(result, 0.5) == pytest.approx(605.0)
    assert _level_at(result, 11.0) == pytest.approx(605.0)
    assert _level_at(result, 30.0) == pytest.approx(205.0)
    assert result.tiers["pool"].recycles == 2
    assert result.tiers["pool"].spawns == 4
    assert result.tiers["isolated"].spawns == 1
    assert result.tiers["pool"].peak_memory_mb == pytest.approx(500.0)
    assert result.tiers["isolated"].peak_memory_mb == pytest.approx(240.0)


def test_inline_jobs_add_their_memory_to_the_worker_while_they_run():
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.0, 5.0],
            "job_class": "fast",
            "duration_s": [0.5, 0.5, 0.5],
            "memory_mb": [10.0, 20.0, 5.0],
            "cpu_s": 0.0,
        }
    )
    config = Config(pool_size=0, pool_max_size=0, default_estimate_s=0.1)
    # an allocator that gives every freed block back to the OS
    result = simulate(trace, config, dataclasses.replace(_host(), retained_job_mb=0.0))
    assert result.peak_memory_mb == pytest.approx(WORKER_MB + 30.0)
    assert _level_at(result, 1.0) == pytest.approx(WORKER_MB)


def _inline_jobs(submitted_at: list[float], memory_mb: list[float], retained_job_mb: float):
    """0.5 s inline jobs (no pool), on a host whose allocator maps blocks up to the given size."""
    trace = pd.DataFrame(
        {
            "submitted_at": submitted_at,
            "job_class": "fast",
            "duration_s": 0.5,
            "memory_mb": memory_mb,
            "cpu_s": 0.0,
        }
    )
    config = Config(pool_size=0, pool_max_size=0, default_estimate_s=0.1)
    return simulate(trace, config, dataclasses.replace(_host(), retained_job_mb=retained_job_mb))


def test_the_worker_heap_keeps_inline_jobs_memory_below_the_mmap_threshold():
    # Given inline jobs of 10 and 20 MB together, then one of 5 MB, then two of 8 MB together
    result = _inline_jobs([0.0, 0.0, 5.0, 10.0, 10.0], [10.0, 20.0, 5.0, 8.0, 8.0], 15.0)
    # Then the first two are mapped (glibc's threshold starts at 128 KB) and given back; the 10 MB
    # one raises the threshold to 10 MB (the 20 MB one is past the 15 MB cap and does not)
    assert result.peak_memory_mb == pytest.approx(WORKER_MB + 30.0)
    assert _level_at(result, 1.0) == pytest.approx(WORKER_MB)
    # so the 5 MB job comes from the heap, which keeps it (5 MB free < the 20 MB trim threshold)
    assert _level_at(result, 5.2) == pytest.approx(WORKER_MB + 5.0)
    assert _level_at(result, 6.0) == pytest.approx(WORKER_MB + 5.0)
    # and the two 8 MB jobs grow the heap to 16 MB, all of it kept after them
    assert _level_at(result, 10.2) == pytest.approx(WORKER_MB + 16.0)
    assert _level_at(result, 11.0) == pytest.approx(WORKER_MB + 16.0)


def test_the_worker_heap_gives_back_its_free_space_past_the_trim_threshold():
    # Given a 4 MB inline job (mapped: the threshold becomes 4 MB, the trim threshold 8 MB),
    # then three 4 MB jobs together in the heap (12 MB), ending one after another
    result = _inline_jobs([0.0, 5.0, 5.1, 5.2], [4.0, 4.0, 4.0, 4.0], 32.0)
    assert _level_at(result, 1.0) == pytest.approx(WORKER_MB)
    assert _level_at(result, 5.45) == pytest.approx(WORKER_MB + 12.0)
    # Then the heap keeps the first freed 4 MB, and trims to 4 MB in use when 8 MB are free,
    assert _level_at(result, 5.55) == pytest.approx(WORKER_MB + 12.0)
    assert _level_at(result, 5.65) == pytest.approx(WORKER_MB + 4.0)
    # then keeps that last job's 4 MB (below the trim threshold)
    assert _level_at(result, 6.5) == pytest.approx(WORKER_MB + 4.0)


def _one_pool_process(memory_mb: list[float]):
    """1 s pool jobs of ``memory_mb`` every 5 s on one pool process; glibc keeps up to 32 MB."""
    trace = pd.DataFrame(
        {
            "submitted_at": [5.0 * i for i in range(len(memory_mb))],
            "job_class": "report",
            "duration_s": 1.0,
            "memory_mb": memory_mb,
            "cpu_s": 0.0,
        }
    )
    config = Config.from_mapping(
        {"pool_size": 1, "pool_max_size": 1, "jobs": {"report": {"tier": "pool"}}}
    )
    return simulate(trace, config, dataclasses.replace(_host(), retained_job_mb=32.0))


def test_a_pool_process_gives_back_a_big_job_memory_and_keeps_a_small_one():
    # Given one pool process that runs a 200 MB job, then two 10 MB jobs
    result = _one_pool_process([200.0, 10.0, 10.0])
    base_mb = TREE_MB + POOL_PROCESS_MB
    # Then the 200 MB are held only while the job runs (a mapping of its own, given back)
    assert _level_at(result, 0.5) == pytest.approx(base_mb + 200.0)
    assert _level_at(result, 3.0) == pytest.approx(base_mb)
    # the first 10 MB block is mapped too (glibc's threshold starts at 128 KB), and its return
    # raises the threshold to 10 MB, so the second comes from the heap and stays
    assert _level_at(result, 8.0) == pytest.approx(base_mb)
    assert _level_at(result, 13.0) == pytest.approx(base_mb + 10.0)


def test_a_job_above_the_mmap_threshold_comes_on_top_of_what_the_process_keeps():
    # Given one pool process that keeps 10 MB (two 10 MB jobs), then runs a 20 MB job
    result = _one_pool_process([10.0, 10.0, 20.0, 20.0])
    base_mb = TREE_MB + POOL_PROCESS_MB
    assert _level_at(result, 8.0) == pytest.approx(base_mb + 10.0)
    # Then the 20 MB job (above the 10 MB threshold) maps its own block beside the kept 10 MB,
    assert _level_at(result, 10.5) == pytest.approx(base_mb + 30.0)
    # and the next 20 MB job (threshold now 20 MB) grows the heap to 20 MB, which stays
    assert _level_at(result, 15.5) == pytest.approx(base_mb + 20.0)
    assert _level_at(result, 18.0) == pytest.approx(base_mb + 20.0)


def test_memory_limit_recycles_a_pool_process_after_a_big_job():
    # Given a 512 MB per-process limit, a 50 MB process and a 480 MB job (50 + 480 > 512)
    trace = pd.DataFrame(
        {"submitted_at": [0.0], "job_class": "p", "duration_s": [1.0], "memory_mb": [480.0]}
    )
    config = _config().replace(max_jobs_per_worker=1000)
    result = simulate(trace, config, _host())
    # Then the process is recycled as soon as the job ends
    assert result.tiers["pool"].recycles == 1
    assert _level_at(result, 2.0) == pytest.approx(TREE_MB + 2 * POOL_PROCESS_MB)


def test_missing_cpu_and_memory_get_documented_defaults_and_are_counted():
    from sim.model.replay import DEFAULT_CPU_FRACTION, DEFAULT_MEMORY_MB

    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 1.0],
            "job_class": "p",
            "duration_s": [2.0, 2.0],
            "memory_mb": [None, 30.0],
        }
    )
    result = simulate(trace, _config(), _host())
    rows = result.trace()
    assert result.default_cpu_rows == 2
    assert result.default_memory_rows == 1
    assert rows["cpu_s"].tolist() == [2.0 * DEFAULT_CPU_FRACTION] * 2
    assert rows["memory_mb"].tolist() == [DEFAULT_MEMORY_MB, 30.0]


def test_a_process_forked_from_the_worker_after_inline_jobs_keeps_a_copy_of_their_memory(
    monkeypatch,
):
    # Given a worker whose inline jobs left 30 MB in its heap (a 20 MB job mapped, given back,
    # raising the threshold to 20 MB; then 10 and 20 MB from the heap, below the 40 MB trim),
    # and isolated processes forked by the worker itself (no zygote)
    monkeypatch.setattr("sim.model.tiers.ISOLATED_FORKS_FROM_ZYGOTE", False)
    # When an isolated process is forked afterwards
    result = _inline_heap_then_slow("isolated", pool_max_size=0)
    # Then it holds its own size plus the worker's 30 MB (shared at fork, its own once the
    # worker reuses them), on top of the worker's 30 MB
    assert _level_at(result, 3.5) == pytest.approx(WORKER_MB + 30.0 + ISOLATED_PROCESS_MB + 30.0)
    assert _level_at(result, 5.0) == pytest.approx(WORKER_MB + 30.0)


def test_an_isolated_process_from_the_zygote_keeps_none_of_the_inline_memory():
    # Given the same worker, whose isolated processes come from its isolated zygote (forked at
    # start, before any inline job), as the runtime forks them
    assert ISOLATED_FORKS_FROM_ZYGOTE
    # When an isolated process is forked after the inline jobs
    result = _inline_heap_then_slow("isolated", pool_max_size=0)
    # Then it holds only its own size on top of the worker's
    assert _level_at(result, 3.5) == pytest.approx(WORKER_MB + 30.0 + ISOLATED_PROCESS_MB)
    assert _level_at(result, 5.0) == pytest.approx(WORKER_MB + 30.0)


def _twenty_mb_jobs(submitted_at: list[float], duration_s: float, gives_back: bool):
    """Simulate 20 MB pool jobs on one pool process (mmap threshold up to 32 MB): the result,
    and the worker's and the process's own memory."""
    trace = pd.DataFrame(
        {
            "submitted_at": submitted_at,
            "job_class": "p",
            "duration_s": duration_s,
            "memory_mb": 20.0,
            "cpu_s": 0.0,
        }
    )
    config = Config.from_mapping(
        {"pool_size": 1, "pool_max_size": 1, "jobs": {"p": {"tier": "pool"}}}
    )
    host = dataclasses.replace(_host(), retained_job_mb=32.0, gives_back_memory=gives_back)
    return simulate(trace, config, host), TREE_MB + POOL_PROCESS_MB


@pytest.mark.parametrize("gives_back", [False, True])
def test_an_idle_pool_process_gives_its_kept_memory_back_when_the_host_trims(gives_back):
    # Given one pool process and three 1 s jobs of 20 MB at t = 0, 2 and 6: the first is mapped
    # (and raises the mmap threshold to 20 MB as it is given back), the others come from the heap
    result, base_mb = _twenty_mb_jobs([0.0, 2.0, 6.0], 1.0, gives_back)
    # Then the second job's 20 MB stay after it ends at t = 3 ...
    assert _level_at(result, 1.5) == pytest.approx(base_mb)
    assert _level_at(result, 3.5) == pytest.approx(base_mb + 20.0)
    # ... for good when the process keeps them; until it has been idle POOL_IDLE_S when it trims,
    # and the third job then takes them anew
    kept_mb = 0.0 if gives_back else 20.0
    assert _level_at(result, 4.5) == pytest.approx(base_mb + kept_mb)
    assert _level_at(result, 6.5) == pytest.approx(base_mb + 20.0)
    assert _level_at(result, 9.0) == pytest.approx(base_mb + kept_mb)


def test_a_job_computes_at_least_what_faulting_in_its_fresh_memory_costs():
    # Given one pool process (glibc keeps up to 32 MB) and a host that spends 10 ms of CPU per
    # MB of fresh memory; 0.1 s jobs of 20 MB (no CPU work of their own) and one of 3 s of CPU
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 5.0, 10.0, 15.0],
            "job_class": "report",
            "duration_s": [0.1, 0.1, 0.1, 4.0],
            "memory_mb": 20.0,
            "cpu_s": [0.0, 0.0, 0.0, 3.0],
        }
    )
    config = Config.from_mapping(
        {"pool_size": 1, "pool_max_size": 1, "jobs": {"report": {"tier": "pool"}}}
    )
    host = dataclasses.replace(_host(), retained_job_mb=32.0, fault_cpu_s_per_mb=0.01)
    durations = simulate(trace, config, host).trace()["duration_s"].tolist()
    # Then the first job maps its 20 MB afresh, and the second grows the heap by them: both
    # take 0.2 s longer; the third reuses what the process kept and takes its 0.1 s; the
    # fourth's own 3 s of CPU cover the 0.2 s of faults (none here: the heap holds them)
    assert durations == pytest.approx([0.3, 0.3, 0.1, 4.0])


def test_a_pool_process_never_idle_gives_its_kept_memory_back_between_jobs():
    # Given one pool process on a host that trims, and 20 MB jobs of 0.8 s every second from
    # t = 0 to 12: idle 0.2 s between two, never POOL_IDLE_S; the first is mapped (the mmap
    # threshold rises to 20 MB), the others come from the heap and leave 20 MB kept
    result, base_mb = _twenty_mb_jobs([float(t) for t in range(13)], 0.8, gives_back=True)
    # Then it keeps them between jobs up to t = 10 ...
    assert _level_at(result, 1.9) == pytest.approx(base_mb + 20.0)
    assert _level_at(result, 9.9) == pytest.approx(base_mb + 20.0)
    # ... gives them back at the end of the first job ending POOL_BUSY_TRIM_S after it started
    # (t = 10.8), takes them anew with the next job, and gives them back once idle at the end
    assert _level_at(result, 10.9) == pytest.approx(base_mb)
    assert _level_at(result, 11.9) == pytest.approx(base_mb + 20.0)
    assert _level_at(result, 14.0) == pytest.approx(base_mb)


def test_a_pool_process_started_after_inline_jobs_keeps_none_of_their_memory():
    # Given the worker of the test above, whose inline jobs left 30 MB in its heap, and a pool
    # that starts its process only when the pool job comes
    # When the pool process is forked afterwards
    result = _inline_heap_then_slow("pool", pool_max_size=1)
    # Then it holds its own size only: the runtime forks it from its zygote, which has none of
    # the worker's inline memory (kqueue.policy.fork)
    assert result.tiers["pool"].spawns == 1
    assert _level_at(result, 3.5) == pytest.approx(TREE_MB + 30.0 + POOL_PROCESS_MB)


def _inline_heap_then_slow(tier: str, pool_max_size: int):
    """Three inline jobs that leave 30 MB in the worker's heap (see the tests below), then one
    ``slow`` job on ``tier`` at t = 3, simulated with 32 MB of retained job memory."""
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 1.0, 1.0, 3.0],
            "job_class": ["fast", "fast", "fast", "slow"],
            "duration_s": [0.5, 0.5, 0.5, 1.0],
            "memory_mb": [20.0, 10.0, 20.0, 0.0],
            "cpu_s": 0.0,
        }
    )
    config = Config.from_mapping(
        {
            "pool_size": 0,
            "pool_max_size": pool_max_size,
            "default_estimate_s": 0.1,
            "jobs": {"slow": {"tier": tier}},
        }
    )
    return simulate(trace, config, dataclasses.replace(_host(), retained_job_mb=32.0))


@pytest.mark.parametrize(
    ("pool_max_size", "force_inline", "zygote"),
    [(2, False, True), (0, False, False), (2, True, False)],
    ids=["pool tier", "no pool processes", "--inline"],
)
def test_the_zygote_stands_in_the_tree_exactly_when_the_runtime_runs_one(
    pool_max_size, force_inline, zygote
):
    # Given a pool that starts empty (pool_size 0) and may grow to pool_max_size, and one
    # inline job of 20 MB (given back at its end)
    trace = pd.DataFrame(
        {"submitted_at": [0.0], "job_class": ["i"], "duration_s": [1.0], "memory_mb": [20.0]}
    )
    settings = {"pool_size": 0, "pool_max_size": pool_max_size, "jobs": {"i": {"tier": "inline"}}}
    config = Config.from_mapping(settings)
    # When it is simulated with and without --inline
    host = dataclasses.replace(_host(), retained_job_mb=0.0)
    result = simulate(trace, config, host, force_inline=force_inline)
    # Then the tree holds the worker, and the zygote from the start exactly when the runtime's
    # rule starts one (a pool tier that may hold processes)
    assert runs_zygote(config, force_inline=force_inline) is zygote
    standing = WORKER_MB + (ZYGOTE_MB if zygote else 0.0)
    assert _level_at(result, 5.0) == pytest.approx(standing)
    assert result.peak_memory_mb == pytest.approx(standing + 20.0)
    # and the textbook host has no zygote
    ideal = simulate(trace, config, HostProfile.ideal(), force_inline=force_inline)
    assert ideal.peak_memory_mb == pytest.approx(20.0)


def test_a_job_faults_its_fresh_memory_in_first_and_the_curve_ramps_over_that():
    # Given one pool job of 1 s (0.5 s of CPU) that maps 100 MB afresh (above the 32 MB the
    # heap keeps), on a host where faulting a MB in costs 2 ms of CPU (0.2 s for the job)
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0],
            "job_class": ["p"],
            "duration_s": [1.0],
            "memory_mb": [100.0],
            "cpu_s": [0.5],
        }
    )
    host = dataclasses.replace(_host(), cores=2, fault_cpu_s_per_mb=0.002, retained_job_mb=32.0)
    # When it is simulated
    result = simulate(trace, _config(), host)
    # Then it first faults its memory in (0.2 s of CPU), then waits out its 0.5 s off the CPU,
    # then computes the other 0.3 s: it still ends at 1 s
    base_mb = TREE_MB + 2 * POOL_PROCESS_MB
    assert result.trace()["finished_at"].iloc[0] == pytest.approx(1.0)
    # and the curve holds half its memory while it faults it in (a linear ramp's area), all of
    # it from then to its end
    assert _level_at(result, 0.1) == pytest.approx(base_mb + 50.0)
    assert _level_at(result, 0.5) == pytest.approx(base_mb + 100.0)
    assert _level_at(result, 1.5) == pytest.approx(base_mb)
    assert result.peak_memory_mb == pytest.approx(base_mb + 100.0)
