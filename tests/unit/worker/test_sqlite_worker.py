"""The worker end to end on the embedded SQLite backend, with real ``kqueue run`` processes.

Each test writes a small app module into its temporary folder. Jobs append one line per run to
a log file (a single ``O_APPEND`` write, so concurrent processes never interleave), which is how
the tests count runs and duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.errors import JobError
from kqueue.job import encode_message
from kqueue.policy import read_trace
from tests.conftest import run_kqueue, start_kqueue

APP = """
import asyncio, os, time
from kqueue import App

app = App("sqlite:///{db}")
LOG = {log!r}

def mark(tag):
    fd = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (tag + "\\n").encode())
    os.close(fd)

def runs():
    return open(LOG).read().split() if os.path.exists(LOG) else []

@app.job(name="sleepy", tier="inline")
def sleepy(tag, seconds):
    mark(tag)
    time.sleep(seconds)

@app.job(name="noop", tier="inline")
def noop(tag):
    mark(tag)

@app.job(name="nap", tier="inline")
async def nap(tag, seconds):
    await asyncio.sleep(seconds)
    mark(tag)

@app.job(name="stuck_once", tier="inline")
def stuck_once(tag):
    first = tag not in runs()
    mark(tag)
    if first:
        time.sleep(60)

@app.job(name="fail", tier="inline", max_attempts=3)
def fail(tag):
    mark(tag + ":" + repr(time.time()))
    raise ValueError("boom " + tag)
