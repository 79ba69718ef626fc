"""Trace: TraceWriter round trip, minimal and gzip traces, errors naming file, line, column."""

from __future__ import annotations

import gzip
import math

import pandas as pd
import pytest

from kqueue.errors import TraceError
from kqueue.policy import read_trace
from kqueue.policy.config import Tier
from kqueue.policy.status import Status
from kqueue.policy.trace import (
    COLUMNS,
    REQUIRED,
    TraceRow,
    TraceWriter,
    rows_to_frame,
    validate_trace,
    write_trace,
)


def row(i: int, **changes) -> TraceRow:
    values = dict(
        job_id=f"job-{i}",
        queue="default",
        job_class="app.jobs.make_pdf" if i % 2 else "app.jobs.send_mail",
        tier=Tier.POOL if i % 2 else Tier.INLINE,
        submitted_at=1000.0 + i,
        started_at=1000.5 + i,
        finished_at=1003.5 + i,
        wait_s=0.5,
        duration_s=3.0 + i / 8,
        cpu_s=2.75,
        memory_mb=128.5,
        status=Status.OK if i % 3 else Status.FAILED,
        attempt=1 + i % 2,
        worker="host-1:123",
        estimated_s=2.0,
    )
    values.update(changes)
    return TraceRow(**values)


def assert_same_rows(read: pd.DataFrame, rows: list[TraceRow]) -> None:
    expected = validate_trace(rows_to_frame(rows))
    assert list(read.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)


# --- writing and reading back ------------------------------------------------------------------


def test_writer_rows_read_back_equal(tmp_path):
    rows = [row(i) for i in range(6)]
    path = tmp_path / "sub" / "trace.csv"
    with TraceWriter(path) as writer:
        writer.write(rows[0])
        writer.write_many(rows[1:])
        writer.write_many([])
    assert_same_rows(read_trace(path), rows)


def test_trace_is_readable_while_the_writer_is_open(tmp_path):
    # Given a writer that is still open and has written some rows
    path = tmp_path / "live.csv"
    writer = TraceWriter(path)
    try:
        writer.write_many([row(0), row(1)])
        # When the simulator reads the trace mid-run
        first = read_trace(path)
        writer.write(row(2))
        second = read_trace(path)
    finally:
        writer.close()
    # Then each read sees every row written so far, and only whole rows
    assert_same_rows(first, [row(0), row(1)])
    assert_same_rows(second, [row(0), row(1), row(2)])


def test_reopened_writer_appends_without_a_second_header(tmp_path):
    path = tmp_path / "trace.csv"
    with TraceWriter(path) as writer:
        writer.write(row(0))
    with TraceWriter(path) as writer:
        writer.write(row(1))
    assert_same_rows(read_trace(path), [row(0), row(1)])


def test_writer_leaves_unknown_values_empty(tmp_path):
    path = tmp_path / "trace.csv"
    with TraceWriter(path) as writer:
        writer.write(row(0, cpu_s=math.nan, worker=None, tier=None, status=None))
    read = read_trace(path)
    assert math.isnan(read.at[0, "cpu_s"])
    assert read.at[0, "worker"] is None and read.at[0, "tier"] is None


def test_write_trace_round_trips(tmp_path):
    rows = [row(i) for i in range(4)]
    path = tmp_path / "whole.csv"
    write_trace(rows_to_frame(rows), path)
    assert_same_rows(read_trace(path), rows)


def test_minimal_trace_reads_with_other_columns_empty(tmp_path):
    path = tmp_path / "minimal.csv"
    path.write_text("submitted_at,job_class,duration_s\n0,send_mail,0.2\n1.5,make_pdf,12\n")
    read = read_trace(path)
    assert set(read.columns) == set(COLUMNS)
    assert read["job_class"].tolist() == ["send_mail", "make_pdf"]
    assert read["duration_s"].tolist() == [0.2, 12.0]
    assert read["submitted_at"].tolist() == [0.0, 1.5]
    assert read["wait_s"].isna().all() and read["tier"].isna().all()


def test_gzip_trace_reads(tmp_path):
    path = tmp_path / "trace.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("job_class,submitted_at,duration_s,tier\nsend_mail,0,0.2,inline\n")
    read = read_trace(path)
    assert read.at[0, "tier"] == "inline" and read.at[0, "duration_s"] == 0.2


