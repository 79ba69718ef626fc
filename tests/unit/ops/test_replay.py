"""``kqueue replay`` re-runs a trace for real, and the units its options take."""

from __future__ import annotations

import json
import time

import pytest

from kqueue.ops.synthetic import synthetic
from kqueue.policy import read_trace
from kqueue.policy.units import parse_duration, parse_memory, parse_rate, rescale_arrivals
from tests.conftest import run_kqueue

TRACE = """submitted_at,job_class,duration_s,cpu_s,memory_mb
0.0,mail,0.05,0.01,1
0.1,mail,0.05,0.01,
0.2,report,0.6,0.3,40
0.4,mail,0.02,,
0.6,report,0.6,0.3,40
"""


def test_replay_runs_every_row_once_under_its_class_and_reproduces_cpu_and_memory(tmp_path):
    (tmp_path / "jobs.csv").write_text(TRACE)
    result = run_kqueue(
        tmp_path,
        "replay",
        "--trace",
        "jobs.csv",
        "--trace-out",
        "live.csv",
        "--memory-out",
        "mem.csv",
        "--backend",
        f"sqlite:///{tmp_path / 'r.db'}",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["jobs"] == 5 and summary["done"] == 5 and summary["by_status"] == {"ok": 5}
    live = read_trace(tmp_path / "live.csv")
    assert sorted(live.job_class) == ["mail", "mail", "mail", "report", "report"]
    reports = live[live.job_class == "report"]
    assert (reports.duration_s >= 0.55).all()
    assert (reports.cpu_s >= 0.25).all() and (reports.cpu_s < 1.0).all()
    assert summary["peak_memory_mb"] > 40
    assert (tmp_path / "mem.csv").read_text().startswith("elapsed_s,pss_mb\n")


def test_replay_rescales_arrivals_to_a_rate(tmp_path):
    (tmp_path / "jobs.csv").write_text(
        "submitted_at,job_class,duration_s\n0,a,0.01\n100,a,0.01\n200,a,0.01\n"
    )
    result = run_kqueue(
        tmp_path,
        "replay",
        "--trace",
        "jobs.csv",
        "--rate",
        "600/min",
        "--trace-out",
        "live.csv",
        "--backend",
        f"sqlite:///{tmp_path / 'r.db'}",
    )
    assert result.returncode == 0, result.stderr
    # the recorded arrivals span 200 s; at 600/min the three come 0.1 s apart: what was
    # dispatched spans a fraction of the recorded span, whatever the start-up took
    live = read_trace(tmp_path / "live.csv")
    assert len(live) == 3
    assert live.submitted_at.max() - live.submitted_at.min() < 20.0


def test_replay_of_a_malformed_trace_names_the_line_and_column(tmp_path):
    (tmp_path / "jobs.csv").write_text("submitted_at,job_class,duration_s\n0,a,1\n1,b,soon\n")
    result = run_kqueue(tmp_path, "replay", "--trace", "jobs.csv", "--trace-out", "live.csv")
    assert result.returncode == 2
    assert "line 3" in result.stderr and "duration_s" in result.stderr


def test_synthetic_job_takes_its_duration_when_the_cpu_part_is_smaller():
    took_s = synthetic(0.2, cpu_s=0.05, memory_mb=5)
    assert 0.19 <= took_s < 1.0


def test_synthetic_job_counts_the_release_of_its_memory_in_its_cpu_budget():
    # Given a row whose memory is big enough to be a mapping of its own (freeing 100 MB costs
    # about 6 ms of CPU, which used to come on top of the row's cpu_s)
    thread_cpu_s = time.thread_time()
    # When the synthetic job reproduces it
    synthetic(0.3, cpu_s=0.2, memory_mb=100)
    # Then the CPU it used, release included, is the row's (thread CPU: no other load counts)
    assert time.thread_time() - thread_cpu_s == pytest.approx(0.2, abs=0.003)


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("1000/min", 1000 / 60),
        ("20/s", 20.0),
        ("5", 5.0),
        ("7200/h", 2.0),
        (" 86400 / d ", 1.0),
    ],
)
def test_parse_rate(text, per_s):
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15min", 900.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("2", 2.0),
        ("1.5d", 129600),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "mb"), [("3GB", 3072.0), ("512MB", 512.0), ("1.5g", 1536.0), ("100", 100.0)]
)
def test_parse_memory(text, mb):
    assert parse_memory(text) == pytest.approx(mb)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_rate, "fast"),
        (parse_rate, "10/week"),
        (parse_rate, "0/min"),
        (parse_duration, "soon"),
        (parse_duration, "3 fortnights"),
        (parse_memory, "3 bananas"),
        (parse_memory, "0GB"),
    ],
)
def test_bad_units_are_clear_errors(parse, text):
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(")):
        parse(text)


def test_rescale_keeps_the_shape_and_sets_the_mean_rate():
    offsets = rescale_arrivals([10.0, 11.0, 13.0, 20.0], rate_per_s=3 / 5)
    assert offsets == pytest.approx([0.0, 0.5, 1.5, 5.0])
    assert rescale_arrivals([5.0, 5.0, 5.0], rate_per_s=2.0) == [0.0, 0.5, 1.0]
