"""Memory prediction, admission with a reservation for the head, quarantine, budget checks."""

from __future__ import annotations

import math

import pytest

from kqueue.errors import ConfigError
from kqueue.policy.admission import (
    Candidate,
    Holding,
    admit,
    check_budget,
    expected_mb,
    pool_room,
    recycle_for_budget,
)
from kqueue.policy.config import Config
from kqueue.policy.memory import MemoryHistory, cold_start_mb, job_memory_mb, predict_memory_mb
from kqueue.policy.quarantine import ClassHealth, Quarantine, limit_mb, step
from kqueue.policy.status import Status

# --- prediction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param([], 64.0, id="no history -> default"),
        pytest.param([100.0, 200.0], 64.0, id="too few -> default"),
        pytest.param([100.0, 200.0, 300.0], 280.0, id="three -> p90"),
        pytest.param([100.0, math.nan, 200.0, 300.0], 280.0, id="nan skipped"),
    ],
)
def test_predict_memory(history, expected):
    assert predict_memory_mb(history, 64.0) == pytest.approx(expected)


def test_cold_start_is_never_above_the_limit():
    assert cold_start_mb(math.inf, 512.0) == 512.0
    assert cold_start_mb(64.0, 512.0) == 64.0


def test_history_matches_the_pure_rule_and_forgets_old_peaks():
    history = MemoryHistory(window=3, quantile_q=0.9, min_samples=3)
    assert history.predict_mb("a", 64.0) == 64.0 and not history.has_history("a")
    for peak in (500.0, 10.0, 20.0, math.nan, 30.0):
        history.record("a", peak)
    assert history.peaks_mb("a") == [10.0, 20.0, 30.0]  # 500 left the window, nan never entered
    assert history.predict_mb("a", 64.0) == pytest.approx(predict_memory_mb([10, 20, 30], 64))
    assert history.peak_mb("a") == 30.0 and math.isnan(history.peak_mb("b"))


# --- admission --------------------------------------------------------------------------------


def test_no_budget_admits_everything():
    jobs = [Candidate(10_000.0, 1.0)] * 3
    assert admit(jobs, 100.0, math.inf) == [0, 1, 2]


# used, budget, candidates (need, estimate), running (ends_at, memory) -> admitted
ADMISSION = [
    pytest.param(100, 1000, [(300, 5), (300, 5), (300, 5)], [], [0, 1, 2], id="all fit"),
    pytest.param(100, 1000, [(300, 5)] * 4, [], [0, 1, 2], id="fourth waits"),
    # head (850) waits for the running 500 MB job ending at t=10, with 50 MB to spare then; a
    # 100 MB job of 20 s would end after that and eat the head's memory: refused; a 5 s one
    # ends before: backfilled
    pytest.param(600, 1000, [(850, 5), (100, 20), (100, 5)], [(10, 500)], [2], id="backfill short"),
    # memory left beside the head at its shadow time may be used by long jobs too
    pytest.param(600, 1000, [(500, 5), (100, 60)], [(10, 500)], [1], id="backfill into spare"),
    pytest.param(900, 1000, [(600, 5), (50, 1)], [(10, 500)], [1], id="short fits now"),
    pytest.param(900, 1000, [(600, 5), (200, 1)], [(10, 500)], [], id="behind does not fit now"),
    # a job bigger than the whole budget runs alone once only the floor remains
    pytest.param(100, 1000, [(5000, 5)], [], [0], id="too big, nothing running -> alone"),
    pytest.param(600, 1000, [(5000, 5), (10, 99)], [(10, 500)], [], id="too big waits for all"),
    pytest.param(600, 1000, [(5000, 5), (10, 5)], [(10, 500)], [1], id="too big: backfill short"),
    pytest.param(100, 1000, [(300, 5), (5000, 5)], [], [0], id="too big waits behind a start"),
]


@pytest.mark.parametrize(("used", "budget", "jobs", "running", "expected"), ADMISSION)
def test_admission(used, budget, jobs, running, expected):
    candidates = [Candidate(need, estimate) for need, estimate in jobs]
    holding = [Holding(ends, memory) for ends, memory in running]
    assert admit(candidates, used, budget, holding, now_s=0.0) == expected


def test_head_is_never_starved_by_a_stream_of_small_jobs():
    # Given a 600 MB head waiting behind a 500 MB job that ends at t=10, and a small long job
    # arriving every second
    budget, floor = 1000.0, 100.0
    running = [Holding(10.0, 500.0)]
    head = Candidate(600.0, 5.0)
    started_at = None
    for now_s in range(0, 40):
        running = [h for h in running if h.ends_at_s > now_s]
        used = floor + sum(h.memory_mb for h in running)
        admitted = admit([head, Candidate(150.0, 30.0)], used, budget, running, float(now_s))
        if 0 in admitted:
            started_at = now_s
            break
        # small ones only fill what is spare beside the head at its shadow time
        running += [Holding(now_s + 30.0, 150.0) for _ in admitted]
    # Then the head starts when the big job ends, not after the stream
    assert started_at == 10


