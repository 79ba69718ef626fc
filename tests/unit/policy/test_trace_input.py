"""Traces as they come: column mapping, units, ISO/epoch times, dropped rows, unit-mistake warnings.

Issue 14 item 6: each unit mistake (durations in ms, epoch-ms timestamps, memory in bytes, ISO
datetimes, GiB/MiB, another delimiter) must give a warning or a clear error, never pass silently.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from kqueue.errors import ConfigError, TraceError, TraceWarning
from kqueue.policy import read_trace
from kqueue.policy.trace_input import TraceReadOptions, parse_columns, read_trace_report
from kqueue.policy.units import parse_memory
from tests.conftest import ROOT


def write(tmp_path, text: str, name: str = "trace.csv"):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_quietly(path, options=None) -> pd.DataFrame:
    """Read with every warning an error (as pytest's filterwarnings=error does anyway)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_trace(path, options)


PLAIN = "submitted_at,job_class,duration_s,memory_mb\n0,a,1.5,100\n2,b,30,2048\n5,a,0.25,\n"


# --- the unit mistakes of item 6 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # durations in ms: median 45,000 "s", whole numbers
        (
            "submitted_at,job_class,duration_s\n0,a,45000\n1,a,52000\n2,b,38000\n",
            r"duration_s has a median of 45,000 s .* looks like milliseconds .*--duration-unit ms",
        ),
        # memory in bytes: the 5,242,881,580 "MB" peak
        (
            "submitted_at,job_class,duration_s,memory_mb\n0,a,1,5242881580\n1,a,2,4194304000\n",
            r"memory_mb has a median of 4,718,592,790 MB .* looks like bytes \(4,500\.0 MB\)"
            r".*--memory-unit B",
        ),
        # epoch-ms timestamps: read as ms, and said so
        (
            "submitted_at,job_class,duration_s\n1714557600000,a,1\n1714557600500,a,1\n",
            r"look like epoch milliseconds .* 2024-05-01.*--time-unit ms",
        ),
    ],
)
def test_each_unit_mistake_warns(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.warns(TraceWarning, match=words):
        read_trace(path)


def test_epoch_ms_timestamps_are_read_as_seconds(tmp_path):
    path = write(
        tmp_path, "submitted_at,job_class,duration_s\n1714557600000,a,1\n1714557600500,a,1\n"
    )
    with pytest.warns(TraceWarning, match="epoch milliseconds"):
        trace = read_trace(path)
    assert trace["submitted_at"].tolist() == [1714557600.0, 1714557600.5]


def test_epoch_microseconds_are_a_clear_error(tmp_path):
    path = write(tmp_path, "submitted_at,job_class,duration_s\n1714557600000000,a,1\n")
    with pytest.raises(TraceError, match="epoch micro- or nanoseconds"):
        read_trace(path)


def test_a_stated_unit_silences_its_warning(tmp_path):
    # Given a real HPC-like trace whose jobs really do take hours, in whole seconds
    path = write(tmp_path, "submitted_at,job_class,duration_s\n0,a,45000\n1,a,52000\n")
    # When the operator states the unit, Then nothing warns and nothing is scaled
    trace = read_quietly(path, TraceReadOptions(duration_unit="s"))
    assert trace["duration_s"].tolist() == [45000.0, 52000.0]


def test_iso_datetimes_parse_to_epoch_seconds(tmp_path):
    text = (
        "submitted_at,job_class,duration_s,started_at\n"
        "2024-05-01T12:00:00Z,a,1,2024-05-01T12:00:01.5+00:00\n"
        "2024-05-01 12:00:02,a,1,2024-05-01T14:00:03+02:00\n"
    )
    trace = read_quietly(write(tmp_path, text))
    assert trace["submitted_at"].tolist() == [1714564800.0, 1714564802.0]
    assert trace["started_at"].tolist() == [1714564801.5, 1714564803.0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # a non-ISO date among ISO ones
        (
            "submitted_at,job_class,duration_s\n2024-05-01T12:00:00,a,1\n2024-05-01T12:00:01,a,1\n"
            "05/01/2024 12:00,a,1\n",
            r"line 4, column 1 \(submitted_at\): value '05/01/2024 12:00' is not an ISO-8601",
        ),
        # an ISO date among numbers
        (
            "submitted_at,job_class,duration_s\n0,a,1\n1,a,1\n2024-05-01T12:00:00,a,1\n",
            r"line 4, .*'2024-05-01T12:00:00' is an ISO-8601 datetime among numbers",
        ),
        # neither: the error names both accepted forms
        (
            "submitted_at,job_class,duration_s\nyesterday,a,1\n",
            r"'yesterday' is not a number \(seconds\) or an ISO-8601 datetime",
        ),
    ],
)
def test_bad_times_are_named_with_a_hint(tmp_path, text, words):
    with pytest.raises(TraceError, match=words):
        read_trace(write(tmp_path, text))


