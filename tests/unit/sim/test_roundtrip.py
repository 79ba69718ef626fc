"""The simulated trace is a real trace: the runtime's reader and the estimator accept it."""

from __future__ import annotations

import pytest

from kqueue.policy import COLUMNS, Config, DurationHistory, EstimateSource, HostProfile, read_trace
from sim.model.replay import simulate
from sim.model.workload import synth


def test_simulated_trace_reads_back_and_feeds_the_estimator(tmp_path):
    # Given a simulated run of a synthetic trace written with the runtime's writer
    from kqueue.policy import write_trace

    result = simulate(synth(2000, 10.0, seed=5), Config(), HostProfile(cores=8))
    path = tmp_path / "sim.csv"
    write_trace(result.trace(), path)
    # When the runtime's reader reads it
    rows = read_trace(path)
    # Then it has the runtime's columns and consistent times
    assert tuple(rows.columns[: len(COLUMNS)]) == COLUMNS
    assert len(rows) == 2000
    assert (rows["wait_s"] >= 0).all()
    assert rows["started_at"].to_numpy() == pytest.approx(
        (rows["submitted_at"] + rows["wait_s"]).to_numpy(), abs=1e-5
    )
    assert set(rows["tier"]) <= {"inline", "pool", "isolated"}
    # And its durations teach the estimator, which then routes like the simulation did
    history = DurationHistory.from_config(Config())
    for job_class, duration_s in zip(rows["job_class"], rows["duration_s"], strict=True):
        history.record(job_class, duration_s)
    for job_class in ("fast", "medium", "heavy"):
        estimate = history.estimate(job_class, None, Config().default_estimate_s)
        assert estimate.source is EstimateSource.HISTORY
    assert history.estimate("fast", None, 5.0).duration_s < 1.0
    assert history.estimate("heavy", None, 5.0).duration_s > 30.0


def test_a_simulated_trace_can_be_replayed_again(tmp_path):
    first = simulate(synth(500, 5.0, seed=1), Config(), HostProfile())
    again = simulate(first.trace(), Config(), HostProfile())
    assert again.jobs == 500
    assert again.default_cpu_rows == 0 and again.default_memory_rows == 0
