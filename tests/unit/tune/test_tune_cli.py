"""``kqueue tune`` end to end: a config ``kqueue run`` accepts, a report, clear errors."""

from __future__ import annotations

import gzip

import pytest

from kqueue.policy import Config
from tests.conftest import run_kqueue

APP = """
from kqueue.job import App

app = App("sqlite:///kq.db")


@app.job
def hello(name):
    return name
"""


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    """A 3,000-job prototype-mix trace at 120 jobs/min."""
    folder = tmp_path_factory.mktemp("trace")
    done = run_kqueue(folder, "trace", "synth", "--out", "jobs.csv", "--jobs", "3000",
                      "--rate", "120/min", "--seed", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder / "jobs.csv"


def test_tune_writes_a_config_that_kqueue_run_accepts_and_a_report(tmp_path, small_trace):
    # Given a trace, targets and an 8-core host
    done = run_kqueue(tmp_path, "tune", "--trace", str(small_trace), "--memory-budget", "6GB",
                      "--cores", "8", "--slo", "inline.p95_wait=1s", "--slo", "pool.p95_wait=15s",
                      "--out", "tuned.toml", "--report", "report", "--processes", "2",
                      "--no-search-budget", timeout=110)  # fmt: skip
    # Then it succeeds, reports progress on stderr and the answer on stdout
    assert done.returncode == 0, done.stderr
    assert "tune stage 1/" in done.stderr and "configs" in done.stderr
    assert "hosts: 1" in done.stdout and "feasible: True" in done.stdout
    # And the file is exactly the recommended Config's TOML, which a worker runs unchanged
    tuned = Config.load(tmp_path / "tuned.toml")
    assert (tmp_path / "tuned.toml").read_text() == tuned.to_toml()
    # And it carries the budget given as a guarantee the worker keeps (issue 18; the searched
    # budget is tests/unit/tune/test_guarantee.py's)
    assert tuned.memory_budget_mb == 6 * 1024 and tuned.max_memory_mb <= 6 * 1024
    assert "MB guaranteed" not in done.stdout  # --no-search-budget: the budget as given
    (tmp_path / "app.py").write_text(APP)
    ran = run_kqueue(tmp_path, "run", "--app", "app:app", "--config", "tuned.toml", "--burst")
    assert ran.returncode == 0, ran.stderr
    # And the report has the summary, side by side, and the three figures
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| | default | recommended |" in summary and "pool.p95_wait <= 15 s" in summary
    for figure in ("pareto.png", "memory.png", "waits.png"):
        assert (tmp_path / "report" / figure).read_bytes()[:4] == b"\x89PNG"


def test_tune_names_the_binding_constraint_and_the_hosts_needed(tmp_path, small_trace):
    # Given a 2-core host: the trace offers more CPU than that
    done = run_kqueue(tmp_path, "tune", "--trace", str(small_trace), "--cores", "2",
                      "--memory-budget", "4GB", "--no-progress", timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "binding on one host: CPU" in done.stdout
    hosts = int(done.stdout.split("hosts: ")[1].split()[0])
    assert hosts >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "gpu.p95_wait=1s"], "unknown tier 'gpu'; valid tiers: inline, pool"),
        (["--slo", "pool.p90_wait=1s"], "unknown metric 'p90_wait'; valid metrics: mean_wait"),
        (["--memory-budget", "50MB"], "below the worker process's own 80 MB"),
        (["--memory-budget", "lots"], "not a number with a unit of KB, MB, GB or TB"),
        (["--rate", "fast"], "not of the form N/s"),
    ],
)
def test_bad_targets_get_clear_errors(tmp_path, small_trace, args, message):
    done = run_kqueue(tmp_path, "tune", "--trace", str(small_trace), "--no-progress", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("kqueue tune: error: ") and message in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("submitted_at,job_class,duration_s\n", "no rows"),
        ("submitted_at,job_class\n1,a\n", "duration_s"),
        ("submitted_at,job_class,duration_s\n1,a,soon\n", "duration_s"),
    ],
)
def test_malformed_or_empty_traces_get_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    done = run_kqueue(tmp_path, "tune", "--trace", "bad.csv", "--no-progress")
    assert done.returncode == 2
    assert done.stderr.startswith("kqueue tune: error: ")
    assert message in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_missing_trace_file(tmp_path):
    done = run_kqueue(tmp_path, "tune", "--trace", "nope.csv.gz", "--no-progress")
    assert done.returncode == 2 and "nope.csv.gz" in done.stderr


def test_gzip_trace_without_cpu_or_memory_is_tuned(tmp_path):
    # Given an HPC-like trace: minutes-long jobs, no cpu_s or memory_mb columns, gzip CSV
    rows = "".join(f"{i},user{i % 3},{i * 120},{300 + (i % 7) * 60}\n" for i in range(400))
    with gzip.open(tmp_path / "hpc.csv.gz", "wt") as file:
        file.write("job_id,job_class,submitted_at,duration_s\n" + rows)
    done = run_kqueue(tmp_path, "tune", "--trace", "hpc.csv.gz", "--cores", "4",
                      "--no-progress", "--report", "r")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "400 rows had no `cpu_s`" in (tmp_path / "r" / "summary.md").read_text()