@pytest.mark.parametrize(
    ("delimiter", "name"), [(";", "semicolon ';'"), ("\t", "tab"), ("|", "pipe '|'")]
)
def test_another_delimiter_is_named(tmp_path, delimiter, name):
    text = delimiter.join(["submitted_at", "job_class", "duration_s"]) + "\n"
    text += delimiter.join(["0", "a", "1"]) + "\n"
    for options in (None, TraceReadOptions(drop_invalid=True)):
        with pytest.raises(TraceError, match=rf"line 1: .* separated by {name}, not by commas"):
            read_trace(write(tmp_path, text, "trace.csv.gz"), options)


@pytest.mark.parametrize(
    ("text", "mb"),
    [("2GiB", 2048.0), ("512MiB", 512.0), ("1024KiB", 1.0), ("3GB", 3072.0), ("1TiB", 1024**2)],
)
def test_binary_memory_units_are_accepted(text, mb):
    assert parse_memory(text) == pytest.approx(mb)


# --- stated units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "memory_mb"),
    [
        ("B", 1.0),  # 1048576 B
        ("KB", 1024.0),  # binary: 1048576 KB = 1024 MB
        ("KiB", 1024.0),
        ("MB", 1048576.0),
        ("MiB", 1048576.0),
        ("GB", 1048576.0 * 1024),
        ("gib", 1048576.0 * 1024),
    ],
)
def test_memory_unit(tmp_path, unit, memory_mb):
    path = write(tmp_path, "submitted_at,job_class,duration_s,memory_mb\n0,a,1,1048576\n")
    trace = read_quietly(path, TraceReadOptions(memory_unit=unit))
    assert trace["memory_mb"].tolist() == [memory_mb]


@pytest.mark.parametrize(
    ("unit", "seconds"), [("ms", 0.25), ("s", 250.0), ("min", 15000.0), ("h", 900000.0)]
)
def test_duration_unit_scales_every_duration_column(tmp_path, unit, seconds):
    path = write(tmp_path, "submitted_at,job_class,duration_s,wait_s,cpu_s\n0,a,250,250,250\n")
    trace = read_quietly(path, TraceReadOptions(duration_unit=unit))
    assert trace[["duration_s", "wait_s", "cpu_s"]].iloc[0].tolist() == [seconds] * 3


