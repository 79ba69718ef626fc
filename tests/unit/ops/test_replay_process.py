"""``kqueue replay`` measures a ``kqueue run`` worker of its own, and never leaves it behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd  # the measuring process is big on purpose: the worker must not be
import psutil
import pytest

from kqueue.job import App
from kqueue.ops.replay import MemorySampler, replay
from kqueue.ops.worker_process import PARENT_PID_ENV
from kqueue.policy import read_trace
from kqueue.policy.config import Config
from kqueue.tiers.procs import pss_mb
from tests.conftest import run_kqueue, start_kqueue


def test_replay_runs_and_measures_a_worker_process_of_its_own(tmp_path):
    # Given a trace, and this (pytest, pandas-loaded) process as the one replaying it
    frame = pd.DataFrame(
        {
            "submitted_at": [0.0, 0.05, 0.1, 0.2],
            "job_class": ["mail", "mail", "report", "mail"],
            "duration_s": [0.02, 0.02, 0.3, 0.02],
            "cpu_s": [0.01, 0.01, 0.1, 0.01],
            "memory_mb": [1.0, 1.0, 20.0, 1.0],
        }
    )
    app = App(f"sqlite:///{tmp_path / 'r.db'}")
    # When it is replayed
    result = replay(frame, app, Config(pool_size=1), trace_out=str(tmp_path / "live.csv"))
    app.close()
    # Then every row ran once, in a worker that is another process than this one ...
    assert result.summary.done == 4 and result.summary.by_status == {"ok": 4}
    live = read_trace(tmp_path / "live.csv")
    assert sorted(live.job_class) == ["mail", "mail", "mail", "report"]
    # ... each live job's id names the row it replayed ...
    positions = dict(zip(live.job_id.str.split("-").str[0], live.job_class, strict=True))
    assert positions == {"r0": "mail", "r1": "mail", "r2": "report", "r3": "mail"}
    assert {worker.split(":")[1] for worker in live.worker} != {str(os.getpid())}
    # ... and the memory sampled is that worker's family, not this process's
    assert 0 < result.peak_memory_mb < pss_mb(os.getpid())


def _worker_of(replay_pid: int, timeout_s: float = 30) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(replay_pid).children():
            if "run" in child.cmdline():
                return child
        time.sleep(0.05)
    raise AssertionError("replay started no worker process")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_replay_leaves_no_worker_behind(tmp_path, sig):
    # Given a replay of a long trace, running with its worker process
    rows = "".join(f"{i * 0.2:.1f},mail,0.05,0.01,1\n" for i in range(300))
    (tmp_path / "jobs.csv").write_text("submitted_at,job_class,duration_s,cpu_s,memory_mb\n" + rows)
    replaying = start_kqueue(
        tmp_path,
        "replay",
        "--trace",
        "jobs.csv",
        "--trace-out",
        "live.csv",
        "--backend",
        f"sqlite:///{tmp_path / 'r.db'}",
    )
    worker = _worker_of(replaying.pid)
    time.sleep(1.0)
    # When the replay is killed
    replaying.send_signal(sig)
    replaying.wait(timeout=30)
    # Then its worker exits too
    gone, alive = psutil.wait_procs([worker], timeout=30)
    assert not alive, f"worker {worker.pid} outlived its replay"


def test_the_memory_sampler_keeps_to_its_cpu_budget_on_a_big_family(tmp_path):
    # Given a process holding 300 MB (reading its PSS walks ~77k pages each time)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_300_MB], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert holder.stdout.readline() == b"ready\n"
        # When it is sampled for 2 s with a budget of 1% of a core (a sample every 0.25 s would
        # take about 3%)
        sampler = MemorySampler(holder.pid, time.monotonic(), cpu_share=BUDGET)
        began = time.monotonic()
        sampler.start()
        time.sleep(2.0)
        sampler.stop()
        elapsed_s = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Then it saw the memory, and used at most its share of a core (plus the first sample)
    assert max(mb for _, mb in sampler.samples) > 290
    first_s = sampler.cpu_s / len(sampler.samples) * 2  # a generous bound on one sample
    assert sampler.cpu_s <= BUDGET * elapsed_s + first_s


BUDGET = 0.01
HOLD_300_MB = """
import sys, time
block = bytearray(300 * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
print("ready", flush=True)
time.sleep(60)
"""


def test_a_worker_whose_starter_is_gone_exits_at_once(tmp_path, monkeypatch):
    # Given a worker told it was started by a process that is not its parent (it died first)
    backend = f"sqlite:///{tmp_path / 'r.db'}"
    (tmp_path / "noapp.py").write_text("from kqueue.job import App\napp = App()\n")
    monkeypatch.setenv(PARENT_PID_ENV, str(os.getpid() + 1_000_000))
    # When it starts, it exits before serving anything
    done = run_kqueue(tmp_path, "run", "--app", "noapp:app", "--backend", backend, timeout=30)
    assert done.returncode == 1
    # and a value that is no process id is named
    monkeypatch.setenv(PARENT_PID_ENV, "abc")
    done = run_kqueue(tmp_path, "run", "--app", "noapp:app", "--backend", backend, timeout=30)
    assert done.returncode != 0
    assert f"{PARENT_PID_ENV}='abc' is not a process id" in done.stderr