def test_validate_trace_accepts_enum_values_in_a_frame():
    frame = rows_to_frame([row(1)])
    assert validate_trace(frame).at[0, "tier"] == "pool"


def test_required_columns():
    assert REQUIRED == ("submitted_at", "job_class", "duration_s")
    assert set(REQUIRED) <= set(COLUMNS)


# --- malformed traces ---------------------------------------------------------------------------

HEADER = "submitted_at,job_class,duration_s,tier,status\n"
GOOD = "0,send_mail,0.2,inline,ok\n"

BAD_TRACES = [
    # (file text, expected line, column number, column name, words in the message)
    pytest.param(HEADER + GOOD + "1,a,slow,pool,ok\n", 3, 3, "duration_s", ["'slow'"], id="nan"),
    pytest.param(HEADER + GOOD + "1,,2,pool,ok\n", 3, 2, "job_class", ["empty"], id="no class"),
    pytest.param(HEADER + GOOD + " ,a,2,pool,ok\n", 3, 1, "submitted_at", ["empty"], id="blank"),
    pytest.param(HEADER + "0,a,,pool,ok\n", 2, 3, "duration_s", ["empty"], id="no duration"),
    pytest.param(HEADER + GOOD + GOOD + "1,a,-2,pool,ok\n", 4, 3, "duration_s", [">= 0"], id="neg"),
    pytest.param(HEADER + "0,a,inf,pool,ok\n", 2, 3, "duration_s", ["finite"], id="inf"),
    pytest.param(
        HEADER + GOOD + "1,a,2,fast,ok\n",
        3,
        4,
        "tier",
        ["'fast'", "inline", "pool", "isolated"],
        id="bad tier",
    ),
    pytest.param(
        HEADER + GOOD + "1,a,2,pool,done\n",
        3,
        5,
        "status",
        ["'done'", "ok", "failed", "timeout"],
        id="bad status",
    ),
    pytest.param(
        # Two bad values: the one on the earlier line is reported, though its column comes later.
        HEADER + GOOD + "1,a,2,fast,ok\n" + "2,a,-1,pool,ok\n",
        3,
        4,
        "tier",
        [],
        id="first line",
    ),
    pytest.param(
        # Two bad values on one line: the leftmost is reported.
        HEADER + GOOD + "1,,-1,pool,ok\n",
        3,
        2,
        "job_class",
        [],
        id="first column",
    ),
    pytest.param(
        "submitted_at,job_class,duration_s,wait_s\n0,a,1,1\n1,a,1,-1\n2,,1,1\n",
        3,
        4,
        "wait_s",
        [">= 0"],
        id="optional column before later required",
    ),
    pytest.param(HEADER + GOOD + "1,a,2,pool,ok,extra\n", 3, 6, None, ["6", "5"], id="long line"),
    pytest.param(HEADER + GOOD + "1,a,2,pool\n", 3, 5, "status", ["4", "5"], id="short line"),
]


