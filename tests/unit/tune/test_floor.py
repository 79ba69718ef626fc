"""The memory floor is Little's law per class (issue 14): long jobs that are big weigh more."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare
from sim.tune.space import make_split, memory_floor_mb, memory_guess_mb, profile, with_pool_tier


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
    assert memory_floor_mb(split, host, Config()) == pytest.approx(40_090, rel=0.01)


def test_the_floor_and_the_guess_count_the_zygote_exactly_when_the_runtime_runs_one():
    # Given a host whose worker holds 30 MB and whose zygote holds 8 MB, and one small class
    trace = pd.DataFrame(
        {
            "submitted_at": [float(t) for t in range(60)],
            "job_class": "small",
            "duration_s": 0.5,
            "memory_mb": 1.0,
            "cpu_s": 0.0,
        }  # fmt: skip
    )
    host = HostProfile.load(
        None, **{**HostProfile.ideal().to_dict(), "worker_mb": 30.0, "zygote_mb": 8.0}
    )
    split = make_split(profile(prepare(trace), Config()), host, 1.0, 1.0, 30.0)
    no_pool = Config(pool_size=0, pool_max_size=0)
    # Then a config with a pool tier counts the zygote, one without does not (as
    # ``kqueue.policy.fork.runs_zygote`` decides for the worker), by its 8 MB
    for estimate in (memory_floor_mb, memory_guess_mb):
        args = (0, 0) if estimate is memory_guess_mb else ()
        with_zygote = estimate(split, host, Config(), *args)
        without = estimate(split, host, no_pool, *args)
        assert with_zygote - without == pytest.approx(8.0)
    # and every tuner candidate has a pool tier, so its standing memory includes the zygote
    assert with_pool_tier(no_pool).pool_max_size == 1