def test_pool_room_and_recycle():
    assert pool_room(700.0, 1000.0, 100.0) == 3
    assert pool_room(1100.0, 1000.0, 100.0) == 0
    assert pool_room(5.0, math.inf, 100.0) > 1000
    assert recycle_for_budget(1100.0, 1000.0, retained_mb=40.0)
    assert not recycle_for_budget(900.0, 1000.0, retained_mb=40.0)
    assert not recycle_for_budget(1100.0, 1000.0, retained_mb=0.0)
    assert recycle_for_budget(900.0, 1000.0, retained_mb=40.0, waiting_need_mb=200.0)
    assert expected_mb(500.0, -20.0) == 500.0 and expected_mb(500.0, 20.0) == 520.0


def test_check_budget_errors_name_the_problem():
    check_budget(math.inf, 5000.0, {"a": 1e9}, "cli")
    check_budget(1500.0, 60.0, {"a": 1024.0}, "cli")
    with pytest.raises(ConfigError, match=r"not above this worker's own memory \(60 MB\)"):
        check_budget(50.0, 60.0, {}, "the command line")
    with pytest.raises(ConfigError, match="job 'big' has max_memory_mb = 2048, above"):
        check_budget(1500.0, 60.0, {"big": 2048.0}, "kqueue.toml")


# --- config -----------------------------------------------------------------------------------


def test_budget_settings_are_checked_at_load():
    assert Config().memory_budget_mb == math.inf
    assert Config.from_mapping({"memory_budget_mb": 1500}).memory_budget_mb == 1500.0
    with pytest.raises(ConfigError, match="memory_budget_mb = 'lots' is invalid"):
        Config.from_mapping({"memory_budget_mb": "lots"}, source="k.toml")
    with pytest.raises(ConfigError, match=r"k.toml: max_memory_mb \(1024\) is above memory_bud"):
        Config.from_mapping({"memory_budget_mb": 800}, source="k.toml")
    table = {"memory_budget_mb": 800, "max_memory_mb": 256, "jobs": {"v": {"max_memory_mb": 900}}}
    with pytest.raises(ConfigError, match=r'\[jobs."v"\] max_memory_mb \(900\) is above'):
        Config.from_mapping(table, source="k.toml")
    with pytest.raises(ConfigError, match="load_route_exit_wait_s"):
        Config(load_route_enter_wait_s=1.0, load_route_exit_wait_s=2.0)


# --- quarantine -------------------------------------------------------------------------------

QUARANTINE = Config(quarantine_after_failures=2, quarantine_window=4, quarantine_release_after=2)


def _run(statuses):
    health = ClassHealth()
    for status in statuses:
        health = step(health, status, QUARANTINE)
    return health


OK, MEM, KILL, FAIL = Status.OK, Status.MEMORY, Status.KILLED, Status.FAILED


@pytest.mark.parametrize(
    ("statuses", "quarantined"),
    [
        pytest.param([MEM], False, id="one death"),
        pytest.param([MEM, OK, KILL], True, id="two deaths in the window"),
        pytest.param([MEM, OK, OK, OK, KILL], False, id="first death left the window"),
        pytest.param([FAIL, FAIL, FAIL], False, id="exceptions do not count"),
        pytest.param([MEM, MEM, OK], True, id="one clean run does not release"),
        pytest.param([MEM, MEM, OK, OK], False, id="released after two clean"),
        pytest.param([MEM, MEM, OK, MEM, OK], True, id="a death resets the streak"),
    ],
)
def test_quarantine_rule(statuses, quarantined):
    assert _run(statuses).quarantined is quarantined


def test_quarantine_off_with_zero():
    config = Config(quarantine_after_failures=0)
    health = ClassHealth()
    for _ in range(20):
        health = step(health, MEM, config)
    assert not health.quarantined


def test_quarantine_state_reports_transitions_and_limit():
    quarantine = Quarantine(QUARANTINE)
    assert quarantine.record("v", MEM) is None
    assert quarantine.record("v", MEM) is True
    assert quarantine.quarantined() == ["v"] and quarantine.is_quarantined("v")
    assert quarantine.record("v", OK) is None
    assert quarantine.record("v", OK) is False
    assert not quarantine.is_quarantined("v")
    config = Config(memory_budget_mb=1500, quarantine_memory_headroom=1.5)
    assert limit_mb(200.0, 1024.0, config) == 300.0
    assert limit_mb(900.0, 1024.0, config) == 1024.0
    assert limit_mb(math.nan, 1024.0, config) == 1024.0


@pytest.mark.parametrize(
    ("peak_mb", "base_mb", "expected_mb"),
    [
        (431.0, 31.0, 400.0),  # a fresh process's interpreter is its own, not the job's
        (31.0, 31.0, 0.0),  # a job that allocates nothing
        (25.0, 31.0, 0.0),  # pages given back below the fresh base: never negative
    ],
)
def test_a_jobs_memory_is_its_peak_above_its_process_base(peak_mb, base_mb, expected_mb):
    assert job_memory_mb(peak_mb, base_mb) == expected_mb
