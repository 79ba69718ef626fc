"""``kqueue trace import``: SWF logs of the Parallel Workloads Archive and mapped CSVs as traces.

The SWF tests read a cut of the real HPC2N log in ``../shared/traces/`` and compare it with the
archive's own converted CSV of the same log, which has the same jobs, times and memory.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kqueue.errors import TraceError
from kqueue.policy import COLUMNS, read_trace
from kqueue.policy.trace_swf import group_classes, read_swf
from tests.conftest import ROOT

TRACES = ROOT.parent / "shared" / "traces"
HPC2N_SWF = TRACES / "HPC2N-2002-2.1-cln.swf.gz"
HPC2N_CSV = TRACES / "HPC2N-2002-2.1-cln.csv.gz"
#: The cut: job lines 5000 to 7999, where the log starts to record used memory (job 5414).
CUT_START, CUT_JOBS = 5000, 3000


def require_shared_traces() -> None:
    """Skip without ``../shared/traces`` on a developer machine; fail under ``CI=true``."""
    if not (HPC2N_SWF.exists() and HPC2N_CSV.exists()):
        message = f"no shared traces at {TRACES}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def swf_cut(tmp_path_factory) -> Path:
    """The real log's header and a cut of its job lines, as a gzip SWF file."""
    require_shared_traces()
    path = tmp_path_factory.mktemp("swf") / "hpc2n-cut.swf.gz"
    header, jobs = [], []
    with gzip.open(HPC2N_SWF, "rt") as source:
        for line in source:
            if line.startswith(";"):
                header.append(line)
            elif len(jobs) < CUT_START - 1 + CUT_JOBS:
                jobs.append(line)
            else:
                break
    with gzip.open(path, "wt") as cut:
        cut.writelines(header + jobs[CUT_START - 1 :])
    return path


def kqueue_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kqueue", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_swf_cut_imports_as_the_archive_csv_has_it(swf_cut, tmp_path):
    # Given a cut of the real HPC2N log in SWF
    # When kqueue trace import converts it
    done = kqueue_cli("trace", "import", "--format", "swf", str(swf_cut), "--out", "cut.csv",
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {CUT_JOBS:,} jobs to cut.csv" in done.stderr
    trace = read_trace(tmp_path / "cut.csv")
    # Then it is a trace with the writer's columns, and the same jobs as the archive's CSV
    assert list(pd.read_csv(tmp_path / "cut.csv", nrows=0).columns) == list(COLUMNS)
    expected = read_trace(HPC2N_CSV).iloc[CUT_START - 1 : CUT_START - 1 + CUT_JOBS]
    assert trace["job_id"].tolist() == expected["job_id"].tolist()
    for column in ("submitted_at", "duration_s", "memory_mb"):
        np.testing.assert_array_equal(trace[column].to_numpy(), expected[column].to_numpy())
    assert trace["memory_mb"].notna().sum() > CUT_JOBS // 2
    # And each job's class is its user, which the archive's CSV names too unless it grouped it
    named = expected["job_class"] != "userother"
    mine = trace["job_class"].str.replace("user-", "user", regex=False)
    assert (mine[named.to_numpy()].to_numpy() == expected["job_class"][named].to_numpy()).all()
    # And the times the CSV lacks follow from SWF's wait time
    np.testing.assert_allclose(trace["started_at"], trace["submitted_at"] + trace["wait_s"])
    np.testing.assert_allclose(trace["finished_at"], trace["started_at"] + trace["duration_s"])
    assert set(trace["status"].dropna()) <= {"ok", "failed", "killed"}


def test_whole_swf_log_matches_the_archive_csv_with_its_31_classes():
    require_shared_traces()
    imported = group_classes(read_swf(HPC2N_SWF).frame, 31)
    archive = read_trace(HPC2N_CSV)
    assert len(imported) == len(archive) == 202_876
    for column in ("submitted_at", "duration_s", "memory_mb"):
        np.testing.assert_array_equal(imported[column].to_numpy(), archive[column].to_numpy())
    classes = imported["job_class"].str.replace("user-", "user", regex=False)
    assert (classes.to_numpy() == archive["job_class"].to_numpy()).all()
    assert imported["memory_mb"].max() == 108_000.0  # the 3 jobs of 108 GB


SWF = """; Version: 2.2
; a made-up log in the real layout
    1        0   10     60    4    50   1024    4  100  -1  1  7  1 -1 -1  1 -1 -1
    2        5   -1     30    2    -1     -1    2  100  -1  0  8  1 -1  3  1 -1 -1
    3       10    0     -1    1    -1     -1    1  100  -1  5  7  1 -1 -1  1 -1 -1
    4       12    1      2    1    -1     -1    1  100  -1  1 -1  1 -1 -1  1 -1
    5       x     1      2    1    -1     -1    1  100  -1  1  9  1 -1 -1  1 -1 -1
    6       20    1      2    1    -1     -1    1  100  -1  1  9  1 -1 -1  1 -1 -1
"""


def test_swf_fields_become_trace_columns(tmp_path):
    trace = read_swf(_write(tmp_path, SWF, 4)).frame
    first, second = trace.iloc[0], trace.iloc[1]
    assert (first["job_id"], first["job_class"], first["queue"]) == ("1", "user-7", None)
    assert (first["submitted_at"], first["started_at"], first["finished_at"]) == (0, 10, 70)
    assert (first["duration_s"], first["memory_mb"], first["status"]) == (60, 4.0, "ok")
    # -1 is missing: no wait, no start, no memory; queue 3 is named
    assert np.isnan(second["wait_s"]) and np.isnan(second["memory_mb"])
    assert (second["queue"], second["status"]) == ("queue-3", "failed")


def _write(tmp_path: Path, text: str, lines: int) -> Path:
    path = tmp_path / "log.swf"
    path.write_text("\n".join(text.splitlines()[:lines]) + "\n")
    return path


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (5, r"line 5: field 4 \(run time\): value '-1' \(missing\)"),
        (6, r"line 5: field 4"),  # the first bad line is named, not the later one
    ],
)
def test_a_bad_swf_line_is_named(tmp_path, lines, words):
    with pytest.raises(TraceError, match=words):
        read_swf(_write(tmp_path, SWF, lines))