"""


@pytest.fixture
def project(tmp_path: Path):
    """A folder with ``tasks.py`` (the app above), its database and its run log."""
    db, log = tmp_path / "kqueue.db", tmp_path / "runs.log"
    (tmp_path / "tasks.py").write_text(APP.format(db=db, log=str(log)))
    return tmp_path


def runs(project: Path) -> list[str]:
    log = project / "runs.log"
    return log.read_text().split() if log.exists() else []


def dispatch(project: Path, name: str, calls: list[tuple]) -> list[str]:
    """Enqueue calls of job ``name`` straight through the backend (as an app would)."""
    backend = SQLiteBackend(project / "kqueue.db")
    now = time.time()
    messages = [
        (f"{name}-{i}", encode_message(name, args, {}, now)) for i, args in enumerate(calls)
    ]
    backend.enqueue_many("default", messages)
    backend.close()
    return [job_id for job_id, _ in messages]


def remaining(project: Path) -> dict[str, int]:
    backend = SQLiteBackend(project / "kqueue.db")
    counts = backend.counts().get("default", {"ready": 0, "scheduled": 0, "leased": 0, "dead": 0})
    backend.close()
    return counts


def test_three_inline_jobs_of_3s_finish_together_once_each_and_leave_nothing(project):
    # Given three 3-second jobs on the queue
    dispatch(project, "sleepy", [(f"s{i}", 3) for i in range(3)])
    # When a burst worker drains it
    result = run_kqueue(project, "run", "--app", "tasks:app", "--burst", "--trace-out", "t.csv")
    # Then they ran concurrently (all three were running at one moment: each started before any
    # ended, which no machine's speed changes), once each, and the queue is empty
    assert result.returncode == 0, result.stderr
    assert sorted(runs(project)) == ["s0", "s1", "s2"]
    assert remaining(project) == {"ready": 0, "scheduled": 0, "leased": 0, "dead": 0}
    trace = read_trace(project / "t.csv")
    assert len(trace) == 3 and set(trace.tier) == {"inline"} and set(trace.status) == {"ok"}
    assert trace.started_at.max() < trace.finished_at.min(), trace[["started_at", "finished_at"]]
    assert (trace.duration_s >= 2.9).all() and (trace.cpu_s < 0.5).all()


def test_two_workers_on_one_file_drain_2000_jobs_without_loss_or_duplicates(project):
    dispatch(project, "noop", [(f"n{i}",) for i in range(2000)])
    workers = [start_kqueue(project, "run", "--app", "tasks:app", "--burst") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=90) == 0
    seen = runs(project)
    assert len(seen) == 2000 and len(set(seen)) == 2000
    assert remaining(project)["ready"] == 0


def test_a_killed_workers_job_runs_again_after_its_lease_expires(project):
    (project / "kqueue.toml").write_text("visibility_timeout_s = 2.0\n")
    dispatch(project, "stuck_once", [("k",)])
    # Given a worker that started the job and then died with SIGKILL
    first = start_kqueue(project, "run", "--app", "tasks:app", "--config", "kqueue.toml")
    _wait_for(lambda: runs(project) == ["k"], timeout_s=20)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()
    # When another worker runs
    result = run_kqueue(project, "run", "--app", "tasks:app", "--config", "kqueue.toml", "--burst")
    # Then it ran the job once the lease expired, and the job is done
    assert result.returncode == 0, result.stderr
    assert runs(project) == ["k", "k"]
    assert time.monotonic() - killed_at >= 1.0
    assert remaining(project) == {"ready": 0, "scheduled": 0, "leased": 0, "dead": 0}


def test_a_failing_job_is_retried_with_backoff_then_dead_lettered_with_its_traceback(project):
    (project / "kqueue.toml").write_text("retry_backoff_s = 0.3\n")
    dispatch(project, "fail", [("f",)])
    result = run_kqueue(
        project,
        "run",
        "--app",
        "tasks:app",
        "--config",
        "kqueue.toml",
        "--burst",
        "--trace-out",
        "t.csv",
    )
    assert result.returncode == 0, result.stderr
    attempts = [float(line.split(":", 1)[1]) for line in runs(project)]
    assert len(attempts) == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # 0.3 s, then doubled
    assert remaining(project)["dead"] == 1
    dead = run_kqueue(project, "dead", "--app", "tasks:app")
    assert "ValueError: boom f" in dead.stdout and "attempts=3" in dead.stdout
    backend = SQLiteBackend(project / "kqueue.db")
    [letter] = backend.dead_letters()
    assert "Traceback (most recent call last)" in letter.reason
    assert read_trace(project / "t.csv").status.tolist() == ["failed"] * 3
    # And it can be requeued
    requeued = run_kqueue(project, "dead", "--app", "tasks:app", "--requeue")
    assert "requeued 1" in requeued.stdout
    assert remaining(project)["ready"] == 1


def test_unknown_names_and_garbage_payloads_are_dead_lettered_and_the_worker_goes_on(project):
    backend = SQLiteBackend(project / "kqueue.db")
    now = time.time()
    backend.enqueue("default", "unknown", encode_message("os.system", ("rm -rf /",), {}, now))
    backend.enqueue("default", "pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os")
    backend.enqueue("default", "list", b"[1, 2]")
    backend.enqueue("default", "deep", b"[" * 100_000)  # found by tests/fuzz
    backend.enqueue("default", "good", encode_message("noop", ("ok",), {}, now))
    backend.close()
    result = run_kqueue(project, "run", "--app", "tasks:app", "--burst")
    assert result.returncode == 0, result.stderr
    assert runs(project) == ["ok"]
    backend = SQLiteBackend(project / "kqueue.db")
    reasons = {x.job_id: x.reason for x in backend.dead_letters()}
    assert "unknown job name 'os.system'" in reasons["unknown"]
    assert "noop" in reasons["unknown"]  # names what the app does register
    assert "not JSON" in reasons["pickle"]
    assert "expected an object" in reasons["list"]
    assert "nested too deeply" in reasons["deep"]


def test_an_unknown_config_key_is_a_clear_error(project):
    (project / "kqueue.toml").write_text("pool_sise = 4\n")
    result = run_kqueue(project, "run", "--app", "tasks:app", "--config", "kqueue.toml")
    assert result.returncode == 2
    assert "kqueue.toml" in result.stderr and "'pool_sise'" in result.stderr
    assert "pool_size" in result.stderr  # the valid choices are listed


def test_a_bad_app_spec_is_a_clear_error(project):
    result = run_kqueue(project, "run", "--app", "nosuchmodule:app")
    assert result.returncode == 2 and "cannot import 'nosuchmodule'" in result.stderr


def test_a_non_json_argument_is_refused_at_dispatch(tmp_path):
    from kqueue import App

    app = App(f"sqlite:///{tmp_path / 'q.db'}")

    @app.job
    def job(value):
        return value

    with pytest.raises(JobError, match=r"argument 1 \(object\) is not JSON-serialisable"):
        job.dispatch(object())
    with pytest.raises(JobError, match=r"keyword argument 'when' \(datetime\)"):
        import datetime

        job.dispatch(when=datetime.datetime.now())
    assert app.backend.counts() == {}
    assert job.name == f"{__name__}.job"


def test_sigterm_lets_running_jobs_finish_and_returns_the_rest(project):
    # Given a worker limited to 2 concurrent inline jobs with 6 half-second jobs queued
    (project / "kqueue.toml").write_text("max_concurrent_inline = 2\nshutdown_grace_s = 5\n")
    dispatch(project, "nap", [(f"n{i}", 1.0) for i in range(6)])
    worker = start_kqueue(
        project, "run", "--app", "tasks:app", "--config", "kqueue.toml", "--trace-out", "t.csv"
    )
    _wait_for(lambda: remaining(project)["leased"] >= 2, timeout_s=20)
    # When it gets SIGTERM while two jobs run
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    # Then the running jobs finished and every other job is back, ready to run
    done = runs(project)
    counts = remaining(project)
    assert 2 <= len(done) < 6
    assert counts["ready"] == 6 - len(done) and counts["leased"] == 0
    assert len(read_trace(project / "t.csv")) == len(done)


def test_sigusr1_drains_the_queue_then_exits(project):
    # Given a worker (not --burst) limited to 2 concurrent inline jobs with 6 jobs queued
    (project / "kqueue.toml").write_text("max_concurrent_inline = 2\n")
    dispatch(project, "nap", [(f"d{i}", 0.3) for i in range(6)])
    worker = start_kqueue(project, "run", "--app", "tasks:app", "--config", "kqueue.toml")
    _wait_for(lambda: remaining(project)["leased"] >= 2, timeout_s=20)
    # When it gets SIGUSR1 while the first jobs run
    worker.send_signal(signal.SIGUSR1)
    # Then it runs every queued job, not only the running ones, and exits by itself
    assert worker.wait(timeout=30) == 0
    assert sorted(runs(project)) == [f"d{i}" for i in range(6)]
    assert remaining(project) == {"ready": 0, "scheduled": 0, "leased": 0, "dead": 0}


def test_max_jobs_stops_after_that_many(project):
    dispatch(project, "noop", [(f"m{i}",) for i in range(10)])
    result = run_kqueue(project, "run", "--app", "tasks:app", "--max-jobs", "4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["done"] == 4
    assert len(runs(project)) == 4 and remaining(project)["ready"] == 6


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


if os.environ.get("KQUEUE_DEBUG_TESTS"):
    print(textwrap.dedent(APP))
