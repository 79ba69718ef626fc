"""Numbers as a planner reads them: throughput over the arrival window, rates that show their
value, time axes in the unit that fits the span."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.readable import format_duration, format_rate, time_unit
from sim.model.replay import simulate


def _trace(rows: list[tuple[float, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["submitted_at", "job_class", "duration_s"])


@pytest.mark.parametrize(
    ("span_s", "unit"),
    [
        (0.0, "s"),
        (90.0, "s"),  # 1.5 min: seconds still read better
        (120.0, "min"),
        (7_199.0, "min"),
        (7_200.0, "h"),
        (172_799.0, "h"),
        (172_800.0, "d"),
        (46 * 86_400.0, "d"),
    ],
)
def test_a_time_axis_uses_the_largest_unit_the_span_holds_twice(span_s, unit):
    assert time_unit(span_s)[0] == unit


@pytest.mark.parametrize(
    ("per_min", "text"),
    [
        (1000.0, "1,000/min"),
        (1.8, "1.8/min"),
        (9.374, "9.37/min"),
        (0.054, "3.24/h"),  # an HPC log: not "0.0/min"
        (0.0001, "0.144/d"),
        (0.0, "0/min"),
    ],
)
def test_a_rate_shows_its_value(per_min, text):
    assert format_rate(per_min) == text


def test_rates_side_by_side_can_share_one_unit():
    assert format_rate(0.5, ("h", 60.0)) == "30/h"
    assert format_rate(2.0, ("h", 60.0)) == "120/h"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250 ms"),
        (45.0, "45 s"),
        (600.0, "10 min"),
        (216_000.0, "2.5 d"),
        (0.0, "0 s"),
        (-90.0, "-1.5 min"),
    ],
)
def test_durations_read_in_their_unit(seconds, text):
    assert format_duration(seconds) == text


def test_throughput_counts_the_arrival_window_not_the_drain():
    # Given short jobs every second for a minute and one job of almost three hours in the middle
    rows = [(float(t), "short", 0.01) for t in range(61)] + [(30.0, "long", 10_000.0)]
    # When they run on an ideal host with room for all of them (and a timeout the long job fits)
    result = simulate(_trace(rows), Config(timeout_s=20_000.0), HostProfile.ideal())
    # Then the offered rate is the arrivals over the window, 61/min ...
    assert result.arrival_rate_per_min == pytest.approx(61.0)
    # ... and the completed throughput is the 60 short jobs done by the last arrival, per minute
    # of the window: the long job's drain does not turn it into 0.37/min
    assert result.throughput_per_min == pytest.approx(60.0)
    assert result.makespan_s > 10_000
    assert "offered 61/min, completed 60/min over the arrival window" in result.table()


def test_a_worker_that_falls_behind_completes_less_than_is_offered():
    # Given a 5 s job every second, and one isolated slot for them
    rows = [(float(t), "slow", 5.0) for t in range(61)]
    config = Config.from_mapping(
        {"max_concurrent_isolated": 1, "jobs": {"slow": {"tier": "isolated"}}}
    )
    result = simulate(_trace(rows), config, HostProfile.ideal())
    # Then 60/min are offered and one job per 5 s is done in the window: about 12/min
    assert result.arrival_rate_per_min == pytest.approx(60.0)
    assert 11.0 <= result.throughput_per_min <= 12.0
    assert result.tiers["isolated"].throughput_per_min == result.throughput_per_min
    assert not result.stable


def test_jobs_that_all_arrive_at_once_use_the_makespan():
    # Given the prototype's "working" criterion: 3 jobs of 3 s at one instant, a pool of three
    rows = [(0.0, "job", 3.0)] * 3
    config = Config.from_mapping(
        {"pool_size": 3, "pool_max_size": 3, "jobs": {"job": {"tier": "pool"}}}
    )
    result = simulate(_trace(rows), config, HostProfile.ideal())
    # Then there is no arrival window: three jobs in about 3 s is about 60/min
    assert result.arrival_rate_per_min == 0.0
    assert result.throughput_per_min == pytest.approx(60.0, rel=0.05)
