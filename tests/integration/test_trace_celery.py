"""``kqueue trace record-celery``: a Celery deployment's task events as trace rows.

The builder is pure and tested on event dicts; the recorder is tested against a real Celery
worker (``celery worker -E --pool=solo``) on a private Redis server, with real tasks sent to it.
Under ``CI=true`` a missing celery or Redis server fails the test instead of skipping it.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kqueue.ops.celery_trace import CeleryTraceBuilder
from kqueue.policy import read_trace
from tests.conftest import ROOT, require_redis_server


def require_celery() -> None:
    """Skip without celery on a developer machine; fail under ``CI=true``."""
    try:
        import celery  # noqa: F401
    except ImportError:
        message = "celery is not installed: pip install -e '.[dev]' (or kqueue[celery])"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


# --- the builder: events in, rows out ----------------------------------------------------------


def event(kind: str, uuid: str, at: float, **fields) -> dict:
    return {"type": kind, "uuid": uuid, "timestamp": at, "hostname": "celery@h1", **fields}


def test_a_succeeded_task_becomes_one_row():
    builder = CeleryTraceBuilder()
    rows = [
        builder.add(event("task-sent", "t1", 100.0, name="app.pdf", queue="reports")),
        builder.add(event("task-received", "t1", 100.5, name="app.pdf", retries=0)),
        builder.add(event("task-started", "t1", 101.0)),
        builder.add(event("task-succeeded", "t1", 103.1, runtime=2.0)),
    ]
    assert rows[:3] == [None, None, None]
    row = rows[3]
    assert (row.job_id, row.job_class, row.queue, row.worker) == (
        "t1",
        "app.pdf",
        "reports",
        "celery@h1",
    )
    assert (row.submitted_at, row.started_at, row.finished_at) == (100.0, 101.0, 103.0)
    assert (row.wait_s, row.duration_s, row.status, row.attempt) == (1.0, 2.0, "ok", 1)
    assert math.isnan(row.cpu_s) and math.isnan(row.memory_mb)


def test_a_retried_task_gives_a_failed_attempt_then_the_next():
    # Given a task without task-sent (submitted_at is then its receipt), retried once
    builder = CeleryTraceBuilder()
    events = [
        event("task-received", "t2", 10.0, name="app.flaky", retries=0),
        event("task-started", "t2", 10.5),
        event("task-retried", "t2", 11.0),
        event("task-received", "t2", 12.0, name="app.flaky", retries=1),
        event("task-started", "t2", 12.0),
        event("task-failed", "t2", 12.25),
    ]
    rows = [r for r in map(builder.add, events) if r is not None]
    assert [(r.status, r.attempt, r.submitted_at, r.wait_s, r.duration_s) for r in rows] == [
        ("failed", 1, 10.0, 0.5, 0.5),
        ("failed", 2, 12.0, 0.0, 0.25),
    ]


def test_a_task_received_before_recording_is_not_a_row():
    builder = CeleryTraceBuilder()
    assert builder.add(event("task-succeeded", "old", 5.0, runtime=1.0)) is None
    assert builder.add({"type": "worker-heartbeat", "timestamp": 5.0}) is None
    assert builder.unmatched == 1


def test_pending_tasks_are_bounded():
    builder = CeleryTraceBuilder(max_pending=2)
    for i in range(3):
        builder.add(event("task-received", f"t{i}", float(i), name="a"))
    assert builder.add(event("task-succeeded", "t0", 9.0, runtime=1.0)) is None
    assert builder.add(event("task-succeeded", "t2", 9.0, runtime=1.0)).job_id == "t2"


# --- a real worker -----------------------------------------------------------------------------

APP = '''"""A Celery app for the recorder test."""

import time

from celery import Celery

app = Celery("celeryapp", broker={broker!r})


@app.task(name="jobs.nap")
def nap(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="jobs.fail")
def fail():
    raise ValueError("boom")


@app.task(name="jobs.flaky", bind=True, max_retries=1)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "second time lucky"
'''


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)])}
    with log.open("w") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def wait_for(predicate, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            shown = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{shown}")
        time.sleep(0.1)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.mark.redis
@pytest.mark.timeout(180)
def test_record_celery_writes_a_row_per_finished_attempt(tmp_path, redis_server):
    require_celery()
    require_redis_server()
    from celery import Celery

    # Given a running Celery worker with events on, on a private Redis
    broker = redis_server.url.rsplit("/", 1)[0] + "/3"
    (tmp_path / "celeryapp.py").write_text(APP.format(broker=broker))
    worker_log, recorder_log = tmp_path / "worker.log", tmp_path / "recorder.log"
    worker = start([sys.executable, "-m", "celery", "-A", "celeryapp", "worker", "-E",
                    "--pool=solo", "-n", "kqtest@localhost", "--without-gossip",
                    "--without-mingle", "--loglevel=INFO"], tmp_path, worker_log)  # fmt: skip
    recorder = counted = None
    client = Celery("client", broker=broker, set_as_current=False)
    client.conf.task_send_sent_event = True
    try:
        wait_for(lambda: "ready." in worker_log.read_text(), 60, "the worker", worker_log)
        # When the recorder listens and tasks are sent
        recorder = start([sys.executable, "-m", "kqueue", "trace", "record-celery", "--broker",
                          broker, "--out", "jobs.csv", "--duration-s", "120"], tmp_path,
                         recorder_log)  # fmt: skip
        counted_log = tmp_path / "counted.log"
        counted = start([sys.executable, "-m", "kqueue", "trace", "record-celery", "--broker",
                         broker, "--out", "first.csv", "--max-events", "4"], tmp_path,
                        counted_log)  # fmt: skip
        for log in (recorder_log, counted_log):
            wait_for(lambda log=log: "recording task events" in log.read_text(), 30,
                     "the recorders", log)  # fmt: skip
        for seconds in (0.2, 0.1, 0.3):
            client.send_task("jobs.nap", args=[seconds])
        client.send_task("jobs.fail")
        client.send_task("jobs.flaky")
        csv = tmp_path / "jobs.csv"

        def rows() -> int:
            return max(0, len(csv.read_text().splitlines()) - 1) if csv.exists() else 0

        wait_for(lambda: rows() >= 6, 60, "six rows", recorder_log)
        # (and a recorder told to stop after 4 task events has stopped by itself)
        assert counted.wait(timeout=30) == 0, counted_log.read_text()
        assert "4 task events" in counted_log.read_text()
        # Then Ctrl-C stops it cleanly, with a summary
        assert stop(recorder, signal.SIGINT) == 0, recorder_log.read_text()
    finally:
        client.close()
        for process in (recorder, counted):
            if process is not None:
                stop(process)
        stop(worker)
    assert "6 rows (3 task names) written to jobs.csv" in recorder_log.read_text()
    # And each finished attempt is a trace row with the task's name, status, times and worker
    trace = read_trace(tmp_path / "jobs.csv")
    by_class = trace.groupby("job_class")["status"].apply(sorted).to_dict()
    assert by_class == {"jobs.nap": ["ok"] * 3, "jobs.fail": ["failed"],
                        "jobs.flaky": ["failed", "ok"]}  # fmt: skip
    naps = trace[trace["job_class"] == "jobs.nap"]
    assert sorted(naps["duration_s"].round(1)) == [0.1, 0.2, 0.3]
    assert (trace["wait_s"] >= 0).all() and (trace["worker"] == "kqtest@localhost").all()
    assert sorted(trace[trace["job_class"] == "jobs.flaky"]["attempt"]) == [1, 2]
    assert (naps["queue"] == "celery").all()  # from task-sent, which this client sends
    assert (trace["finished_at"] >= trace["started_at"]).all()


def test_record_celery_names_an_unreachable_broker(tmp_path):
    require_celery()
    from kqueue.testing import free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "kqueue", "trace", "record-celery", "--broker",
                           f"redis://127.0.0.1:{free_port()}/0", "--out", "jobs.csv",
                           "--duration-s", "5"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot record from the broker redis://127.0.0.1:" in done.stderr


def test_without_celery_the_recorder_says_how_to_install_it(tmp_path, monkeypatch):
    from kqueue.errors import KQueueError
    from kqueue.ops.celery_trace import record_celery

    monkeypatch.setitem(sys.modules, "celery", None)  # import celery now raises ImportError
    with pytest.raises(KQueueError, match=r"pip install kqueue\[celery\]"):
        record_celery("redis://127.0.0.1:1/0", tmp_path / "jobs.csv")


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_enable_events_turns_on_a_worker_started_without_them(tmp_path, redis_server):
    require_celery()
    from celery import Celery

    # Given a worker started without -E
    broker = redis_server.url.rsplit("/", 1)[0] + "/4"
    (tmp_path / "celeryapp.py").write_text(APP.format(broker=broker))
    worker_log, recorder_log = tmp_path / "worker.log", tmp_path / "recorder.log"
    worker = start([sys.executable, "-m", "celery", "-A", "celeryapp", "worker", "--pool=solo",
                    "-n", "quiet@localhost", "--without-gossip", "--without-mingle",
                    "--loglevel=INFO"], tmp_path, worker_log)  # fmt: skip
    recorder = None
    client = Celery("client", broker=broker, set_as_current=False)
    try:
        wait_for(lambda: "ready." in worker_log.read_text(), 60, "the worker", worker_log)
        # When the recorder asks it to send events, then a task runs
        recorder = start([sys.executable, "-m", "kqueue", "trace", "record-celery", "--broker",
                          broker, "--out", "jobs.csv", "--enable-events", "--duration-s", "60"],
                         tmp_path, recorder_log)  # fmt: skip
        wait_for(lambda: "recording task events" in recorder_log.read_text(), 30,
                 "the recorder", recorder_log)  # fmt: skip
        wait_for(lambda: "Events of group {task} enabled by remote" in worker_log.read_text(),
                 30, "events on", worker_log)  # fmt: skip
        client.send_task("jobs.nap", args=[0.05])
        csv = tmp_path / "jobs.csv"
        wait_for(lambda: csv.exists() and len(csv.read_text().splitlines()) == 2, 60,
                 "the row", recorder_log)  # fmt: skip
    finally:
        client.close()
        if recorder is not None:
            stop(recorder, signal.SIGINT)
        stop(worker)
    # Then its task is recorded
    assert read_trace(tmp_path / "jobs.csv")["job_class"].tolist() == ["jobs.nap"]