def test_time_unit_ms_scales_numeric_times(tmp_path):
    path = write(tmp_path, "submitted_at,job_class,duration_s,finished_at\n1500,a,1,2500\n")
    trace = read_quietly(path, TraceReadOptions(time_unit="ms"))
    assert trace[["submitted_at", "finished_at"]].iloc[0].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"time_unit": "min"}, "time_unit 'min' is not one of s, ms"),
        ({"duration_unit": "days"}, "duration_unit 'days' is not one of ms, s, min, h"),
        ({"memory_unit": "TB"}, "memory_unit 'TB' is not one of B, KB, KiB, MB, MiB, GB, GiB"),
    ],
)
def test_unknown_units_are_refused_with_the_choices(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        TraceReadOptions.from_strings(**kwargs)


# --- column mapping ----------------------------------------------------------------------------


def test_parse_columns():
    assert parse_columns(" submitted_at=enqueued_at, job_class=class,duration_s=runtime") == (
        ("submitted_at", "enqueued_at"),
        ("job_class", "class"),
        ("duration_s", "runtime"),
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("submitted_at", r"'submitted_at' is not TRACE_COLUMN=FILE_COLUMN"),
        ("submitted_at=", r"is not TRACE_COLUMN=FILE_COLUMN"),
        ("submitted_at=a,,job_class=b", r"'' is not TRACE_COLUMN=FILE_COLUMN"),
        ("start=enqueued_at", r"'start' is not a trace column; the trace columns are job_id, "),
        ("duration_s=a,duration_s=b", r"trace column 'duration_s' is named twice"),
        ("duration_s=a,cpu_s=a", r"file column 'a' is named twice"),
    ],
)
def test_bad_column_mappings_are_refused(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_columns(text)


def test_mapped_columns_read_as_trace_columns(tmp_path):
    # Given a log with its own column names (and its own job_class column, which the map replaces)
    path = write(tmp_path, "enqueued_at,job_class,class,runtime,extra\n0,x,a,1,q\n3,x,b,2,r\n")
    options = TraceReadOptions.from_strings(
        "submitted_at=enqueued_at,job_class=class,duration_s=runtime"
    )
    # When it is read with the mapping
    trace = read_quietly(path, options)
    # Then the mapped columns are the trace's, and the unmapped extra column is kept as it was
    assert trace["submitted_at"].tolist() == [0.0, 3.0]
    assert trace["job_class"].tolist() == ["a", "b"]
    assert trace["duration_s"].tolist() == [1.0, 2.0]
    assert "enqueued_at" not in trace.columns and trace["extra"].tolist() == ["q", "r"]


def test_a_column_mapped_to_a_text_column_is_read_as_text(tmp_path):
    path = write(tmp_path, "t,user,runtime\n0,007,1\n1,,1\n")
    options = TraceReadOptions.from_strings("submitted_at=t,job_class=user,duration_s=runtime")
    with pytest.raises(TraceError, match=r"line 3, column 2 \(job_class\): value '' is required"):
        read_trace(path, options)
    for drop in (False, True):
        path.write_text("t,user,runtime\n0,007,1\n1,42,1\n")
        trace = read_quietly(path, TraceReadOptions(options.columns, drop_invalid=drop))
        assert trace["job_class"].tolist() == ["007", "42"]


def test_mapping_a_column_the_file_lacks_names_the_columns_found(tmp_path):
    path = write(tmp_path, "t,job_class,runtime\n0,a,1\n")
    with pytest.raises(
        TraceError, match=r"--columns names 'enqueued_at', not in the file \(found: t, "
    ):
        read_trace(
            path, TraceReadOptions.from_strings("submitted_at=enqueued_at,duration_s=runtime")
        )


def test_a_missing_column_hints_at_the_mapping(tmp_path):
    with pytest.raises(TraceError, match="name yours with --columns"):
        read_trace(write(tmp_path, "enqueued_at,job_class,duration_s\n0,a,1\n"))


# --- dropping bad rows -------------------------------------------------------------------------

BAD = (
    "submitted_at,job_class,duration_s,memory_mb\n"
    "0,a,1,10\n"  # line 2: fine
    "1,a,oops,10\n"  # line 3: duration not a number
    "2,a,-4,10\n"  # line 4: negative duration
    "3,,1,10\n"  # line 5: job_class empty
    "4,a,1,10,extra\n"  # line 6: torn
    "\n"  # line 7: blank lines are fine
    "5,a,x,-1\n"  # line 8: duration not a number (leftmost problem)
    "6,b,2,20\n"  # line 9: fine
)


def test_without_drop_invalid_the_first_bad_row_is_an_error(tmp_path):
    with pytest.raises(
        TraceError, match=r"trace.csv: line 3, column 3 \(duration_s\): value 'oops'"
    ):
        read_trace(write(tmp_path, BAD.replace("4,a,1,10,extra\n", "")))


def test_drop_invalid_drops_bad_rows_and_counts_them_by_reason(tmp_path):
    path = write(tmp_path, BAD)
    report = read_trace_report(path, TraceReadOptions(drop_invalid=True))
    assert report.frame["submitted_at"].tolist() == [0.0, 6.0]
    assert report.dropped == {
        "duration_s is not a number": 2,
        "duration_s must be >= 0": 1,
        "job_class is required but empty": 1,
        "line has a different number of fields than the header": 1,
    }
    (message,) = report.warnings
    assert "dropped 5 of 7 rows: 2 duration_s is not a number (first: line 3); " in message
    assert "1 line has a different number of fields than the header (first: line 6)" in message
    with pytest.warns(TraceWarning, match="dropped 5 of 7 rows"):
        read_trace(path, TraceReadOptions(drop_invalid=True))


def test_drop_invalid_counts_bad_datetimes(tmp_path):
    text = (
        "submitted_at,job_class,duration_s\n"
        "2024-05-01T12:00:00Z,a,1\nsoon,a,1\n2024-05-01T12:00:02Z,a,1\n"
    )
    report = read_trace_report(write(tmp_path, text), TraceReadOptions(drop_invalid=True))
    assert report.dropped == {
        "submitted_at is not an ISO-8601 datetime like the column's others": 1
    }
    assert report.frame["submitted_at"].tolist() == [1714564800.0, 1714564802.0]


def test_drop_invalid_refuses_a_trace_with_no_valid_row(tmp_path):
    path = write(tmp_path, "submitted_at,job_class,duration_s\nx,a,1\n1,a,-1\n")
    with pytest.raises(TraceError, match="every row is invalid: 1 submitted_at is not a number"):
        read_trace(path, TraceReadOptions(drop_invalid=True))


# --- today's behaviour -------------------------------------------------------------------------


def test_a_well_formed_trace_reads_as_before_with_default_options(tmp_path):
    path = write(tmp_path, PLAIN)
    before = read_quietly(path)
    with_options = read_quietly(path, TraceReadOptions(drop_invalid=True))
    pd.testing.assert_frame_equal(before, with_options, check_exact=True)
    assert before["duration_s"].tolist() == [1.5, 30.0, 0.25]
    assert read_trace_report(path).warnings == ()


# --- the planner's commands take the same flags ------------------------------------------------


def kqueue_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kqueue", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=100)  # fmt: skip


def own_log(tmp_path: Path) -> Path:
    """300 jobs in a log's own form (ISO times, ms, bytes) and one bad row at line 302."""
    lines = ["enqueued_at,task,runtime_ms,rss_bytes"]
    for i in range(300):
        task, runtime_ms = ("pdf", 2000 + i) if i % 3 == 0 else ("mail", 50 + i)
        lines.append(f"2024-05-01T12:{i // 60:02d}:{i % 60:02d}Z,{task},{runtime_ms},{64 * 2**20}")
    lines.append("soon,mail,10,10")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


MAPPING = "submitted_at=enqueued_at,job_class=task,duration_s=runtime_ms,memory_mb=rss_bytes"
OWN_FLAGS = ("--columns", MAPPING, "--duration-unit", "ms", "--memory-unit", "B", "--drop-invalid")


def test_simulate_reads_a_log_in_its_own_form(tmp_path):
    # Given a log with its own names and units, and one bad row
    log = own_log(tmp_path)
    # When simulate reads it with the reading flags
    done = kqueue_cli("simulate", "--trace", str(log), "--ideal", "--json", *OWN_FLAGS,
                      cwd=tmp_path)  # fmt: skip
    # Then the 300 good jobs are simulated in seconds, and the dropped row is counted on stderr
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sum(report["tiers"][t]["jobs"] for t in ("inline", "pool", "isolated")) == 300
    assert report["tiers"]["isolated"]["jobs"] == 0  # the pdf jobs take 2 s, not 2000 s
    dropped = "dropped 1 of 301 rows: 1 submitted_at is not an ISO-8601 datetime like the"
    assert f"kqueue: warning: {log}: {dropped} column's others (first: line 302)" in done.stderr


def test_tune_reads_a_log_in_its_own_form(tmp_path):
    log = own_log(tmp_path)
    done = kqueue_cli("tune", "--trace", str(log), "--processes", "1", "--no-progress",
                      "--out", "kqueue.toml", *OWN_FLAGS, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kqueue.toml").exists()


def test_simulate_shows_a_unit_warning_as_one_line_and_refuses_a_bad_mapping(tmp_path):
    path = write(tmp_path, "submitted_at,job_class,duration_s\n0,a,45000\n1,a,52000\n")
    done = kqueue_cli("simulate", "--trace", str(path), "--ideal", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "warning" in x]
    assert line.startswith("kqueue: warning: ") and "looks like milliseconds" in line
    done = kqueue_cli("simulate", "--trace", str(path), "--columns", "start=submitted_at",
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "'start' is not a trace column" in done.stderr
