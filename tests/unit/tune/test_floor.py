"""The memory floor is Little's law per class (issue 14): long jobs that are big weigh more."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare
from sim.tune.space import make_split, memory_floor_mb, profile


def test_the_floor_weights_each_class_by_its_time_in_use_not_its_arrivals():
    # Given 9 small short jobs a second and 1 big long one a second, all isolated
    rows = []
    for t in range(600):
        rows += [(t + i / 10, "small", 1.0, 10.0) for i in range(9)]
        rows.append((t + 0.95, "big", 40.0, 1000.0))
    trace = pd.DataFrame(rows, columns=["submitted_at", "job_class", "duration_s", "memory_mb"])
    trace["cpu_s"] = 0.0
    host = HostProfile.load(None, **{**HostProfile.ideal().to_dict(), "worker_mb": 0.0})
    split = make_split(profile(prepare(trace), Config()), host, 1.0, 0.0, 0.0)
    # Then the floor is 9 x 1 s x 10 MB + 1 x 40 s x 1000 MB in use: 40,090 MB, not
    # (9 + 40) busy slots x the arrival-weighted mean of 109 MB (5,341 MB)
    assert memory_floor_mb(split, host) == pytest.approx(40_090, rel=0.01)