def test_swf_drop_invalid_counts_by_reason(tmp_path):
    read = read_swf(_write(tmp_path, SWF, 8), drop_invalid=True)
    assert read.frame["job_id"].tolist() == ["1", "2", "6"]
    assert read.dropped == {
        "run time missing": 1,
        "wrong number of fields": 1,
        "submit time is not a number": 1,
    }
    (message,) = read.warnings
    assert "dropped 3 of 6 jobs: 1 run time missing (first: line 5)" in message


def test_group_classes_keeps_the_most_frequent():
    frame = pd.DataFrame({"job_class": list("aaabbcd")})
    assert group_classes(frame, 3)["job_class"].tolist() == list("aaabb") + ["user-other"] * 2
    assert group_classes(frame, 4)["job_class"].tolist() == list("aaabbcd")
    with pytest.raises(ValueError, match="at least 2"):
        group_classes(frame, 1)


def test_mapped_csv_imports_as_a_trace(tmp_path):
    # Given a log of a Celery-like system: its own names, ISO times, ms durations, bytes
    (tmp_path / "log.csv").write_text(
        "enqueued_at,task,runtime_ms,rss\n"
        "2024-05-01T12:00:00Z,mail,250,52428800\n"
        "2024-05-01T12:00:01.5Z,pdf,4000,104857600\n"
    )
    # When it is imported with the mapping and the units
    done = kqueue_cli(
        "trace", "import", "log.csv", "--out", "trace.csv",
        "--columns", "submitted_at=enqueued_at,job_class=task,duration_s=runtime_ms,memory_mb=rss",
        "--duration-unit", "ms", "--memory-unit", "B", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    # Then the trace has seconds and MB, and reads with no option at all
    trace = read_trace(tmp_path / "trace.csv")
    assert trace["submitted_at"].tolist() == [1714564800.0, 1714564801.5]
    assert trace["duration_s"].tolist() == [0.25, 4.0]
    assert trace["memory_mb"].tolist() == [50.0, 100.0]
    assert trace["job_class"].tolist() == ["mail", "pdf"]


def test_import_says_what_a_unit_mistake_looks_like(tmp_path):
    (tmp_path / "log.csv").write_text("submitted_at,job_class,duration_s\n0,a,45000\n1,a,52000\n")
    done = kqueue_cli("trace", "import", "log.csv", "--out", "t.csv", cwd=tmp_path)
    assert done.returncode == 0
    assert "kqueue trace import: warning: log.csv: duration_s has a median" in done.stderr


def test_swf_refuses_csv_flags(tmp_path):
    path = _write(tmp_path, SWF, 3)
    done = kqueue_cli("trace", "import", str(path), "--out", "t.csv", "--duration-unit", "ms",
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "for --format csv" in done.stderr
