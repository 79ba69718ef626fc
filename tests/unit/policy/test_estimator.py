"""Estimator: explicit > history quantile (once trusted) > default; robust, windowed, cached."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kqueue.policy.config import Config
from kqueue.policy.estimator import (
    DurationHistory,
    Estimate,
    EstimateSource,
    estimate_duration,
    quantile,
)

EXPLICIT, HISTORY, DEFAULT = EstimateSource.EXPLICIT, EstimateSource.HISTORY, EstimateSource.DEFAULT

# explicit, history, min_samples -> estimate (default 5 s, p90)
SOURCES = [
    pytest.param(2.0, [10.0, 20.0, 30.0], 3, Estimate(2.0, EXPLICIT), id="explicit beats history"),
    pytest.param(0.0, [], 3, Estimate(0.0, EXPLICIT), id="explicit zero is explicit"),
    pytest.param(None, [], 3, Estimate(5.0, DEFAULT), id="no history"),
    pytest.param(None, [10.0, 20.0], 3, Estimate(5.0, DEFAULT), id="too little history"),
    pytest.param(None, [10.0, 20.0, 30.0], 3, Estimate(28.0, HISTORY), id="exactly min_samples"),
    pytest.param(None, [30.0, 10.0, 20.0], 3, Estimate(28.0, HISTORY), id="order does not matter"),
    pytest.param(None, [7.0], 1, Estimate(7.0, HISTORY), id="one sample trusted"),
]


@pytest.mark.parametrize(("explicit", "history", "min_samples", "expected"), SOURCES)
def test_estimate_source_precedence(explicit, history, min_samples, expected):
    got = estimate_duration(explicit, history, 5.0, quantile_q=0.9, min_samples=min_samples)
    assert got.source is expected.source
    assert got.duration_s == pytest.approx(expected.duration_s)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 101])
def test_quantile_matches_numpy_linear(q, n):
    values = sorted(random.Random(n).uniform(0, 100) for _ in range(n))
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_quantile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_one_huge_outlier_barely_moves_the_p90():
    # Given 100 durations of a class that takes 1-2 s
    rng = random.Random(7)
    normal = [rng.uniform(1.0, 2.0) for _ in range(100)]
    before = estimate_duration(None, normal, 5.0).duration_s
    # When one of them is a 10-minute outlier
    with_outlier = normal[:-1] + [600.0]
    after = estimate_duration(None, with_outlier, 5.0).duration_s
    # Then the p90 stays within the class's normal range (a mean would jump to about 7.5 s)
    assert 1.0 <= after <= 2.0
    assert abs(after - before) < 0.1


def test_window_forgets_old_durations():
    # Given a class that used to take 60 s
    history = DurationHistory(window=10, quantile_q=0.9, min_samples=3)
    for _ in range(10):
        history.record("report", 60.0)
    assert history.estimate("report", None, 5.0) == Estimate(60.0, HISTORY)
    # When it now takes 2 s, for a whole window
    for _ in range(10):
        history.record("report", 2.0)
    # Then only the new durations are kept, and the estimate follows them
    assert history.durations("report") == [2.0] * 10
    assert history.estimate("report", None, 5.0) == Estimate(2.0, HISTORY)


def test_window_bounds_memory():
    history = DurationHistory(window=5)
    for i in range(1000):
        history.record("mail", float(i))
    assert history.durations("mail") == [995.0, 996.0, 997.0, 998.0, 999.0]


def test_cache_is_invalidated_by_record():
    history = DurationHistory(window=100, quantile_q=1.0, min_samples=2)
    history.record("pdf", 3.0)
    assert history.estimate("pdf", None, 5.0) == Estimate(5.0, DEFAULT)
    history.record("pdf", 4.0)
    assert history.estimate("pdf", None, 5.0) == Estimate(4.0, HISTORY)
    assert history.estimate("pdf", None, 5.0) == Estimate(4.0, HISTORY)  # cached, unchanged
    history.record("pdf", 9.0)
    assert history.estimate("pdf", None, 5.0) == Estimate(9.0, HISTORY)


def test_history_estimate_follows_the_same_rules():
    history = DurationHistory(window=100, quantile_q=0.9, min_samples=3)
    assert history.estimate("new", None, 5.0) == Estimate(5.0, DEFAULT)
    assert history.estimate("new", None, 7.0) == Estimate(7.0, DEFAULT)  # default not cached
    for duration in (10.0, 20.0, 30.0):
        history.record("new", duration)
    assert history.estimate("new", 1.5, 5.0) == Estimate(1.5, EXPLICIT)
    assert history.estimate("new", None, 5.0).duration_s == pytest.approx(28.0)
    assert history.estimate("other", None, 5.0) == Estimate(5.0, DEFAULT)
    assert history.classes() == ["new"]


def test_estimate_s_is_the_estimates_number():
    # Given a random stream of durations over two classes, a window that wraps, and a default
    rng = random.Random(7)
    history = DurationHistory(window=20, quantile_q=0.9, min_samples=3)
    for _ in range(200):
        job_class = rng.choice(["a", "b"])
        for explicit_s in (None, 0.5):
            # Then the number alone always equals the Estimate's, and the rule's on the window
            expected = estimate_duration(explicit_s, history.durations(job_class), 5.0)
            assert history.estimate(job_class, explicit_s, 5.0) == expected
            assert history.estimate_s(job_class, explicit_s, 5.0) == expected.duration_s
        history.record(job_class, rng.expovariate(1.0))


def test_history_from_config():
    config = Config(history_window=7, estimate_quantile=0.5, history_min_samples=2)
    history = DurationHistory.from_config(config)
    assert (history.window, history.quantile_q, history.min_samples) == (7, 0.5, 2)
