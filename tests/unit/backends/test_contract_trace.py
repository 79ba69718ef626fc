"""The fleet-trace and dead-letter-delete contract, on every backend (``backend`` fixture)."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import pytest

from kqueue.errors import TraceError
from kqueue.policy.trace import TraceRow
from kqueue.policy.trace_wire import decode_row, decode_rows, encode_row

Q = "default"


def row(i: int, **changes) -> TraceRow:
    values = dict(
        job_id=f"j{i}", queue=Q, job_class="mail", tier="inline", submitted_at=1000.0 + i,
        started_at=1000.5 + i, finished_at=1001.0 + i, wait_s=0.5, duration_s=0.5, cpu_s=0.1,
        memory_mb=math.nan, status="ok", attempt=1, worker="h:1", estimated_s=1.0,
        due_at=1000.0 + i,
    )  # fmt: skip
    return TraceRow(**{**values, **changes})


def wire(n: int, start: int = 0) -> list[bytes]:
    return [encode_row(row(i)) for i in range(start, start + n)]


def test_trace_rows_come_back_in_order_and_a_cursor_reads_only_newer_ones(backend):
    # Given two appends of rows
    backend.append_trace(wire(3), keep_rows=100)
    first = backend.read_trace()
    backend.append_trace(wire(2, start=3), keep_rows=100)
    # When the second read starts from the first read's cursor
    later = backend.read_trace(after=first.cursor)
    # Then the first read had the first batch and the second only the new rows, in order
    assert [decode_row(r).job_id for r in first.rows] == ["j0", "j1", "j2"]
    assert [decode_row(r).job_id for r in later.rows] == ["j3", "j4"]
    assert backend.read_trace(after=later.cursor).rows == []
    assert backend.read_trace(after=later.cursor).cursor == later.cursor


def test_trace_is_capped_to_about_keep_rows(backend):
    for start in range(0, 3000, 500):
        backend.append_trace(wire(500, start), keep_rows=1000)
    kept = backend.read_trace(limit=10_000).rows
    # Redis trims in whole blocks (MAXLEN ~): at least the cap, never far past it
    assert 1000 <= len(kept) <= 1200
    assert decode_row(kept[-1]).job_id == "j2999"


def test_trace_since_reads_from_that_time_and_limit_bounds_a_batch(backend):
    backend.append_trace(wire(5), keep_rows=100)
    assert backend.read_trace(since=time.time() + 60).rows == []
    batch = backend.read_trace(since=time.time() - 60, limit=2)
    assert len(batch.rows) == 2
    assert len(backend.read_trace(after=batch.cursor, limit=10).rows) == 3


def test_keep_rows_zero_appends_nothing(backend):
    backend.append_trace(wire(3), keep_rows=0)
    assert backend.read_trace().rows == []


def test_delete_dead_removes_only_dead_messages(backend):
    backend.enqueue_many(Q, [("a", b"1"), ("b", b"2"), ("c", b"3")])
    leases = {lease.job_id: lease for lease in backend.lease(Q, "w", 3, 30.0)}
    backend.dead(leases["a"], "boom")
    backend.dead(leases["b"], "boom")
    assert backend.delete_dead(["a", "c", "nope"]) == 1
    assert [d.job_id for d in backend.dead_letters()] == ["b"]
    assert backend.delete_dead(["b"], queue="other") == 0
    assert backend.delete_dead(["b"], queue=Q) == 1
    assert backend.dead_letters() == []
    assert backend.counts()[Q]["leased"] == 1  # c is untouched


def test_wire_round_trip_keeps_every_field_and_nan_as_unknown():
    original = row(7, memory_mb=12.5, cpu_s=math.nan, estimated_s=math.inf, wait_s=0.1234567)
    back = decode_row(encode_row(original))
    assert math.isnan(back.cpu_s) and math.isnan(back.estimated_s) and back.memory_mb == 12.5
    assert back.job_id == "j7" and back.attempt == 1
    # times and durations travel in whole microseconds
    assert back.due_at == pytest.approx(original.due_at, abs=1e-6)
    assert back.wait_s == pytest.approx(0.123457, abs=1e-9)


def test_priority_travels_and_a_version_1_row_reads_as_priority_0():
    # Given a row of priority 7, and the same row as a version-1 writer sent it (no priority)
    original = dataclasses.replace(row(1), priority=7)
    values = json.loads(encode_row(original))
    old = json.dumps([1, *values[1:-1]]).encode()
    # When both are decoded, Then the new one keeps 7 and the old one reads as 0
    assert decode_row(encode_row(original)).priority == 7
    back = decode_row(old)
    assert back.priority == 0 and back.job_id == original.job_id


def changed(index: int, value) -> bytes:
    """A good wire row with field ``index`` (0 is the version) set to ``value``."""
    values = json.loads(encode_row(row(1)))
    values[index] = value
    return json.dumps(values).encode()


@pytest.mark.parametrize(
    "data, says",
    [
        (b"not json", "not JSON"),
        (b'{"a": 1}', "version-2"),
        (b"[3]", "version-2"),
        (b"[true]", "version-2"),
        (b"[1, 2]", "expected 16"),
        (b"[2, 2]", "expected 17"),
        (changed(17, 1.5), "priority must be an integer"),
        (changed(1, 5), "job_id must be text"),
        (changed(13, 1.5), "attempt must be an integer"),
        (changed(13, None), "attempt must be an integer"),
        (changed(5, "x"), "submitted_at must be a number"),
        (changed(5, True), "submitted_at must be a number"),
        (b"[1" + b",1" * 40_000 + b"]", "longer than"),
    ],
)
def test_a_bad_wire_row_is_a_trace_error_naming_what(data, says):
    with pytest.raises(TraceError, match=says):
        decode_row(data)
    rows, bad = decode_rows([data, encode_row(row(2))])
    assert bad == 1 and rows[0].job_id == "j2"
