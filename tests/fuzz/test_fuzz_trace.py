"""Fuzzing the trace reader: any file reads as a valid trace or raises ``TraceError``.

A valid trace has every column, its required values present, its numbers finite (and >= 0 where
the schema says so), and its tier and status among the known names. A ``TraceError`` names the
file. The writers' output reads back equal.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqueue.errors import TraceError
from kqueue.policy import read_trace
from kqueue.policy.status import Status
from kqueue.policy.trace import (
    COLUMNS,
    REQUIRED,
    TEXT_COLUMNS,
    TraceRow,
    TraceWriter,
    rows_to_frame,
    write_trace,
)
from tests.fuzz.contracts import TIERS, assert_reads_or_rejects
from tests.fuzz.fuzz_support import FUZZ, nasty_bytes, nasty_text

#: Each example below writes a file and reads it with pandas (a few ms): half the examples.
FILES = settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 2))
SUFFIXES = [".csv", ".gz", ".bz2", ".xz", ".zip", ".tar", ".zst", ".parquet", ".txt"]


@FUZZ
@given(data=nasty_bytes, suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes_read_or_raise_trace_error(tmp_path, data, suffix):
    path = tmp_path / f"trace{suffix}"
    path.write_bytes(data)
    assert_reads_or_rejects(path)


def csv_cell(text: str) -> str:
    """A CSV field, quoted when it must be (or sometimes anyway)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def near_traces(draw) -> str:
    """CSV text with trace-like columns and nasty cells, sometimes a ragged line or blank line."""
    names = st.sampled_from(COLUMNS) | nasty_text
    header = draw(st.lists(names, min_size=1, max_size=8))
    if draw(st.booleans()):
        header = [*REQUIRED, *header]
    good = {
        "submitted_at": st.floats(0, 1e9).map(str),
        "duration_s": st.floats(0, 1e4).map(str),
        "job_class": st.sampled_from(["a.b", "tasks.mail"]),
    }
    cell = st.one_of(nasty_text, st.floats().map(str), st.integers().map(str))
    lines = [",".join(map(csv_cell, header))]
    for _ in range(draw(st.integers(0, 5))):
        width = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1]))
        row = [draw(good.get(name, cell) | cell) for name in header[: max(width, 0)]]
        row += [draw(cell) for _ in range(width - len(header))]
        lines.append(",".join(map(csv_cell, row)))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


@FILES
@given(text=near_traces(), compress=st.booleans())
def test_near_traces_read_or_raise_trace_error(tmp_path, text, compress):
    path = tmp_path / ("trace.csv.gz" if compress else "trace.csv")
    data = text.encode("utf-8", errors="surrogatepass")
    path.write_bytes(gzip.compress(data) if compress else data)
    assert_reads_or_rejects(path)


# Plausible magnitudes only: past them the reader warns of a unit mistake on purpose (epoch-ms
# times from 1e11, durations in ms over 1e4 s, memory in bytes over 1e6 MB; tests/unit/policy)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e10, max_value=1e10)
non_negative = st.floats(min_value=0, max_value=1e4)
memory = st.floats(min_value=0, max_value=1e6)
names = (nasty_text | st.text(min_size=1, max_size=12)).filter(lambda t: t.strip() != "")

trace_rows = st.builds(
    TraceRow,
    job_id=names,
    queue=names,
    job_class=names,
    tier=st.sampled_from(TIERS),
    submitted_at=finite,
    due_at=finite,
    started_at=finite,
    finished_at=finite,
    wait_s=non_negative,
    duration_s=non_negative,
    cpu_s=non_negative,
    memory_mb=memory,
    status=st.sampled_from([s.value for s in Status]),
    attempt=st.integers(1, 10**6),
    worker=names,
    estimated_s=non_negative,
)


def expected_value(column: str, value):
    """What the writers keep of a value: six decimals of a number, text as it is."""
    if column in TEXT_COLUMNS:
        return value
    return value if math.isnan(value) else float(f"{value:.6f}")


@FILES
@given(rows=st.lists(trace_rows, min_size=1, max_size=5), whole=st.booleans())
def test_written_rows_read_back_equal(tmp_path, rows, whole):
    path = tmp_path / "trace.csv"
    path.unlink(missing_ok=True)
    if whole:
        write_trace(rows_to_frame(rows), path)
    else:
        with TraceWriter(path) as writer:
            writer.write_many(rows)
    frame = read_trace(path)
    assert len(frame) == len(rows)
    for row, (_, read) in zip(rows, frame.iterrows(), strict=True):
        for column in COLUMNS:
            wrote = expected_value(column, getattr(row, column))
            both_missing = (
                column not in TEXT_COLUMNS and math.isnan(wrote) and math.isnan(read[column])
            )
            same = both_missing or read[column] == wrote or math.isclose(read[column], wrote)
            assert same, (column, wrote)


@FILES
@given(rows=st.lists(trace_rows, min_size=1, max_size=4))
def test_a_bad_value_is_reported_on_the_line_its_row_starts(tmp_path, rows):
    path = tmp_path / "trace.csv"
    path.unlink(missing_ok=True)
    with TraceWriter(path) as writer:
        writer.write_many(rows)
    before = len(io.StringIO(path.read_text(encoding="utf-8"), newline="").readlines())
    with TraceWriter(path) as writer:
        writer.write(dataclasses.replace(rows[0], duration_s=-1.0))
    number = COLUMNS.index("duration_s") + 1
    with pytest.raises(TraceError, match=rf": line {before + 1}, column {number} \(duration_s\)"):
        read_trace(path)
