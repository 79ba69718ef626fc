"""``kqueue run --metrics-port``: Prometheus metrics scraped from a real worker over HTTP."""

from __future__ import annotations

import socket
import time
import urllib.request

from tests.conftest import start_kqueue
from tests.unit.worker.test_sqlite_worker import APP, dispatch, runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_a_worker_serves_job_tier_and_queue_metrics(tmp_path):
    (tmp_path / "tasks.py").write_text(
        APP.format(db=tmp_path / "kqueue.db", log=str(tmp_path / "runs.log"))
    )
    dispatch(tmp_path, "noop", [(f"m{i}",) for i in range(5)])
    port = free_port()
    worker = start_kqueue(tmp_path, "run", "--app", "tasks:app", "--metrics-port", str(port))
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            try:
                text = scrape(port)
            except OSError:
                text = ""
            done = 'kqueue_jobs_total{job_class="noop",status="ok",tier="inline"} 5.0' in text
            drained = 'kqueue_queue_depth{queue="default",state="ready"} 0.0' in text
            if len(runs(tmp_path)) == 5 and done and drained:  # depth refreshes every 2 s
                break
            time.sleep(0.3)
        assert 'kqueue_jobs_total{job_class="noop",status="ok",tier="inline"} 5.0' in text, text
        assert 'kqueue_job_duration_seconds_count{job_class="noop",tier="inline"} 5.0' in text
        assert 'kqueue_job_wait_seconds_bucket{le="+Inf",tier="inline"} 5.0' in text
        assert 'kqueue_queue_depth{queue="default",state="ready"} 0.0' in text
        assert 'kqueue_tier_capacity{tier="inline"} 100.0' in text
    finally:
        worker.terminate()
        assert worker.wait(timeout=20) == 0
