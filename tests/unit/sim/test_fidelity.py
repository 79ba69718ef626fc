"""The model describes what the runtime does, in the details that move measured numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import simulate


def _polling_host() -> HostProfile:
    return HostProfile.load(None, **{**HostProfile.ideal().to_dict(), "polls": True})


def test_a_job_ending_wakes_the_idle_worker_and_the_next_poll_counts_from_there():
    # Given an inline job at t=0 that ends at 0.05, and a job arriving at 0.3
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.3],
            "job_class": "mail",
            "duration_s": [0.05, 0.05],
            "cpu_s": 0.0,
            "memory_mb": 0.0,
        }
    )
    config = Config(default_estimate_s=0.1, poll_interval_s=0.2)
    # When the worker polls every 0.2 s, as the runtime's loop does
    started = simulate(trace, config, _polling_host()).trace()["started_at"].tolist()
    # Then the job end at 0.05 woke it (fetch, empty), and it polls at 0.25, then 0.45: not 0.4
    assert started == pytest.approx([0.0, 0.45])


def test_without_job_ends_the_worker_polls_on_its_grid():
    # Given two jobs far apart, the first long over before the second arrives
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 1.3],
            "job_class": "mail",
            "duration_s": [0.05, 0.05],
            "cpu_s": 0.0,
            "memory_mb": 0.0,
        }
    )
    config = Config(default_estimate_s=0.1, poll_interval_s=0.2)
    started = simulate(trace, config, _polling_host()).trace()["started_at"].tolist()
    # Then the second is seen at the first poll at or after 1.3 on the grid from 0.05
    assert started == pytest.approx([0.0, 1.45])


def test_a_job_ending_after_an_arrival_lets_the_worker_fetch_it_at_once():
    # Given a 0.3 s inline job at t=0, and a job arriving at 0.1 (before the 0.2 s poll)
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.1, 0.25],
            "job_class": "mail",
            "duration_s": [0.3, 0.12, 0.05],
            "cpu_s": 0.0,
            "memory_mb": 0.0,
        }
    )
    config = Config(default_estimate_s=0.5, poll_interval_s=0.2)
    started = simulate(trace, config, _polling_host()).trace()["started_at"].tolist()
    # Then the second is fetched at the 0.2 poll; the third, arriving at 0.25, when the first
    # ends at 0.3 (not at the 0.4 poll)
    assert started == pytest.approx([0.0, 0.2, 0.3])
