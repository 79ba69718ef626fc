"""The twin releases a delayed job at its ``due_at`` (as the backend does), never earlier."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import simulate


def test_a_delayed_row_starts_at_its_due_time_and_its_wait_counts_from_then():
    # Given two jobs submitted together, the second delayed by 5 s (due_at), a third without one
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.0, 1.0],
            "due_at": [math.nan, 5.0, math.nan],
            "job_class": "mail",
            "duration_s": [0.05, 0.05, 0.05],
            "cpu_s": 0.0,
            "memory_mb": 0.0,
        }
    )
    result = simulate(trace, Config(default_estimate_s=0.1), HostProfile.ideal()).trace()
    # Then the delayed one starts at 5 s, after the undelayed one submitted at 1 s
    by_start = result.sort_values("started_at")
    assert by_start["started_at"].tolist() == pytest.approx([0.0, 1.0, 5.0])
    assert result["wait_s"].max() == pytest.approx(0.0, abs=1e-9)


def test_a_trace_without_due_at_replays_as_before():
    trace = pd.DataFrame({"submitted_at": [0.0, 2.0], "job_class": "x", "duration_s": [0.1, 0.1]})
    started = simulate(trace, Config(default_estimate_s=0.1), HostProfile.ideal()).trace()
    assert sorted(started["started_at"]) == pytest.approx([0.0, 2.0])