@pytest.mark.parametrize(("text", "line", "number", "name", "words"), BAD_TRACES)
def test_bad_value_names_file_line_and_column(tmp_path, text, line, number, name, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"line {line}," in message
    assert f"column {number}" in message
    if name is not None:
        assert f"({name})" in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_torn_last_line_is_rejected(tmp_path, suffix):
    # Given a full trace whose last line was cut short (optional columns missing)
    path = tmp_path / f"torn{suffix}"
    text = (
        ",".join(COLUMNS) + "\n" + "j1,q,a,pool,0,0,1,0,1,1,64,ok,1,w,1,0,0\n" + "j2,q,a,pool,1,1\n"
    )
    with (gzip.open if suffix.endswith(".gz") else open)(path, "wt") as handle:
        handle.write(text)
    # When it is read, Then the short line is reported, not padded with empty values
    with pytest.raises(TraceError, match=r"line 3, column 7 \(finished_at\): .* 6 fields .* 17"):
        read_trace(path)


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    # Given a trace with blank lines between rows (line 3 and line 5 are blank)
    path = tmp_path / "gaps.csv"
    path.write_text(HEADER + GOOD + "\n" + GOOD + "\n" + "4,a,x,pool,ok\n")
    # When it is read, Then the bad value is reported on its real line, 6
    with pytest.raises(TraceError, match=r"line 6, column 3 \(duration_s\)"):
        read_trace(path)
    # And a ragged line after blank lines is reported on its real line too
    path.write_text(HEADER + GOOD + "\n\n" + GOOD + "1,a\n")
    with pytest.raises(TraceError, match=r"line 6, column 3 \(duration_s\)"):
        read_trace(path)
    # And a good trace with blank lines reads without them
    path.write_text(HEADER + "\n" + GOOD + "\n\n" + GOOD)
    assert len(read_trace(path)) == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("", ["empty"], id="empty file"),
        pytest.param(HEADER, ["no rows"], id="header only"),
        pytest.param(HEADER + "\n\n", ["no rows"], id="header and blank lines"),
        pytest.param(
            "submitted_at,duration_s\n0,1\n",
            ["job_class", "submitted_at, job_class, duration_s"],
            id="missing required column",
        ),
    ],
)
def test_trace_without_rows_or_columns_is_rejected(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(TraceError, match="not found"):
        read_trace(tmp_path / "nope.csv")


def test_validate_trace_checks_a_frame_in_memory():
    frame = rows_to_frame([row(0), row(1, job_class="")])
    with pytest.raises(TraceError, match=r"<trace>: line 3, column 3 \(job_class\)"):
        validate_trace(frame)


def test_trace_error_is_a_value_error():
    assert issubclass(TraceError, ValueError)


# --- found by tests/fuzz -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        pytest.param("t.xz", b"garbage", "Input format not supported", id="xz: LZMAError"),
        pytest.param("t.zip", b"garbage", "not a zip file", id="zip: BadZipFile"),
        pytest.param("t.tar", b"garbage", "could not be opened", id="tar: ReadError"),
        pytest.param("t.zst", b"garbage", "zstandard", id="zst: ImportError"),
        pytest.param(
            "t.gz", bytes.fromhex("1f8b0800") + bytes(11), "invalid stored block", id="gz: zlib"
        ),
    ],
)
def test_a_corrupt_compressed_trace_is_a_trace_error(tmp_path, name, data, words):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TraceError, match=words) as caught:
        read_trace(path)
    assert str(path) in str(caught.value)


def test_text_that_pandas_calls_missing_reads_as_text(tmp_path):
    # Given job classes and queues spelled like pandas' default NA markers
    path = tmp_path / "na.csv"
    path.write_text("submitted_at,job_class,duration_s,queue\n0,NA,1,None\n1,null,2,nan\n")
    # When it is read, Then they are text, not missing values ("is required but empty" before)
    frame = read_trace(path)
    assert list(frame["job_class"]) == ["NA", "null"]
    assert list(frame["queue"]) == ["None", "nan"]


def test_nan_spelled_out_is_not_a_number(tmp_path):
    # only an empty field is missing: "nan" in a number column is a typo, not an empty value
    path = tmp_path / "nan.csv"
    path.write_text("submitted_at,job_class,duration_s,cpu_s\n0,a,1,nan\n")
    with pytest.raises(TraceError, match=r"line 2, column 4 \(cpu_s\): value 'nan' is not a n"):
        read_trace(path)


def test_an_integer_past_float_range_is_not_finite(tmp_path):
    # pd.to_numeric(errors="coerce") raised OverflowError on it
    path = tmp_path / "huge.csv"
    path.write_text("submitted_at,job_class,duration_s,cpu_s\n0,a,1," + "9" * 400 + "\n")
    with pytest.raises(TraceError, match=r"line 2, column 4 \(cpu_s\): value 9+ is not finite"):
        read_trace(path)


@pytest.mark.parametrize("whole", [False, True], ids=["TraceWriter", "write_trace"])
def test_a_value_with_a_line_break_round_trips_and_later_lines_keep_their_number(tmp_path, whole):
    # Given rows whose worker names hold a bare "\r" (written unquoted before, splitting the row)
    # and a "\n" (quoted, so the row spans two lines)
    rows = [row(0, worker="w\r1"), row(1, worker="w\n2")]
    path = tmp_path / "breaks.csv"
    if whole:
        write_trace(rows_to_frame(rows), path)
    else:
        with TraceWriter(path) as writer:
            writer.write_many(rows)
    # When it is read, Then the rows come back equal
    assert_same_rows(read_trace(path), rows)
    # And a bad value after them is reported on the line its row starts on: 1 + 2 + 2 + 1
    with TraceWriter(path) as writer:
        writer.write(row(2, duration_s=-1.0))
    with pytest.raises(TraceError, match=r"line 6, column 9 \(duration_s\)"):
        read_trace(path)
