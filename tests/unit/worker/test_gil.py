"""The worker's GIL switch interval (``kqueue.worker.gil``), set for real in ``kqueue run``."""

from __future__ import annotations

import sys

from kqueue.worker.gil import WORKER_SWITCH_INTERVAL_S, worker_switch_interval
from tests.conftest import run_kqueue
from tests.support.tierapp import enqueue, write_app


def test_the_block_has_the_worker_interval_and_gives_back_the_one_before():
    before = sys.getswitchinterval()
    with worker_switch_interval():
        assert sys.getswitchinterval() == WORKER_SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == before


INTERVAL_JOB = """

@app.job(name="inline.interval", tier="inline")
def inline_interval():
    import sys
    (HERE / "interval.txt").write_text(repr(sys.getswitchinterval()))
"""


def test_kqueue_run_shortens_the_switch_interval_its_inline_jobs_run_under(tmp_path):
    backend = write_app(tmp_path)
    with open(tmp_path / "tierjobs.py", "a") as module:
        module.write(INTERVAL_JOB)
    enqueue(backend, "inline.interval", count=1)
    done = run_kqueue(tmp_path, "run", "--app", "tierjobs:app", "--burst")
    assert done.returncode == 0, done.stderr
    seen_s = float((tmp_path / "interval.txt").read_text())
    assert seen_s == WORKER_SWITCH_INTERVAL_S < 0.005  # CPython's default is 5 ms
