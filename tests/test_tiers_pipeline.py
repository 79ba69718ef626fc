"""Pool pipelining on a real worker: a request queued behind a dying job is not lost."""

from __future__ import annotations

import signal

import psutil

from tests.tierapp import enqueue, left_in_queue, trace, wait_for, worker_running, write_app

RUN = ("run", "--app", "tierjobs:app", "--trace-out", "trace.csv", "--burst")


def test_request_queued_behind_a_killed_job_runs_once_elsewhere(tmp_path):
    # Given a pool of 1 running a job estimated short (so the next one is queued in its pipe)
    backend = write_app(tmp_path)
    enqueue(backend, "pool.once.short", "first.pid", 60.0)
    with worker_running(tmp_path, *RUN, "--pool-size", "1", "--pool-max-size", "1") as worker:
        assert wait_for(lambda: (tmp_path / "first.pid").exists(), 30)
        enqueue(backend, "pool.short", 0.1)
        assert wait_for(lambda: left_in_queue(backend) == 2 and _leased(backend) == 2, 10)
        # When the process is killed with the second request still unread in its pipe
        psutil.Process(int((tmp_path / "first.pid").read_text())).send_signal(signal.SIGKILL)
        # Then both jobs finish: the killed one on its retry, the queued one once, first attempt
        assert worker.wait(timeout=60) == 0
    rows = trace(tmp_path)
    killed = rows[rows.job_class == "pool.once.short"].sort_values("attempt")
    assert list(killed.status) == ["killed", "ok"]
    queued = rows[rows.job_class == "pool.short"]
    assert list(queued.status) == ["ok"]
    assert list(queued.attempt) == [1]
    assert left_in_queue(backend) == 0


def _leased(backend) -> int:
    return backend.counts().get("default", {}).get("leased", 0)
