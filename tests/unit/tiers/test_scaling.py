"""The pool grows and shrinks on a real worker: processes counted in the process table."""

from __future__ import annotations

import json
import signal
import threading

from tests.support.tierapp import children, enqueue, ok_rows, wait_for, worker_running, write_app

SCALING_TOML = """
pool_size = 1
pool_max_size = 3
pool_scale_step = 1
pool_scale_cooldown_s = 0.5
max_concurrent_isolated = 0
"""


class _SizeWatcher(threading.Thread):
    """Samples how many live children a worker has, every ``interval_s``, until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.sizes: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            self.sizes.append(len(children(self.pid)))


def _published_pool(backend) -> dict:
    statuses = backend.worker_statuses()
    return json.loads(statuses[0].body)["tiers"]["pool"] if statuses else {}


def test_pool_grows_while_jobs_wait_and_shrinks_back_when_idle(tmp_path):
    # Given a worker with a pool of 1 that may grow to 3, one process per step, 0.5 s apart
    backend = write_app(tmp_path)
    (tmp_path / "kqueue.toml").write_text(SCALING_TOML)
    run = ("run", "--app", "tierjobs:app", "--config", "kqueue.toml", "--trace-out", "trace.csv")
    with worker_running(tmp_path, *run) as worker:
        assert wait_for(lambda: len(children(worker.pid)) == 1, 30)
        watcher = _SizeWatcher(worker.pid)
        watcher.start()
        # When six 2 s pool jobs arrive at once
        enqueue(backend, "pool.sleep", 2.0, count=6)
        # Then the pool grows to pool_max_size while they wait
        assert wait_for(lambda: len(children(worker.pid)) == 3, 20)
        assert wait_for(lambda: ok_rows(tmp_path, "pool.sleep") == 6, 40, 0.1)
        # And shrinks back to pool_size once idle, as published in the worker's status too
        assert wait_for(lambda: len(children(worker.pid)) == 1, 20)
        assert wait_for(lambda: _published_pool(backend).get("capacity") == 1, 10, 0.2)
        watcher.done.set()
        watcher.join()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert max(watcher.sizes) == 3
    assert set(watcher.sizes) <= {1, 2, 3}  # never past pool_max_size, never below pool_size
    assert 2 in watcher.sizes  # one process per step: it passed through 2 on the way
