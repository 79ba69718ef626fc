"""The trace records each attempt's priority: the worker's CSV, the fleet trace in every backend,
its export, and the simulator's reader; a trace from before the column still loads."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import kqueue
from kqueue.errors import TraceError
from kqueue.ops.fleet_trace import export_fleet_trace, read_fleet_rows
from kqueue.policy import Config, HostProfile, read_trace, validate_trace
from kqueue.testing import WorkerThread
from sim import prepare, simulate

INLINE = {"tier": "inline"}
FAST = Config(poll_interval_s=0.02, pool_size=0, pool_max_size=0)


def test_the_worker_records_each_attempts_priority_in_its_csv_and_the_fleet_trace(
    backend, tmp_path
):
    # Given a job declared at priority 3, run once as declared and once at priority -2
    app = kqueue.App(backend)

    @app.job(name="prio.echo", tier="inline", priority=3)
    def echo(i: int) -> int:
        return i

    trace = tmp_path / "trace.csv"
    with WorkerThread(app, FAST, trace_out=str(trace)):
        declared = echo.dispatch(1)
        lowered = echo.options(priority=-2).dispatch(2)
        declared.result(timeout_s=20)
        lowered.result(timeout_s=20)
    # Then the worker's CSV says which priority each attempt was leased at
    rows = read_trace(trace).set_index("job_id")
    assert rows.loc[declared.id, "priority"] == 3
    assert rows.loc[lowered.id, "priority"] == -2
    # and so does the fleet trace in the backend
    fleet = {row.job_id: row.priority for row in read_fleet_rows(backend)[0]}
    assert fleet == {declared.id: 3, lowered.id: -2}


def test_an_exported_fleet_trace_keeps_the_priority_column(tmp_path):
    # Given a SQLite fleet trace written by a worker
    url = f"sqlite:///{tmp_path / 'kqueue.db'}"
    app = kqueue.App(url)

    @app.job(name="prio.export", tier="inline", priority=5)
    def work() -> None:
        return None

    with WorkerThread(app, FAST):
        work.dispatch().result(timeout_s=20)
    app.close()
    # When it is exported to CSV and read back as a trace
    out = tmp_path / "fleet.csv"
    assert export_fleet_trace(url, str(out)) == (1, 0)
    # Then the priority is there
    assert read_trace(out)["priority"].tolist() == [5]


def test_a_trace_without_the_priority_column_still_loads_as_priority_0(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("submitted_at,job_class,duration_s\n0,a,0.1\n1,a,0.2\n")
    frame = read_trace(path)
    assert frame["priority"].isna().all()  # not recorded
    result = simulate(frame, Config(), HostProfile.ideal())
    assert result.trace()["priority"].tolist() == [0, 0]


def test_a_priority_that_is_not_a_whole_number_is_rejected():
    frame = pd.DataFrame({"submitted_at": [0.0], "job_class": ["a"], "duration_s": [1.0],
                          "priority": [1.5]})  # fmt: skip
    with pytest.raises(TraceError, match=r"column 4 \(priority\).* whole number"):
        validate_trace(frame)


def _one_slot_trace(priorities: list[float]) -> pd.DataFrame:
    """Two hundred low jobs at 0 s, then 20 high ones at 0.5 s, on one inline slot."""
    n_low, n_high = 200, 20
    return pd.DataFrame(
        {
            "job_id": [f"j{i}" for i in range(n_low + n_high)],
            "submitted_at": [0.0] * n_low + [0.5] * n_high,
            "job_class": ["low"] * n_low + ["high"] * n_high,
            "duration_s": [0.01] * (n_low + n_high),
            "cpu_s": [0.0] * (n_low + n_high),
            "priority": priorities,
        }
    )


def test_the_simulator_orders_its_backlog_by_the_recorded_priority():
    # Given a trace whose rows record priority 10 for 20 late jobs (and no [jobs] priority)
    frame = _one_slot_trace([0] * 200 + [10] * 20)
    config = Config.from_mapping(
        {
            "max_concurrent_inline": 1,
            "jobs": {"low": {"tier": "inline"}, "high": {"tier": "inline"}},
        }
    )
    # When it is replayed on one inline slot
    out = simulate(prepare(frame), config, HostProfile.ideal()).trace()
    # Then the 20 start before any low job not yet leased at 0.5 s, and keep their priority
    high = out[out["job_class"] == "high"]
    low_after = out[(out["job_class"] == "low") & (out["started_at"] >= 0.5)]["started_at"]
    assert high["started_at"].max() < sorted(low_after)[1]  # the one leased before may run
    assert set(high["priority"]) == {10}


def test_a_row_without_a_priority_gets_its_classs_configured_one():
    # Given the high rows' priority not recorded, and the class at priority 10 in [jobs]
    frame = _one_slot_trace([0] * 200 + [math.nan] * 20)
    config = Config.from_mapping(
        {
            "max_concurrent_inline": 1,
            "jobs": {"low": {"tier": "inline"}, "high": {"tier": "inline", "priority": 10}},
        }
    )
    out = simulate(prepare(frame), config, HostProfile.ideal()).trace()
    high = out[out["job_class"] == "high"]
    low_after = out[(out["job_class"] == "low") & (out["started_at"] >= 0.5)]["started_at"]
    assert high["started_at"].max() < sorted(low_after)[1]
    # and a recorded priority wins over the class's: recorded 0 keeps the high rows in line
    recorded = _one_slot_trace([0] * 220)
    out = simulate(prepare(recorded), config, HostProfile.ideal()).trace()
    assert out[out["job_class"] == "high"]["started_at"].min() > 1.0
